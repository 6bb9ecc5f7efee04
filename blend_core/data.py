"""The data contract every neural-population data source returns. No torch here.

Arrays are trial-aligned and binned. Time runs over the observed window of ``T``
bins followed by ``fp_bins`` forward-prediction bins (method.md §1). Entries
that are not observed (e.g. forward bins of test trials) are NaN.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from blend_core.errors import DataError

SPLITS = ("train", "val", "test")


@attrs.frozen(kw_only=True, eq=False)
class NeuralData:
    """Binned spiking trials with optional privileged behavior.

    Split roles: ``train`` fits models and decoders, ``val`` drives early stopping,
    ``test`` is scored. ``behavior`` is the privileged input (aligned to bins,
    forward bins included); ``decode_behavior`` is the target of vel R2 (the
    dataset's lag already applied) over the ``T`` window bins.
    """

    task: ClassVar[str] = "neural"

    heldin: np.ndarray  #: (trials, T + fp_bins, N_in) spike counts
    heldout: np.ndarray  #: (trials, T + fp_bins, N_out) spike counts
    fp_bins: int
    split: np.ndarray  #: (trials,) values in SPLITS
    bin_ms: float
    behavior: np.ndarray | None = None  #: (trials, T + fp_bins, K)
    behavior_names: tuple[str, ...] = ()
    decode_behavior: np.ndarray | None = None  #: (trials, T, K_dec)
    decode_groups: np.ndarray | None = None  #: (trials,) int; one decoder per group, -1 = not decoded
    conditions: np.ndarray | None = None  #: (trials,) int condition id, -1 = none
    psth: np.ndarray | None = None  #: (n_conditions, T, N_in + N_out) condition-mean targets; the source picks the trials (NLB: train + val)
    true_rates: np.ndarray | None = None  #: (trials, T + fp_bins, N_in + N_out), synthetic only
    name: str = "data"

    @property
    def n_trials(self) -> int:
        return self.heldin.shape[0]

    @property
    def n_bins(self) -> int:
        """Window plus forward bins."""
        return self.heldin.shape[1]

    @property
    def window_bins(self) -> int:
        return self.n_bins - self.fp_bins

    @property
    def n_heldin(self) -> int:
        return self.heldin.shape[2]

    @property
    def n_heldout(self) -> int:
        return self.heldout.shape[2]

    @property
    def behavior_dim(self) -> int:
        return 0 if self.behavior is None else self.behavior.shape[2]

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def validate(self) -> NeuralData:
        """Check shapes and values; raise DataError naming the field."""
        n = self.name

        def fail(field: str, msg: str) -> None:
            raise DataError(f"{n}: {field}: {msg}")

        for field in ("heldin", "heldout"):
            arr = getattr(self, field)
            if not isinstance(arr, np.ndarray) or arr.ndim != 3:
                fail(field, f"expected a 3-d array (trials, bins, neurons), got {getattr(arr, 'shape', arr)}")
            if arr.shape[2] == 0:
                fail(field, "no neurons" + (" (co-bps needs held-out neurons)" if field == "heldout" else ""))
            if np.isinf(arr).any():
                fail(field, "infinite spike counts")
            if np.nanmin(arr, initial=0) < 0:
                fail(field, "spike counts must be non-negative")
        trials, bins = self.heldin.shape[:2]
        if self.heldout.shape[:2] != (trials, bins):
            fail("heldout", f"expected {(trials, bins)} trials x bins like heldin, got {self.heldout.shape[:2]}")
        if not 0 <= self.fp_bins < bins:
            fail("fp_bins", f"expected 0 <= fp_bins < {bins}, got {self.fp_bins}")
        split = np.asarray(self.split)
        if split.shape != (trials,):
            fail("split", f"expected {trials} labels, got shape {split.shape}")
        bad = sorted(set(split.tolist()) - set(SPLITS))
        if bad:
            fail("split", f"unknown split labels {bad}; expected {', '.join(SPLITS)}")
        for s in SPLITS:  # no 'val' trials would make the validation loss 0 and early stopping blind
            if not np.any(split == s):
                fail("split", f"no '{s}' trials")
        scored = self.heldout[split == "test"]
        seen = scored[~np.isnan(scored)]
        if seen.size and not seen.any():  # (test trials without any observed held-out bin are not scored here)
            fail("heldout", "no spikes in the test trials; bits per spike (co-bps) is undefined")
        if not (isinstance(self.bin_ms, (int, float)) and np.isfinite(self.bin_ms) and self.bin_ms > 0):
            fail("bin_ms", f"expected a finite number > 0, got {self.bin_ms!r}")
        if self.behavior is not None:
            if self.behavior.ndim != 3 or self.behavior.shape[:2] != (trials, bins):
                fail("behavior", f"expected ({trials}, {bins}, K), got {self.behavior.shape}")
            if not np.isfinite(self.behavior[split != "test"]).all():
                fail("behavior", "NaN or infinite values in train/val trials")
            if np.isinf(self.behavior).any():
                fail("behavior", "infinite values in test trials")
            if self.behavior_names and len(self.behavior_names) != self.behavior.shape[2]:
                fail("behavior_names", f"expected {self.behavior.shape[2]} names, got {len(self.behavior_names)}")
        if self.decode_behavior is not None:
            if self.decode_behavior.ndim != 3 or self.decode_behavior.shape[:2] != (trials, self.window_bins):
                fail("decode_behavior", f"expected ({trials}, {self.window_bins}, K), got {self.decode_behavior.shape}")
            if np.isinf(self.decode_behavior).any():
                fail("decode_behavior", "infinite values")
            for part in ("train", "test"):  # a constant target makes every decoder's R2 1 (or 0): meaningless
                rows = self.decode_behavior[split == part].reshape(-1, self.decode_behavior.shape[2])
                for c in range(rows.shape[1]):
                    col = rows[~np.isnan(rows[:, c]), c]
                    if col.size and col.min() == col.max():
                        fail("decode_behavior", f"channel {c} is constant ({col[0]:g}) in the {part} trials; "
                             "vel R2 would be meaningless")
        for field in ("conditions", "decode_groups"):
            arr = getattr(self, field)
            if arr is not None and np.asarray(arr).shape != (trials,):
                fail(field, f"expected shape ({trials},), got {np.asarray(arr).shape}")
        if self.psth is not None:
            if self.conditions is None:
                fail("psth", "needs 'conditions'")
            n_all = self.n_heldin + self.n_heldout
            if self.psth.ndim != 3 or self.psth.shape[1:] != (self.window_bins, n_all):
                fail("psth", f"expected (conditions, {self.window_bins}, {n_all}), got {self.psth.shape}")
            if np.isinf(self.psth).any():
                fail("psth", "infinite values")
        return self


def gaussian_smooth(x: np.ndarray, sd_bins: float, axis: int = 1) -> np.ndarray:
    """Gaussian-kernel smoothing along time, for PSTH targets."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x.astype(np.float64), sd_bins, axis=axis, mode="constant")
