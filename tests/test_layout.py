"""The package's imports run one way: no cycle between modules, imports inside functions included.

Importing ``seqlab.a.b`` first runs ``seqlab/a/__init__.py``, so a module
that imports ``seqlab.a.b`` depends on the package ``seqlab.a`` too (unless
it sits inside that package, which is then already being imported): a
package's ``__init__`` that imports its modules can close a cycle that the
modules alone do not show.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "seqlab"


def module_graph(root: Path) -> dict[str, set[str]]:
    """module -> the seqlab modules it imports (at any depth of its code), from the source files."""
    files = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path

    def owner(name: str) -> str | None:  # seqlab.kernels.dispatch.fast_forward -> seqlab.kernels.dispatch
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..a import b
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in {owner(n) for n in names if n.split(".")[0] == root.name} - {None}:
                targets.add(target)
                parts = target.split(".")
                for depth in range(2, len(parts)):  # the packages above it, run first
                    above = ".".join(parts[:depth])
                    if not (module == above or module.startswith(above + ".")):
                        targets.add(above)
        graph[module] = targets - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "seqlab"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from seqlab.sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (package / "c.py").write_text("import seqlab.a\n")
    (package / "d.py").write_text("from seqlab import a\n")
    assert cycles(module_graph(package)) == [["seqlab.a", "seqlab.c", "seqlab.sub.b"]]


def test_the_cycle_finder_counts_the_package_init_an_import_runs(tmp_path):
    package = tmp_path / "seqlab"
    for sub in ("one", "two"):
        (package / sub).mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "one" / "__init__.py").write_text("from seqlab.one.front import f\n")
    (package / "one" / "front.py").write_text("from seqlab.two.back import g\n")
    (package / "one" / "leaf.py").write_text("")
    (package / "two" / "__init__.py").write_text("")
    (package / "two" / "back.py").write_text("from seqlab.one.leaf import h\n")  # runs seqlab/one/__init__.py
    assert cycles(module_graph(package)) == [["seqlab.one", "seqlab.one.front", "seqlab.two.back"]]


def test_no_import_cycle_between_seqlab_modules():
    found = cycles(module_graph(PACKAGE))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_shared_cycle_tool_agrees_where_it_is_present():
    import subprocess
    import sys

    tool = PACKAGE.parents[2] / "shared" / "tools" / "import-cycles"
    if not tool.is_file():
        pytest.skip(f"{tool} is not beside the checkout (the ast check above covers the same ground)")
    done = subprocess.run([sys.executable, str(tool), str(PACKAGE)], capture_output=True, text=True)
    assert done.returncode == 0 and "import cycles between modules: 0" in done.stdout, done.stdout
