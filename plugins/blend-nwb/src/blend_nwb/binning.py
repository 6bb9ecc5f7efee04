"""Vectorised binning of spike times, observation masks, behavior resampling and PSTH smoothing.

The conventions are those of nlb_tools (so that tensors match it exactly) without its
cost: nlb_tools materialises every unit on a 1 ms grid for the whole session (GBs for
MC_Maze); here only the trial windows are ever built.

- A spike at ``t`` seconds falls in millisecond ``floor(round(t * 1000, 6))``; a bin of
  ``b`` ms starting at ``k * b`` ms sums milliseconds ``k*b .. k*b + b - 1``.
- A bin is unobserved (NaN) when its first millisecond is outside the group's
  observation intervals (nlb_tools uses the first unit's intervals for a group).
- Behavior on the 1 ms grid is resampled with ``scipy.signal.decimate`` (FIR, n=500)
  after linear interpolation of gaps, as nlb_tools does.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from blend_core.api import DataError

NS_PER_MS = 1_000_000


def to_ns(seconds: np.ndarray) -> np.ndarray:
    """Seconds to integer nanoseconds, rounded as ``pandas.to_timedelta(x, unit='s')``."""
    import pandas as pd

    return pd.to_timedelta(np.asarray(seconds, dtype=np.float64), unit="s").asi8


def ms_index(seconds: np.ndarray) -> np.ndarray:
    """The millisecond each time falls in (nlb_tools: ``(t * 1000).round(6).astype(int)``).

    ``floor(round(y, 6))`` equals ``floor(y)`` unless ``y`` is within 1e-6 below an
    integer; only those few values take the (slow) rounding.
    """
    y = np.asarray(seconds, dtype=np.float64) * 1000.0
    out = np.floor(y)
    near = np.flatnonzero(y - out > 1.0 - 2e-6)
    if len(near):
        out[near] = np.floor(np.round(y[near], 6))
    return out.astype(np.int64)


def first_bins(align_s: np.ndarray, offset_ms: float | np.ndarray, bin_ms: int) -> np.ndarray:
    """Index of the first bin whose start lies at or after ``align + offset``."""
    start = to_ns(align_s) + np.round(np.asarray(offset_ms, dtype=np.float64) * NS_PER_MS).astype(np.int64)
    step = bin_ms * NS_PER_MS
    return -((-start) // step)  # ceil division on integers


def last_bins(end_s: np.ndarray, bin_ms: int) -> np.ndarray:
    """Index one past the last bin that starts strictly before ``end`` (window end exclusive)."""
    end = to_ns(end_s) - 1000  # nlb_tools subtracts 1 us to make the end exclusive
    step = bin_ms * NS_PER_MS
    return end // step + 1


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(lo[i], hi[i])`` and the owner ``i`` of each element."""
    lengths = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), lengths)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(lengths.sum()) + starts, owner


class SpikeIndex:
    """Spikes of a group of units, sorted by (time step, unit), for fast windowed counts."""

    def __init__(self, spike_times: np.ndarray, bounds: np.ndarray, units: np.ndarray, step_ms: int,
                 ms: np.ndarray | None = None) -> None:
        self.n_units = len(units)
        self.step_ms = step_ms
        if ms is None:
            ms = ms_index(spike_times)
        pos = np.full(len(bounds) - 1, -1, np.int64)
        pos[np.asarray(units, dtype=np.int64)] = np.arange(len(units))
        label = np.repeat(pos, np.diff(bounds))
        keep = label >= 0
        self.keys = np.sort((ms[keep] // step_ms) * self.n_units + label[keep])

    @classmethod
    def for_groups(cls, spike_times: np.ndarray, bounds: np.ndarray, groups: dict[str, np.ndarray], step_ms: int,
                   ms: np.ndarray | None = None) -> dict[str, SpikeIndex]:
        """One index per group of units, from one sort of all spikes (same result as one each)."""
        if ms is None:
            ms = ms_index(spike_times)
        n = len(bounds) - 1
        shift = max(int(n - 1).bit_length(), 1)  # (step, unit) packed in bits: no divisions to unpack
        ordered = np.sort(((ms // step_ms) << shift) | np.repeat(np.arange(n, dtype=np.int64), np.diff(bounds)))
        step, unit = ordered >> shift, ordered & ((1 << shift) - 1)
        out = {}
        for name, units in groups.items():
            units = np.asarray(units, dtype=np.int64)
            pos = np.full(n, -1, np.int64)
            pos[units] = np.arange(len(units))
            label = pos[unit]
            keep = label >= 0
            idx = cls.__new__(cls)
            idx.n_units, idx.step_ms = len(units), step_ms
            keys = step[keep] * len(units) + label[keep]
            # filtering keeps (step, unit) order; relabelling keeps it when units are ascending rows
            idx.keys = keys if np.all(np.diff(units) > 0) else np.sort(keys)
            out[name] = idx
        return out

    def counts(self, first: np.ndarray, n_steps: int) -> np.ndarray:
        """(windows, n_steps, units) counts for windows starting at step ``first``."""
        U = self.n_units
        first = np.asarray(first, dtype=np.int64)
        lo = np.searchsorted(self.keys, first * U, side="left")
        hi = np.searchsorted(self.keys, (first + n_steps) * U, side="left")
        idx, owner = _ranges(lo, hi)
        keys = self.keys[idx]
        flat = owner * (n_steps * U) + (keys - first[owner] * U)  # ascending: owner, then key
        out = np.zeros(len(first) * n_steps * U, np.float32)
        if len(flat):  # run lengths of equal entries = counts (cheaper than a bincount of every bin)
            starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
            out[flat[starts]] = np.diff(np.r_[starts, len(flat)])
        return out.reshape(len(first), n_steps, U)


class ObservedMask:
    """Observed milliseconds of a group of units (the union of its first unit's intervals)."""

    def __init__(self, intervals: np.ndarray | None, n_ms: int) -> None:
        self.n_ms = n_ms
        if intervals is None or len(intervals) == 0:
            self.starts = np.array([0], np.int64)
            self.ends = np.array([n_ms], np.int64)
            return
        s = np.ceil(np.round(intervals[:, 0] * 1000.0, 6)).astype(np.int64)
        e = np.floor(np.round(intervals[:, 1] * 1000.0, 6)).astype(np.int64)
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        # merge overlapping intervals into their union
        e_run = np.maximum.accumulate(e)
        new = np.concatenate([[True], s[1:] > e_run[:-1]])
        self.starts = s[new]
        self.ends = np.maximum.reduceat(e, np.flatnonzero(new))

    def observed_ms(self, ms: np.ndarray) -> np.ndarray:
        ms = np.asarray(ms, dtype=np.int64)
        i = np.searchsorted(self.starts, ms, side="right") - 1
        ok = (i >= 0) & (ms < self.ends[np.clip(i, 0, None)]) & (ms >= 0) & (ms < self.n_ms)
        return ok

    def observed_bins(self, first: np.ndarray, n_bins: int, bin_ms: int) -> np.ndarray:
        """(windows, n_bins) bool: the first millisecond of each bin is observed."""
        bins = np.asarray(first, dtype=np.int64)[:, None] + np.arange(n_bins)[None, :]
        return self.observed_ms(bins * bin_ms)


def windows(spikes: SpikeIndex, mask: ObservedMask, first: np.ndarray, n_bins: int, bin_ms: int) -> np.ndarray:
    """Binned counts (windows, n_bins, units) with NaN at unobserved bins."""
    counts = spikes.counts(first, n_bins)
    observed = mask.observed_bins(first, n_bins, bin_ms)
    counts[~observed] = np.nan
    return counts


# ------------------------------------------------------------------ behavior

def check_ms_grid(times: np.ndarray, where: str, path: str) -> np.ndarray:
    """Millisecond indices of samples that must lie on the 1 ms grid; raise otherwise."""
    ms = np.round(np.asarray(times, dtype=np.float64) * 1000.0, 3)
    off = np.abs(ms - np.round(ms)) > 1e-3
    if np.any(off):
        i = int(np.flatnonzero(off)[0])
        raise DataError(
            f"{path}: {where}: sample {i} at t={times[i]!r} s is off the 1 ms grid; NLB mode expects "
            "behavior sampled at 1 kHz on whole milliseconds (nlb_tools would silently drop this series)"
        )
    return np.round(ms).astype(np.int64)


def decimated(data: np.ndarray, ms: np.ndarray, n_ms: int, bin_ms: int, dtype: np.dtype) -> np.ndarray:
    """A 1 kHz series resampled to ``bin_ms`` bins over the session, as nlb_tools does.

    Gaps are linearly interpolated (edges held), an FIR anti-aliasing filter of
    order 500 is applied with ``scipy.signal.decimate``, and bins whose first
    millisecond had no sample are NaN. Returns (ceil(n_ms / bin_ms), channels).
    """
    keep = (ms >= 0) & (ms < n_ms)
    full = np.full((n_ms, data.shape[1]), np.nan)
    full[ms[keep]] = data[keep]
    nan_first = np.isnan(full[::bin_ms])
    if bin_ms == 1:
        return full.astype(dtype)
    if np.isnan(full).any():
        pos = np.arange(n_ms)
        for c in range(full.shape[1]):
            col = full[:, c]
            good = ~np.isnan(col)
            if good.any():
                full[:, c] = np.interp(pos, pos[good], col[good])
    out = signal.decimate(full, bin_ms, axis=0, n=500, ftype="fir")
    out[nan_first] = np.nan
    return out.astype(dtype)


def take_bins(per_bin: np.ndarray, first: np.ndarray, n_bins: int) -> np.ndarray:
    """(windows, n_bins, channels) from a session-long binned array; NaN outside it."""
    idx = np.asarray(first, dtype=np.int64)[:, None] + np.arange(n_bins)[None, :]
    inside = (idx >= 0) & (idx < len(per_bin))
    out = np.full(idx.shape + per_bin.shape[1:], np.nan)
    out[inside] = per_bin[idx[inside]]
    return out


# ------------------------------------------------------------------ PSTH smoothing

def gaussian_window(sd_ms: float, step_ms: float = 1.0) -> np.ndarray:
    """nlb_tools' kernel: ``gaussian(int(6 sd), sd)`` normalised to sum 1."""
    sd = sd_ms / step_ms
    w = signal.windows.gaussian(int(6 * sd), sd, sym=True)
    return w / w.sum()


def smoothed_windows(
    spikes: SpikeIndex, mask: ObservedMask, first: np.ndarray, n_bins: np.ndarray | int,
    bin_ms: int, sd_ms: float,
) -> list[np.ndarray]:
    """Gaussian-smoothed spikes on the 1 ms grid, summed into bins, per window.

    ``spikes`` must be indexed at 1 ms. Smoothing runs within each observed stretch
    of the session (NaN gaps are not smoothed across) exactly like nlb_tools'
    ``smooth_spk(ignore_nans=True)`` on the continuous data. Smoothing then binning
    is linear, so a window lying inside one observed stretch is one sparse product:
    (its spikes in reach) x (the Gaussian summed over each bin), computed for all such
    windows at once. Windows that touch a gap take the per-window FFT path
    (``_smoothed_by_fft``). Returns one (n_bins_i, units) float64 array per window.
    """
    first = np.asarray(first, dtype=np.int64)
    n_bins = np.broadcast_to(np.asarray(n_bins, dtype=np.int64), first.shape)
    out: list[np.ndarray | None] = [None] * len(first)
    a_ms, b_ms = first * bin_ms, (first + n_bins) * bin_ms
    run = np.searchsorted(mask.starts, a_ms, side="right") - 1
    ok = (run >= 0) & (a_ms >= 0) & (b_ms <= mask.n_ms) & (n_bins > 0)
    run_c = np.clip(run, 0, None)
    ok &= (b_ms <= mask.ends[run_c]) & (a_ms < mask.ends[run_c])
    fast = np.flatnonzero(ok)
    for lo in range(0, len(fast), 256):  # bounded memory: 256 windows at a time
        chunk = fast[lo : lo + 256]
        for k, arr in zip(chunk, _smoothed_in_run(spikes, mask, first[chunk], n_bins[chunk], run_c[chunk],
                                                   bin_ms, sd_ms)):
            out[k] = arr
    slow = np.flatnonzero(~ok)
    for k, arr in zip(slow, _smoothed_by_fft(spikes, mask, first[slow], n_bins[slow], bin_ms, sd_ms)):
        out[k] = arr
    return out  # type: ignore[return-value]


def _bin_kernel(w: np.ndarray, n_bins: int, bin_ms: int) -> np.ndarray:
    """K[j, l]: weight of a spike at offset ``l`` (ms, from the window start minus the
    kernel's reach) in bin ``j`` of the smoothed-then-binned signal (``convolve(..., 'same')``)."""
    M = len(w)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    L = n_bins * bin_ms + M - 1
    j = np.arange(n_bins)[:, None] * bin_ms
    l = np.arange(L)[None, :]
    hi = np.clip(j + bin_ms - l + M - 1, 0, M)
    lo = np.clip(j - l + M - 1, 0, M)
    return cw[hi] - cw[lo]


def _smoothed_in_run(
    spikes: SpikeIndex, mask: ObservedMask, first: np.ndarray, n_bins: np.ndarray, run: np.ndarray,
    bin_ms: int, sd_ms: float,
) -> list[np.ndarray]:
    """Windows each inside one observed stretch ``run``: spikes of that stretch times the bin kernel."""
    from scipy import sparse

    w = gaussian_window(sd_ms)
    M, half = len(w), (len(w) - 1) // 2
    nb_max = int(n_bins.max())
    K = _bin_kernel(w, nb_max, bin_ms)  # (nb_max, L)
    L = K.shape[1]
    U = spikes.n_units
    start = first * bin_ms - (M - 1 - half)  # ms of kernel offset l = 0 for each window
    keys = spikes.keys
    lo = np.searchsorted(keys, np.maximum(start, mask.starts[run]) * U, side="left")
    hi = np.searchsorted(keys, np.minimum(start + L, mask.ends[run]) * U, side="left")
    idx, owner = _ranges(lo, hi)
    k = keys[idx]
    offset = k // U - start[owner]
    unit = k % U
    counts = sparse.csr_matrix((np.ones(len(k)), (owner * U + unit, offset)), shape=(len(first) * U, L))
    smoothed = np.asarray(counts @ K.T).reshape(len(first), U, nb_max)  # duplicates summed = counts
    return [smoothed[i, :, : int(nb)].T for i, nb in enumerate(n_bins)]


def _smoothed_by_fft(
    spikes: SpikeIndex, mask: ObservedMask, first: np.ndarray, n_bins: np.ndarray | int,
    bin_ms: int, sd_ms: float,
) -> list[np.ndarray]:
    """The general path (a window touching unobserved time): smooth each observed run near it by FFT."""
    w = gaussian_window(sd_ms)
    M = len(w)
    half = (M - 1) // 2
    n_bins = np.broadcast_to(np.asarray(n_bins), np.shape(first))
    out = []
    for f, nb in zip(np.asarray(first, dtype=np.int64), n_bins):
        a, b = int(f) * bin_ms, (int(f) + int(nb)) * bin_ms
        lo, hi = max(a - M, 0), min(b + M, mask.n_ms)
        x = spikes.counts(np.array([lo]), hi - lo)[0].astype(np.float64)  # (L, U)
        ok = mask.observed_ms(np.arange(lo, hi))
        y = np.full_like(x, np.nan)
        # runs of observed milliseconds, smoothed separately (zero outside each run)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        for s, e in zip(edges[::2], edges[1::2]):
            seg = x[s:e]
            full = signal.fftconvolve(seg, w[:, None], mode="full", axes=0)
            y[s:e] = np.maximum(full[half : half + (e - s)], 0.0)
        y = y[a - lo : b - lo] if a >= lo else np.vstack([np.full((lo - a, x.shape[1]), np.nan), y[: b - lo]])
        if len(y) < b - a:
            y = np.vstack([y, np.full((b - a - len(y), x.shape[1]), np.nan)])
        first_nan = np.isnan(y[::bin_ms, 0]) if y.shape[1] else np.zeros(int(nb), bool)
        binned = np.nan_to_num(y).reshape(int(nb), bin_ms, -1).sum(axis=1)
        binned[first_nan] = np.nan
        out.append(binned)
    return out
