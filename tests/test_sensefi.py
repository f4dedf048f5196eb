"""NTU-Fi HAR / HumanID and Widar loaders on generated files in SenseFi's exact layouts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from seqlab.config import DataConfig
from seqlab.data import load_data
from seqlab.data.synthetic import write_ntu_fi, write_widar
from seqlab.errors import SeqlabError


@pytest.fixture(scope="module")
def ntu_fi(tmp_path_factory):
    return write_ntu_fi(tmp_path_factory.mktemp("ntu") / "NTU-Fi_HAR", classes=("box", "walk"), sizes=(3, 1))


def test_ntu_fi_reads_as_sensefi_does(ntu_fi):
    bundle = load_data(DataConfig(spec=f"ntu-fi-har:{ntu_fi}", val_fraction=0.3))
    assert bundle.class_names == ["box", "walk"]
    assert (len(bundle.train) + len(bundle.val), len(bundle.test)) == (6, 2)  # train_amp trains, test_amp tests
    assert bundle.train.X.shape[1:] == (500, 342)
    # SenseFi: x = loadmat(f)["CSIamp"]; x[:, ::4].reshape(3, 114, 500), then the RNN's view(342, 500).permute
    from scipy.io import loadmat

    raw = loadmat(ntu_fi / "test_amp" / "walk" / "walk_0.mat")["CSIamp"]  # (342, 2000)
    sensefi = raw[:, ::4].reshape(3, 114, 500).reshape(342, 500).transpose(1, 0)  # (T, F)
    index = list(bundle.test.ids).index("walk/walk_0.mat")
    np.testing.assert_array_equal(bundle.test.X[index], sensefi)
    assert bundle.test.y[index] == 1


def test_ntu_fi_3d_csiamp_and_the_sensefi_scaling(tmp_path):
    folder = tmp_path / "NTU-Fi-HumanID"
    rng = np.random.default_rng(0)
    cube = rng.normal(40, 5, size=(3, 114, 2000)).astype(np.float32)
    for part in ("train_amp", "test_amp"):
        for person in ("001", "002"):
            (folder / part / person).mkdir(parents=True)
            for k in range(2 if part == "train_amp" else 1):
                savemat(folder / part / person / f"{k}.mat", {"CSIamp": cube + k})
    bundle = load_data(DataConfig(spec=f"ntu-fi-humanid:{folder}", options={"normalize": "sensefi"}))
    index = list(bundle.test.ids).index("002/0.mat")
    expected = ((cube - 42.3199) / 4.9802)[:, :, ::4].reshape(342, 500).T
    np.testing.assert_allclose(bundle.test.X[index], expected, rtol=1e-5, atol=1e-5)


def test_widar_reads_22_steps_of_400(tmp_path):
    folder = write_widar(tmp_path / "Widardata", classes=("push", "sweep", "clap"), sizes=(2, 1))
    bundle = load_data(DataConfig(spec=f"widar:{folder}", val_fraction=0.2))
    assert bundle.class_names == ["clap", "push", "sweep"] and bundle.input_size == 400
    assert bundle.test.X.shape == (3, 22, 400)
    index = list(bundle.test.ids).index("sweep/sweep_0.csv")
    np.testing.assert_allclose(bundle.test.X[index], np.genfromtxt(folder / "test" / "sweep" / "sweep_0.csv",
                                                                   delimiter=",").reshape(22, 20, 20).reshape(22, 400),
                               rtol=1e-6)


def test_bad_sensefi_files_name_the_file_and_the_shape(tmp_path, ntu_fi):
    folder = tmp_path / "bad"
    (folder / "train_amp" / "box").mkdir(parents=True)
    (folder / "test_amp" / "box").mkdir(parents=True)
    savemat(folder / "train_amp" / "box" / "a.mat", {"CSI": np.zeros((342, 2000))})
    with pytest.raises(SeqlabError, match=r"a.mat: expected a variable 'CSIamp' \(3 x 114 x 2000 CSI amplitudes\); "
                                          r"found \['CSI'\]"):
        load_data(DataConfig(spec=f"ntu-fi-har:{folder}"))
    savemat(folder / "train_amp" / "box" / "a.mat", {"CSIamp": np.zeros((2000, 342))})
    with pytest.raises(SeqlabError, match=r"a.mat: CSIamp: expected numbers of shape \(342, 2000\) or "
                                          r"\(3, 114, 2000\), got float64 \(2000, 342\)"):
        load_data(DataConfig(spec=f"ntu-fi-har:{folder}"))
    (tmp_path / "w" / "train" / "push").mkdir(parents=True)
    np.savetxt(tmp_path / "w" / "train" / "push" / "s.csv", np.zeros((20, 400)), delimiter=",")
    with pytest.raises(SeqlabError, match=r"s.csv: expected 22 x 400 numbers .* got shape \(20, 400\)"):
        load_data(DataConfig(spec=f"widar:{tmp_path / 'w'}"))
    with pytest.raises(SeqlabError, match=r"unknown key data.options.scale; valid keys for data.options: normalize"):
        load_data(DataConfig(spec=f"ntu-fi-har:{ntu_fi}", options={"scale": 1}))


@pytest.mark.slow
def test_widar_trains_through_the_cli(tmp_path, capsys):
    from conftest import run_cli

    folder = write_widar(tmp_path / "Widardata", classes=("push", "sweep"), sizes=(6, 2))
    status, _, err = run_cli(capsys, "train", "--data", f"widar:{folder}", "--model", "gru", "--hidden-size", "8",
                             "--epochs", "3", "--quiet", "--out", tmp_path / "run", "--set", "train.baselines=false")
    assert status == 0, err
    status, _, err = run_cli(capsys, "eval", "--run", tmp_path / "run")
    assert status == 0, err
