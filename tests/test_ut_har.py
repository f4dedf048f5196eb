"""UT-HAR loader on generated files in SenseFi's exact layout."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.config import DataConfig
from seqlab.data import load_data
from seqlab.data.synthetic import write_ut_har
from seqlab.errors import SeqlabError


@pytest.fixture(scope="module")
def ut_har(tmp_path_factory):
    return write_ut_har(tmp_path_factory.mktemp("ut") / "UT_HAR", sizes=(14, 7, 7))


def test_reads_sensefi_layout(ut_har):
    bundle = load_data(DataConfig(spec=f"ut-har:{ut_har}"))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (14, 7, 7)
    assert bundle.train.X.shape[1:] == (250, 90) and bundle.num_classes == 7
    raw = np.load(ut_har / "data" / "X_val.csv")  # a .npy file despite its name
    np.testing.assert_array_equal(bundle.val.X, raw.reshape(-1, 250, 90))
    np.testing.assert_array_equal(bundle.val.y, np.load(ut_har / "label" / "y_val.csv").astype(int))


def test_per_file_minmax_uses_each_files_own_range(ut_har):
    bundle = load_data(DataConfig(spec=f"ut-har:{ut_har}", options={"normalize": "per-file-minmax"}))
    for part in (bundle.train, bundle.val, bundle.test):
        assert part.X.min() == 0.0 and part.X.max() == pytest.approx(1.0)


def test_missing_split_and_count_mismatch(tmp_path):
    folder = write_ut_har(tmp_path / "a", sizes=(7, 7, 7))
    (folder / "label" / "y_test.csv").unlink()
    with pytest.raises(SeqlabError, match=r"y_test.csv: file not found; a UT-HAR folder holds"):
        load_data(DataConfig(spec=f"ut-har:{folder}"))
    folder = write_ut_har(tmp_path / "b", sizes=(7, 7, 7))
    with (folder / "label" / "y_train.csv").open("wb") as handle:
        np.save(handle, np.zeros(5))
    with pytest.raises(SeqlabError, match=r"X_train.csv holds 7 samples but .*y_train.csv holds 5 labels"):
        load_data(DataConfig(spec=f"ut-har:{folder}"))


def test_unknown_source_option_is_refused(ut_har):
    with pytest.raises(SeqlabError, match=r"unknown key data.options.scale; valid keys for data.options: normalize"):
        load_data(DataConfig(spec=f"ut-har:{ut_har}", options={"scale": 1}))
