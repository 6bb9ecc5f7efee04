"""Synthetic sessions written in exactly the layout of the NLB'21 DANDI files.

The demo and the tests read these through the same path a real
``sub-*_desc-train_behavior+ecephys.nwb`` takes: ``units`` with ``spike_times``,
per-trial ``obs_intervals`` and boolean ``heldout``; ``trials`` with ``split`` and the
dataset's alignment and condition columns; behavior as a 1 kHz ``TimeSeries`` in
``processing/behavior`` (trial-table columns only for DMFC_RSG).

Generative assumptions (a toy, stated plainly): each condition has a reach
direction; hand velocity is a bell-shaped speed profile in that direction with a
per-trial gain and timing jitter; neurons are Poisson with log-rates linear in the
velocity 100 ms later (neurons lead the hand), so behavior pins down per-trial
variability the spikes show only noisily. DMFC: rates ramp from set to go with a
slope set by the produced interval ``tp``.

With ``truth`` (the default) the train file also keeps what made its spikes, so a
loader can compute the true rates (an ``oracle`` row): the 1 kHz latent drive in
``processing/synthetic_truth/latent_drive`` and, per unit, the log base rate
``units/truth_log_rate`` (log Hz) and the loading ``units/truth_loading`` (one row per
drive channel). Spikes of millisecond ``m`` are Poisson with mean
``min(exp(truth_log_rate + latent_drive[m] @ truth_loading) / 1000, 0.5)`` inside the
trial's observed interval. NLB's own files have none of this.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any, Sequence

import attrs
import numpy as np

from blend_nwb.nlb import SPECS

@attrs.frozen(kw_only=True)
class SyntheticNLB:
    dataset: str = "mc_maze"
    n_trials: int = 120  #: trials in the train file (train + val + none)
    n_test_trials: int = 0  #: trials in the companion test file (0: no test file)
    n_heldin: int = 20
    n_heldout: int = 8
    split_fractions: tuple[float, float, float] = (0.7, 0.25, 0.05)  #: train, val, none
    n_conditions: int = 6
    base_rate_hz: float = 12.0
    seed: int = 0
    truth: bool = True  #: keep the generative parameters in the train file (true rates for an oracle)


def _trial_times(cfg: SyntheticNLB, n: int, rng: np.random.Generator, t0: float) -> dict[str, np.ndarray]:
    """Start/stop/alignment times (seconds, sub-ms, never on bin edges by construction)."""
    if cfg.dataset == "mc_rtt":
        dur = rng.uniform(0.8, 1.2, n)
        start = t0 + np.concatenate([[0.0], np.cumsum(dur)[:-1]])
        return {"start_time": start, "stop_time": start + dur, "align": start}
    if cfg.dataset == "dmfc_rsg":
        ts = np.zeros(n)
        is_short = rng.integers(0, 2, n)
        short_ts = np.array([480, 560, 640, 720, 800.0])
        long_ts = np.array([800, 900, 1000, 1100, 1200.0])
        ts = np.where(is_short == 1, short_ts[rng.integers(0, 5, n)], long_ts[rng.integers(0, 5, n)])
        tp = np.round(ts * rng.normal(1.0, 0.08, n), 0)
        pre = 1.75 + rng.uniform(0, 0.2, n)
        dur = pre + 0.8
        start = t0 + np.concatenate([[0.0], np.cumsum(dur + 0.15)[:-1]])
        go = start + pre + rng.uniform(0, 0.001, n)
        return {"start_time": start, "stop_time": start + dur, "align": go, "set_time": go - tp / 1000.0,
                "ts": ts, "tp": tp, "is_short": is_short}
    pre = 0.5 + rng.uniform(0, 0.2, n)
    dur = pre + 0.95 + rng.uniform(0, 0.1, n)
    start = t0 + np.concatenate([[0.0], np.cumsum(dur + 0.1)[:-1]])
    return {"start_time": start, "stop_time": start + dur, "align": start + pre + rng.uniform(0, 0.001, n)}


def _session(cfg: SyntheticNLB, n: int, rng: np.random.Generator, loading: np.ndarray, base: np.ndarray):
    """Times, conditions, 1 kHz velocity and per-ms spike counts for n trials."""
    times = _trial_times(cfg, n, rng, t0=0.5)
    end_ms = int(np.ceil(times["stop_time"][-1] * 1000)) + 500
    t = np.arange(end_ms) / 1000.0
    cond = rng.integers(0, cfg.n_conditions, n)
    angle = 2 * np.pi * cond / cfg.n_conditions
    vel = np.zeros((end_ms, 2))
    drive = np.zeros((end_ms, loading.shape[0]))
    gain = rng.uniform(0.6, 1.4, n)
    shift = rng.normal(0, 0.03, n)
    for i in range(n):
        a, b = int(times["start_time"][i] * 1000), int(times["stop_time"][i] * 1000)
        tt = t[a:b] - times["align"][i]
        if cfg.dataset == "dmfc_rsg":
            set_t = times["set_time"][i] - times["align"][i]
            ramp = np.clip((tt - set_t) / max(-set_t, 1e-3), 0, 1.2)
            drive[a:b, 0] = ramp * 2.0
            drive[a:b, 1] = np.where(tt > 0, 1.0, 0.0)
            continue
        ang = angle[i] if cfg.dataset != "mc_rtt" else rng.uniform(0, 2 * np.pi)
        speed = 300.0 * gain[i] * np.exp(-0.5 * ((tt - 0.2 - shift[i]) / 0.09) ** 2)
        vel[a:b] = speed[:, None] * np.array([np.cos(ang), np.sin(ang)])[None, :]
    if cfg.dataset != "dmfc_rsg":
        lead = 100  # neurons lead the hand by 100 ms
        v = np.vstack([vel[lead:], np.zeros((lead, 2))]) / 300.0
        drive[:, 0:2] = v
        drive[:, 2] = np.linalg.norm(v, axis=1)
    # Poisson spikes inside each trial only (the observed intervals), trial by trial to bound memory
    ms_parts, unit_parts = [], []
    for i in range(n):
        a = int(np.ceil(times["start_time"][i] * 1000))
        b = int(np.floor(times["stop_time"][i] * 1000))
        rate = np.minimum(np.exp(base[None, :] + drive[a:b] @ loading) / 1000.0, 0.5)  # spikes per ms
        counts = rng.poisson(rate)
        ms, unit = np.nonzero(counts)
        reps = counts[ms, unit]
        ms_parts.append(np.repeat(ms + a, reps))
        unit_parts.append(np.repeat(unit, reps))
    spike_ms = np.concatenate(ms_parts)
    spike_unit = np.concatenate(unit_parts)
    return times, cond, vel, (spike_ms, spike_unit), end_ms, drive


@attrs.frozen(kw_only=True, eq=False)
class NLBSession:
    """Everything one NLB-layout file holds, as plain arrays (times in seconds, series at 1 kHz from t=0).

    The one writer (``write_session``) serves every generator of this plugin, so that each
    generator's files take exactly the path a real DANDI file takes through the reader.
    """

    dataset: str  #: a key of ``blend_nwb.nlb.SPECS``: which alignment/condition columns and behavior name
    desc: str  #: "train" (behavior, every unit) or "test" (no behavior, held-in units only)
    spike_times: Sequence[np.ndarray]  #: per written unit, sorted seconds
    heldout: np.ndarray  #: (units,) bool
    obs_intervals: np.ndarray  #: (k, 2) seconds, the same for every unit
    trials: dict[str, np.ndarray]  #: start_time, stop_time, split, then the dataset's columns
    behavior: np.ndarray | None = None  #: (ms, K) at 1 kHz, written as the dataset's behavior series
    behavior_columns: tuple[str, ...] = ("x", "y")  #: channel names (nlb_tools sorts channels by them)
    behavior_unit: str = "mm/s"
    #: (latent_drive (ms, C), log rate per written unit (log Hz), loading (C, units)) for the oracle row
    truth: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    description: str = "synthetic"
    seed: int = 0


def nlb_nwbfile(session: NLBSession) -> Any:
    """An in-memory ``pynwb.NWBFile`` of ``session`` in the NLB'21 DANDI layout."""
    from pynwb import NWBFile, TimeSeries
    from pynwb.behavior import SpatialSeries
    from pynwb.file import Subject
    from pynwb.misc import Units

    s = session
    spec = SPECS[s.dataset]
    start = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)
    nwb = NWBFile(session_description=f"{s.description} ({s.desc}) in NLB'21 layout, made by blend-nwb",
                  identifier=f"blend-synthetic-{s.dataset}-{s.desc}-{s.seed}", session_start_time=start,
                  keywords=["Neural Latents Benchmark", "synthetic"], experimenter=["blend-nwb"],
                  experiment_description=s.description, institution="none (synthetic)",
                  subject=Subject(subject_id="synthetic", species="Macaca mulatta", sex="M", age="P10Y"))
    nwb.units = Units(name="units", description="synthetic sorted units", resolution=1e-4)
    nwb.add_trial_column("split", 'Trial split: "train", "val", "test", or "none"')
    extra = {k: v for k, v in s.trials.items() if k not in ("start_time", "stop_time", "split")}
    for name in extra:
        nwb.add_trial_column(name, f"synthetic {name}")
    for i in range(len(s.trials["start_time"])):
        nwb.add_trial(start_time=float(s.trials["start_time"][i]), stop_time=float(s.trials["stop_time"][i]),
                      split=str(s.trials["split"][i]), **{k: v[i].item() for k, v in extra.items()})
    nwb.add_unit_column("heldout", "Whether the unit is held out in the test data (True) or not (False)")
    if s.truth is not None:
        nwb.add_unit_column("truth_log_rate", "synthetic ground truth: log base rate (log Hz)")
        nwb.add_unit_column("truth_loading", "synthetic ground truth: loading on each latent_drive channel")
    end_ms = int(round(np.max(s.obs_intervals[:, 1]) * 1000))
    for u, times in enumerate(s.spike_times):
        unit_truth = {} if s.truth is None else {"truth_log_rate": float(s.truth[1][u]),
                                                   "truth_loading": s.truth[2][:, u].astype(float)}
        nwb.add_unit(spike_times=np.asarray(times, dtype=np.float64), obs_intervals=s.obs_intervals,
                     heldout=bool(s.heldout[u]), **unit_truth)
    if s.truth is not None:
        mod = nwb.create_processing_module("synthetic_truth", "Ground truth of the synthetic generator")
        mod.add(TimeSeries(name="latent_drive", data=s.truth[0][:end_ms].astype(np.float32),
                           unit="a.u.", rate=1000.0, starting_time=0.0,
                           description="latent drive of the log-rates (see units/truth_loading)"))
    if s.behavior is not None and not spec.trial_behavior:
        mod = nwb.create_processing_module("behavior", "Processed behavioral data")
        name = spec.behavior[0]
        data = s.behavior[:end_ms]  # the session ends with the last observation
        mod.add(TimeSeries(name=name, data=data, unit=s.behavior_unit, rate=1000.0, starting_time=0.0,
                           comments=f"columns=[{','.join(s.behavior_columns)}]",
                           description=f"synthetic {name}, {', '.join(s.behavior_columns)}"))
        if data.shape[1] == 2:
            mod.add(SpatialSeries(name="hand_pos" if name != "hand_pos" else "cursor_pos",
                                  data=np.cumsum(data, axis=0) / 1e6, rate=1000.0, starting_time=0.0,
                                  reference_frame="screen center", unit="meters",
                                  description="synthetic position, x and y"))
    return nwb


def write_session(path: str | Path, session: NLBSession) -> Path:
    """Write ``session`` to ``path`` atomically (a partly written file never takes its name)."""
    from pynwb import NWBHDF5IO

    from blend_core.api import atomic_write

    if session.dataset not in SPECS:
        raise ValueError(f"unknown NLB dataset {session.dataset!r}")
    nwb = nlb_nwbfile(session)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # the temporary name does not end in .nwb; the final one does
            warnings.filterwarnings("ignore", message="The file path provided")
            with NWBHDF5IO(str(tmp), "w") as io:
                io.write(nwb)

    return atomic_write(path, write)


def write_nlb_file(path: str | Path, config: SyntheticNLB | None = None, *, test_path: str | Path | None = None,
                   **overrides) -> Path:
    """Write a synthetic train file (and optionally the companion test file) in NLB layout."""
    cfg = attrs.evolve(config or SyntheticNLB(), **overrides)
    if cfg.dataset not in SPECS:
        raise ValueError(f"unknown NLB dataset {cfg.dataset!r}")
    spec = SPECS[cfg.dataset]
    rng = np.random.default_rng(cfg.seed)
    n_units = cfg.n_heldin + cfg.n_heldout
    loading = rng.normal(0, 0.8, (3, n_units))
    base = np.log(cfg.base_rate_hz) + rng.normal(0, 0.4, n_units)
    heldout = np.zeros(n_units, bool)
    heldout[rng.permutation(n_units)[: cfg.n_heldout]] = True

    def build(n: int, splits: np.ndarray, with_behavior: bool, units_mask: np.ndarray, desc: str) -> NLBSession:
        times, cond, vel, (spike_ms, spike_unit), end_ms, drive = _session(cfg, n, rng, loading, base)
        truth = cfg.truth and desc == "train"
        order = np.argsort(spike_unit, kind="stable")
        spike_ms, spike_unit = spike_ms[order], spike_unit[order]
        unit_bounds = np.searchsorted(spike_unit, np.arange(n_units + 1))
        extra: dict[str, np.ndarray] = {}
        if spec.align_field not in ("start_time",):
            extra[spec.align_field] = times["align"]
        if cfg.dataset.startswith("mc_maze"):
            extra["trial_type"] = 1 + cond // 3
            extra["trial_version"] = cond % 3
        elif cfg.dataset == "area2_bump":
            extra["cond_dir"] = (cond % 8) * 45.0
            extra["ctr_hold_bump"] = (cond // 8) % 2 == 1 if cfg.n_conditions > 8 else rng.integers(0, 2, n) == 1
        elif cfg.dataset == "dmfc_rsg":
            extra["set_time"] = times["set_time"]
            extra["is_eye"] = rng.integers(0, 2, n).astype(bool)
            extra["theta"] = np.where(rng.integers(0, 2, n) == 1, 180.0, 0.0)
            extra["is_short"] = times["is_short"].astype(bool)
            extra["ts"] = times["ts"]
            extra["tp"] = times["tp"] if desc == "train" else np.full(n, np.nan)
            extra["is_outlier"] = (rng.uniform(size=n) < 0.05) if desc == "train" else np.zeros(n, bool)
        # per-trial observation intervals (continuous recording for MC_RTT), spikes inside them only
        if cfg.dataset == "mc_rtt":
            obs = np.array([[times["start_time"][0], times["stop_time"][-1] + 0.3]])
        else:
            obs = np.stack([times["start_time"], times["stop_time"]], axis=1)
        spike_times = []
        for u in np.flatnonzero(units_mask):
            ms = spike_ms[unit_bounds[u] : unit_bounds[u + 1]]
            spike_times.append(np.sort((ms + rng.uniform(0.05, 0.95, len(ms))) / 1000.0))
        kept = np.flatnonzero(units_mask)
        return NLBSession(
            dataset=cfg.dataset, desc=desc, spike_times=spike_times, heldout=heldout[kept], obs_intervals=obs,
            trials={"start_time": times["start_time"], "stop_time": times["stop_time"], "split": splits, **extra},
            behavior=vel if with_behavior else None,
            truth=(drive, base[kept], loading[:, kept]) if truth else None,
            description=f"synthetic {cfg.dataset}", seed=cfg.seed)

    path = Path(path)
    labels = rng.choice(np.array(["train", "val", "none"]), size=cfg.n_trials,
                        p=np.array(cfg.split_fractions) / sum(cfg.split_fractions))
    labels[:2] = ["train", "val"]  # both splits always present
    write_session(path, build(cfg.n_trials, labels, True, np.ones(n_units, bool), "train"))
    if test_path is not None and cfg.n_test_trials:
        write_session(test_path, build(cfg.n_test_trials, np.full(cfg.n_test_trials, "test"), False, ~heldout, "test"))
    return path
