"""Our NLB tensors equal nlb_tools' (the independent reference) on the same file."""

from __future__ import annotations

import numpy as np
import pytest

from blend_nwb.nlb import SPECS, load_nlb

DATASETS = tuple(SPECS)


def _nlb_tensors(path, dataset, bin_ms):
    pytest.importorskip("nlb_tools")
    from nlb_tools.make_tensors import (make_eval_input_tensors, make_eval_target_tensors,
                                        make_train_input_tensors)
    from nlb_tools.nwb_interface import NWBDataset

    ds = NWBDataset(str(path))
    ds.resample(bin_ms)
    train = make_train_input_tensors(ds, dataset, "train", save_file=False, include_behavior=True,
                                     include_forward_pred=True)
    evalin = make_eval_input_tensors(ds, dataset, "val", save_file=False)
    key = dataset + ("" if bin_ms == 5 else f"_{bin_ms}")
    target = make_eval_target_tensors(ds, dataset, "train", "val", save_file=False, include_psth=True)[key]
    return train, evalin, target


def _same(a, b, tol=0.0):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=tol, rtol=0)


@pytest.mark.parametrize("dataset", DATASETS)
def test_tensors_equal_nlb_tools(nlb_files, dataset):
    _check(nlb_files[dataset], dataset, 5)


@pytest.mark.parametrize("dataset", ["mc_maze", "dmfc_rsg", "area2_bump"])
def test_tensors_equal_nlb_tools_20ms(nlb_files, dataset):
    _check(nlb_files[dataset], dataset, 20)


def _check(path, dataset, bin_ms):
    train, evalin, target = _nlb_tensors(path, dataset, bin_ms)
    res = load_nlb(path, dataset, bin_ms=bin_ms)
    d, T = res.data, res.data.window_bins
    tr, ev = res.train_rows, res.eval_rows
    _same(train["train_spikes_heldin"], d.heldin[tr, :T])
    _same(train["train_spikes_heldout"], d.heldout[tr, :T])
    _same(train["train_spikes_heldin_forward"], d.heldin[tr, T:])
    _same(train["train_spikes_heldout_forward"], d.heldout[tr, T:])
    _same(evalin["eval_spikes_heldin"], d.heldin[ev, :T])
    if d.decode_behavior is not None:
        _same(train["train_behavior"], d.decode_behavior[tr])
    assert set(target) == set(res.target)
    for key, value in target.items():
        if key.endswith("cond_idx"):
            assert len(value) == len(res.target[key])
            for a, b in zip(value, res.target[key]):
                np.testing.assert_array_equal(a, b)
        else:  # psth: smoothing order of operations differs, 1e-12
            _same(value, res.target[key], tol=1e-12)
    # splits: NLB val is our test, NLB train is our train + val
    assert (d.split[ev] == "test").all() and (d.split[tr] != "test").all()
    assert (d.split == "val").sum() == round(0.1 * len(tr))


def test_layout_of_each_dataset(nlb_files):
    """Window and forward bins of each dataset at 5 ms (method.md §8)."""
    bins = {"mc_maze": 140, "mc_rtt": 120, "area2_bump": 120, "dmfc_rsg": 300,
            "mc_maze_large": 140, "mc_maze_medium": 140, "mc_maze_small": 140}
    for ds, path in nlb_files.items():
        d = load_nlb(path, ds).data
        assert (d.window_bins, d.fp_bins) == (bins[ds], 40), ds
        assert (d.n_heldin, d.n_heldout) == (10, 4)
        assert d.behavior is not None and np.isfinite(d.behavior).all()
        if ds == "area2_bump":
            assert set(np.unique(d.decode_groups)) <= {-1, 0, 1}
        if ds == "dmfc_rsg":  # trial-level behavior; scored held-out spikes only between set and go
            assert d.decode_behavior is None
            assert np.isnan(d.heldout[d.split == "test", :300]).any()
