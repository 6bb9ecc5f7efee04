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

import blend_core.validators as v
from blend_core.data import NeuralData
from blend_core.errors import DataError


@attrs.frozen(kw_only=True)
class SyntheticConfig:
    """Sizes default to a CPU-demo scale; MC_Maze scale is 137+45 neurons, 2295 trials, 140+40 bins."""

    n_trials: int = attrs.field(default=300, validator=v.POSITIVE_INT)
    n_heldin: int = attrs.field(default=40, validator=v.POSITIVE_INT)
    n_heldout: int = attrs.field(default=12, validator=v.POSITIVE_INT)  #: co-bps needs held-out neurons
    window_bins: int = attrs.field(default=40, validator=v.POSITIVE_INT)
    fp_bins: int = attrs.field(default=10, validator=v.NON_NEGATIVE)
    n_conditions: int = attrs.field(default=8, validator=v.POSITIVE_INT)
    bin_ms: float = attrs.field(default=5.0, validator=v.positive_finite())
    baseline_rate: float = attrs.field(default=0.08, validator=v.positive_finite())  #: spikes per bin at zero latent
    loading_scale: float = attrs.field(default=1.0, validator=v.non_negative_finite())
    #: spread of the per-trial speed factor
    speed_jitter: float = attrs.field(default=0.8, validator=v.non_negative_finite())
    behavior_noise: float = attrs.field(default=0.05, validator=v.non_negative_finite())
    #: train, val, test
    split_fractions: tuple[float, float, float] = attrs.field(
        default=(0.6, 0.15, 0.25), validator=v.each(v.in_range(0.0, 1.0)))
    seed: int = attrs.field(default=0, validator=v.NON_NEGATIVE)

    def __attrs_post_init__(self) -> None:
        """Every split must hold trials: no val trials would make the validation loss 0 and early stopping blind."""
        values = self.n_trials * (self.window_bins + self.fp_bins) * (self.n_heldin + self.n_heldout)
        if values > MAX_VALUES:  # refused now, not after minutes of drawing and a MemoryError
            raise v.FieldError(
                "n_trials", f"{self.n_trials} trials x {self.window_bins + self.fp_bins} bins x "
                f"{self.n_heldin + self.n_heldout} neurons is {values:.3g} values per array, more than the "
                f"synthetic generator's {MAX_VALUES:.0e} (use fewer trials, bins or neurons)")
        if sum(self.split_fractions) > 1 + 1e-9:
            raise v.FieldError("split_fractions", f"must sum to <= 1, got {sum(self.split_fractions):g}")
        n_train, n_val = _split_sizes(self.n_trials, self.split_fractions)
        counts = {"train": n_train, "val": n_val, "test": self.n_trials - n_train - n_val}
        empty = [name for name, count in counts.items() if count < 1]
        if empty:
            raise v.FieldError(
                "n_trials", f"too few trials for split_fractions {list(self.split_fractions)}: "
                f"no {'/'.join(empty)} trials (got {self.n_trials} trials)")
        if counts["test"] < self.n_conditions:
            raise v.FieldError(
                "n_trials", f"{counts['test']} test trials cannot cover n_conditions ({self.n_conditions}); "
                f"got {self.n_trials} trials")


#: the most values (trials x bins x neurons) one generated array may hold: 2e8 is 1.6 GB as float64
#: (the true rates while they are drawn), ten times MC_Maze's size (2295 x 180 x 182)
MAX_VALUES = 200_000_000


def _split_sizes(n: int, fractions: tuple[float, ...]) -> tuple[int, int]:
    """Train and val trial counts (the rest are test), as ``generate`` draws them."""
    return int(fractions[0] * n), int(fractions[1] * n)


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

    order = rng.permutation(n)
    n_train, n_val = _split_sizes(n, config.split_fractions)
    split = np.full(n, "test", dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train : n_train + n_val]] = "val"
    split = split.astype(str)

    # PSTH targets: the condition means of the *true* rates over the scored trials.
    # (NLB smooths spikes because it has no ground truth; here we have it.)
    test = split == "test"
    uncovered = [c for c in range(config.n_conditions) if not np.any(test & (cond == c))]
    if uncovered:
        raise DataError(f"synthetic: data.n_trials: no test trials of condition(s) {uncovered[:5]} "
                        f"for the PSTH; use more trials or fewer n_conditions")
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
