"""The synthetic writer makes valid NWB; bad input fails with one line naming file, object, expectation."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from blend_core.api import ConfigError, DataError
from blend_nwb.nlb import load_nlb
from blend_nwb.source import NWBConfig, NWBSource, build_source


def test_synthetic_file_is_valid_nwb(nlb_files):
    from pynwb import validate

    for path in (nlb_files["mc_maze"], nlb_files["dmfc_rsg"]):
        assert list(validate(path=str(path))) == []
    nwbinspector = pytest.importorskip("nwbinspector")
    critical = [m for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(nlb_files["mc_maze"]))
                if m.importance.name == "CRITICAL"]
    assert critical == []


def test_dandi_layout(nlb_files):
    with h5py.File(nlb_files["mc_maze"], "r") as f:
        for obj in ("units/spike_times", "units/obs_intervals", "units/heldout", "intervals/trials/split",
                    "intervals/trials/move_onset_time", "intervals/trials/trial_type",
                    "intervals/trials/trial_version", "processing/behavior/hand_vel/data"):
            assert obj in f, obj


def _copy(src, tmp_path, name="f.nwb"):
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst


def _one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_not_nwb(tmp_path):
    text = tmp_path / "notes.nwb"
    text.write_text("hello")
    with pytest.raises(DataError) as exc:
        load_nlb(text, "mc_maze")
    assert "notes.nwb" in _one_line(exc) and "HDF5" in str(exc.value)
    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as f:
        f["x"] = 1
    with pytest.raises(DataError, match="not NWB"):
        load_nlb(plain, "mc_maze")


def test_truncated_file(nlb_files, tmp_path):
    data = nlb_files["mc_maze"].read_bytes()
    cut = tmp_path / "cut.nwb"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as exc:
        load_nlb(cut, "mc_maze")
    assert "cut.nwb" in _one_line(exc)


@pytest.mark.parametrize("column", ["heldout", "obs_intervals"])
def test_missing_units_column(nlb_files, tmp_path, column):
    path = _copy(nlb_files["mc_maze"], tmp_path)
    with h5py.File(path, "a") as f:
        del f[f"units/{column}"]
        if f"units/{column}_index" in f:
            del f[f"units/{column}_index"]
    with pytest.raises(DataError) as exc:
        load_nlb(path, "mc_maze")
    assert f"units/{column}" in _one_line(exc) and "f.nwb" in str(exc.value)


def test_behavior_off_the_ms_grid(nlb_files, tmp_path):
    path = _copy(nlb_files["mc_maze"], tmp_path)
    with h5py.File(path, "a") as f:
        f["processing/behavior/hand_vel/starting_time"][()] = 0.0004  # shifted by 0.4 ms
    with pytest.raises(DataError) as exc:
        load_nlb(path, "mc_maze")
    assert "hand_vel" in _one_line(exc) and "1 ms grid" in str(exc.value)


def test_unknown_dataset_and_generic_keys_in_nlb_mode(nlb_files):
    with pytest.raises(ConfigError, match="unknown NLB dataset 'mc_mze'"):
        build_source(NWBConfig(path=str(nlb_files["mc_maze"]), dataset="mc_mze"))
    with pytest.raises(ConfigError, match="data.window_ms: only without data.dataset"):
        build_source(NWBConfig(path=str(nlb_files["mc_maze"]), dataset="mc_maze", window_ms=(0, 100)))
    with pytest.raises(ConfigError, match="data.path: required"):
        build_source(NWBConfig(dataset="mc_maze"))


def test_nlb_keys_are_refused_in_generic_mode(nlb_files):
    """Without data.dataset, val_fraction and behavior_lag_ms would be ignored: they are refused instead."""
    generic = {"path": str(nlb_files["mc_maze"]), "window_ms": (0, 500)}
    build_source(NWBConfig(**generic))
    with pytest.raises(ConfigError) as exc:
        build_source(NWBConfig(**generic, val_fraction=0.2, behavior_lag_ms=50))
    assert exc.value.problems == [
        "data.val_fraction: only with data.dataset (NLB mode); without it the validation trials come from "
        "data.split_column or data.split_fractions",
        "data.behavior_lag_ms: only with data.dataset (NLB mode); without it the teacher sees the behavior "
        "series unshifted"]
    build_source(NWBConfig(path=str(nlb_files["mc_maze"]), dataset="mc_maze", val_fraction=0.2, behavior_lag_ms=50))


def test_empty_split(nlb_files, tmp_path):
    path = _copy(nlb_files["mc_maze"], tmp_path)
    with h5py.File(path, "a") as f:
        split = f["intervals/trials/split"]
        values = np.array([s.decode() if isinstance(s, bytes) else s for s in split[()]], dtype=object)
        values[values == "val"] = "none"
        split[...] = values.astype(object)
    with pytest.raises(DataError) as exc:
        load_nlb(path, "mc_maze")
    assert "no 'val' trials" in _one_line(exc)


def test_generic_mode(nlb_files):
    cfg = NWBConfig(path=str(nlb_files["mc_maze"]), align_field="move_onset_time", window_ms=(-200, 400),
                    fp_ms=100, bin_ms=10, behavior=("hand_vel",), decode_lag_ms=100, heldout_fraction=0.3,
                    split_fractions=(0.6, 0.2, 0.2), condition_columns=("trial_type", "trial_version"), seed=3)
    d = NWBSource(cfg).load()
    assert (d.window_bins, d.fp_bins, d.bin_ms) == (60, 10, 10.0)
    assert d.n_heldin + d.n_heldout == 14 and d.n_heldout == round(0.3 * 14)
    assert d.behavior.shape == (d.n_trials, 70, 2) and d.decode_behavior.shape == (d.n_trials, 60, 2)
    assert set(np.unique(d.split)) == {"train", "val", "test"}
    assert d.psth.shape[1:] == (60, 14)
    # the file's own held-out flags; its split column (NLB train file) has no test trials
    d2 = NWBSource(NWBConfig(path=str(nlb_files["mc_maze"]), window_ms=(0, 500), heldout_column="heldout")).load()
    assert d2.n_heldout == 4 and d2.behavior is None
    with pytest.raises(DataError, match="the 'test' split is empty"):
        NWBSource(NWBConfig(path=str(nlb_files["mc_maze"]), window_ms=(0, 500), split_column="split")).load()
    with pytest.raises(DataError, match="window_ms: required"):
        NWBSource(NWBConfig(path=str(nlb_files["mc_maze"]))).load()
    with pytest.raises(DataError, match="behavior series not found"):
        NWBSource(NWBConfig(path=str(nlb_files["mc_maze"]), window_ms=(0, 500), behavior=("pupil",))).load()


def test_cli_exit_2_on_bad_file(tmp_path, capsys):
    pytest.importorskip("blend_core.runner")
    import yaml

    from blend_core.api import run_blend as main

    bad = tmp_path / "session.nwb"
    bad.write_text("not an nwb file")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"type": "nwb", "path": str(bad), "dataset": "mc_maze"},
                                   "backbone": {"type": "ndt"}, "train": {"device": "cpu", "progress": False}}))
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "session.nwb" in err[0]


@pytest.mark.parametrize("value,what", [(np.nan, "non-finite"), (np.inf, "non-finite"), (-0.5, "negative")])
@pytest.mark.parametrize("mode", ["nlb", "generic"])
def test_bad_spike_times(nlb_files, tmp_path, value, what, mode):
    path = _copy(nlb_files["mc_maze"], tmp_path)
    with h5py.File(path, "a") as f:
        f["units/spike_times"][3] = value
    with pytest.raises(DataError) as exc:
        if mode == "nlb":
            load_nlb(path, "mc_maze")
        else:
            NWBSource(NWBConfig(path=str(path), window_ms=(0, 500))).load()
    msg = _one_line(exc)
    assert "f.nwb" in msg and "units/spike_times" in msg and what in msg


@pytest.mark.parametrize("mode", ["nlb", "generic"])
def test_infinite_behavior(nlb_files, tmp_path, mode):
    path = _copy(nlb_files["mc_maze"], tmp_path)
    with h5py.File(path, "a") as f:
        f["processing/behavior/hand_vel/data"][1000, 0] = np.inf
    with pytest.raises(DataError) as exc:
        if mode == "nlb":
            load_nlb(path, "mc_maze")
        else:
            NWBSource(NWBConfig(path=str(path), window_ms=(0, 500), behavior=("hand_vel",))).load()
    msg = _one_line(exc)
    assert "f.nwb" in msg and "processing/behavior/hand_vel/data" in msg and "non-finite" in msg


def test_infinite_trial_behavior(nlb_files, tmp_path):
    path = _copy(nlb_files["dmfc_rsg"], tmp_path)
    with h5py.File(path, "a") as f:
        f["intervals/trials/tp"][2] = -np.inf
    with pytest.raises(DataError) as exc:
        load_nlb(path, "dmfc_rsg")
    assert "intervals/trials/tp" in _one_line(exc) and "f.nwb" in str(exc.value)


def test_the_config_is_checked_once_per_source(nlb_files, monkeypatch):
    """check_config runs when the source is made, not again at load (it ran twice per source)."""
    import blend_nwb.source as source

    calls = []
    real = source.check_config
    monkeypatch.setattr(source, "check_config", lambda cfg: (calls.append(cfg), real(cfg)))
    src = build_source(NWBConfig(path=str(nlb_files["mc_maze"]), window_ms=(0, 500)))
    src.load()
    assert len(calls) == 1
