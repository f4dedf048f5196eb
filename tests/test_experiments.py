"""Experiments: seqlab compare (grid, resume, results.csv, report), its bad input, the report's statistics."""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import friedmanchisquare

from conftest import make_waves, run_cli
from seqlab.cli.main import main
from seqlab.reports.comparison import across_data_sets, average_ranks, comparison_sections, mean_sd

TINY = ["--epochs", "1", "--hidden-size", "4", "--set", "train.baselines=false"]


def write_waves(path: Path, n: int = 24, seed: int = 0) -> Path:
    cases, labels = make_waves(n, 8, 2, seed=seed)
    np.savez(path, X=np.stack(cases).astype(np.float32), y=labels)
    return path


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """1 model x 1 data set x 2 seeds, trained once for the module's tests (more models: fabricated below)."""
    root = tmp_path_factory.mktemp("compare")
    data = write_waves(root / "waves.npz")
    argv = ["compare", "--models", "gru", "--data", str(data), "--seeds", "0,1", *TINY, "--out", root / "out"]
    assert main([str(a) for a in argv]) == 0
    return SimpleNamespace(root=root, data=data, argv=argv, out=root / "out")


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_compare_writes_one_row_per_run_matching_its_run_folder(grid):
    rows = read_results(grid.out / "results.csv")
    assert [(r["model"], r["seed"]) for r in rows] == [("gru", "0"), ("gru", "1")]
    for row in rows:
        metrics = json.loads((grid.out / row["run"] / "metrics.json").read_text())
        assert row["data"] == str(grid.data)
        assert metrics["model"] == row["model"] and metrics["recipe"]["epochs"] == 1
        assert float(row["test_accuracy"]) == pytest.approx(metrics["test"]["accuracy"])
        assert float(row["baseline_majority_accuracy"]) == pytest.approx(metrics["baselines"]["majority"]["accuracy"])
        assert int(row["params"]) == metrics["params"]


def test_compare_report_holds_mean_and_sd_over_seeds(grid):
    rows = read_results(grid.out / "results.csv")
    gru = [float(r["test_accuracy"]) for r in rows if r["model"] == "gru"]
    expected = f"{statistics.mean(gru):.4f} ± {statistics.stdev(gru):.4f}"
    report = (grid.out / "report.md").read_text()
    line = next(line for line in report.splitlines() if line.startswith("| gru "))
    assert expected in line
    assert "baseline: majority" in report
    for image in ("bars-waves.png", "curves-waves.png"):
        assert f"(plots/{image})" in report and (grid.out / "plots" / image).stat().st_size > 1000
    html = (grid.out / "report.html").read_text()
    assert "<table>" in html and html.count("data:image/png;base64,") == 2 and 'src="plots/' not in html


def test_compare_rerun_reuses_finished_and_retrains_only_the_unfinished(grid, capsys):
    folders = {row["run"]: grid.out / row["run"] for row in read_results(grid.out / "results.csv")}
    stamps = {run: (folder / "metrics.json").stat().st_mtime_ns for run, folder in folders.items()}
    unfinished = folders["waves/gru/seed1"]
    (unfinished / "metrics.json").unlink()  # as a run killed before its end leaves it
    status, out, _ = run_cli(capsys, *grid.argv)
    assert status == 0
    assert out.count("finished earlier, reused") == 1
    for run, folder in folders.items():
        if folder != unfinished:
            assert (folder / "metrics.json").stat().st_mtime_ns == stamps[run]
    assert (unfinished / "metrics.json").is_file()
    assert len(read_results(grid.out / "results.csv")) == 2
    report = (grid.out / "report.html").stat().st_mtime_ns
    status, out, _ = run_cli(capsys, *grid.argv)  # nothing left to train: nothing is rewritten
    assert status == 0 and out.count("finished earlier, reused") == 2 and "Nothing changed" in out
    assert (grid.out / "report.html").stat().st_mtime_ns == report


def test_compare_lists_every_unknown_name_before_training(tmp_path, capsys):
    status, _, err = run_cli(capsys, "compare", "--models", "gru,grux,lstmm", "--data", "digits,aeon:Nope,nope.npz",
                             "--out", tmp_path / "out")
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    for name in ("grux", "lstmm", "aeon:Nope", "nope.npz"):
        assert name in err
    assert err.split("unknown models: ")[1].startswith("grux, lstmm (")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--models", "gru", "--data", "digits,airline"], "disagree in task"),
    (["--models", "gru", "--data", "digits", "--workers", "0"], "--workers"),
    (["--models", "gru,gru", "--data", "digits"], "more than once"),
    (["--models", "gru", "--data", "digits", "--preset", "no-such-preset"], "--preset no-such-preset"),
])
def test_compare_refuses_bad_grids(tmp_path, capsys, argv, message):
    status, _, err = run_cli(capsys, "compare", *argv, "--out", tmp_path / "out")
    assert status == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def fabricated(scores: dict[str, dict[str, list[float]]], folder: Path):
    """Cells and metrics of a grid that was not trained: scores[data][model] = accuracy per seed."""
    cells, metrics = [], []
    for data, by_model in scores.items():
        for model, values in by_model.items():
            for seed, value in enumerate(values):
                cells.append(SimpleNamespace(model=model, data=data, seed=seed,
                                             job=SimpleNamespace(folder=folder / data / model / str(seed))))
                metrics.append({"task": "classification", "model": model, "params": 10, "train_seconds": 1.0,
                                "epochs": 1, "test": {"accuracy": value, "macro_f1": value},
                                "baselines": {"majority": {"accuracy": 0.25, "macro_f1": 0.1}}})
    return cells, metrics


def test_ranks_and_friedman_match_scipy(tmp_path):
    rng = np.random.default_rng(0)
    models = ["a", "b", "c", "d"]
    table = rng.uniform(0.5, 0.9, size=(7, 4)) + np.array([0.1, 0.05, 0.0, -0.05])  # (D, M), a best on average
    scores = {f"set{d}": {m: [float(table[d, j])] for j, m in enumerate(models)} for d in range(7)}
    cells, metrics = fabricated(scores, tmp_path)
    ranks = average_ranks(table, higher_better=True)
    by_hand = np.mean([[sorted(-row).index(-v) + 1 for v in row] for row in table], axis=0)
    np.testing.assert_allclose(ranks, by_hand)
    across = across_data_sets(cells, metrics)
    text = " ".join(b.text for b in across.blocks if hasattr(b, "text"))
    p = friedmanchisquare(*table.T).pvalue
    assert f"p = {p:.3g}" in text
    rank_column = {row[0]: row[-1] for row in across.blocks[0].rows}
    assert rank_column == pytest.approx(dict(zip(models, ranks)))
    assert any(getattr(b, "name", "") == "critical-difference" for b in across.blocks)


def test_no_critical_difference_below_three_data_sets(tmp_path):
    cells, metrics = fabricated({"x": {"a": [0.9], "b": [0.8], "c": [0.7]},
                                 "y": {"a": [0.9], "b": [0.8], "c": [0.7]}}, tmp_path)
    across = across_data_sets(cells, metrics)
    assert not any(getattr(b, "name", "") == "critical-difference" for b in across.blocks)
    assert "at least 3 data sets" in across.blocks[-1].text


def test_mean_sd_uses_the_sample_sd():
    assert mean_sd([0.5, 0.7, 0.9]) == f"0.7000 ± {statistics.stdev([0.5, 0.7, 0.9]):.4f}"
    assert mean_sd([0.5]) == "0.5000" and mean_sd([]) == "-"


def test_data_section_puts_models_beside_the_baselines(tmp_path):
    cells, metrics = fabricated({"x": {"rnn": [0.5, 0.7], "gru": [0.8, 0.9]}}, tmp_path)
    (section,) = comparison_sections(cells, metrics)
    table = section.blocks[0]
    assert [row[0] for row in table.rows] == ["rnn", "gru", "baseline: majority"]
    assert table.rows[1][2] == f"0.8500 ± {statistics.stdev([0.8, 0.9]):.4f}"
    assert table.rows[2][2] == "0.2500 ± 0.0000"


# ----------------------------------------------------------------------------
# seqlab tune

SPACE = "model.hidden_size: {type: int, low: 4, high: 6}\ntrain.lr: {type: float, low: 0.001, high: 0.01, log: true}\n"


def _tune_argv(data: Path, out: Path, trials: int, *extra) -> list:
    return ["tune", "--model", "gru", "--data", data, "--trials", str(trials), "--space", out.parent / "space.yaml",
            "--epochs", "1", "--set", "train.baselines=false", "--out", out, *extra]


@pytest.mark.slow
def test_tune_continues_the_study_and_best_yaml_trains_the_best_trial(tmp_path, capsys):
    import optuna

    data = write_waves(tmp_path / "waves.npz")
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "tune"
    assert run_cli(capsys, *_tune_argv(data, out, 1))[0] == 0
    status, printed, _ = run_cli(capsys, *_tune_argv(data, out, 2))  # as after a kill: one trial left to run
    assert status == 0 and printed.count("trial 1:") == 1 and "trial 0:" not in printed
    study = optuna.load_study(study_name="gru-waves", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        assert 4 <= trial.params["model.hidden_size"] <= 6
        assert json.loads((out / "trials" / f"trial-{trial.number:04d}" / "metrics.json").read_text())["val"]["loss"] \
            == pytest.approx(trial.value)
    status, _, _ = run_cli(capsys, "train", "--config", out / "best.yaml", "--out", tmp_path / "best", "--quiet")
    assert status == 0
    again = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert again["val"]["loss"] == pytest.approx(study.best_value, rel=1e-5)
    report = (out / "report.md").read_text()
    assert "optimization-history.png" in report
    assert re.search(rf"\|\s+{study.best_trial.number}\s+\|\s+{study.best_value:.4f}", report)


@pytest.mark.parametrize("argv, message", [
    (["--trials", "0"], "--trials: expected an integer in 1..100000, got 0"),
    (["--trials", "2", "--storage", "sqlite:////no/such/folder/study.db"], "--storage sqlite:////no/such/folder"),
    (["--trials", "2", "--storage", "postgresql://user:secret@127.0.0.1:1/db"], "--storage"),
    (["--trials", "2", "--space", "missing.yaml"], "--space missing.yaml: file not found"),
])
def test_tune_refuses_bad_input_in_one_line(tmp_path, capsys, argv, message):
    status, _, err = run_cli(capsys, "tune", "--model", "gru", "--data", "digits", *argv, "--out", tmp_path / "t")
    assert status == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "secret" not in err


def test_default_space_searches_only_the_options_a_model_has():
    from seqlab.experiments.tune import default_space

    keys = lambda model, task="classification": {p.key for p in default_space(model, task)}  # noqa: E731
    assert keys("gru") == {"train.lr", "train.batch_size", "model.hidden_size", "model.num_layers",
                           "model.dropout", "model.head"}
    assert keys("tcn") == {"train.lr", "train.batch_size", "model.dropout"}  # no hidden size, layers or head
    assert "model.head" not in keys("gru", "forecast")  # a forecast's head follows its strategy


def test_tune_space_file_errors_name_the_key(tmp_path):
    from seqlab.errors import SeqlabError
    from seqlab.experiments.tune import read_space

    path = tmp_path / "space.yaml"
    path.write_text("train.lr: {type: float, low: 0.1, high: 0.01}\n")
    with pytest.raises(SeqlabError, match=r"train.lr: expected numbers low <= high"):
        read_space(path)
    path.write_text("lr: {type: float, low: 0.1, high: 1}\n")
    with pytest.raises(SeqlabError, match=r"lr: expected a config key section.name"):
        read_space(path)


@pytest.mark.slow
def test_two_tune_workers_share_one_study(tmp_path):
    """Two processes of `seqlab tune` on one SQLite study: the trials of both land in it."""
    import os
    import subprocess
    import sys

    import optuna

    data = write_waves(tmp_path / "waves.npz")
    (tmp_path / "space.yaml").write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")}
    workers = [subprocess.Popen([sys.executable, "-m", "seqlab", *map(str, _tune_argv(
        data, tmp_path / f"worker{k}", 4, "--storage", storage, "--study", "shared"))], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 4 <= len(finished) <= 5  # each worker stops once the study holds 4; one may be running meanwhile
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    assert len({t.number for t in finished}) == len(finished)


# ----------------------------------------------------------------------------
# seqlab cv

def _fold_bundle(spec: str, folds: int, index: int, groups: bool = False, seed: int = 0):
    from seqlab.config import resolve_config
    from seqlab.data.sources import load_data

    config = resolve_config({"data": {"spec": spec, "fold": {"folds": folds, "index": index, "groups": groups}},
                             "train": {"seed": seed}})
    return load_data(config.data, seed)


def test_cv_trains_each_fold_with_its_own_normaliser(tmp_path, capsys):
    from seqlab.runs import load_run

    data = write_waves(tmp_path / "waves.npz", n=20)
    status, _, err = run_cli(capsys, "cv", "--model", "gru", "--data", data, "--folds", "2", *TINY,
                             "--out", tmp_path / "cv")
    assert status == 0, err
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    accuracy = [f["test_accuracy"] for f in summary["folds"]]
    assert summary["mean"]["test_accuracy"] == pytest.approx(np.mean(accuracy))
    assert summary["std"]["test_accuracy"] == pytest.approx(np.std(accuracy, ddof=1))
    raw = np.load(data)["X"]
    tested = []
    for fold in (0, 1):
        bundle = _fold_bundle(str(data), 2, fold)
        tested += list(bundle.test.ids)
        shift = load_run(tmp_path / "cv" / f"fold{fold}").normalizer.shift
        np.testing.assert_allclose(shift, raw[bundle.train.ids].reshape(-1, raw.shape[2]).mean(axis=0), rtol=1e-5)
        assert summary["folds"][fold]["test_n"] == len(bundle.test)
    assert sorted(tested) == list(range(20))  # the test folds partition the data
    assert f"{np.mean(accuracy):.4f} ± {np.std(accuracy, ddof=1):.4f}" in (tmp_path / "cv" / "report.md").read_text()


def test_group_folds_keep_every_group_on_one_side(tmp_path):
    cases, labels = make_waves(24, 6, 2, classes=2)
    groups = np.repeat(np.arange(6), 4)  # 6 subjects, both classes in each
    np.savez(tmp_path / "g.npz", X=np.stack(cases), y=labels, groups=groups)
    lines = ["id,group,label,a,b"] + [f"{i},g{groups[i]},{labels[i]},{v[0]:.5f},{v[1]:.5f}"
                                      for i, case in enumerate(cases) for v in case]
    (tmp_path / "g.csv").write_text("\n".join(lines) + "\n")
    for spec, names in ((tmp_path / "g.npz", groups.astype(str)), (tmp_path / "g.csv", np.char.add("g", groups.astype(str)))):
        seen = []
        for index in range(3):
            bundle = _fold_bundle(str(spec), 3, index, groups=True)
            by_id = dict(zip(np.arange(24).astype(str), names))
            side = lambda part: {by_id[str(i)] for i in part.ids}  # noqa: E731
            assert not side(bundle.test) & (side(bundle.train) | side(bundle.val))
            seen += sorted(side(bundle.test))
        assert sorted(seen) == sorted(set(names))


def test_deap_is_folded_by_subject_leaving_each_out(tmp_path):
    from seqlab.experiments.cv import plan_folds

    for number in (1, 2, 3):
        (tmp_path / f"s{number:02d}.dat").write_bytes(b"")
    plan = plan_folds("cnn1d-gru", f"deap:{tmp_path}", tmp_path / "cv", folds=None, groups=True)
    options = [fold.job.tree["data"]["options"] for fold in plan]
    assert [o["test_subjects"] for o in options] == [[1], [2], [3]]
    assert all(o["split"] == "subject" for o in options)


@pytest.mark.parametrize("argv, message", [
    (["--folds", "11"], "--folds 11: larger than the smallest class"),
    (["--folds", "all"], "--folds all: leaves one group out; expected --groups"),
    (["--folds", "2", "--groups"], "has no groups"),
    (["--folds", "2", "--data", "airline"], "seqlab cv folds classification data"),
])
def test_cv_refuses_bad_folds_before_training(tmp_path, capsys, argv, message):
    data = write_waves(tmp_path / "waves.npz", n=20)  # 10 sequences per class
    argv = argv if "--data" in argv else [*argv, "--data", data]
    status, _, err = run_cli(capsys, "cv", "--model", "gru", *argv, "--out", tmp_path / "cv")
    assert status == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "cv").exists()
