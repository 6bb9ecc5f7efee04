"""A synthetic population with privileged behavior, for demos and tests. No torch here.

Generative assumptions (stated plainly, because an effect on data built for it
says nothing about real recordings):

- Each trial has a 2-d latent state that rotates with a condition-specific
  start angle and speed; a per-trial *speed factor* (not determined by the
  condition) makes trials of one condition drift apart in phase.
- Spikes are Poisson with log-rate = baseline + loading · latent; every neuron is
  tuned (a random preferred direction, gain 0.7–1.3). Baselines are
  low, so one trial's spikes constrain its phase only loosely.
- PSTH targets are condition means of the true rates over the test trials.
- Behavior (e.g. hand velocity) is a nonlinear readout ``tanh`` of the latent
  plus small noise: it pins down each trial's phase, which the spikes leave
  ambiguous. A teacher that sees behavior can therefore infer trial-specific
  rates the spikes alone identify poorly; the question BLEND asks is whether a
  student can inherit part of that.
"""

from __future__ import annotations

import attrs
import numpy as np

from blend_core.data import NeuralData


@attrs.frozen(kw_only=True)
class SyntheticConfig:
    """Sizes default to a CPU-demo scale; MC_Maze scale is 137+45 neurons, 2295 trials, 140+40 bins."""

    n_trials: int = 300
    n_heldin: int = 40
    n_heldout: int = 12
    window_bins: int = 40
    fp_bins: int = 10
    n_conditions: int = 8
    bin_ms: float = 5.0
    baseline_rate: float = 0.08  #: spikes per bin at zero latent
    loading_scale: float = 1.0
    speed_jitter: float = 0.8  #: spread of the per-trial speed factor
    behavior_noise: float = 0.05
    split_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25)  #: train, val, test
    seed: int = 0


def generate(config: SyntheticConfig) -> NeuralData:
    """Draw a dataset; ``true_rates`` keeps the ground truth."""
    rng = np.random.default_rng(config.seed)
    n, T, fp = config.n_trials, config.window_bins, config.fp_bins
    bins = T + fp
    n_all = config.n_heldin + config.n_heldout
    cond = rng.permutation(np.arange(n) % config.n_conditions)
    start = 2 * np.pi * np.arange(config.n_conditions) / config.n_conditions
    speed = rng.uniform(0.6, 1.4, config.n_conditions) * 2 * np.pi / bins
    factor = 1.0 + config.speed_jitter * rng.uniform(-1, 1, n)
    phase = start[cond, None] + speed[cond, None] * factor[:, None] * np.arange(bins)[None, :]
    radius = np.linspace(0.4, 1.0, bins)[None, :]
    latent = np.stack([radius * np.cos(phase), radius * np.sin(phase)], axis=-1)  # (n, bins, 2)

    # every neuron is tuned: a preferred direction and a gain in [0.7, 1.3] x loading_scale
    angle = rng.uniform(0, 2 * np.pi, n_all)
    gain = config.loading_scale * rng.uniform(0.7, 1.3, n_all)
    loading = gain * np.stack([np.cos(angle), np.sin(angle)])
    log_base = np.log(config.baseline_rate) + rng.normal(0, 0.3, n_all)
    rates = np.exp(log_base + latent @ loading)
    spikes = rng.poisson(rates).astype(np.float32)

    readout = rng.normal(0, 1.5, (2, 2))
    behavior = np.tanh(latent @ readout) + config.behavior_noise * rng.normal(size=(n, bins, 2))

    f_train, f_val, _ = config.split_fractions
    order = rng.permutation(n)
    n_train, n_val = int(f_train * n), int(f_val * n)
    split = np.full(n, "test", dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train : n_train + n_val]] = "val"
    split = split.astype(str)

    # PSTH targets: the condition means of the *true* rates over the scored trials.
    # (NLB smooths spikes because it has no ground truth; here we have it.)
    test = split == "test"
    psth = np.stack(
        [rates[test & (cond == c), :T].mean(axis=0) for c in range(config.n_conditions)]
    ).astype(np.float32)

    return NeuralData(
        heldin=spikes[:, :, : config.n_heldin],
        heldout=spikes[:, :, config.n_heldin :],
        fp_bins=fp,
        split=split,
        bin_ms=config.bin_ms,
        behavior=behavior.astype(np.float32),
        behavior_names=("vel_x", "vel_y"),
        decode_behavior=behavior[:, :T].astype(np.float32),
        conditions=cond.astype(np.int64),
        psth=psth,
        true_rates=rates.astype(np.float32),
        name="synthetic",
    ).validate()


@attrs.define
class SyntheticSource:
    """The built-in ``synthetic`` data source."""

    config: SyntheticConfig

    def load(self) -> NeuralData:
        return generate(self.config)
