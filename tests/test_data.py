"""Data: file readers, .ts parsing, splits and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_waves, write_ts
from seqlab.config import DataConfig
from seqlab.data import Normalizer, load_data, read_file, read_ts
from seqlab.data.dataset import SequenceSet
from seqlab.data.sources import aeon_data_dir
from seqlab.errors import SeqlabError


def test_digits_reads_each_image_row_by_row():
    from sklearn.datasets import load_digits

    bundle = load_data(DataConfig(spec="digits"), seed=0)
    assert bundle.train.X.shape[1:] == (8, 8)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 1797
    images = load_digits().images
    first = bundle.train.ids[0]
    np.testing.assert_array_equal(bundle.train.X[0], images[first])  # step t = image row t


def test_splits_are_stratified_disjoint_and_seeded():
    a = load_data(DataConfig(spec="digits"), seed=3)
    b = load_data(DataConfig(spec="digits"), seed=3)
    c = load_data(DataConfig(spec="digits"), seed=4)
    np.testing.assert_array_equal(a.test.ids, b.test.ids)
    assert not np.array_equal(a.test.ids, c.test.ids)
    ids = [set(part.ids.tolist()) for part in (a.train, a.val, a.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    share = np.bincount(a.test.y, minlength=10) / len(a.test)
    overall = np.bincount(np.concatenate([a.train.y, a.val.y, a.test.y]), minlength=10) / 1797
    assert np.abs(share - overall).max() < 0.01


def test_normalizer_uses_valid_training_steps_only():
    X = np.zeros((2, 3, 1), np.float32)
    X[0, :, 0] = [1, 2, 3]
    X[1, :1, 0] = [10]  # length 1: steps 1 and 2 are padding
    data = SequenceSet(X, np.array([0, 1]), np.array([3, 1]))
    norm = Normalizer.fit(data, "standard")
    values = np.array([1, 2, 3, 10.0])
    np.testing.assert_allclose(norm.shift, [values.mean()], rtol=1e-6)
    np.testing.assert_allclose(norm.scale, [values.std()], rtol=1e-6)
    out = norm.transform(data)
    assert np.all(out.X[1, 1:] == 0)
    minmax = Normalizer.fit(data, "minmax").transform(data)
    assert minmax.X[0, 0, 0] == 0 and minmax.X[1, 0, 0] == 1


def test_ts_pair_multivariate_variable_length(tmp_path):
    cases, labels = make_waves(12, 9, 3, classes=3, variable=True)
    names = ["low", "mid", "high"]
    write_ts(tmp_path / "Waves_TRAIN.ts", cases, [names[i] for i in labels], names)
    test_cases, test_labels = make_waves(6, 12, 3, classes=3, seed=1, variable=True)
    write_ts(tmp_path / "Waves_TEST.ts", test_cases, [names[i] for i in test_labels], names)
    bundle = load_data(DataConfig(spec=str(tmp_path / "Waves_TRAIN.ts"), val_fraction=0.25), seed=0)
    assert bundle.class_names == names  # header order
    assert len(bundle.test) == 6 and len(bundle.train) + len(bundle.val) == 12
    assert bundle.test.X.shape[1] == bundle.train.X.shape[1] == max(len(c) for c in cases + test_cases)
    lengths = [len(c) for c in test_cases]
    np.testing.assert_array_equal(bundle.test.lengths, lengths)
    np.testing.assert_allclose(bundle.test.X[0, : lengths[0]], test_cases[0], atol=1e-5)
    np.testing.assert_array_equal(bundle.test.y, test_labels)


def test_ts_univariate_and_trailing_missing_values(tmp_path):
    path = tmp_path / "Uni.ts"
    path.write_text(
        "@problemName Uni\n@timeStamps false\n@univariate true\n@equalLength false\n"
        "@classLabel true a b\n@data\n1,2,3:a\n4,5,?,?:b\n"
    )
    content = read_ts(path)
    assert [s.shape for s in content.series] == [(3, 1), (2, 1)]
    assert content.labels == ["a", "b"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("@problemName X\n@classLabel true a\n1,2:a\n", r"X.ts:3: expected a header line starting with '@' before @data"),
        ("@problemName X\n@data\n1,2:a\n", r"malformed header: expected a @classLabel \(classification\) or @targetLabel \(regression\) line before @data"),
        ("@problemName X\n@classLabel true a\n", r"malformed header: no @data line found"),
        ("@timeStamps true\n@classLabel true a\n@data\n", r"X.ts:1: time-stamped series"),
        ("@univariate maybe\n", r"X.ts:1: @univariate expects true or false, got 'maybe'"),
        ("@dimensions 2\n@classLabel true a\n@data\n1,2:3,4:a\n1,2:a\n", r"X.ts:5: inconsistent dimensions: expected 2"),
        ("@dimensions 2\n@classLabel true a\n@data\n1,2:3,4,5:a\n", r"X.ts:4: inconsistent dimensions: the 2 dimensions of this case have lengths \[2, 3\]"),
        ("@classLabel true a\n@data\n1,x:a\n", r"X.ts:3: expected comma-separated numbers"),
        ("@classLabel true a\n@data\n1,2:b\n", r"label 'b' is not among the declared classes \['a'\]"),
        ("@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n", r"case 1 has 2 steps; @seriesLength declares 3"),
    ],
)
def test_malformed_ts_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "X.ts"
    path.write_text(text)
    with pytest.raises(SeqlabError, match=message):
        load_data(DataConfig(spec=str(path)))


def test_ts_train_without_test_sibling(tmp_path):
    cases, labels = make_waves(4, 5, 1)
    write_ts(tmp_path / "Lone_TRAIN.ts", cases, [str(v) for v in labels], ["0", "1"])
    with pytest.raises(SeqlabError, match=r"expected its test split Lone_TEST.ts beside it"):
        load_data(DataConfig(spec=str(tmp_path / "Lone_TRAIN.ts")))


def test_npz_with_lengths_zeroes_padding(tmp_path):
    X = np.ones((4, 5, 2), np.float32)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 1]), lengths=np.array([5, 2, 3, 1]))
    loaded = read_file(tmp_path / "d.npz")
    assert loaded.X[1, 2:].sum() == 0 and loaded.X[1, :2].sum() == 4


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"y": np.zeros(3)}, r"expected an array named 'X' \(N, T, F\); found arrays \['y'\]"),
        ({"X": np.zeros((3, 4, 2)), "y": np.zeros(2)}, r"X has 3 sequences but y has 2; expected equal counts"),
        ({"X": np.zeros((3, 4, 2)), "y": np.zeros(3), "lengths": np.array([1, 2, 9])}, r"lengths: expected values in 1..4, got 1..9"),
        ({"X": np.array([[[np.nan]]] * 2), "y": np.zeros(2)}, r"X contains 2 NaN or Inf values \(first at sequence 0, step 0, feature 0\)"),
        ({"X": np.array([[[np.inf]], [[1.0]]]), "y": np.zeros(2)}, r"X contains 1 NaN or Inf values"),
        ({"X": np.array(["a", "b"])[:, None, None], "y": np.zeros(2)}, r"X: expected a numeric array of shape \(N, T, F\)"),
    ],
)
def test_bad_npz_files(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(SeqlabError, match=message):
        load_data(DataConfig(spec=str(path)))


def test_npz_without_labels_cannot_train(tmp_path):
    np.savez(tmp_path / "x.npz", X=np.zeros((3, 4, 2)))
    with pytest.raises(SeqlabError, match=r"no labels found"):
        load_data(DataConfig(spec=str(tmp_path / "x.npz")))


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([object()], dtype=object), y=np.zeros(1))
    with pytest.raises(SeqlabError, match=r"object arrays"):
        read_file(path)


def test_csv_long_layout(tmp_path):
    path = tmp_path / "seq.csv"
    path.write_text("id,label,a,b\ns1,walk,1,2\ns1,walk,3,4\ns2,run,5,6\ns1,walk,7,8\n")
    loaded = read_file(path)
    assert loaded.X.shape == (2, 3, 2)
    np.testing.assert_array_equal(loaded.X[0], [[1, 2], [3, 4], [7, 8]])
    np.testing.assert_array_equal(loaded.lengths, [3, 1])
    assert list(loaded.labels) == ["walk", "run"] and list(loaded.ids) == ["s1", "s2"]
    assert loaded.feature_names == ["a", "b"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("label,a\nx,1\n", r"expected a header with an 'id' column"),
        ("id,label,a\n1,x,1\n1,y,2\n", r"seq.csv:3: sequence '1' changes label from 'x' to 'y'"),
        ("id,a\n1,one\n", r"seq.csv:2: expected numbers in the feature columns"),
        ("id,a,b\n1,2\n", r"seq.csv:2: expected 3 fields, got 2"),
        ("", r"empty file"),
    ],
)
def test_bad_csv_files(tmp_path, text, message):
    path = tmp_path / "seq.csv"
    path.write_text(text)
    with pytest.raises(SeqlabError, match=message):
        read_file(path)


def test_unknown_spec_and_missing_file(tmp_path):
    with pytest.raises(SeqlabError, match=r"unknown data set; expected one of digits, aeon:NAME"):
        load_data(DataConfig(spec="mnist"))
    with pytest.raises(SeqlabError, match=r"nothere.npz: file not found"):
        load_data(DataConfig(spec=str(tmp_path / "nothere.npz")))


def _has_aeon() -> bool:
    try:
        return aeon_data_dir().is_dir()
    except SeqlabError:
        return False


aeon = pytest.mark.skipif(not _has_aeon(), reason="aeon is not installed")


@aeon
def test_aeon_japanese_vowels_is_variable_length_multivariate():
    bundle = load_data(DataConfig(spec="aeon:JapaneseVowels"), seed=0)
    assert bundle.input_size == 12 and bundle.num_classes == 9
    assert len(bundle.test) == 370 and len(bundle.train) + len(bundle.val) == 270
    assert bundle.test.lengths.min() >= 7 and bundle.test.lengths.max() <= 29
    assert bundle.train.lengths.min() < bundle.train.lengths.max()


@aeon
def test_aeon_unknown_name_lists_available():
    with pytest.raises(SeqlabError, match=r"aeon ships no Nope_TRAIN.ts; available: .*BasicMotions"):
        load_data(DataConfig(spec="aeon:Nope"))
