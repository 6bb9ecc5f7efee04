"""Robustness suite, identity part: a Bugeon-like generator whose activity statistics carry identity.

``blend_spatial.synthetic`` (the generator the identity recipe was tuned on) puts a neuron's type
mostly in how it couples to running, pupil and the population: simple statistics of one neuron's
activity say little, and behavior says much. Bugeon et al. (2022) report the opposite emphasis
too: the subclasses differ in firing rate, burstiness and in whom they correlate with. This
generator makes those the main carriers of identity, so that a model is measured against a
strong hand-made reference (``features`` rows):

- **Spiking.** Each type has an event rate (``TYPES[t].rate_hz``; per neuron log-normal around
  it, s.d. ``rate_jitter``), and each event brings on average ``burst`` extra spikes (a compound
  Poisson count: Sst and Vip are bursty, Pvalb fires single spikes at high rates).
- **Modulation.** The event rate is ``exp(c_pop·pop + c_type·f_type + g_run·run + g_pupil·pupil +
  local)``: a session-wide population factor, a factor shared *only by the neurons of one type*
  (within-type correlations, ``c_type``), running and pupil (gains scaled by
  ``behavior_effect``; weaker than in the tuned-on generator) and spatially local factors
  (Gaussian fields ~50 µm wide). Each gain is jittered per neuron by ``jitter``.
- **Calcium.** Spikes are convolved with an exponential kernel (type-specific decay ``tau_s``,
  amplitude ``amplitude`` per spike: indicator load and buffering differ between types) plus
  Gaussian noise (s.d. ``noise`` × 0.15).
- Genes, labels and layout exactly as the tuned-on generator writes them
  (``blend_spatial.synthetic.to_anndata``); the spike counts behind the calcium are kept in
  ``obsm["truth_spikes"]`` (neurons × frames), which no model reads.

``SETTINGS`` names the suite's identity settings; ``write_setting(name, out_dir, seed)`` writes
one as ``.h5ad`` files the ``anndata`` data source reads (``python -m blend_spatial.robustness``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from blend_spatial.anndata_source import SUBCLASSES
from blend_spatial.synthetic import _behavior, _ou, _types, _zscore, to_anndata, write_sessions
from blend_spatial.synthetic import generate as synthetic_generate


@attrs.frozen
class TypeParams:
    rate_hz: float  #: median event rate
    burst: float  #: mean extra spikes per event
    amplitude: float  #: dF/F per spike
    tau_s: float  #: calcium decay time constant
    c_pop: float  #: coupling to the session's population factor
    c_type: float  #: coupling to the factor shared by this type's neurons only
    g_run: float
    g_pupil: float


TYPES: dict[str, TypeParams] = {
    "EC": TypeParams(rate_hz=0.5, burst=0.5, amplitude=1.0, tau_s=0.8, c_pop=0.5, c_type=0.2, g_run=0.2, g_pupil=0.1),
    "Lamp5": TypeParams(rate_hz=0.8, burst=0.3, amplitude=0.6, tau_s=1.4, c_pop=0.2, c_type=0.6, g_run=0.0, g_pupil=0.5),
    "Pvalb": TypeParams(rate_hz=3.0, burst=0.1, amplitude=0.35, tau_s=0.5, c_pop=0.9, c_type=0.3, g_run=0.3, g_pupil=0.0),
    "Sncg": TypeParams(rate_hz=1.2, burst=1.0, amplitude=0.8, tau_s=1.0, c_pop=0.1, c_type=0.5, g_run=0.4, g_pupil=-0.3),
    "Sst": TypeParams(rate_hz=1.6, burst=2.0, amplitude=0.7, tau_s=1.2, c_pop=0.4, c_type=0.7, g_run=-0.3, g_pupil=0.2),
    "Vip": TypeParams(rate_hz=1.0, burst=1.5, amplitude=0.9, tau_s=0.9, c_pop=0.3, c_type=0.6, g_run=0.8, g_pupil=0.3),
}


@attrs.frozen(kw_only=True)
class BugeonLikeConfig:
    n_subjects: int = 4  #: SB026, SB027, ... (the last is held out by the benchmark)
    sessions_per_subject: int = 2
    neurons_per_session: int = 120
    n_frames: int = 1000
    frame_rate: float = 4.0  #: Hz
    inhibitory_fraction: float = 0.4  #: spread evenly over the five subclasses
    n_genes: int = 72
    fov_um: float = 400.0
    rate_jitter: float = 0.4  #: per-neuron log-s.d. of the event rate around its type's
    jitter: float = 0.25  #: per-neuron relative spread of the other type parameters
    behavior_effect: float = 1.0  #: scales every type's running and pupil gains
    noise: float = 1.0  #: scales the observation noise (s.d. 0.15 dF/F at 1)
    seed: int = 0


SETTINGS: dict[str, BugeonLikeConfig] = {
    "bugeon-like": BugeonLikeConfig(),
    "bugeon-like-noisy": BugeonLikeConfig(n_frames=800, jitter=0.4, rate_jitter=0.6, noise=2.0),
    "bugeon-like-no-behavior": BugeonLikeConfig(behavior_effect=0.0),
}


def session(config: BugeonLikeConfig, subject: str, name: str, rng: np.random.Generator) -> Any:
    """One session as an AnnData in the method.md §6 layout."""
    from scipy.signal import lfilter

    n, F, dt = config.neurons_per_session, config.n_frames, 1.0 / config.frame_rate
    types = _types(rng, n, config.inhibitory_fraction)
    speed, pupil = _behavior(rng, F, config.frame_rate)
    run_z, pupil_z = _zscore(speed), _zscore(pupil)
    pop = _ou(rng, F, 2 * config.frame_rate)
    names = list(TYPES)
    type_factor = _ou(rng, F, 3 * config.frame_rate, (len(names),))  # one factor per type
    xy = rng.uniform(0, config.fov_um, (n, 2))
    centers = rng.uniform(0, config.fov_um, (6, 2))
    weights = np.exp(-((xy[:, None] - centers[None]) ** 2).sum(-1) / (2 * 50.0**2))
    local = _ou(rng, F, 3 * config.frame_rate, (6,))

    p = {f.name: np.array([getattr(TYPES[t], f.name) for t in types]) for f in attrs.fields(TypeParams)}
    jit = lambda: 1 + config.jitter * rng.normal(size=n)
    rate = p["rate_hz"] * np.exp(config.rate_jitter * rng.normal(size=n))
    burst = p["burst"] * jit().clip(0.1)
    amplitude = p["amplitude"] * jit().clip(0.2)
    tau = p["tau_s"] * jit().clip(0.3)
    c_pop, c_type = p["c_pop"] * jit(), p["c_type"] * jit()
    g_run = p["g_run"] * config.behavior_effect * jit()
    g_pup = p["g_pupil"] * config.behavior_effect * jit()
    own_factor = type_factor[[names.index(t) for t in types]]
    log_mod = (c_pop[:, None] * pop + c_type[:, None] * own_factor + g_run[:, None] * run_z
               + g_pup[:, None] * pupil_z + 0.4 * weights @ local)
    log_mod -= np.log(np.exp(log_mod).mean(1, keepdims=True))  # the event rate's session mean is ``rate``
    events = rng.poisson(rate[:, None] * np.exp(log_mod) * dt)
    spikes = events + rng.poisson(burst[:, None] * events)
    decay = np.exp(-dt / tau)
    calcium = np.stack([lfilter([a], [1, -d], s) for a, d, s in zip(amplitude, decay, spikes.astype(float))])
    dff = calcium + 0.15 * config.noise * rng.normal(size=(n, F))
    adata = to_anndata(types, dff, xy, speed, pupil, frame_rate=config.frame_rate, n_genes=config.n_genes,
                       subject=subject, name=name, rng=rng)
    adata.obsm["truth_spikes"] = spikes.astype(np.int16)  # ground truth behind the calcium, for checks
    return adata


def generate(config: BugeonLikeConfig) -> list[Any]:
    """All sessions (subjects SB026, SB027, ...; sessions SUBJECT_s0, ...)."""
    return synthetic_generate(config, session)


def write_setting(name: str, out_dir: str | Path, seed: int, **overrides) -> list[Path]:
    """Write setting ``name`` with generator seed ``seed`` as one ``SESSION.h5ad`` per session."""
    if name not in SETTINGS:
        raise KeyError(f"unknown identity setting {name!r}; expected one of {', '.join(SETTINGS)}")
    cfg = attrs.evolve(SETTINGS[name], seed=seed, **overrides)
    return write_sessions(generate(cfg), out_dir, seed=seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m blend_spatial.robustness",
                                 description="write the robustness suite's identity sessions (.h5ad)")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    args = ap.parse_args(argv)
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown:
        print(f"error: --settings: unknown setting(s) {', '.join(unknown)}; expected {', '.join(SETTINGS)}",
              file=sys.stderr)
        return 2
    for name in args.settings:
        for seed in args.seeds:
            for path in write_setting(name, args.out_dir / f"{name}-s{seed}", seed):
                print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
