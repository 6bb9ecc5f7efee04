"""score_submission agrees with nlb_tools.evaluation.evaluate to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

from blend_core.api import DataError
from blend_nwb.evaluation import score_submission, submission_tree, write_h5
from blend_nwb.nlb import load_nlb


def _flat(results):
    out = {}
    for item in results:
        for metrics in item.values():
            out.update({k.split("] ")[-1]: float(v) for k, v in metrics.items()})
    return out


@pytest.mark.parametrize("dataset", ["mc_maze", "mc_rtt", "area2_bump", "dmfc_rsg", "mc_maze_small"])
def test_score_matches_nlb_evaluate(nlb_files, tmp_path, dataset):
    evaluation = pytest.importorskip("nlb_tools.evaluation")
    res = load_nlb(nlb_files[dataset], dataset)
    d = res.data
    spikes = np.nan_to_num(np.concatenate([d.heldin, d.heldout], axis=2))
    rates = 0.5 * spikes + 0.05 + np.random.default_rng(0).uniform(0, 0.1, spikes.shape)
    target = write_h5(tmp_path / "target.h5", {res.key: res.target})
    sub = write_h5(tmp_path / "sub.h5", submission_tree(res.key, rates, res.train_rows, res.eval_rows,
                                                           d.window_bins, d.n_heldin))
    ours = score_submission(sub, target)[res.key]
    theirs = _flat(evaluation.evaluate(str(target), str(sub)))
    assert set(ours) == set(theirs)
    for k in ours:
        assert ours[k] == pytest.approx(theirs[k], abs=1e-6), k


def test_score_rejects_bad_files(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    with pytest.raises(DataError, match="x.h5"):
        score_submission(bad, bad)
    empty = write_h5(tmp_path / "empty.h5", {"other": {"a": np.zeros(2)}})
    with pytest.raises(DataError, match="no NLB dataset group"):
        score_submission(empty, empty)
