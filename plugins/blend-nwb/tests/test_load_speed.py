"""The fast paths of the NLB loader equal the plain computations they replace (issue 12).

Each shortcut is checked against the straightforward version on small random data:
decimating only around the windows against decimating the whole session (to the bit),
per-condition sums of smoothed windows against summing ``smoothed_windows``, the spike
index against a histogram (spikes out of order within a unit included), and the
nanosecond conversion against pandas.
"""

from __future__ import annotations

import numpy as np
import pytest

from blend_nwb import binning as B


def _session(rng: np.random.Generator, n_ms: int, gaps: bool) -> tuple[np.ndarray, np.ndarray]:
    data = rng.normal(size=(n_ms, 2)) * 50
    ms = np.arange(n_ms)
    if gaps:  # missing samples, NaN values, and one channel-wide hole
        keep = np.sort(rng.choice(n_ms, n_ms * 3 // 4, replace=False))
        ms, data = ms[keep], data[keep]
        data[rng.integers(0, len(ms), 300), 1] = np.nan
        data[(ms > 20_000) & (ms < 24_000)] = np.nan
    return data, ms


@pytest.mark.parametrize("bin_ms", [1, 5, 20])
@pytest.mark.parametrize("gaps", [False, True])
def test_decimated_windows_equal_whole_session(bin_ms, gaps):
    rng = np.random.default_rng(bin_ms)
    n_ms = 60_003
    data, ms = _session(rng, n_ms, gaps)
    n_out = -(-n_ms // bin_ms)
    # windows near the edges, overlapping, far apart, and partly outside the session
    first = [np.r_[-7, 0, 3, rng.integers(0, n_out, 40), n_out - 5], np.sort(rng.integers(0, n_out, 25))]
    n_bins = [30, 11]
    whole = B.decimated(data, ms, n_ms, bin_ms, np.dtype(np.float32))
    got = B.decimated_windows(data, ms, n_ms, bin_ms, np.dtype(np.float32), first, n_bins)
    for f, n, g in zip(first, n_bins, got):
        np.testing.assert_array_equal(g, B.take_bins(whole, f, n))  # NaN where NaN, else the same bits
    assert np.isnan(got[0][0, :7]).all() and np.isfinite(got[0][1]).any()


def test_decimated_windows_repeated_and_unordered_samples():
    rng = np.random.default_rng(3)
    data, ms = _session(rng, 30_000, gaps=True)
    order = rng.permutation(len(ms))
    ms2 = np.r_[ms[order], ms[:50]]  # the last sample of a repeated millisecond wins
    data2 = np.r_[data[order], data[:50] + 1.0]
    first = [np.sort(rng.integers(0, 6000, 30))]
    whole = B.decimated(data2, ms2, 30_000, 5, np.dtype(np.float64))
    got = B.decimated_windows(data2, ms2, 30_000, 5, np.dtype(np.float64), first, [40])[0]
    np.testing.assert_array_equal(got, B.take_bins(whole, first[0], 40))


def _spikes(rng: np.random.Generator, n_units: int, n_ms: int) -> tuple[np.ndarray, np.ndarray]:
    per_unit = [np.sort(rng.uniform(0, n_ms / 1000.0, rng.integers(200, 2000))) for _ in range(n_units)]
    bounds = np.r_[0, np.cumsum([len(p) for p in per_unit])]
    return np.concatenate(per_unit), bounds


@pytest.mark.parametrize("bin_ms", [5, 20])
def test_smoothed_sums_equal_sum_of_windows(bin_ms):
    rng = np.random.default_rng(bin_ms)
    n_ms = 200_000
    times, bounds = _spikes(rng, 6, n_ms)
    idx = B.SpikeIndex(times, bounds, np.array([4, 0, 2]), 1)
    # observed stretches with gaps between, so that both the sparse and the FFT path run
    edges = np.sort(rng.choice(np.arange(1, n_ms // 1000), 30, replace=False)) * 1.0
    mask = B.ObservedMask(edges.reshape(-1, 2), n_ms)
    n = 120
    label = rng.integers(0, 7, n)
    n_bins = np.array([20, 35, 35, 12, 40, 7, 25])[label]  # one length per label
    first = rng.integers(0, n_ms // bin_ms - 40, n)
    total, count = B.smoothed_sums(idx, mask, first, n_bins, label, 7, bin_ms, 50)
    each = B.smoothed_windows(idx, mask, first, n_bins, bin_ms, 50)
    ok, _ = B._inside_runs(mask, first, n_bins, bin_ms)
    assert 10 < ok.sum() < n - 10  # both paths exercised
    for lab in range(7):
        rows = [e for e, l in zip(each, label) if l == lab]
        nb = len(rows[0])
        stack = np.stack(rows)
        np.testing.assert_allclose(total[lab, :nb], np.nansum(stack, axis=0), atol=1e-12, rtol=0)
        np.testing.assert_array_equal(count[lab, :nb], (~np.isnan(stack)).sum(axis=0))
        assert not count[lab, nb:].any()


def test_spike_index_unsorted_units_and_counts():
    rng = np.random.default_rng(0)
    times, bounds = _spikes(rng, 5, 50_000)
    shuffled = times.copy()
    for a, b in zip(bounds[:-1], bounds[1:]):  # spikes out of time order within each unit
        shuffled[a:b] = rng.permutation(shuffled[a:b])
    units = np.array([3, 1, 4])
    first = np.r_[0, rng.integers(0, 9000, 50)]
    want = B.SpikeIndex(times, bounds, units, 5).counts(first, 40)
    np.testing.assert_array_equal(B.SpikeIndex(shuffled, bounds, units, 5).counts(first, 40), want)
    for j, u in enumerate(units):
        ms = np.floor(np.round(times[bounds[u] : bounds[u + 1]] * 1000.0, 6)).astype(np.int64)
        hist = np.bincount(ms // 5, minlength=20_000)
        np.testing.assert_array_equal(want[:, :, j], hist[first[:, None] + np.arange(40)])


def test_to_ns_equals_pandas():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    t = np.r_[rng.uniform(0, 7200, 20_000), np.round(rng.uniform(0, 7200, 20_000), 3),
              np.round(rng.uniform(0, 7200, 20_000), 4) - 1e-10, rng.uniform(-5, 5, 1000), 0.0, np.nan]
    np.testing.assert_array_equal(B.to_ns(t), pd.to_timedelta(t, unit="s").asi8)
