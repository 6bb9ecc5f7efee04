"""Generic mode: a user's own NWB session, with every key that differs between labs configurable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from blend_core.api import DataError, NeuralData, gaussian_smooth
from blend_nwb import binning as B
from blend_nwb.nwbfile import NWBReader

log = logging.getLogger("blend.nwb")


@attrs.frozen(kw_only=True, eq=False)
class GenericResult:
    data: NeuralData
    trial_ids: np.ndarray  #: trials-table row of each of our trials
    first_bins: np.ndarray  #: first bin (index on the bin grid from t=0) of each trial's window
    heldout_units: np.ndarray | None = None  #: (units,) bool: which rows of the units table are held out


def _bin_means(series_times: np.ndarray, values: np.ndarray, first: np.ndarray, n_bins: int, bin_ms: int) -> np.ndarray:
    """Mean of the samples in each bin; bins with no sample are linearly interpolated at their centre."""
    edges = (first[:, None] + np.arange(n_bins + 1)[None, :]) * (bin_ms / 1000.0)
    order = np.argsort(series_times, kind="stable")
    t, v = series_times[order], values[order]
    csum = np.vstack([np.zeros((1, v.shape[1])), np.cumsum(np.nan_to_num(v), axis=0)])
    ccount = np.concatenate([[0], np.cumsum(~np.isnan(v[:, 0]))])
    pos = np.searchsorted(t, edges, side="left")
    sums = csum[pos[:, 1:]] - csum[pos[:, :-1]]
    counts = (ccount[pos[:, 1:]] - ccount[pos[:, :-1]])[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts
    empty = counts[..., 0] == 0
    if empty.any():
        centres = (edges[:, :-1] + edges[:, 1:]) / 2
        good = ~np.isnan(v[:, 0])
        for c in range(v.shape[1]):
            out[..., c][empty] = np.interp(centres[empty], t[good], v[good, c], left=np.nan, right=np.nan)
    return out


def load_generic(path: str | Path, cfg: Any) -> GenericResult:
    """Read a user's NWB session as configured (see ``NWBConfig``)."""
    path = Path(path)
    bin_ms = cfg.bin_ms
    window = cfg.window_ms
    if window is None:
        raise DataError("data.window_ms: required without data.dataset, e.g. [-250, 450] around data.align_field")
    start_ms, end_ms = window
    if end_ms <= start_ms or (end_ms - start_ms) % bin_ms or start_ms % bin_ms:
        raise DataError(f"data.window_ms: expected [start, end] with end > start, both multiples of "
                        f"data.bin_ms={bin_ms}; got {list(window)}")
    fp_ms = cfg.fp_ms or 0
    if fp_ms % bin_ms:
        raise DataError(f"data.fp_ms: expected a multiple of data.bin_ms={bin_ms}, got {fp_ms}")
    T, fp = int((end_ms - start_ms) // bin_ms), int(fp_ms // bin_ms)
    rng = np.random.default_rng(cfg.seed)
    with NWBReader(path) as r:
        units = r.units(need_heldout=cfg.heldout_column == "heldout", need_obs_intervals=False)
        if cfg.heldout_column:
            if cfg.heldout_column == "heldout":
                held = units.heldout
            else:
                column = f"units/{cfg.heldout_column}"
                if not r.has(column):
                    raise r.fail(column, "column missing (data.heldout_column)")
                held = r.boolean(column, units.n_units, "marking the held-out units (data.heldout_column)")
        else:
            frac = 0.25 if cfg.heldout_fraction is None else cfg.heldout_fraction
            n_out = int(round(frac * units.n_units))
            held = np.zeros(units.n_units, bool)
            held[rng.permutation(units.n_units)[:n_out]] = True
        align_field = cfg.align_field or "start_time"
        align = r.trial(align_field, numeric=True).astype(float)
        _, stop = r.trial_times()
        if cfg.split_column:
            labels = r.trial(cfg.split_column).astype(str)
        else:
            labels = None
        behavior = [r.series(n) for n in (cfg.behavior or ())]
        decode_names = cfg.decode if cfg.decode is not None else cfg.behavior or ()
        decode = [r.series(n) for n in decode_names]
        cond_cols = [r.trial(c) for c in (cfg.condition_columns or ())]
    n_ms = int(np.ceil(max(np.nanmax(stop), units.spike_times.max(initial=0.0)) * 1000.0)) + 1 + end_ms + fp_ms
    groups = {"heldin": np.flatnonzero(~held), "heldout": np.flatnonzero(held)}
    for g, m in groups.items():
        if len(m) == 0:
            raise DataError(f"{path}: units: no {g} units after choosing held-out neurons "
                            "(data.heldout_column / data.heldout_fraction)")
    if labels is not None:
        unknown = sorted(set(labels.tolist()) - {"train", "val", "test", "none"})
        if unknown:
            raise DataError(f"{path}: intervals/trials/{cfg.split_column}: unknown labels {unknown}; "
                            "expected train, val, test (or none to leave a trial out)")
        keep = (labels != "none") & ~np.isnan(align)
        split = labels[keep]
    else:
        keep = ~np.isnan(align)
        fr = cfg.split_fractions or (0.7, 0.1, 0.2)
        n = int(keep.sum())
        order = rng.permutation(n)
        n_tr, n_va = int(round(fr[0] / sum(fr) * n)), int(round(fr[1] / sum(fr) * n))
        split = np.full(n, "test", dtype=object)
        split[order[:n_tr]] = "train"
        split[order[n_tr : n_tr + n_va]] = "val"
        split = split.astype(str)
    rows = np.flatnonzero(keep)
    for s in ("train", "test"):
        if not np.any(split == s):
            raise DataError(f"{path}: intervals/trials: the '{s}' split is empty")
    first = B.first_bins(align[rows], start_ms, bin_ms)
    arrays = {}
    for g, members in groups.items():
        idx = B.SpikeIndex(units.spike_times, units.bounds, members, bin_ms)
        obs = units.obs_intervals[members[0]] if units.obs_intervals else None
        arrays[g] = B.windows(idx, B.ObservedMask(obs, n_ms), first, T + fp, bin_ms)
        unobserved = np.isnan(arrays[g]).any(axis=(1, 2))
        if unobserved.any():  # refused now, not after training (the references cannot smooth NaN)
            i = int(np.flatnonzero(unobserved)[0])
            raise r.fail("units/obs_intervals", f"{int(unobserved.sum())} of {len(rows)} trial windows reach into "
                         f"unobserved time (first: trials row {rows[i]}); data.window_ms and data.fp_ms must lie "
                         "inside the units' observation intervals (or mark those trials 'none' in "
                         "data.split_column)")

    def stack(series_list, first_b, n_bins):
        if not series_list:
            return None, ()
        parts, names = [], []
        for s in series_list:
            parts.append(_bin_means(s.times, s.data, first_b, n_bins, bin_ms))
            names += [s.name] if s.data.shape[1] == 1 else [f"{s.name}_{i}" for i in range(s.data.shape[1])]
        return np.concatenate(parts, axis=2), tuple(names)

    priv, names = stack(behavior, first, T + fp)
    if priv is not None:
        fit = split != "test"
        if cfg.standardize_behavior:
            mu, sd = np.nanmean(priv[fit], axis=(0, 1)), np.nanstd(priv[fit], axis=(0, 1))
            priv = (priv - mu) / np.where(sd > 0, sd, 1.0)
        priv = np.nan_to_num(priv).astype(np.float32)
    dec = None
    if decode:
        lag = cfg.decode_lag_ms or 0
        dec, _ = stack(decode, B.first_bins(align[rows], start_ms + lag, bin_ms), T)
    conditions = psth = None
    if cond_cols:
        keys = [tuple(row) for row in np.stack(cond_cols, axis=1)[rows].tolist()]
        uniq = sorted(set(keys), key=str)
        lookup = {k: i for i, k in enumerate(uniq)}
        conditions = np.array([lookup[k] for k in keys], dtype=np.int64)
        test = split == "test"
        spikes = np.concatenate([arrays["heldin"], arrays["heldout"]], axis=2)[test, :T]
        sm = gaussian_smooth(np.nan_to_num(spikes), (cfg.psth_sd_ms or 50.0) / bin_ms)
        psth = np.stack([sm[conditions[test] == c].mean(axis=0) if np.any(conditions[test] == c)
                         else np.zeros(sm.shape[1:]) for c in range(len(uniq))])
    data = NeuralData(
        heldin=arrays["heldin"], heldout=arrays["heldout"], fp_bins=fp, split=split, bin_ms=float(bin_ms),
        behavior=priv, behavior_names=names, decode_behavior=dec, conditions=conditions, psth=psth,
        name=path.name,
    ).validate()
    return GenericResult(data=data, trial_ids=rows, first_bins=first, heldout_units=held)
