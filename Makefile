# seqlab: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv and install the pinned dependencies on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: help install demo test test-slow bench clean

help:
	@echo "make demo       set up .venv, run the main job, print where its results are"
	@echo "make test       set up .venv, run the whole test suite"
	@echo "make test-slow  also run the long tests (full training runs)"
	@echo "make bench      run the benchmark scripts in benchmarks/"
	@echo "make clean      remove .venv and runs/"

install: $(STAMP)

# torch goes first, pinned, so the CPU build is taken and no CUDA wheels are pulled.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seqlab demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) runs
