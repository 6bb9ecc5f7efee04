"""The NLB test phase: train on NLB train + val, predict the desc-test file, write the leaderboard's file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import yaml

from blend_core.api import DataError, NeuralData
from blend_nwb.evaluation import submission_tree, write_h5
from blend_nwb.nlb import SPECS, load_nlb
from blend_nwb.synthetic import write_nlb_file


@pytest.fixture(scope="session")
def nlb_pairs(tmp_path_factory):
    """A tiny desc-train / desc-test pair per NLB dataset, in the DANDI file names."""
    root = tmp_path_factory.mktemp("pairs")
    out = {}
    for ds in SPECS:
        d = root / ds
        d.mkdir()
        train = d / "sub-x_desc-train_behavior+ecephys.nwb"
        test = d / "sub-x_desc-test_ecephys.nwb"
        write_nlb_file(train, dataset=ds, n_trials=40, n_test_trials=12, n_heldin=8, n_heldout=3, seed=4,
                       test_path=test)
        out[ds] = (train, test)
    return out


def _tree(f: h5py.Group) -> dict:
    return {k: _tree(v) if isinstance(v, h5py.Group) else (v.shape, v.dtype.str, v[()]) for k, v in f.items()}


@pytest.mark.parametrize("dataset,bin_ms", [(ds, 5) for ds in SPECS] + [(ds, 20) for ds in ("mc_maze", "dmfc_rsg",
                                                                                          "area2_bump")])
def test_submission_matches_nlb_tools(nlb_pairs, tmp_path, dataset, bin_ms):
    """Same trials, same predictions: our file equals what nlb_tools' make_* and save_to_h5 give."""
    pytest.importorskip("nlb_tools")
    from nlb_tools.make_tensors import make_eval_input_tensors, make_train_input_tensors, save_to_h5
    from nlb_tools.nwb_interface import NWBDataset

    train, test = nlb_pairs[dataset]
    res = load_nlb(train, dataset, bin_ms=bin_ms, phase="test", test_path=test)
    d, T, n_in = res.data, res.data.window_bins, res.data.n_heldin
    assert res.key == dataset + ("" if bin_ms == 5 else f"_{bin_ms}") and res.target == {}
    assert (d.split[res.eval_rows] == "test").all() and set(d.split[res.train_rows]) == {"train", "val"}

    tr_ds, te_ds = NWBDataset(str(train)), NWBDataset(str(test))
    tr_ds.resample(bin_ms)
    te_ds.resample(bin_ms)
    theirs_train = make_train_input_tensors(tr_ds, dataset, ["train", "val"], save_file=False,
                                            include_forward_pred=True)
    theirs_eval = make_eval_input_tensors(te_ds, dataset, "test", save_file=False)
    # the same trials in the same order: our inputs equal theirs
    np.testing.assert_array_equal(d.heldin[res.train_rows, :T], theirs_train["train_spikes_heldin"])
    np.testing.assert_array_equal(d.heldout[res.train_rows, :T], theirs_train["train_spikes_heldout"])
    np.testing.assert_array_equal(d.heldin[res.eval_rows, :T], theirs_eval["eval_spikes_heldin"])

    rates = np.random.default_rng(0).uniform(0.01, 1.0, (d.n_trials, d.n_bins, n_in + d.n_heldout))
    ours = write_h5(tmp_path / "ours.h5", submission_tree(res.key, rates, res.train_rows, res.eval_rows, T, n_in))
    tr, ev = res.train_rows, res.eval_rows
    n_out = theirs_train["train_spikes_heldout"].shape[2]
    fp = theirs_train["train_spikes_heldin_forward"].shape[1]
    assert (theirs_train["train_spikes_heldin"].shape[1], fp) == (T, d.fp_bins)
    save_to_h5({res.key: {
        "train_rates_heldin": rates[tr, :T, :n_in].astype(np.float32),
        "train_rates_heldout": rates[tr, :T, n_in:n_in + n_out].astype(np.float32),
        "eval_rates_heldin": rates[ev, :T, :n_in].astype(np.float32),
        "eval_rates_heldout": rates[ev, :T, n_in:n_in + n_out].astype(np.float32),
        "eval_rates_heldin_forward": rates[ev, T:T + fp, :n_in].astype(np.float32),
        "eval_rates_heldout_forward": rates[ev, T:T + fp, n_in:n_in + n_out].astype(np.float32),
    }}, str(tmp_path / "theirs.h5"))
    with h5py.File(ours, "r") as a, h5py.File(tmp_path / "theirs.h5", "r") as b:
        mine, ref = _tree(a), _tree(b)
    assert list(mine) == [res.key] and set(mine[res.key]) == set(ref[res.key])
    for k, (shape, dtype, values) in ref[res.key].items():
        assert mine[res.key][k][:2] == (shape, dtype), k
        np.testing.assert_array_equal(mine[res.key][k][2], values)


def test_test_phase_needs_the_test_file(nlb_pairs, tmp_path):
    train, test = nlb_pairs["mc_maze"]
    with pytest.raises(DataError, match="data.test_path: required"):
        load_nlb(train, "mc_maze", phase="test")
    with pytest.raises(DataError, match="no 'test' trials"):
        load_nlb(train, "mc_maze", phase="test", test_path=train)  # the train file has no test trials
    other_test = tmp_path / "sub-y_desc-test_ecephys.nwb"  # another session: 5 held-in units, not 8
    write_nlb_file(tmp_path / "sub-y_desc-train_behavior+ecephys.nwb", dataset="mc_maze", n_trials=10,
                   n_test_trials=4, n_heldin=5, n_heldout=2, test_path=other_test)
    with pytest.raises(DataError, match="held-in units"):
        load_nlb(train, "mc_maze", phase="test", test_path=other_test)
    with pytest.raises(DataError, match="data.phase"):
        load_nlb(train, "mc_maze", phase="leaderboard")


def test_score_rates_skips_unobserved_targets():
    """blend_core.neural_task.score_rates: a metric with no observed target is skipped, not an error."""
    from blend_core.api import score_rates

    rng = np.random.default_rng(0)
    n, T, fp = 12, 10, 4
    heldin = rng.poisson(1.0, (n, T + fp, 3)).astype(np.float32)
    heldout = rng.poisson(1.0, (n, T + fp, 2)).astype(np.float32)
    split = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 4)
    decode = rng.normal(size=(n, T, 2))
    rates = rng.uniform(0.5, 1.5, (n, T + fp, 5))
    full = score_rates(NeuralData(heldin=heldin, heldout=heldout, fp_bins=fp, split=split, bin_ms=5.0,
                                  decode_behavior=decode), rates)
    assert set(full) == {"co-bps", "vel R2", "fp-bps"}
    heldout[split == "test"] = np.nan
    heldin[split == "test", T:] = np.nan
    decode[split == "test"] = np.nan
    assert score_rates(NeuralData(heldin=heldin, heldout=heldout, fp_bins=fp, split=split, bin_ms=5.0,
                                  decode_behavior=decode), rates) == {}


def test_test_phase_run_end_to_end(nlb_pairs, tmp_path, tiny_test_phase_config):
    """`blend run` with data.phase: test writes submissions (no target, no scores) and the files' sha256."""
    pytest.importorskip("blend_core.runner")
    from blend_core.api import run_blend as main
    from blend_nwb.cache import sha256_file

    train, test = nlb_pairs["mc_maze"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_test_phase_config(train)))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    assert not (out / "nlb-target.h5").exists()
    res = load_nlb(train, "mc_maze", phase="test", test_path=test)
    for role in ("teacher", "student", "baseline"):
        with h5py.File(out / f"submission-{role}.h5", "r") as f:
            g = f["mc_maze"]
            assert g["eval_rates_heldout"].shape == (len(res.eval_rows), 140, 3)
            assert g["train_rates_heldin"].shape == (len(res.train_rows), 140, 8)
            assert g["eval_rates_heldin_forward"].dtype == np.float32
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(not scores.get("co-bps") for scores in metrics.values())
    record = json.loads((out / "nwb-source.json").read_text())
    assert record["phase"] == "test"
    assert record["files"]["train"]["sha256"] == sha256_file(train)
    assert record["files"]["test"]["sha256"] == sha256_file(test)
