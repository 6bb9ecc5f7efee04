"""Vectorised binning of spike times, observation masks, behavior resampling and PSTH smoothing.

The conventions are those of nlb_tools (so that tensors match it exactly) without its
cost: nlb_tools materialises every unit on a 1 ms grid for the whole session (GBs for
MC_Maze); here only the trial windows are ever built.

- A spike at ``t`` seconds falls in millisecond ``floor(round(t * 1000, 6))``; a bin of
  ``b`` ms starting at ``k * b`` ms sums milliseconds ``k*b .. k*b + b - 1``.
- A bin is unobserved (NaN) when its first millisecond is outside the group's
  observation intervals (nlb_tools uses the first unit's intervals for a group).
- Behavior on the 1 ms grid is resampled with ``scipy.signal.decimate`` (FIR, n=500)
  after linear interpolation of gaps, as nlb_tools does (``decimated``); the loader filters
  only the stretches around its windows, with the same result (``decimated_windows``).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from blend_core.api import DataError

NS_PER_MS = 1_000_000


def to_ns(seconds: np.ndarray) -> np.ndarray:
    """Seconds to integer nanoseconds, rounded as ``pandas.to_timedelta(x, unit='s').asi8`` (NaN: NaT).

    pandas' own arithmetic (``cast_from_unit_vectorized``: whole seconds, plus the fraction
    rounded to 9 decimals, each scaled and truncated), restated so that loading does not
    import pandas (half a second); a test checks it against pandas.
    """
    v = np.asarray(seconds, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        base = v.astype(np.int64)
        out = base * 1_000_000_000 + (np.round(v - base, 9) * 1e9).astype(np.int64)
    out[np.isnan(v)] = np.iinfo(np.int64).min
    return out


def ms_index(seconds: np.ndarray) -> np.ndarray:
    """The millisecond each time falls in (nlb_tools: ``(t * 1000).round(6).astype(int)``).

    ``floor(round(y, 6))`` equals ``floor(y)`` unless ``y`` is within 1e-6 below an
    integer; only those few values take the (slow) rounding.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    y = seconds * 1000.0
    out = np.floor(y)
    np.subtract(y, out, out=y)  # in place: a session's spikes are tens of MB per array
    near = np.flatnonzero(y > 1.0 - 2e-6)
    if len(near):
        out[near] = np.floor(np.round(seconds[near] * 1000.0, 6))
    result = y.view(np.int64)  # reuse the buffer
    np.copyto(result, out, casting="unsafe")
    return result


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


def unit_sorted_ms(spike_times: np.ndarray, bounds: np.ndarray, ms: np.ndarray | None = None) -> np.ndarray:
    """The millisecond of every spike (``ms_index``), unit after unit, each unit's in time order.

    NWB stores each unit's spikes in time order in practice; a file that does not is sorted
    within units here (which spike is which does not matter for counts).
    """
    if ms is None:
        ms = ms_index(spike_times)
    drops = np.flatnonzero(ms[1:] < ms[:-1]) + 1
    if len(drops) and not np.isin(drops, bounds).all():
        unit = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
        ms = ms[np.lexsort((ms, unit))]
    return ms


class SpikeIndex:
    """Spikes of a group of units for fast windowed counts: no session-long sort or table.

    ``ms`` holds every spike's millisecond, unit after unit, each unit's in time order
    (``unit_sorted_ms``), so one unit's spikes inside a window are one contiguous run,
    found by two binary searches; one array serves every group and step.
    """

    def __init__(self, spike_times: np.ndarray, bounds: np.ndarray, units: np.ndarray, step_ms: int,
                 ms: np.ndarray | None = None) -> None:
        """``ms``: the spikes' milliseconds when already computed (``ms_index`` or ``unit_sorted_ms``).

        They are put in time order within units here whatever the caller passed (a check of one
        pass when they already are; the sorted array is then shared, not copied): the binary
        searches of ``spans`` are wrong on unsorted runs.
        """
        self.ms = unit_sorted_ms(spike_times, bounds, ms)
        units = np.asarray(units, dtype=np.int64)
        self.lo, self.hi = bounds[units], bounds[units + 1]
        self.n_units = len(units)
        self.step_ms = step_ms

    @classmethod
    def for_groups(cls, spike_times: np.ndarray, bounds: np.ndarray, groups: dict[str, np.ndarray], step_ms: int,
                   ms: np.ndarray | None = None) -> dict[str, SpikeIndex]:
        """One index per group of units, sharing one ``unit_sorted_ms`` array."""
        ms = unit_sorted_ms(spike_times, bounds, ms)
        return {name: cls(spike_times, bounds, units, step_ms, ms=ms) for name, units in groups.items()}

    def spans(self, a_ms: np.ndarray, b_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(windows, units) ``[lo, hi)`` positions in ``ms`` of each unit's spikes in ``[a_ms, b_ms)``."""
        a, b = np.asarray(a_ms, dtype=np.int64), np.asarray(b_ms, dtype=np.int64)
        lo = np.empty((len(a), self.n_units), np.int64)
        hi = np.empty_like(lo)
        for j, (s, e) in enumerate(zip(self.lo, self.hi)):
            seg = self.ms[s:e]
            lo[:, j] = np.searchsorted(seg, a, side="left") + s
            hi[:, j] = np.searchsorted(seg, b, side="left") + s
        return lo, hi

    def counts(self, first: np.ndarray, n_steps: int) -> np.ndarray:
        """(windows, n_steps, units) counts for windows starting at step ``first``."""
        U, step = self.n_units, self.step_ms
        first = np.asarray(first, dtype=np.int64)
        a = first * step
        lo, hi = self.spans(a, a + n_steps * step)
        out = np.zeros((len(first), n_steps, U), np.float32)
        for c in range(0, len(first), 256):  # small temporaries, reused rather than fresh memory
            idx, owner = _ranges(lo[c : c + 256].ravel(), hi[c : c + 256].ravel())  # owner = window * U + unit
            if not len(idx):
                continue
            w = owner // U
            flat = (w * n_steps + (self.ms[idx] - a[c + w]) // step) * U + (owner - w * U)
            # a unit's spikes in one bin are adjacent: run lengths are the counts
            starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
            out[c : c + 256].reshape(-1)[flat[starts]] = np.diff(np.r_[starts, len(flat)])
        return out


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


#: samples the decimation filter (FIR, order 500) reaches on either side of an output
FIR_HALF = 250


def decimated_windows(data: np.ndarray, ms: np.ndarray, n_ms: int, bin_ms: int, dtype: np.dtype,
                      first: list[np.ndarray], n_bins: list[int]) -> list[np.ndarray]:
    """``take_bins(decimated(data, ...), first[i], n_bins[i])`` for each i, without filtering the session.

    Only stretches of the 1 kHz signal around the bins asked for are built (gaps
    interpolated from the samples on either side, as ``decimated`` does), laid end to
    end, each starting on a bin and reaching past the filter's span, and decimated
    in one ``scipy.signal.decimate`` call: every output asked for sees exactly the
    samples it sees in the session-long call, with the same arithmetic, so the
    values are the same to the bit (a test checks it).
    """
    q = bin_ms
    n_out = -(-n_ms // q)
    idx = [np.asarray(f, dtype=np.int64)[:, None] + np.arange(n)[None, :] for f, n in zip(first, n_bins)]
    outs = [np.full(i.shape + (data.shape[1],), np.nan) for i in idx]
    need = np.sort(np.concatenate([i[(i >= 0) & (i < n_out)] for i in idx]))
    need = need[np.r_[True, need[1:] != need[:-1]]] if len(need) else need
    if len(need) == 0:
        return outs
    keep = (ms >= 0) & (ms < n_ms)
    if not keep.all():
        ms, data = ms[keep], data[keep]
    if len(ms) > 1 and not np.all(ms[1:] > ms[:-1]):  # a repeated millisecond keeps its last sample
        _, last = np.unique(ms[::-1], return_index=True)
        take = len(ms) - 1 - last
        ms, data = ms[take], data[take]
    # which bins' first millisecond has a (non-NaN) sample, per channel
    j = np.minimum(np.searchsorted(ms, need * q), max(len(ms) - 1, 0))
    if len(ms):
        missing = (ms[j] != need * q)[:, None] | np.isnan(data[j])
    else:
        missing = np.ones((len(need), data.shape[1]), bool)
    if q == 1:
        vals = data[j] if len(ms) else np.full(missing.shape, np.nan)
    else:
        reach = (-(-FIR_HALF // q) + 2) * q  # whole bins, beyond the filter's span
        cut = np.flatnonzero(np.diff(need) * q > 2 * reach) + 1
        k0, k1 = need[np.r_[0, cut]], need[np.r_[cut - 1, len(need) - 1]] + 1
        s0 = np.maximum(k0 * q - reach, 0) // q * q
        s1 = np.minimum(k1 * q + reach, n_ms)  # only the last stretch can end off a bin
        pos, _ = _ranges(s0, s1)
        if len(ms) == n_ms and not np.isnan(data).any():  # no gaps: the samples themselves
            x = data[pos]
        else:
            x = np.full((len(pos), data.shape[1]), np.nan)
            for c in range(data.shape[1]):
                good = ~np.isnan(data[:, c])
                if good.any():
                    x[:, c] = np.interp(pos, ms[good], data[good, c])
        y = signal.decimate(x, q, axis=0, n=2 * FIR_HALF, ftype="fir")
        start = np.r_[0, np.cumsum(s1 - s0)[:-1]] // q  # each stretch's first output in ``y``
        run = np.searchsorted(k0, need, side="right") - 1
        vals = y[start[run] + need - s0[run] // q]
    vals = np.where(missing, np.nan, vals).astype(dtype)
    for i, o in zip(idx, outs):
        inside = (i >= 0) & (i < n_out)
        o[inside] = vals[np.searchsorted(need, i[inside])]
    return outs


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

    Smoothing runs within each observed stretch of the session (NaN gaps are not
    smoothed across) exactly like nlb_tools' ``smooth_spk(ignore_nans=True)`` on the
    continuous data. Smoothing then binning is linear, so a window lying inside one
    observed stretch is one sparse product: (its spikes in reach) x (the Gaussian
    summed over each bin), computed for many windows at once. Windows that touch a
    gap take the per-window FFT path (``_smoothed_by_fft``). Returns one
    (n_bins_i, units) float64 array per window.
    """
    first = np.asarray(first, dtype=np.int64)
    n_bins = np.broadcast_to(np.asarray(n_bins, dtype=np.int64), first.shape)
    out: list[np.ndarray | None] = [None] * len(first)
    ok, run = _inside_runs(mask, first, n_bins, bin_ms)
    fast = np.flatnonzero(ok)
    U = spikes.n_units
    for lo in range(0, len(fast), 256):  # bounded memory: 256 windows at a time
        chunk = fast[lo : lo + 256]
        nb_max = int(n_bins[chunk].max())
        smoothed = _smoothed_rows(spikes, mask, first[chunk], run[chunk], np.arange(len(chunk)), len(chunk),
                                  nb_max, bin_ms, sd_ms).reshape(len(chunk), U, nb_max)
        for i, k in enumerate(chunk):
            out[k] = smoothed[i, :, : int(n_bins[k])].T
    slow = np.flatnonzero(~ok)
    for k, arr in zip(slow, _smoothed_by_fft(spikes, mask, first[slow], n_bins[slow], bin_ms, sd_ms)):
        out[k] = arr
    return out  # type: ignore[return-value]


def smoothed_sums(
    spikes: SpikeIndex, mask: ObservedMask, first: np.ndarray, n_bins: np.ndarray | int, label: np.ndarray,
    n_labels: int, bin_ms: int, sd_ms: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the sum of its windows' ``smoothed_windows`` and how many were summed, bin by bin.

    What a condition-averaged PSTH needs (``np.nanmean`` over trials = sum / count,
    NaN bins left out), without a per-window array: the windows of one label must
    have the same number of bins; those lying inside one observed stretch have their
    spike counts added before the one sparse product (linearity), the others are
    smoothed one by one. Returns (n_labels, max bins, units) sums and counts; bins past
    a label's own length are 0 / 0.
    """
    first = np.asarray(first, dtype=np.int64)
    n_bins = np.broadcast_to(np.asarray(n_bins, dtype=np.int64), first.shape)
    label = np.asarray(label, dtype=np.int64)
    U = spikes.n_units
    nb_max = int(n_bins.max()) if len(first) else 0
    nb_of = np.zeros(n_labels, np.int64)
    nb_of[label] = n_bins
    in_label = np.arange(nb_max)[None, :, None] < nb_of[:, None, None]
    total = np.zeros((n_labels, nb_max, U))
    count = np.zeros((n_labels, nb_max, U))
    ok, run = _inside_runs(mask, first, n_bins, bin_ms)
    fast = np.flatnonzero(ok)
    for lo in range(0, len(fast), 512):  # bounded memory
        chunk = fast[lo : lo + 512]
        labs, local = np.unique(label[chunk], return_inverse=True)
        sums = _smoothed_rows(spikes, mask, first[chunk], run[chunk], local.reshape(-1), len(labs), nb_max,
                              bin_ms, sd_ms).reshape(len(labs), U, nb_max).transpose(0, 2, 1)
        total[labs] += np.where(in_label[labs], sums, 0.0)
        count[labs] += np.bincount(local.reshape(-1), minlength=len(labs))[:, None, None] * in_label[labs]
    slow = np.flatnonzero(~ok)
    for k, arr in zip(slow, _smoothed_by_fft(spikes, mask, first[slow], n_bins[slow], bin_ms, sd_ms)):
        seen = ~np.isnan(arr)
        total[label[k], : len(arr)] += np.where(seen, arr, 0.0)
        count[label[k], : len(arr)] += seen
    return total, count


def _inside_runs(mask: ObservedMask, first: np.ndarray, n_bins: np.ndarray, bin_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Which windows lie inside one observed stretch, and which stretch (clipped index)."""
    a_ms, b_ms = first * bin_ms, (first + n_bins) * bin_ms
    run = np.searchsorted(mask.starts, a_ms, side="right") - 1
    ok = (run >= 0) & (a_ms >= 0) & (b_ms <= mask.n_ms) & (n_bins > 0)
    run = np.clip(run, 0, None)
    ok &= (b_ms <= mask.ends[run]) & (a_ms < mask.ends[run])
    return ok, run


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


def _smoothed_rows(
    spikes: SpikeIndex, mask: ObservedMask, first: np.ndarray, run: np.ndarray, row: np.ndarray, n_rows: int,
    nb_max: int, bin_ms: int, sd_ms: float,
) -> np.ndarray:
    """(n_rows * units, nb_max) smoothed, binned spikes of windows each inside observed stretch
    ``run``, the windows of one ``row`` added: their spikes in reach times the bin kernel."""
    from scipy import sparse

    w = gaussian_window(sd_ms)
    M, half = len(w), (len(w) - 1) // 2
    K = _bin_kernel(w, nb_max, bin_ms)  # (nb_max, L)
    L = K.shape[1]
    U = spikes.n_units
    start = first * bin_ms - (M - 1 - half)  # ms of kernel offset l = 0 for each window
    lo, hi = spikes.spans(np.maximum(start, mask.starts[run]), np.minimum(start + L, mask.ends[run]))
    # (window, unit) pairs in the order of their output row, so that the spikes come out in CSR
    # order: repeated columns (spikes of one ms, or of windows added together) add up in the product
    out_row = (np.asarray(row, dtype=np.int64)[:, None] * U + np.arange(U)[None, :]).ravel()
    order = np.argsort(out_row, kind="stable")
    idx, owner = _ranges(lo.ravel()[order], hi.ravel()[order])
    w_of = order[owner] // U
    per_row = np.bincount(out_row, weights=(hi - lo).ravel(), minlength=n_rows * U).astype(np.int64)
    counts = sparse.csr_matrix((np.ones(len(idx)), spikes.ms[idx] - start[w_of], np.r_[0, np.cumsum(per_row)]),
                               shape=(n_rows * U, L))
    return np.asarray(counts @ K.T)


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
