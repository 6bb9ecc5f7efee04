"""The vectorised PSTH smoothing equals the per-window FFT path it replaced (and so nlb_tools)."""

from __future__ import annotations

import numpy as np
import pytest

from blend_nwb import binning as B
from blend_nwb.nwbfile import NWBReader


@pytest.mark.parametrize("bin_ms", [5, 20])
def test_sparse_smoothing_equals_fft(nlb_files, bin_ms):
    with NWBReader(nlb_files["mc_maze"]) as r:
        units = r.units(need_heldout=True, need_obs_intervals=True)
    idx = B.SpikeIndex(units.spike_times, units.bounds, np.arange(units.n_units), 1)
    n_ms = int(units.obs_intervals[0][-1, 1] * 1000) + 1
    mask = B.ObservedMask(units.obs_intervals[0], n_ms)
    rng = np.random.default_rng(0)
    first = rng.integers(0, n_ms // bin_ms - 50, 200)
    n_bins = rng.integers(1, 40, 200)
    fast = B.smoothed_windows(idx, mask, first, n_bins, bin_ms, 70)
    slow = B._smoothed_by_fft(idx, mask, first, n_bins, bin_ms, 70)
    inside = sum(mask.observed_ms(np.arange(f * bin_ms, (f + n) * bin_ms)).all() for f, n in zip(first, n_bins))
    assert 20 < inside < 190  # both paths are exercised
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)


def test_spike_index_groups_and_ms_index(nlb_files):
    with NWBReader(nlb_files["area2_bump"]) as r:
        units = r.units(need_heldout=True, need_obs_intervals=True)
    groups = {"a": np.array([0, 2, 5, 7]), "b": np.array([6, 1, 3])}  # b: not ascending
    together = B.SpikeIndex.for_groups(units.spike_times, units.bounds, groups, 5)
    first = np.arange(0, 2000, 7)
    for name, members in groups.items():
        got = together[name].counts(first, 30)
        np.testing.assert_array_equal(got, B.SpikeIndex(units.spike_times, units.bounds, members, 5).counts(first, 30))
        # against a plain histogram of each unit's spikes
        for j, u in enumerate(members):
            ms = np.floor(np.round(units.spike_times[units.bounds[u] : units.bounds[u + 1]] * 1000.0, 6))
            hist = np.histogram(ms // 5, bins=np.arange(0, 2000 + 7 * len(first) + 31))[0]
            np.testing.assert_array_equal(got[:, :, j], hist[first[:, None] + np.arange(30)[None, :]])
    t = np.r_[np.random.default_rng(1).uniform(0, 100, 10000), np.arange(1, 3000) / 1000.0,
              np.arange(1, 3000) / 1000.0 - 3e-10]
    np.testing.assert_array_equal(B.ms_index(t), np.floor(np.round(t * 1000.0, 6)).astype(np.int64))
