"""Robustness suite, neural part: NLB-layout files from generators no recipe was tuned on.

Every recipe in ``examples/nlb`` was tuned on files of ``blend_nwb.synthetic`` (a toy of
reaching: Poisson spikes locked to a trial event, behavior that sets the drive almost
exactly). The generators here make different assumptions, closer to sorted extracellular
units, so that a recipe that only works on its own toy shows it:

- **A continuous recording cut into pseudo-trials.** Spikes are generated for the whole
  session; trials of ``trial_s`` seconds are then laid back to back over it, and their
  alignment event means nothing (no PSTH structure, conditions are random labels).
- **Renewal spiking, not Poisson.** Each unit is a gamma renewal process (shape drawn per
  unit in ``gamma_shape``; ISI CV ~ 1/sqrt(shape) < 1 at a constant rate) run through time
  rescaling of its rate, with an absolute refractory period (``refractory_ms``): no two
  spikes of a unit are closer. The rate is compensated for the dead time, so the mean rate
  stays ``λ(t)``.
- **Log-normal rates** (median ``rate_median_hz``, log-s.d. ``rate_log_sd``, clipped to
  ``rate_range_hz``), **slow drifts** (``n_drifts`` shared Ornstein-Uhlenbeck processes with
  a ``drift_tau_s`` timescale, per-unit loadings) and **weak low-dimensional shared
  structure** (``n_factors`` OU factors with a ``factor_tau_s`` timescale, the first one
  global: every unit couples to it positively; ``shared_sd`` sets the s.d. of their effect
  on a unit's log-rate, calibrated so that a unit's 50 ms counts correlate ~0.1-0.2 with the
  sum of the other units').
- **A privileged signal that is not a velocity**, one per ``privileged`` kind, written where
  the layout keeps behavior (``hand_vel`` for MC_Maze, ``finger_vel`` for MC_RTT):

  - ``hidden_units``: the smoothed firing (Gaussian, s.d. ``hidden_smooth_ms``) of
    ``n_hidden`` further units of the same population, pooled into ``hidden_channels``
    channels (Hz). They are never written as units: the student cannot see them.
  - ``pupil``: a slow arousal process (OU, ``arousal_tau_s``) multiplies every unit's rate
    by ``exp(g_i·a(t))`` (gains ``arousal_gain``); the pupil is its low-pass, lagged
    (``pupil_lag_s``) copy plus measurement noise (mm).
  - ``context``: a latent task variable, a Markov chain over ``n_contexts`` states (mean
    dwell ``context_dwell_s``) that shifts the log-rates of a ``context_fraction`` of units
    (offsets of s.d. ``context_sd``); the privileged signal is its one-hot state.

The decoding target of the layout (NLB's "vel R2") is then the privileged signal itself.

With ``truth`` the file keeps the intensity ``λ(t)`` (``processing/synthetic_truth``, as
``blend_nwb.truth`` reads it): the oracle row scores it. For a renewal process ``λ(t)`` is
the expected rate given the latents, not given the unit's own spike history, so the oracle
is a reference, not a strict ceiling.

``SETTINGS`` names the suite's settings; ``write_setting(name, path, seed)`` writes one,
``python -m blend_nwb.robustness OUT_DIR`` writes them all and prints their statistics
(``file_statistics``), which the tests check against the assumptions above.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

import attrs
import numpy as np

from blend_nwb.nlb import SPECS
from blend_nwb.synthetic import NLBSession, write_session

Privileged = Literal["hidden_units", "pupil", "context"]
LAYOUTS = ("mc_maze", "mc_maze_large", "mc_maze_medium", "mc_maze_small", "mc_rtt", "area2_bump")


@attrs.frozen(kw_only=True)
class ContinuousConfig:
    """One generator configuration; every default is small enough for a 2-core CPU."""

    privileged: Privileged = "hidden_units"
    dataset: str = attrs.field(default="mc_maze")  #: the NLB layout (alignment, condition and behavior names)
    n_trials: int = 200  #: pseudo-trials (train + val; no 'none' or test trials)
    trial_s: float = 1.0  #: length of each pseudo-trial
    gap_s: float = 0.1  #: recording between consecutive pseudo-trials
    val_fraction: float = 0.25  #: NLB 'val' trials (scored); the rest are NLB 'train'
    n_heldin: int = 45
    n_heldout: int = 15
    rate_median_hz: float = 5.0
    rate_log_sd: float = 0.9
    rate_range_hz: tuple[float, float] = (0.5, 40.0)
    gamma_shape: tuple[float, float] = (1.5, 4.0)  #: per-unit shape, uniform in this range
    refractory_ms: float = 2.0
    n_factors: int = 3
    factor_tau_s: float = 0.3
    shared_sd: float = 0.4  #: s.d. of the factors' total effect on a unit's log-rate
    n_drifts: int = 2
    drift_tau_s: float = 60.0
    drift_sd: float = 0.25  #: s.d. of the drifts' effect on a unit's log-rate
    n_hidden: int = 16  #: hidden_units only
    hidden_channels: int = 4
    hidden_smooth_ms: float = 50.0
    arousal_tau_s: float = 3.0  #: pupil only
    arousal_gain: tuple[float, float] = (0.25, 0.2)  #: pupil only: mean and s.d. of the per-unit gains
    pupil_lag_s: float = 0.5
    n_contexts: int = 3  #: context only
    context_dwell_s: float = 1.5
    context_sd: float = 0.6
    context_fraction: float = 0.6
    n_conditions: int = 4  #: random labels for the layout's condition columns (no structure)
    seed: int = 0
    truth: bool = True

    @dataset.validator
    def _layout(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in LAYOUTS:
            raise ValueError(f"dataset: {value!r} is not a layout of this generator; expected one of {', '.join(LAYOUTS)}")


#: The suite's neural settings. Each is a generator configuration; a seed is added when writing.
SETTINGS: dict[str, ContinuousConfig] = {
    "hidden-160": ContinuousConfig(privileged="hidden_units", n_trials=160),
    "hidden-120-low": ContinuousConfig(privileged="hidden_units", n_trials=120, rate_median_hz=2.5,
                                        n_heldin=40, n_heldout=12),
    "pupil-160": ContinuousConfig(privileged="pupil", n_trials=160),
    "pupil-120-drift": ContinuousConfig(privileged="pupil", n_trials=120, drift_sd=0.5, drift_tau_s=30.0),
    "context-160": ContinuousConfig(privileged="context", n_trials=160),
    "context-rtt-120": ContinuousConfig(privileged="context", dataset="mc_rtt", n_trials=120, rate_median_hz=8.0),
}


def _ou(rng: np.random.Generator, n: int, tau: float, k: int) -> np.ndarray:
    """(n, k) unit-variance Ornstein-Uhlenbeck samples with correlation time ``tau`` samples."""
    from scipy.signal import lfilter

    rho = np.exp(-1.0 / tau)
    x0 = rng.normal(size=(1, k))
    eps = rng.normal(size=(n, k)) * np.sqrt(1 - rho**2)
    x, _ = lfilter([1.0], [1.0, -rho], eps, axis=0, zi=rho * x0)
    return x


def _markov(rng: np.random.Generator, n: int, states: int, dwell: float) -> np.ndarray:
    """(n,) state sequence; each sample leaves its state with probability 1/dwell, to a uniform other state."""
    switch = np.flatnonzero(rng.random(n) < 1.0 / dwell)
    jumps = rng.integers(1, states, len(switch)) if states > 1 else np.zeros(len(switch), int)
    steps = np.zeros(n, np.int64)
    steps[switch] = jumps
    return (rng.integers(0, states) + np.cumsum(steps)) % states


def renewal_spikes(rate_hz: np.ndarray, shape: float, refractory_ms: float, rng: np.random.Generator) -> np.ndarray:
    """Spike times (s) of a gamma renewal process with an absolute refractory period.

    ``rate_hz`` is the intensity on a 1 ms grid from t = 0. Operational-time intervals are
    Gamma(shape, 1/shape) (mean 1) under the dead-time-compensated intensity
    ``λ' = λ / (1 - λ·τ)``, mapped to real time, then every spike closer than ``τ`` to the
    previous one is pushed back to ``τ`` after it (``t'_k = max(t_k, t'_{k-1} + τ)``).
    """
    tau = refractory_ms / 1000.0
    lam = np.minimum(rate_hz, 0.5 / max(tau, 1e-9))
    lam_c = lam / (1 - lam * tau)
    edges = np.concatenate([[0.0], np.cumsum(lam_c / 1000.0)])  # operational time at each ms edge
    total = edges[-1]
    n_draw = int(total * 1.3 + 10 * np.sqrt(total + 1) + 20)
    isi = rng.gamma(shape, 1.0 / shape, n_draw)
    op = np.cumsum(isi) - rng.uniform(0, 1) * isi[0]  # a random phase for the first interval
    while op[-1] < total:  # rare: draw more
        more = rng.gamma(shape, 1.0 / shape, n_draw)
        op = np.concatenate([op, op[-1] + np.cumsum(more)])
    op = op[(op >= 0) & (op < total)]
    t = np.interp(op, edges, np.arange(len(edges)) / 1000.0)
    k = np.arange(len(t)) * tau
    t = np.maximum.accumulate(t - k) + k
    return t[t < (len(edges) - 1) / 1000.0]


def _gauss_smooth(x: np.ndarray, sd_ms: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sd_ms, axis=0, mode="nearest")


def generate_session(cfg: ContinuousConfig) -> NLBSession:
    """Draw one session of ``cfg`` as an ``NLBSession`` (the train file: every unit, the privileged signal)."""
    rng = np.random.default_rng(cfg.seed)
    spec = SPECS[cfg.dataset]
    n_written = cfg.n_heldin + cfg.n_heldout
    n_hidden = cfg.n_hidden if cfg.privileged == "hidden_units" else 0
    n_units = n_written + n_hidden
    period = cfg.trial_s + cfg.gap_s
    t0 = 0.5
    end_s = t0 + cfg.n_trials * period + 0.5
    n_ms = int(np.ceil(end_s * 1000))

    # ---- per-unit statistics
    lo, hi = np.log(cfg.rate_range_hz[0]), np.log(cfg.rate_range_hz[1])
    log_rate = np.clip(np.log(cfg.rate_median_hz) + cfg.rate_log_sd * rng.normal(size=n_units), lo, hi)
    shape = rng.uniform(*cfg.gamma_shape, n_units)

    # ---- latent drive channels (1 kHz) and loadings; log λ = log_rate - correction + drive @ loading
    channels, loadings = [], []
    factors = _ou(rng, n_ms, cfg.factor_tau_s * 1000, cfg.n_factors)
    w = rng.normal(size=(cfg.n_factors, n_units))
    w[0] = np.abs(w[0]) + 1.0  # the first factor is global (every unit couples positively, as in cortex)
    w *= cfg.shared_sd / np.linalg.norm(w, axis=0, keepdims=True).clip(1e-9)
    channels.append(factors)
    loadings.append(w)
    drifts = _ou(rng, n_ms, cfg.drift_tau_s * 1000, cfg.n_drifts)
    d = rng.normal(size=(cfg.n_drifts, n_units))
    d *= cfg.drift_sd / np.linalg.norm(d, axis=0, keepdims=True).clip(1e-9)
    channels.append(drifts)
    loadings.append(d)
    behavior, columns, unit = None, (), "a.u."
    if cfg.privileged == "pupil":
        arousal = _ou(rng, n_ms, cfg.arousal_tau_s * 1000, 1)
        channels.append(arousal)
        loadings.append(rng.normal(cfg.arousal_gain[0], cfg.arousal_gain[1], (1, n_units)))
        lag = int(round(cfg.pupil_lag_s * 1000))
        slow = _gauss_smooth(arousal[:, 0], 300.0)
        pupil = np.concatenate([np.full(lag, slow[0]), slow[: n_ms - lag]])
        behavior = (1.5 + 0.3 * pupil + 0.02 * _ou(rng, n_ms, 50.0, 1)[:, 0])[:, None]
        columns, unit = ("pupil",), "mm"
    elif cfg.privileged == "context":
        state = _markov(rng, n_ms, cfg.n_contexts, cfg.context_dwell_s * 1000)
        onehot = np.eye(cfg.n_contexts)[state]
        channels.append(onehot)
        offsets = cfg.context_sd * rng.normal(size=(cfg.n_contexts, n_units))
        offsets -= offsets.mean(0, keepdims=True)
        offsets[:, rng.random(n_units) >= cfg.context_fraction] = 0.0
        loadings.append(offsets)
        behavior = onehot.copy()
        columns = tuple(f"context{i}" for i in range(cfg.n_contexts))
    drive = np.concatenate(channels, axis=1).astype(np.float32)
    loading = np.concatenate(loadings, axis=0)
    # ---- spikes, unit by unit; each unit's base is set so that its session-average intensity is
    # exactly exp(log_rate) (in rate_range_hz), whatever its drifts did in this session
    base = np.empty(n_units)
    spikes = []
    drive64 = drive.astype(np.float64)
    for u in range(n_units):
        modulation = drive64 @ loading[:, u]
        base[u] = log_rate[u] - np.log(np.mean(np.exp(modulation)))
        spikes.append(renewal_spikes(np.exp(base[u] + modulation), shape[u], cfg.refractory_ms, rng))
    if cfg.privileged == "hidden_units":
        groups = np.array_split(np.arange(n_written, n_units), cfg.hidden_channels)
        counts = np.zeros((n_ms, len(groups)))
        for g, members in enumerate(groups):
            for u in members:
                np.add.at(counts[:, g], np.minimum((spikes[u] * 1000).astype(np.int64), n_ms - 1), 1.0)
        behavior = _gauss_smooth(counts * 1000.0 / np.array([len(m) for m in groups]), cfg.hidden_smooth_ms)
        columns, unit = tuple(f"hidden{g}" for g in range(len(groups))), "Hz"

    # ---- pseudo-trials over the continuous recording; the alignment event means nothing
    start = t0 + period * np.arange(cfg.n_trials)
    stop = start + cfg.trial_s
    pre = max(-spec.window_ms[0], 0) / 1000.0 + 0.05
    align = start + pre + rng.uniform(0, 0.001, cfg.n_trials)
    split = np.where(rng.random(cfg.n_trials) < cfg.val_fraction, "val", "train")
    split[:2] = ["train", "val"]
    cond = rng.integers(0, cfg.n_conditions, cfg.n_trials)
    trials: dict[str, np.ndarray] = {"start_time": start, "stop_time": stop, "split": split}
    if spec.align_field != "start_time":
        trials[spec.align_field] = align
    if cfg.dataset.startswith("mc_maze"):
        trials["trial_type"] = 1 + cond // 2
        trials["trial_version"] = cond % 2
    elif cfg.dataset == "area2_bump":
        trials["cond_dir"] = (cond % 8) * 45.0
        trials["ctr_hold_bump"] = rng.integers(0, 2, cfg.n_trials) == 1
    heldout = np.zeros(n_written, bool)
    heldout[rng.permutation(n_written)[: cfg.n_heldout]] = True
    obs = np.array([[0.0, n_ms / 1000.0]])
    truth = (drive, base[:n_written], loading[:, :n_written]) if cfg.truth else None
    return NLBSession(
        dataset=cfg.dataset, desc="train", spike_times=spikes[:n_written], heldout=heldout, obs_intervals=obs,
        trials=trials, behavior=behavior.astype(np.float32), behavior_columns=columns, behavior_unit=unit,
        truth=truth, seed=cfg.seed,
        description=f"blend robustness suite: continuous renewal recording, privileged {cfg.privileged}")


def write_setting(name: str, path: str | Path, seed: int, **overrides) -> Path:
    """Write setting ``name`` of ``SETTINGS`` with generator seed ``seed`` to ``path`` (NLB train-file layout)."""
    if name not in SETTINGS:
        raise KeyError(f"unknown robustness setting {name!r}; expected one of {', '.join(SETTINGS)}")
    cfg = attrs.evolve(SETTINGS[name], seed=seed, **overrides)
    return write_session(path, generate_session(cfg))


# ----------------------------------------------------------------- statistics of a written file

def file_statistics(path: str | Path, bin_ms: float = 50.0) -> dict[str, np.ndarray]:
    """Per-unit statistics of a file's spikes, to check a generator's stated assumptions.

    ``rate_hz`` (over the observed interval), ``refractory_violations`` (ISIs under 1.5 ms),
    ``isi_cv``, ``isi_lv`` (Shinomoto's local variation: 1 for Poisson, 3/(2k+1) for gamma
    shape k, insensitive to slow rate changes), ``population_corr`` (Pearson correlation of
    the unit's ``bin_ms`` counts with the summed counts of all other units) and
    ``psth_ratio`` (over the pseudo-trials' aligned windows: variance across 50 ms bins of the
    population's trial-averaged counts, divided by its sampling variance; ~1 without trial
    alignment, far above 1 for trial-locked data).
    """
    from blend_nwb.nwbfile import NWBReader

    with NWBReader(path) as r:
        units = r.units(need_heldout=False, need_obs_intervals=True)
        start = r.trial("start_time").astype(float)
        stop = r.trial("stop_time").astype(float)
    end = float(units.obs_intervals[0][-1, 1]) if units.obs_intervals else float(stop.max())
    n_bins = int(end * 1000 // bin_ms)
    counts = np.zeros((n_bins, units.n_units))
    stats: dict[str, list[float]] = {k: [] for k in ("rate_hz", "refractory_violations", "isi_cv", "isi_lv")}
    for u in range(units.n_units):
        t = units.spike_times[units.bounds[u] : units.bounds[u + 1]]
        isi = np.diff(t)
        stats["rate_hz"].append(len(t) / end)
        stats["refractory_violations"].append(float(np.sum(isi < 1.5e-3)))
        stats["isi_cv"].append(float(isi.std() / isi.mean()) if len(isi) > 2 else np.nan)
        pair = isi[:-1] + isi[1:]
        stats["isi_lv"].append(float(np.mean(3 * ((isi[:-1] - isi[1:]) / np.where(pair > 0, pair, 1)) ** 2))
                               if len(isi) > 2 else np.nan)
        b = (t * 1000 // bin_ms).astype(np.int64)
        np.add.at(counts[:, u], b[b < n_bins], 1.0)
    total = counts.sum(1, keepdims=True)
    others = total - counts
    zc = (counts - counts.mean(0)) / counts.std(0).clip(1e-12)
    zo = (others - others.mean(0)) / others.std(0).clip(1e-12)
    out = {k: np.asarray(v) for k, v in stats.items()}
    out["population_corr"] = (zc * zo).mean(0)
    # trial-aligned population PSTH: across-bin variance relative to its sampling variance
    width = int(np.min(stop - start) * 1000 // bin_ms)
    first = (start * 1000 // bin_ms).astype(np.int64)
    rows = np.stack([total[f : f + width, 0] for f in first if f + width <= n_bins])
    psth = rows.mean(0)
    sampling = rows.var(0, ddof=1).mean() / len(rows)
    out["psth_ratio"] = np.asarray([psth.var(ddof=1) / max(sampling, 1e-12)])
    return out


def summary(stats: dict[str, np.ndarray]) -> str:
    """One line: the statistics a reader checks against the generator's assumptions."""
    q = lambda a: f"{np.nanmedian(a):.2f} [{np.nanpercentile(a, 10):.2f}, {np.nanpercentile(a, 90):.2f}]"
    return (f"rate Hz {q(stats['rate_hz'])}; refractory violations {int(stats['refractory_violations'].sum())}; "
            f"ISI CV {q(stats['isi_cv'])}; ISI LV {q(stats['isi_lv'])}; "
            f"corr with population (50 ms) {q(stats['population_corr'])}; PSTH/sampling variance "
            f"{float(stats['psth_ratio'][0]):.2f}   (median [10th, 90th percentile] over units)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m blend_nwb.robustness",
                                description="write the robustness suite's NLB-layout files (one per setting and seed)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--settings", nargs="*", default=list(SETTINGS), help="names (default: all)")
    p.add_argument("--seeds", nargs="*", type=int, default=[0], help="generator seeds (default: 0)")
    p.add_argument("--stats", action="store_true", help="print each file's spike statistics")
    args = p.parse_args(argv)
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown:
        print(f"error: --settings: unknown setting(s) {', '.join(unknown)}; expected {', '.join(SETTINGS)}",
              file=sys.stderr)
        return 2
    for name in args.settings:
        for seed in args.seeds:
            path = write_setting(name, args.out_dir / f"{name}-s{seed}.nwb", seed)
            print(path)
            if args.stats:
                print("  " + summary(file_statistics(path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
