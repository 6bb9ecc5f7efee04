"""Hostile and broken NWB files (issue 19): each is refused at load with one line naming the file and
the object, before anything is read whole or any training starts; nothing outside the file is read."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from blend_core.api import DataError
from blend_nwb import binning as B
from blend_nwb.nlb import load_nlb
from blend_nwb.source import NWBConfig, NWBSource


@pytest.fixture
def copy(nlb_files, tmp_path):
    def make(dataset: str = "mc_maze"):
        dst = tmp_path / "f.nwb"
        shutil.copyfile(nlb_files[dataset], dst)
        return dst

    return make


def _replace(f: h5py.File, name: str, **kw) -> None:
    del f[name]
    f.create_dataset(name, **kw)


def _refused(path, mode: str = "nlb", **generic) -> str:
    with pytest.raises(DataError) as exc:
        if mode == "nlb":
            load_nlb(path, "mc_maze")
        else:
            NWBSource(NWBConfig(path=str(path), window_ms=(0, 500), **generic)).load()
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# ------------------------------------------------------------------ links out of the file and broken links

def test_external_link_is_refused(copy, tmp_path):
    other = tmp_path / "elsewhere.h5"
    with h5py.File(other, "w") as g:
        g["spike_times"] = np.arange(5.0)
    path = copy()
    with h5py.File(path, "a") as f:
        del f["units/spike_times"]
        f["units/spike_times"] = h5py.ExternalLink(str(other), "/spike_times")
    for mode in ("nlb", "generic"):
        msg = _refused(path, mode)
        assert "units/spike_times: an HDF5 external link to" in msg and "elsewhere.h5" in msg


def test_external_link_on_a_group_is_refused(copy, tmp_path):
    path = copy()
    with h5py.File(path, "a") as f:
        f.copy(f["processing"], "moved")
        del f["processing"]
        f["processing"] = h5py.ExternalLink(str(tmp_path / "gone.h5"), "/moved")
    assert "processing: an HDF5 external link" in _refused(path)


def test_external_raw_storage_is_refused(copy, tmp_path):
    raw = tmp_path / "raw.bin"
    path = copy()
    with h5py.File(path, "a") as f:
        n = len(f["units/spike_times"])
        raw.write_bytes(f["units/spike_times"][()].astype("<f8").tobytes())
        _replace(f, "units/spike_times", shape=(n,), dtype="<f8", external=[(str(raw), 0, 8 * n)])
    assert "units/spike_times: data stored in external file(s)" in _refused(path)


def test_virtual_dataset_is_refused(copy, tmp_path):
    other = tmp_path / "src.h5"
    path = copy()
    with h5py.File(path, "a") as f:
        times = f["units/spike_times"][()]
        with h5py.File(other, "w") as g:
            g["t"] = times
        layout = h5py.VirtualLayout(shape=times.shape, dtype=times.dtype)
        layout[:] = h5py.VirtualSource(str(other), "t", shape=times.shape)
        del f["units/spike_times"]
        f.create_virtual_dataset("units/spike_times", layout)
    assert "units/spike_times: a virtual dataset" in _refused(path)


def test_link_to_nothing_and_link_to_a_group(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        del f["units/spike_times"]
        f["units/spike_times"] = h5py.SoftLink("/nowhere/at_all")
    assert "units/spike_times: a link to /nowhere/at_all, which does not exist" in _refused(path)
    with h5py.File(path, "a") as f:
        del f["units/spike_times"]
        f["units/spike_times"] = h5py.SoftLink("/units")
    assert "units/spike_times: a group; expected a dataset" in _refused(path, "generic")


def test_soft_link_inside_the_file_is_followed(copy, nlb_files):
    path = copy()
    with h5py.File(path, "a") as f:
        f.move("units/spike_times", "spikes_elsewhere")
        f["units/spike_times"] = h5py.SoftLink("/spikes_elsewhere")
    np.testing.assert_array_equal(load_nlb(path, "mc_maze").data.heldin, load_nlb(nlb_files["mc_maze"], "mc_maze").data.heldin)


# ------------------------------------------------------------------ declared sizes

@pytest.mark.parametrize("name, shape, expected", [
    ("intervals/trials/stop_time", (1 << 28,), "declares shape (268435456,) of float64 (2 GiB) but stores only"),
    ("units/spike_times", (1 << 40,), "declares shape (1099511627776,) of float64 (8.19e+03 GiB); blend reads at most 8 GiB"),
])
def test_declared_sizes_are_checked_before_reading(copy, name, shape, expected):
    import resource

    path = copy()
    with h5py.File(path, "a") as f:
        _replace(f, name, shape=shape, dtype="f8", chunks=(1 << 16,))  # declared, never written
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = _refused(path)
    assert f"{name}: {expected}" in msg
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing was read


def test_compressed_data_within_reason_is_read(copy):
    path = copy()
    with h5py.File(path, "a") as f:  # 80 MB of zeros stored in far less: compression, not a lie
        f.create_dataset("acquisition/zeros", data=np.zeros(10_000_000), compression="gzip", chunks=(1 << 20,))
    from blend_nwb.nwbfile import NWBReader

    with NWBReader(path) as r:
        assert r.read("acquisition/zeros").shape == (10_000_000,)


# ------------------------------------------------------------------ wrong types, shapes and values

def test_strings_where_numbers_belong(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        n = len(f["intervals/trials/move_onset_time"])
        _replace(f, "intervals/trials/move_onset_time", data=np.array(["soon"] * n, dtype=object),
                 dtype=h5py.string_dtype())
    assert "intervals/trials/move_onset_time: expected numbers (one per trial), got strings" in _refused(path)
    path = copy()
    with h5py.File(path, "a") as f:
        n = len(f["units/spike_times"])
        _replace(f, "units/spike_times", data=np.array(["1.0"] * n, dtype=object), dtype=h5py.string_dtype())
    assert "units/spike_times: expected spike times in seconds, got strings" in _refused(path, "generic")


def test_two_dimensional_spike_times(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        t = f["units/spike_times"][()]
        _replace(f, "units/spike_times", data=t[:, None])
    assert "units/spike_times: expected a 1-d array of spike times in seconds, got shape" in _refused(path)


def test_spike_at_1e300_seconds(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        f["units/spike_times"][-1] = 1e300
    for mode in ("nlb", "generic"):
        assert "units/spike_times: 1 values beyond 1e+07 s (max 1e+300)" in _refused(path, mode)


def test_no_spikes_at_all(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        n_units = len(f["units/spike_times_index"])
        _replace(f, "units/spike_times", shape=(0,), dtype="f8")
        _replace(f, "units/spike_times_index", data=np.zeros(n_units, np.int64))
    assert "units/spike_times: no spikes in any unit" in _refused(path)


def test_missing_rate_attribute(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        del f["processing/behavior/hand_vel/starting_time"].attrs["rate"]
    assert "processing/behavior/hand_vel/starting_time: no 'rate' attribute" in _refused(path)


def test_all_nan_stop_time(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        f["intervals/trials/stop_time"][:] = np.nan
    for mode in ("nlb", "generic"):
        assert "intervals/trials/stop_time: 60 non-finite values (first: nan)" in _refused(path, mode)


def test_reversed_trial_intervals(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        start, stop = f["intervals/trials/start_time"][()], f["intervals/trials/stop_time"][()]
        f["intervals/trials/start_time"][3], f["intervals/trials/stop_time"][3] = stop[3], start[3]
    for mode in ("nlb", "generic"):
        assert "intervals/trials: 1 trials end before they start (first: row 3" in _refused(path, mode)


def test_inverted_obs_intervals(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        f["units/obs_intervals"][5] = f["units/obs_intervals"][5][::-1]
    assert "units/obs_intervals: 1 intervals end before they start" in _refused(path)


@pytest.mark.parametrize("value, expected", [(1.5, "constant (1.5); behavior that never changes"),
                                             (np.nan, "NaN only; expected measured behavior")])
def test_behavior_that_carries_nothing(copy, value, expected):
    path = copy()
    with h5py.File(path, "a") as f:
        f["processing/behavior/hand_vel/data"][:, 0] = value
    for mode in ("nlb", "generic"):
        msg = _refused(path, mode, behavior=("hand_vel",))
        assert f"processing/behavior/hand_vel/data: channel 0: {expected}" in msg


def test_string_heldout_column(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        held = f["units/heldout"][()]
        _replace(f, "units/heldout", data=np.array(["True" if h else "False" for h in held], dtype=object),
                 dtype=h5py.string_dtype())
    msg = _refused(path)
    assert "units/heldout: expected booleans (True/False) marking the held-out units, got strings" in msg
    assert "no held-in units" not in msg


def test_generic_window_into_unobserved_time(copy):
    path = copy()  # mc_maze's units are observed only during trials (about 1.5 s each)
    with pytest.raises(DataError) as exc:
        NWBSource(NWBConfig(path=str(path), window_ms=(0, 2500))).load()
    msg = str(exc.value)
    assert "units/obs_intervals: 60 of 60 trial windows reach into unobserved time" in msg and str(path) in msg


# ------------------------------------------------------------------ NLB binning: spike order within a unit

def _shuffled_within_units(path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "a") as f:
        t = f["units/spike_times"][()]
        bounds = np.r_[0, f["units/spike_times_index"][()]]
        for a, b in zip(bounds[:-1], bounds[1:]):
            t[a:b] = rng.permutation(t[a:b])
        f["units/spike_times"][:] = t


def test_spike_order_within_units_does_not_matter(copy, nlb_files):
    sorted_ = load_nlb(nlb_files["mc_maze"], "mc_maze")
    path = copy()
    _shuffled_within_units(path, 0)
    shuffled = load_nlb(path, "mc_maze")
    for field in ("heldin", "heldout", "psth"):
        np.testing.assert_array_equal(getattr(shuffled.data, field), getattr(sorted_.data, field), err_msg=field)
    for key in ("eval_spikes_heldout", "eval_spikes_heldin_forward", "psth"):
        np.testing.assert_array_equal(shuffled.target[key], sorted_.target[key], err_msg=key)


def test_a_full_shuffle_loads(copy):
    path = copy()
    with h5py.File(path, "a") as f:
        t = f["units/spike_times"][()]
        f["units/spike_times"][:] = np.random.default_rng(1).permutation(t)
    res = load_nlb(path, "mc_maze")  # different units' spikes, but counted correctly per unit
    assert np.isfinite(np.nansum(res.data.heldin))


def test_spike_index_sorts_what_it_is_given():
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 2, 200))
    bounds = np.array([0, 120, 200])
    shuffled = np.r_[rng.permutation(times[:120]), rng.permutation(times[120:])]
    groups = {"a": np.array([0]), "b": np.array([1, 0])}
    want = B.SpikeIndex.for_groups(times, bounds, groups, 5)
    for ms in (None, B.ms_index(shuffled)):
        got = B.SpikeIndex.for_groups(shuffled, bounds, groups, 5, ms)
        for g in groups:
            np.testing.assert_array_equal(got[g].counts(np.arange(0, 400, 10), 10), want[g].counts(np.arange(0, 400, 10), 10))


# ------------------------------------------------------------------ blend score on malformed files

@pytest.fixture(scope="module")
def scored_pair(nlb_files, tmp_path_factory):
    from blend_nwb.evaluation import submission_tree, write_h5

    res = load_nlb(nlb_files["mc_maze"], "mc_maze")
    d = res.data
    rates = np.nan_to_num(np.concatenate([d.heldin, d.heldout], axis=2)) * 0.5 + 0.05
    root = tmp_path_factory.mktemp("score")
    target = write_h5(root / "target.h5", {res.key: res.target})
    sub = write_h5(root / "sub.h5", submission_tree(res.key, rates, res.train_rows, res.eval_rows,
                                                    d.window_bins, d.n_heldin))
    return sub, target


def _set(name, **kw):
    def change(f):
        _replace(f, name, **kw)
    return change


def _strings(f):
    n = f["mc_maze/eval_rates_heldout"].shape[0]
    _replace(f, "mc_maze/eval_rates_heldout", data=np.array(["x"] * n, dtype=object), dtype=h5py.string_dtype())


def _fewer_trials(f):
    v = f["mc_maze/eval_rates_heldout"][()]
    _replace(f, "mc_maze/eval_rates_heldout", data=v[:-1])


def _two_d(f):
    v = f["mc_maze/eval_rates_heldin"][()]
    _replace(f, "mc_maze/eval_rates_heldin", data=v[..., 0])


def _fewer_neurons(f):
    v = f["mc_maze/train_rates_heldout"][()]
    _replace(f, "mc_maze/train_rates_heldout", data=v[..., :-1])


def _nan_rates(f):
    f["mc_maze/eval_rates_heldin"][0, 0, 0] = np.nan


def _group(f):
    del f["mc_maze/eval_rates_heldin"]
    f.create_group("mc_maze/eval_rates_heldin")


def _external(f):
    del f["mc_maze/eval_rates_heldin"]
    f["mc_maze/eval_rates_heldin"] = h5py.ExternalLink("/etc/hostname", "/x")


def _huge(f):
    _replace(f, "mc_maze/eval_rates_heldin", shape=(1 << 16, 1 << 10, 1 << 5), dtype="f4", chunks=(1, 1 << 10, 1 << 5))


def _bad_cond_idx(f):
    idx = f["mc_maze/eval_cond_idx"][()]
    idx[0] = np.array([10_000], np.int32)
    _replace(f, "mc_maze/eval_cond_idx", data=idx, dtype=h5py.vlen_dtype(np.int32))


def _psth_neurons(f):
    v = f["mc_maze/psth"][()]
    _replace(f, "mc_maze/psth", data=v[..., :-2])


def _behavior_trials(f):
    v = f["mc_maze/train_behavior"][()]
    _replace(f, "mc_maze/train_behavior", data=v[:-3])


def _constant_behavior(f):
    f["mc_maze/eval_behavior"][...] = 2.0


def _no_spikes(f):
    del f["mc_maze/eval_spikes_heldout"]


def _dataset_not_group(f):
    del f["mc_maze"]
    f["mc_maze"] = np.zeros(3)


SCORE_CASES = [  # (id, which file, change, expected text after "<file>: ")
    ("text", "sub", "text", "not a readable HDF5 submission file"),
    ("empty", "sub", "empty", "not a readable HDF5 submission file"),
    ("strings", "sub", _strings, "mc_maze/eval_rates_heldout: expected numbers, got strings"),
    ("fewer trials", "sub", _fewer_trials, "mc_maze/eval_rates_heldout: shape"),
    ("2-d rates", "sub", _two_d, "mc_maze/eval_rates_heldin: expected a 3-d array of numbers"),
    ("fewer neurons", "sub", _fewer_neurons, "mc_maze/train_rates_heldout: shape"),
    ("nan rates", "sub", _nan_rates, "mc_maze/eval_rates_heldin: expected finite rates >= 0"),
    ("group", "sub", _group, "mc_maze/eval_rates_heldin: a group; expected a dataset"),
    ("external link", "sub", _external, "mc_maze/eval_rates_heldin: an HDF5 external link to /etc/hostname"),
    ("declared 8 GiB", "sub", _huge, "mc_maze/eval_rates_heldin: declares shape (65536, 1024, 32) of float32 (8 GiB) but stores only"),
    ("cond index", "target", _bad_cond_idx, "mc_maze/eval_cond_idx: expected lists of eval trial indices"),
    ("psth neurons", "target", _psth_neurons, "mc_maze/psth: "),
    ("behavior trials", "target", _behavior_trials, "mc_maze/train_behavior: shape"),
    ("constant behavior", "target", _constant_behavior, "mc_maze vel R2: behaviour dimension 0 is constant over the evaluated bins"),
    ("no eval spikes", "target", _no_spikes, "no 'mc_maze/eval_spikes_heldout'"),
    ("dataset not group", "target", _dataset_not_group, "mc_maze: a dataset; expected a group"),
]


@pytest.mark.parametrize("which, change, expected", [c[1:] for c in SCORE_CASES], ids=[c[0] for c in SCORE_CASES])
def test_score_malformed_files_are_one_line(scored_pair, tmp_path, capsys, which, change, expected):
    from blend_core.api import run_blend as main

    sub, target = (tmp_path / "sub.h5", tmp_path / "target.h5")
    shutil.copyfile(scored_pair[0], sub)
    shutil.copyfile(scored_pair[1], target)
    bad = sub if which == "sub" else target
    if change == "text":
        bad.write_text("rates: high")
    elif change == "empty":
        bad.write_bytes(b"")
    else:
        with h5py.File(bad, "a") as f:
            change(f)
    assert main(["-p", "nwb", "score", str(sub), str(target)]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), out.err
    assert expected in lines[0], lines[0]
    if which == "sub" and expected.startswith("mc_maze/"):
        assert lines[0].startswith(f"error: {bad}: {expected}")


def test_score_of_the_good_pair(scored_pair, capsys):
    from blend_core.api import run_blend as main

    assert main(["-p", "nwb", "score", str(scored_pair[0]), str(scored_pair[1])]) == 0
    assert {line.split("\t")[1] for line in capsys.readouterr().out.splitlines()} == {"co-bps", "vel R2", "psth R2", "fp-bps"}
