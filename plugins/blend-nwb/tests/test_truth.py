"""The synthetic writer's ground truth: true rates read back for an ``oracle`` row."""

from __future__ import annotations

import numpy as np
import pytest

from blend_nwb.nlb import load_nlb
from blend_nwb.synthetic import write_nlb_file


@pytest.fixture(scope="module")
def maze(tmp_path_factory):
    path = tmp_path_factory.mktemp("truth") / "maze.nwb"
    return write_nlb_file(path, dataset="mc_maze", n_trials=120, n_heldin=12, n_heldout=4, seed=3)


def _independent(path, res, window: int, unit_pos: int, bin_ms: int) -> np.ndarray:
    """Expected counts of one window and unit, by explicit loops over pynwb's view of the file."""
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        drive = np.asarray(nwb.processing["synthetic_truth"]["latent_drive"].data[:], dtype=np.float64)
        trials = nwb.trials.to_dataframe()
    held_in = np.flatnonzero(~units["heldout"].to_numpy())
    held_out = np.flatnonzero(units["heldout"].to_numpy())
    unit = np.concatenate([held_in, held_out])[unit_pos]
    base, load = units["truth_log_rate"].iloc[unit], np.asarray(units["truth_loading"].iloc[unit])
    row = res.trial_ids[window]
    lo, hi = int(np.ceil(trials["start_time"].iloc[row] * 1000)), int(np.floor(trials["stop_time"].iloc[row] * 1000))
    first = int(res.first_bins[window])
    n_bins = res.data.heldin.shape[1]
    out = np.zeros(n_bins)
    for k in range(n_bins):
        for m in range((first + k) * bin_ms, (first + k + 1) * bin_ms):
            if lo <= m < hi:
                out[k] += min(np.exp(base + drive[m] @ load) / 1000.0, 0.5)
    return out


@pytest.mark.parametrize("bin_ms", [5, 20])
def test_true_rates_equal_an_independent_computation(maze, bin_ms):
    res = load_nlb(maze, "mc_maze", bin_ms=bin_ms)
    rates = res.data.true_rates
    assert rates.shape == res.data.heldin.shape[:2] + (16,)
    for window, unit in ((0, 0), (7, 5), (40, 13), (len(rates) - 1, 15)):
        np.testing.assert_allclose(rates[window, :, unit], _independent(maze, res, window, unit, bin_ms),
                                   rtol=1e-5, atol=1e-7)


def test_true_rates_match_the_spikes_in_every_neuron_and_bin(maze):
    """Units in the right order and bins on the right clock: observed totals agree with expectation."""
    data = load_nlb(maze, "mc_maze", bin_ms=20).data
    spikes = np.concatenate([data.heldin, data.heldout], axis=2)
    per_unit_obs, per_unit_exp = np.nansum(spikes, axis=(0, 1)), data.true_rates.sum(axis=(0, 1))
    z = (per_unit_obs - per_unit_exp) / np.sqrt(per_unit_exp)
    assert np.abs(z).max() < 4.5
    shuffled = per_unit_exp[np.roll(np.arange(len(per_unit_exp)), 1)]
    assert np.abs((per_unit_obs - shuffled) / np.sqrt(shuffled)).max() > 4.5  # the check can fail
    per_bin_obs, per_bin_exp = np.nansum(spikes, axis=(0, 2)), data.true_rates.sum(axis=(0, 2))
    chi2 = (((per_bin_obs - per_bin_exp) ** 2) / per_bin_exp).sum()
    assert chi2 < len(per_bin_exp) + 5 * np.sqrt(2 * len(per_bin_exp))


def test_truth_only_when_the_file_has_it(maze, tmp_path):
    """The core's neural task adds an ``oracle`` row exactly when ``true_rates`` is set (tests/test_references.py)."""
    assert load_nlb(maze, "mc_maze", bin_ms=20).data.true_rates is not None
    plain = write_nlb_file(tmp_path / "plain.nwb", dataset="mc_maze", n_trials=60, n_heldin=8, n_heldout=4, seed=3,
                           truth=False)
    data = load_nlb(plain, "mc_maze", bin_ms=20).data
    assert data.true_rates is None


def test_test_phase_carries_no_truth(tmp_path):
    train = write_nlb_file(tmp_path / "sub-x_desc-train_behavior+ecephys.nwb", dataset="mc_maze", n_trials=60,
                           n_test_trials=10, n_heldin=8, n_heldout=4, seed=2,
                           test_path=tmp_path / "sub-x_desc-test_ecephys.nwb")
    res = load_nlb(train, "mc_maze", bin_ms=20, phase="test", test_path=tmp_path / "sub-x_desc-test_ecephys.nwb")
    assert res.data.true_rates is None
