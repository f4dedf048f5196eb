"""DEAP loader: preprocessing, windows, labels, leak-free splits, restricted unpickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import signal

from seqlab.config import DataConfig
from seqlab.data import deap
from seqlab.data.deap import DEAPOptions, trial_labels
from seqlab.data import load_data
from seqlab.data import synthetic
from seqlab.data.synthetic import write_deap
from seqlab.errors import SeqlabError

SAMPLES = deap.RATE * (deap.BASELINE_SECONDS + 10)  # 10 s per trial keeps the tests fast


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_deap(tmp_path_factory.mktemp("deap") / "data_preprocessed_python", subjects=3, samples=SAMPLES)


def load(folder, seed=0, **options):
    return load_data(DataConfig(spec=f"deap:{folder}", options=options), seed=seed)


def test_windows_hold_the_documented_preprocessing(folder):
    bundle = load(folder, channels=["Fp1", "Cz", "O2"], window=2.0, stride=1.5, scale="none", downsample=2)
    raw = pickle.load(open(folder / "s02.dat", "rb"), encoding="latin1")  # our own test file: trusted
    x = raw["data"][:, [0, 23, 31], :]
    base = deap.RATE * deap.BASELINE_SECONDS
    x = x[:, :, base:] - x[:, :, :base].mean(axis=2, keepdims=True)
    x = signal.sosfiltfilt(signal.butter(4, [4, 45], btype="bandpass", fs=128, output="sos"), x, axis=2)
    x = signal.decimate(x, 2, axis=2, zero_phase=True)  # (40, 3, 640) at 64 Hz
    window, stride = 128, 96  # 2 s and 1.5 s at 64 Hz
    per_trial = (640 - window) // stride + 1
    sides = (bundle.train, bundle.val, bundle.test)
    assert sum(len(s) for s in sides) == 3 * 40 * per_trial
    for side in sides:
        for i in range(0, len(side), 97):
            s, trial, start = side.index[i]
            if s == 1:
                np.testing.assert_allclose(side.window_array(i), x[trial, :, start : start + window].T, atol=1e-4)
                assert start % stride == 0


def test_labels_follow_the_documented_schemes():
    ratings = np.array([[5.0, 5.0, 1, 1], [7.2, 2.1, 1, 1], [4.99, 8.0, 1, 1], [1.0, 4.9, 1, 1]] * 10)
    assert list(trial_labels(ratings, DEAPOptions())[:4]) == [0, 1, 2, 3]  # HVHA, HVLA, LVHA, LVLA
    assert list(trial_labels(ratings, DEAPOptions(labels="valence"))[:4]) == [1, 1, 0, 0]
    assert list(trial_labels(ratings, DEAPOptions(labels="arousal"))[:4]) == [1, 0, 1, 0]
    assert list(trial_labels(ratings, DEAPOptions(threshold=7))[:4]) == [3, 1, 2, 3]


def test_trial_split_keeps_every_trial_on_one_side(folder):
    bundle = load(folder, window=4.0, stride=2.0)
    trials = [{(int(s), int(t)) for s, t, _ in side.index} for side in (bundle.train, bundle.val, bundle.test)]
    assert not (trials[0] & trials[1]) and not (trials[0] & trials[2]) and not (trials[1] & trials[2])
    assert sum(len(t) for t in trials) == 3 * 40
    assert len(trials[2]) == 3 * round(0.2 * 40)  # data.test_fraction of each subject's trials
    labels = {}
    raw = pickle.load(open(folder / "s01.dat", "rb"), encoding="latin1")
    expected = trial_labels(raw["labels"], DEAPOptions())
    for i, (s, t, _) in enumerate(bundle.train.index):
        if s == 0:
            assert bundle.train.y[i] == expected[t]
            labels[t] = bundle.train.y[i]
    assert labels


def test_subject_split_leaves_subjects_out(folder):
    bundle = load(folder, window=4.0, stride=4.0, split="subject", test_subjects=[2])
    subjects = [set(side.index[:, 0].tolist()) for side in (bundle.train, bundle.val, bundle.test)]
    assert subjects[2] == {1} and not (subjects[0] & subjects[1]) and not (subjects[0] & subjects[2])


def test_random_split_warns_about_leakage(folder, capsys):
    load(folder, window=4.0, stride=4.0, split="random")
    assert "leakage" in capsys.readouterr().err


def test_scaling_statistics_come_from_training_trials(folder):
    bundle = load(folder, window=4.0, stride=2.0, channels=["Cz"])
    values = []
    for s, t in {(int(s), int(t)) for s, t, _ in bundle.train.index}:
        values.append(np.load(bundle.train.subjects[s].path, mmap_mode="r")[t][:, 0])
    values = np.concatenate(values)
    np.testing.assert_allclose(bundle.train.shift, [values.mean()], rtol=1e-5)
    np.testing.assert_allclose(bundle.train.scale, [values.std()], rtol=1e-4)


def test_zscore_then_minmax_chains_a_per_trial_zscore_and_the_training_range(folder):
    bundle = load(folder, window=4.0, stride=2.0, channels=["Cz", "O2"], scale="zscore-minmax")
    train = {(int(s), int(t)) for s, t, _ in bundle.train.index}

    def zscored(s, t):  # the trial over its own samples, per channel
        x = np.load(bundle.train.subjects[s].path, mmap_mode="r")[t].astype(np.float64)
        return (x - x.mean(axis=0)) / x.std(axis=0)

    values = np.concatenate([zscored(s, t) for s, t in sorted(train)])
    low, high = values.min(axis=0), values.max(axis=0)
    np.testing.assert_allclose(bundle.train.shift, low, rtol=1e-6)
    for side in (bundle.train, bundle.test):
        for i in (0, len(side) - 1):
            s, t, start = side.index[i]
            expected = (zscored(s, t)[start : start + side.window] - low) / (high - low)
            np.testing.assert_allclose(side.window_array(i), expected, atol=1e-5)
    train_values = np.concatenate([bundle.train.window_array(i) for i in range(0, len(bundle.train), 7)])
    assert train_values.min() >= 0.0 and train_values.max() <= 1.0


def test_eog_regression_is_fitted_on_training_trials_and_removes_the_eye_channels(tmp_path):
    """EEG = brain + EOG B_true: the least-squares weights over the training trials recover B_true,
    and the windows hold the EEG with the EOG share taken out."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "eog"
    folder.mkdir()
    mixing = np.array([[0.8, -0.3, 0.0], [0.1, 0.5, 1.2]])  # (E, C): hEOG, vEOG into Fp1, F7, O1
    channels, index = ["Fp1", "F7", "O1"], [0, 3, 13]
    for number in (1, 2):
        subject = synthetic.deap_subject(rng, SAMPLES)
        eog = 5.0 * subject["data"][:, 32:34]  # (40, E, S): strong eye signals
        subject["data"][:, 32:34] = eog
        subject["data"][:, index] += np.einsum("tes,ec->tcs", eog, mixing)
        with open(folder / f"s{number:02d}.dat", "wb") as handle:
            pickle.dump(subject, handle, protocol=4)
    bundle = load(folder, window=4.0, stride=4.0, channels=channels, eog="regress", scale="none")
    weights = bundle.train.cleaning.eog_weights
    train = sorted({(int(s), int(t)) for s, t, _ in bundle.train.index})
    cached = np.concatenate([np.load(bundle.train.subjects[s].path, mmap_mode="r")[t] for s, t in train])
    assert cached.shape[1] == 5  # the three channels, then hEOG and vEOG
    oracle = np.linalg.lstsq(cached[:, 3:].astype(np.float64), cached[:, :3].astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(weights, oracle, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(weights, mixing, atol=0.05)
    assert bundle.train.features == 3 and bundle.input_size == 3
    s, t, start = bundle.test.index[0]
    raw = np.load(bundle.test.subjects[s].path, mmap_mode="r")[t][start : start + 512].astype(np.float64)
    np.testing.assert_allclose(bundle.test.window_array(0), raw[:, :3] - raw[:, 3:] @ weights, atol=1e-4)
    with pytest.raises(SeqlabError, match=r"data.options.channels: expected no EOG channel with eog: regress"):
        load(folder, channels=["Fp1", "vEOG"], eog="regress")


def test_python2_style_pickles_load_too(tmp_path):
    folder = write_deap(tmp_path / "py2", subjects=1, samples=SAMPLES, protocol=2)
    bundle = load(folder, window=4.0, stride=4.0)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 40 * 2  # 10-s trials, 4-s windows


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_a_malicious_pickle_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "evil"
    folder.mkdir()
    with open(folder / "s01.dat", "wb") as handle:
        pickle.dump({"data": Exploit(), "labels": np.ones((40, 4))}, handle, protocol=2)
    with pytest.raises(SeqlabError, match=r"s01.dat: refused to unpickle posix.system"):
        load(folder)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "content,message",
    [
        ([1, 2, 3], r"expected a dict with 'data' and 'labels', found list"),
        ({"data": np.zeros((40, 40, SAMPLES))}, r"expected a dict with 'data' and 'labels', found \['data'\]"),
        ({"data": np.zeros((40, 32, SAMPLES)), "labels": np.ones((40, 4))}, r"data: expected shape \(40, 40, 8064\), got \(40, 32, 1664\)"),
        ({"data": np.zeros((40, 40, SAMPLES)), "labels": np.ones((40, 3))}, r"labels: expected shape \(40, 4\)"),
        ({"data": np.zeros((40, 40, SAMPLES)), "labels": np.full((40, 4), 10.0)}, r"labels: expected ratings in 1..9, got 10..10"),
        ({"data": np.zeros((40, 40, SAMPLES)), "labels": np.where(np.arange(160).reshape(40, 4) == 9, np.nan, 5.0)},
         r"labels: trial 3 has a NaN or Inf arousal rating; expected ratings in 1..9"),
    ],
)
def test_bad_subject_files(tmp_path, content, message):
    with open(tmp_path / "s01.dat", "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    with pytest.raises(SeqlabError, match=message):
        load(tmp_path)


def test_bad_options(folder):
    with pytest.raises(SeqlabError, match=r"data.options.window: 20.0 s = 2560 samples is longer than a trial \(1280 samples"):
        load(folder, window=20.0)
    with pytest.raises(SeqlabError, match=r"data.options.channels: expected names from Fp1, AF3"):
        load(folder, channels=["Fp1", "Xz9"])
    with pytest.raises(SeqlabError, match=r"no sNN.dat files found"):
        load(folder.parent)
