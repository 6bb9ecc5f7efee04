"""NLB mode: the seven Neural Latents Benchmark'21 datasets, tensors exactly as nlb_tools makes them.

Split roles (method.md §7): NLB ``val`` trials are our ``test`` (scored, like nlb_tools'
local evaluation phase), NLB ``train`` trials are our ``train`` minus a seeded
``val_fraction`` carved out as our ``val`` (early stopping). Trials of NLB ``test``
and ``none`` are not used. The NLB evaluation target (the dict
``nlb_tools.make_tensors.make_eval_target_tensors(train='train', eval='val')``
returns) is built alongside, for submissions and exact scoring.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from blend_core.api import DataError, NeuralData
from blend_nwb import binning as B
from blend_nwb.nwbfile import NWBReader
from blend_nwb.truth import expected_counts, read_truth

log = logging.getLogger("blend.nwb")


@attrs.frozen(kw_only=True)
class NLBSpec:
    """One dataset: nlb_tools' ``PARAMS`` restated, and where the pinned DANDI release keeps it."""

    name: str
    align_field: str
    window_ms: tuple[int, int]
    behavior: tuple[str, ...]  #: a TimeSeries name, or trial-table columns (``trial_behavior``)
    trial_behavior: bool = False
    lag_ms: int | None = None
    fp_ms: int = 200
    cond_fields: tuple[str, ...] = ()
    kern_sd_ms: int | None = None
    decode_by: str | None = None  #: one decoder per value 0/1 of this trial column (Area2)
    dmfc: bool = False  #: jittered go-aligned windows, set..go evaluation, trial-level behavior
    # ---- the source: the DANDI release every example config and ``blend fetch`` use
    dandiset: str  #: DANDI id, e.g. "000128"
    version: str  #: the pinned published version of the dandiset
    train_asset: str  #: path of the ``desc-train`` file inside the dandiset
    test_asset: str  #: path of the ``desc-test`` file (test phase)
    n_units: tuple[int, int]  #: (held-in, held-out) neurons of the real file

    def assets(self) -> tuple[str, str]:
        return (self.train_asset, self.test_asset)


def _files(subject: str, session: str = "") -> dict[str, str]:
    stem = f"sub-{subject}/sub-{subject}{session}"
    return {"train_asset": f"{stem}_desc-train_behavior+ecephys.nwb", "test_asset": f"{stem}_desc-test_ecephys.nwb"}


_MAZE = dict(align_field="move_onset_time", window_ms=(-250, 450), behavior=("hand_vel",),
             cond_fields=("trial_type", "trial_version"))

#: The one table of NLB'21 datasets (nlb_tools' parameters; DANDI ids, pinned versions, assets, sizes).
SPECS: dict[str, NLBSpec] = {
    "mc_maze": NLBSpec(name="mc_maze", lag_ms=100, kern_sd_ms=70, **_MAZE, dandiset="000128",
                       version="0.220113.0400", **_files("Jenkins", "_ses-full"), n_units=(137, 45)),
    "mc_rtt": NLBSpec(name="mc_rtt", align_field="start_time", window_ms=(0, 600),
                      behavior=("finger_vel",), lag_ms=140, dandiset="000129", version="0.241017.1444",
                      **_files("Indy"), n_units=(98, 32)),
    "area2_bump": NLBSpec(name="area2_bump", align_field="move_onset_time", window_ms=(-100, 500),
                          behavior=("hand_vel",), lag_ms=-20, cond_fields=("cond_dir", "ctr_hold_bump"),
                          kern_sd_ms=40, decode_by="ctr_hold_bump", dandiset="000127", version="0.220113.0359",
                          **_files("Han"), n_units=(49, 16)),
    "dmfc_rsg": NLBSpec(name="dmfc_rsg", align_field="go_time", window_ms=(-1500, 0),
                        behavior=("is_eye", "theta", "is_short", "ts", "tp"), trial_behavior=True,
                        cond_fields=("is_eye", "theta", "is_short", "ts"), kern_sd_ms=70, dmfc=True,
                        dandiset="000130", version="0.220113.0407", **_files("Haydn"), n_units=(45, 15)),
    "mc_maze_large": NLBSpec(name="mc_maze_large", lag_ms=120, kern_sd_ms=50, **_MAZE, dandiset="000138",
                             version="0.220113.0407", **_files("Jenkins", "_ses-large"), n_units=(122, 40)),
    "mc_maze_medium": NLBSpec(name="mc_maze_medium", lag_ms=120, kern_sd_ms=50, **_MAZE, dandiset="000139",
                              version="0.220113.0408", **_files("Jenkins", "_ses-medium"), n_units=(114, 38)),
    "mc_maze_small": NLBSpec(name="mc_maze_small", lag_ms=120, kern_sd_ms=50, **_MAZE, dandiset="000140",
                             version="0.220113.0408", **_files("Jenkins", "_ses-small"), n_units=(107, 35)),
}

#: ``val``: nlb_tools' local evaluation (NLB val scored); ``test``: predict the desc-test file for the leaderboard.
PHASES = ("val", "test")

DMFC_SEG_MS = 1500
DMFC_MAX_JITTER_MS = 300


@attrs.define(kw_only=True, eq=False)
class NLBResult:
    data: NeuralData
    target: dict[str, np.ndarray]  #: the nlb_tools evaluation target of this file (NLB val trials)
    key: str  #: dataset key in submission/target files: name, plus ``_20`` at 20 ms
    train_rows: np.ndarray  #: our trial rows that are NLB train trials (submission train_*)
    eval_rows: np.ndarray  #: our trial rows that are NLB val trials (submission eval_*)
    trial_ids: np.ndarray  #: trials-table row of each predicted trial (``eval_rows`` in the test phase)
    first_bins: np.ndarray  #: first bin (on the grid from t=0) of those trials' windows
    phase: str = "val"  #: ``test``: ``trial_ids`` and ``first_bins`` refer to the desc-test file


@attrs.frozen(kw_only=True, eq=False)
class _TestTrials:
    heldin: np.ndarray  #: (trials, T + fp, N_in); forward bins NaN (not given)
    rows: np.ndarray  #: trials-table rows in the test file
    first: np.ndarray  #: first bin of each window


def _test_trials(path: Path, spec: NLBSpec, bin_ms: int, T: int, fp: int, n_heldin: int, n_heldout: int) -> _TestTrials:
    """The desc-test file's trials as nlb_tools' ``make_eval_input_tensors(trial_split='test')`` bins them.

    Its units are the held-in units only, in the train file's order; DMFC's jitter is 0 for test trials.
    """
    with NWBReader(path) as r:
        units = r.units(need_heldout=False, need_obs_intervals=True)
        split = r.trial("split").astype(str)
        align = r.trial(spec.align_field, numeric=True).astype(float)
        _, stop = r.trial_times()
        unit_ids = r.unit_ids(units.n_units)
        n_ms = _session_ms(r, units.obs_intervals, stop)
    members = np.arange(units.n_units)
    if units.heldout is not None:
        members = members[~units.heldout]
    if len(members) != n_heldin:
        raise DataError(f"{path}: units: {len(members)} held-in units, but the train file has {n_heldin}; "
                        "is this the desc-test file of the same dataset?")
    members = members[np.argsort(unit_ids[members], kind="stable")]
    rows = np.flatnonzero((split == "test") & ~np.isnan(align))
    if len(rows) == 0:
        raise DataError(f"{path}: intervals/trials/split: no 'test' trials with {spec.align_field}; "
                        "expected the ..._desc-test_ecephys.nwb file")
    first = B.first_bins(align[rows], spec.window_ms[0], bin_ms)
    idx = B.SpikeIndex(units.spike_times, units.bounds, members, bin_ms)
    heldin = B.windows(idx, B.ObservedMask(units.obs_intervals[members[0]], n_ms), first, T + fp, bin_ms)
    heldin[:, T:] = np.nan
    return _TestTrials(heldin=heldin, rows=rows, first=first)


def _dmfc_jitter(tp: np.ndarray, split: np.ndarray, bin_ms: int, seed: int = 0) -> np.ndarray:
    """nlb_tools' ``_prep_jitter`` for DMFC: uniform in [0, min(1500 - tp, 300)) ms, whole bins."""
    hi = np.where(split == "test", 0.0, np.clip(1500.0 - tp.astype(float), 0.0, float(DMFC_MAX_JITTER_MS)))
    lo = np.zeros_like(hi)
    lo_b = np.floor(np.round(lo / bin_ms, 4))
    hi_b = np.floor(np.round(hi / bin_ms, 4))
    rs = np.random.RandomState(seed)
    vals = np.array([rs.random_sample() * (h - l) + l for l, h in zip(lo_b, hi_b)])
    return np.round(vals) * bin_ms


def _session_ms(reader: NWBReader, obs: list[np.ndarray] | None, stop: np.ndarray) -> int:
    if obs:
        ends = [o[-1, 1] for o in obs if len(o)]
        if ends:
            return int(round(max(ends) * 1000.0))
    return int(np.ceil(np.nanmax(stop) * 1000.0)) + 1


def _channel_order(reader: NWBReader, name: str, n: int) -> np.ndarray:
    """nlb_tools names channels from ``comments='columns=[x,y]'`` and sorts them."""
    path = reader.find_series(name)
    comments = reader.get(path).attrs.get("comments", "") if path else ""
    comments = comments.decode() if isinstance(comments, bytes) else str(comments)
    if "columns=" in comments:
        names = comments.split("[")[-1].split("]")[0].split(",")
        if len(names) == n:
            return np.argsort(np.array(names, dtype=object), kind="stable")
    return np.arange(n)


def _psth(
    spec: NLBSpec, idx: dict[str, B.SpikeIndex], masks: dict[str, B.ObservedMask], bin_ms: int,
    cols: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, first: np.ndarray, n_bins: np.ndarray,
    valid_align: np.ndarray, align_bin: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """nlb_tools ``_make_psth``: condition means of smoothed spikes over NLB train+val trials."""
    ignore = ~(train | val)
    skip = (cols["is_outlier"] == 1) if spec.dmfc else np.zeros(len(train), bool)
    cond = np.stack([cols[f] for f in spec.cond_fields], axis=1)
    keep = ~ignore & ~np.any(_isnan(cond), axis=1)
    combos = sorted({tuple(row) for row in cond[keep].tolist()})
    train_ids = np.flatnonzero(train & valid_align)
    eval_ids = np.flatnonzero(val & valid_align)
    members = []
    for combo in combos:
        member = np.all(cond == np.array(combo, dtype=cond.dtype), axis=1) & ~ignore & ~skip & valid_align
        rows = np.flatnonzero(member)
        if len(rows) == 0:
            log.warning("no trials for condition %s; dropped", combo)
            continue
        lens = n_bins[rows]
        members.append(rows[lens >= 0.8 * lens.mean()])
    if not members:
        raise DataError(f"{spec.name}: no condition has trials; cannot make PSTHs from {spec.cond_fields}")
    # nlb_tools averages rows by time relative to the alignment event rounded up to a bin
    # (``groupby('align_time')``; at 20 ms trials can start at different relative times).
    # Trials of one condition, start and length are summed before smoothing (B.smoothed_sums).
    used = np.concatenate(members)
    of = np.repeat(np.arange(len(members)), [len(r) for r in members])
    key0 = first[used] - align_bin[used]
    groups, label = np.unique(np.stack([of, key0, n_bins[used]], axis=1), axis=0, return_inverse=True)
    sums = [B.smoothed_sums(idx[g], masks[g], first[used], n_bins[used], label.reshape(-1), len(groups), bin_ms,
                            spec.kern_sd_ms) for g in ("heldin", "heldout")]
    total = np.concatenate([t for t, _ in sums], axis=2)
    count = np.concatenate([c for _, c in sums], axis=2)
    psths, train_idx, eval_idx = [], [], []
    for c, rows in enumerate(members):
        mine = np.flatnonzero(groups[:, 0] == c)
        lo = int(groups[mine, 1].min())
        width = int((groups[mine, 1] + groups[mine, 2]).max()) - lo
        tot = np.zeros((width, total.shape[2]))
        cnt = np.zeros_like(tot)
        present = np.zeros(width, bool)
        for g in mine:
            o, nb = int(groups[g, 1]) - lo, int(groups[g, 2])
            tot[o : o + nb] += total[g, :nb]
            cnt[o : o + nb] += count[g, :nb]
            present[o : o + nb] = True
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (tot / cnt)[present]  # np.nanmean over the condition's trials
        min_len = int(n_bins[rows].min())
        psths.append(mean[-min_len:] if spec.dmfc else mean[:min_len])
        train_idx.append(np.sort(np.flatnonzero(np.isin(train_ids, rows))))
        eval_idx.append(np.sort(np.flatnonzero(np.isin(eval_ids, rows))))
    if spec.dmfc:
        max_len = DMFC_SEG_MS // bin_ms
        psths = [np.concatenate([np.full((max_len - len(p), p.shape[1]), np.nan), p]) if len(p) < max_len
                 else p[-max_len:] for p in psths]
    else:
        max_len = max(len(p) for p in psths)
        psths = [np.concatenate([p, np.full((max_len - len(p), p.shape[1]), np.nan)]) for p in psths]
    return np.stack(psths), train_idx, eval_idx


def _isnan(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "fc":
        return np.isnan(a)
    if a.dtype.kind == "O":
        return np.array([[v is None or (isinstance(v, float) and np.isnan(v)) for v in row] for row in a])
    return np.zeros(a.shape, bool)


def load_nlb(
    path: str | Path, dataset: str, *, bin_ms: int = 5, val_fraction: float = 0.1, seed: int = 0,
    behavior_lag_ms: int | None = None, standardize_behavior: bool = True, phase: str = "val",
    test_path: str | Path | None = None,
) -> NLBResult:
    """Read an NLB'21 ``..._desc-train_behavior+ecephys.nwb`` file into NeuralData and the NLB target.

    ``phase="val"`` (nlb_tools' local evaluation): NLB val trials are our scored ``test``.
    ``phase="test"`` (the leaderboard): NLB train trials are our ``train``, NLB val trials our
    ``val`` (early stopping), and the trials of ``test_path`` (the ``desc-test`` file) our
    ``test``; they have no held-out or forward spikes, so nothing is scored locally and
    ``target`` is empty.
    """
    if phase not in PHASES:
        raise DataError(f"data.phase: expected one of {', '.join(PHASES)}, got {phase!r}")
    if phase == "test" and test_path is None:
        raise DataError("data.test_path: required with data.phase: test (the ..._desc-test_ecephys.nwb file)")
    if dataset not in SPECS:
        raise DataError(f"data.dataset: unknown NLB dataset {dataset!r}; expected one of {', '.join(SPECS)}")
    spec = SPECS[dataset]
    if bin_ms not in (5, 20):
        raise DataError(f"data.bin_ms: NLB datasets are evaluated at 5 or 20 ms bins, got {bin_ms}")
    if not 0 <= val_fraction < 1:
        raise DataError(f"data.val_fraction: expected a value in [0, 1), got {val_fraction}")
    path = Path(path)
    with NWBReader(path) as r:
        units = r.units(need_heldout=True, need_obs_intervals=True)
        split = r.trial("split").astype(str)
        cols: dict[str, np.ndarray] = {}
        needed = {"start_time", "stop_time", spec.align_field, *spec.cond_fields}
        if spec.dmfc:
            needed |= {"set_time", "is_outlier", *spec.behavior}
        if spec.decode_by:
            needed.add(spec.decode_by)
        cols["start_time"], cols["stop_time"] = r.trial_times()  # finite, start <= stop
        # columns used as numbers must be numbers; condition labels may be anything comparable
        numeric = {spec.align_field, "set_time", "is_outlier", spec.decode_by or "",
                   *(spec.behavior if spec.trial_behavior else ())}
        for c in sorted(needed - {"start_time", "stop_time"}):
            cols[c] = r.trial(c, numeric=c in numeric)
        unit_ids = r.unit_ids(units.n_units)
        behavior_series = None
        if not spec.trial_behavior:
            behavior_series = r.series(spec.behavior[0])
            order = _channel_order(r, spec.behavior[0], behavior_series.data.shape[1])
        n_ms = _session_ms(r, units.obs_intervals, cols["stop_time"])
        truth = read_truth(r) if phase == "val" else None  # synthetic files only: the oracle's true rates

    heldout_mask = units.heldout
    groups = {"heldin": np.flatnonzero(~heldout_mask), "heldout": np.flatnonzero(heldout_mask)}
    for g, members in groups.items():
        if len(members) == 0:
            raise DataError(f"{path}: units/heldout: no {'held-in' if g == 'heldin' else 'held-out'} units; "
                            "expected both (NLB layout)")
        groups[g] = members[np.argsort(unit_ids[members], kind="stable")]
    is_train, is_val = split == "train", split == "val"
    for name, m in (("train", is_train), ("val", is_val)):
        if not m.any():
            raise DataError(f"{path}: intervals/trials/split: no '{name}' trials; expected NLB splits "
                            "train/val (is this the train file, ..._desc-train_behavior+ecephys.nwb?)")
    align_s = cols[spec.align_field].astype(float)
    valid_align = ~np.isnan(align_s)
    dropped = int(((is_train | is_val) & ~valid_align).sum())
    if dropped:
        log.warning("%s: %d train/val trials without %s are left out (as nlb_tools does)",
                    path, dropped, spec.align_field)

    T = (spec.window_ms[1] - spec.window_ms[0]) // bin_ms
    fp = spec.fp_ms // bin_ms
    jitter = np.zeros(len(split))
    if spec.dmfc:  # seeded per split, as make_*_tensors(seed=0) do
        tp = cols["tp"].astype(float)
        # nlb_tools seeds once per make_* call: train and val apart (val phase), together (test phase)
        for m in ((is_train, is_val) if phase == "val" else (is_train | is_val,)):
            jitter[m] = _dmfc_jitter(tp[m], split[m], bin_ms)
    first = B.first_bins(np.nan_to_num(align_s), spec.window_ms[0] + jitter, bin_ms)

    rows = np.flatnonzero((is_train | is_val) & valid_align)
    spike_ms = B.unit_sorted_ms(units.spike_times, units.bounds)  # in time order within units, shared
    idx = B.SpikeIndex.for_groups(units.spike_times, units.bounds, groups, bin_ms, spike_ms)
    masks = {g: B.ObservedMask(units.obs_intervals[groups[g][0]], n_ms) for g in groups}
    heldin = B.windows(idx["heldin"], masks["heldin"], first[rows], T + fp, bin_ms)
    heldout = B.windows(idx["heldout"], masks["heldout"], first[rows], T + fp, bin_ms)

    nlb_train = is_train[rows]
    nlb_val = is_val[rows]
    ours = np.where(nlb_val, "val" if phase == "test" else "test", "train").astype(object)
    train_pos = np.flatnonzero(nlb_train)
    n_val = int(round(val_fraction * len(train_pos))) if phase == "val" else 0
    if n_val:
        ours[np.random.default_rng(seed).permutation(train_pos)[:n_val]] = "val"
    ours = ours.astype(str)

    # ---- behavior: the decoding target (lagged, T window bins) and the privileged input
    decode = groups_arr = behavior = None
    names: tuple[str, ...]
    if spec.trial_behavior:
        tb = np.stack([cols[f].astype(float) for f in spec.behavior], axis=1)  # (trials, 5)
        beh_target = tb.copy()
        beh_target[cols["is_outlier"] != 0] = np.nan
        behavior = np.repeat(tb[rows][:, None, :], T + fp, axis=1)
        names = spec.behavior
    else:
        assert behavior_series is not None
        ms = B.check_ms_grid(behavior_series.times, "timestamps", f"{path}: {behavior_series.name}")
        lag = spec.lag_ms or 0
        dfirst = B.first_bins(np.nan_to_num(align_s), spec.window_ms[0] + lag, bin_ms)
        priv_lag = lag if behavior_lag_ms is None else behavior_lag_ms
        pfirst = B.first_bins(np.nan_to_num(align_s), spec.window_ms[0] + priv_lag, bin_ms)
        # only the bins of these windows are filtered (equal to decimating the whole session);
        # channels are filtered independently, so they are put in nlb_tools' order afterwards
        decode, behavior = (a[..., order] for a in B.decimated_windows(
            behavior_series.data, ms, n_ms, bin_ms, behavior_series.dtype, [dfirst[rows], pfirst[rows]], [T, T + fp]))
        k = behavior.shape[2]
        names = tuple(f"{spec.behavior[0]}_{i}" for i in range(k))
    behavior = behavior.astype(np.float64)
    fit = ours != "test"
    if not np.isfinite(behavior[fit]).all():
        log.warning("%s: behavior has gaps in train/val windows; filled with 0 for the teacher's input", path)
    if standardize_behavior:
        mu = np.nanmean(behavior[fit], axis=(0, 1))
        sd = np.nanstd(behavior[fit], axis=(0, 1))
        behavior = (behavior - mu) / np.where(sd > 0, sd, 1.0)
    behavior = np.nan_to_num(behavior).astype(np.float32)
    if spec.decode_by:
        v = cols[spec.decode_by].astype(float)[rows]
        groups_arr = np.where(v == 0, 0, np.where(v == 1, 1, -1)).astype(np.int64)

    # ---- DMFC: scored held-out spikes only between set and go (nlb_tools' eval tensors)
    heldout_scored = heldout
    if spec.dmfc:
        set_first = B.first_bins(cols["set_time"].astype(float)[rows], 0, bin_ms) - first[rows]
        go_end = B.last_bins(align_s[rows], bin_ms) - first[rows]
        pos = np.arange(T)[None, :]
        outside = (pos < set_first[:, None]) | (pos >= go_end[:, None])
        heldout_scored = heldout.copy()
        tst = ours == "test"
        win = heldout_scored[tst, :T]
        win[outside[tst]] = np.nan
        heldout_scored[tst, :T] = win

    # ---- PSTHs (nlb_tools smooths the continuous 1 ms spikes, then bins)
    psth = conditions = None
    train_cond = eval_cond = None
    if spec.cond_fields and phase == "val":
        idx1 = B.SpikeIndex.for_groups(units.spike_times, units.bounds, groups, 1, spike_ms)
        if spec.dmfc:
            pf = B.first_bins(np.nan_to_num(cols["set_time"].astype(float)), 0, bin_ms)
            pn = B.last_bins(np.nan_to_num(align_s), bin_ms) - pf
        else:
            pf = B.first_bins(np.nan_to_num(align_s), spec.window_ms[0], bin_ms)
            pn = np.full(len(split), T)
        step = bin_ms * B.NS_PER_MS
        align_bin = -((-B.to_ns(np.nan_to_num(align_s))) // step)
        psth_full, train_cond, eval_cond = _psth(
            spec, idx1, masks, bin_ms, cols, is_train, is_val, pf, pn, valid_align, align_bin)
        if not spec.dmfc:
            psth = psth_full
            conditions = np.full(len(rows), -1, np.int64)
            tr_rows = np.flatnonzero(nlb_train)
            ev_rows = np.flatnonzero(nlb_val)
            for c, (ti, ei) in enumerate(zip(train_cond, eval_cond)):
                conditions[tr_rows[ti]] = c
                conditions[ev_rows[ei]] = c
    else:
        psth_full = None

    key = dataset + ("" if bin_ms == 5 else f"_{bin_ms}")
    trial_ids, first_rows = rows, first[rows]
    if phase == "test":
        test = _test_trials(Path(test_path), spec, bin_ms, T, fp, heldin.shape[2], heldout.shape[2])
        heldin = np.concatenate([heldin, test.heldin])
        heldout_scored = np.concatenate([heldout_scored, np.full_like(test.heldin[..., :1], np.nan).repeat(
            heldout.shape[2], axis=2)])
        ours = np.concatenate([ours, np.full(len(test.rows), "test")])
        behavior = np.concatenate([behavior, np.zeros((len(test.rows),) + behavior.shape[1:], behavior.dtype)])
        if decode is not None:
            decode = np.concatenate([decode, np.full((len(test.rows),) + decode.shape[1:], np.nan)])
        if groups_arr is not None:
            groups_arr = np.concatenate([groups_arr, np.full(len(test.rows), -1, np.int64)])
        trial_ids, first_rows = test.rows, test.first
    true_rates = None
    if truth is not None:
        true_rates = expected_counts(truth, np.concatenate([groups["heldin"], groups["heldout"]]),
                                     cols["start_time"][rows], cols["stop_time"][rows], first[rows], T + fp, bin_ms)
    data = NeuralData(
        heldin=heldin, heldout=heldout_scored, fp_bins=fp, split=ours, bin_ms=float(bin_ms),
        behavior=behavior, behavior_names=names, decode_behavior=decode, decode_groups=groups_arr,
        conditions=conditions, psth=psth, true_rates=true_rates, name=f"{key} ({path.name})",
    ).validate()

    if phase == "test":  # submission: train_* over NLB train + val trials, eval_* over the test file's
        n = len(rows)
        return NLBResult(data=data, target={}, key=key, train_rows=np.arange(n), eval_rows=n + np.arange(len(trial_ids)),
                         trial_ids=trial_ids, first_bins=first_rows, phase=phase)
    # ---- the nlb_tools evaluation target for NLB val
    tr, ev = np.flatnonzero(nlb_train), np.flatnonzero(nlb_val)
    target: dict[str, Any] = {
        "eval_spikes_heldout": heldout_scored[ev, :T],
        "eval_spikes_heldin_forward": heldin[ev, T:],
        "eval_spikes_heldout_forward": heldout[ev, T:],
    }
    if spec.trial_behavior:
        target["train_behavior"] = beh_target[rows][tr]
        target["eval_behavior"] = beh_target[rows][ev]
    else:
        target["train_behavior"] = decode[tr]
        target["eval_behavior"] = decode[ev]
    if spec.decode_by:
        v = cols[spec.decode_by].astype(float)[rows]
        target["train_decode_mask"] = np.stack([v[tr] == 0, v[tr] == 1]).T
        target["eval_decode_mask"] = np.stack([v[ev] == 0, v[ev] == 1]).T
    if psth_full is not None:
        target["psth"] = psth_full
        target["eval_cond_idx"] = _object_array(eval_cond)
        target["train_cond_idx"] = _object_array(train_cond)
        if spec.dmfc:
            target["eval_jitter"] = np.round(jitter[rows][ev] / bin_ms).astype(int)
            target["train_jitter"] = np.round(jitter[rows][tr] / bin_ms).astype(int)
    return NLBResult(data=data, target=target, key=key, train_rows=tr, eval_rows=ev, trial_ids=rows,
                     first_bins=first[rows], phase=phase)


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, it in enumerate(items):
        out[i] = np.asarray(it, dtype=np.int64)
    return out
