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

from blend_core.errors import DataError

NS_PER_MS = 1_000_000


def to_ns(seconds: np.ndarray) -> np.ndarray:
    """Seconds to integer nanoseconds, rounded as ``pandas.to_timedelta(x, unit='s')``."""
    import pandas as pd

    return pd.to_timedelta(np.asarray(seconds, dtype=np.float64), unit="s").asi8


def ms_index(seconds: np.ndarray) -> np.ndarray:
    """The millisecond each time falls in (nlb_tools: ``(t * 1000).round(6).astype(int)``)."""
    return np.floor(np.round(np.asarray(seconds, dtype=np.float64) * 1000.0, 6)).astype(np.int64)


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

    def __init__(self, spike_times: np.ndarray, bounds: np.ndarray, units: np.ndarray, step_ms: int) -> None:
        self.n_units = len(units)
        self.step_ms = step_ms
        parts, labels = [], []
        for j, u in enumerate(units):
            parts.append(spike_times[bounds[u] : bounds[u + 1]])
            labels.append(np.full(bounds[u + 1] - bounds[u], j, dtype=np.int64))
        times = np.concatenate(parts) if parts else np.zeros(0)
        label = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        step = ms_index(times) // step_ms
        keys = step * self.n_units + label
        self.keys = np.sort(keys)

    def counts(self, first: np.ndarray, n_steps: int) -> np.ndarray:
        """(windows, n_steps, units) counts for windows starting at step ``first``."""
        U = self.n_units
        first = np.asarray(first, dtype=np.int64)
        lo = np.searchsorted(self.keys, first * U, side="left")
        hi = np.searchsorted(self.keys, (first + n_steps) * U, side="left")
        idx, owner = _ranges(lo, hi)
        keys = self.keys[idx]
        flat = owner * (n_steps * U) + (keys - first[owner] * U)
        out = np.bincount(flat, minlength=len(first) * n_steps * U)
        return out.reshape(len(first), n_steps, U).astype(np.float32)


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
    ``smooth_spk(ignore_nans=True)`` on the continuous data; only the stretch near
    each window is ever built. Returns one (n_bins_i, units) float64 array per window.
    """
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
