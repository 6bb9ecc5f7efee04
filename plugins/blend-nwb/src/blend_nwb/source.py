"""The ``nwb`` data source: its configuration, loading, and writing predictions back into NWB."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from blend_core.data import NeuralData
from blend_core.errors import ConfigError, DataError
from blend_nwb.nlb import SPECS, NLBResult, load_nlb

log = logging.getLogger("blend.nwb")

#: Keys that only mean something without ``dataset`` (generic mode).
GENERIC_KEYS = ("heldout_column", "heldout_fraction", "align_field", "window_ms", "fp_ms", "behavior",
                "decode", "decode_lag_ms", "split_column", "split_fractions", "condition_columns", "psth_sd_ms")


@attrs.frozen(kw_only=True)
class NWBConfig:
    """``data: {type: nwb, ...}``. With ``dataset`` (an NLB'21 name) every layout key is fixed
    by the benchmark; without it the generic keys describe the user's session."""

    path: str = ""  #: the NWB file (NLB: the ``..._desc-train_behavior+ecephys.nwb``)
    dataset: str | None = None  #: mc_maze, mc_rtt, area2_bump, dmfc_rsg, mc_maze_large/medium/small
    bin_ms: int = 5
    val_fraction: float = 0.1  #: NLB mode: share of NLB-train trials held out for early stopping
    seed: int = 0  #: val carve-out (NLB) / random splits and held-out units (generic)
    behavior_lag_ms: int | None = None  #: NLB mode: lag of the teacher's behavior; default the dataset's
    standardize_behavior: bool = True  #: z-score the teacher's behavior with train statistics
    # ---- generic mode only
    heldout_column: str | None = None  #: boolean units column marking held-out neurons
    heldout_fraction: float | None = None  #: else this share of units, chosen with ``seed`` (default 0.25)
    align_field: str | None = None  #: trials column to align to (default start_time)
    window_ms: tuple[int, int] | None = None  #: [start, end] around the alignment
    fp_ms: int | None = None  #: forward-prediction span after the window (default 0)
    behavior: tuple[str, ...] | None = None  #: TimeSeries names (processing/behavior, acquisition, or paths)
    decode: tuple[str, ...] | None = None  #: series decoded for vel R2 (default: ``behavior``)
    decode_lag_ms: int | None = None
    split_column: str | None = None  #: trials column with train/val/test/none
    split_fractions: tuple[float, float, float] | None = None  #: else random (train, val, test)
    condition_columns: tuple[str, ...] | None = None  #: trials columns defining PSTH conditions
    psth_sd_ms: float | None = None


def check_config(cfg: NWBConfig) -> None:
    problems = []
    if not cfg.path:
        problems.append("data.path: required key missing (the .nwb file)")
    if cfg.dataset is not None:
        if cfg.dataset not in SPECS:
            problems.append(f"data.dataset: unknown NLB dataset {cfg.dataset!r}; expected one of {', '.join(SPECS)}")
        for key in GENERIC_KEYS:
            if getattr(cfg, key) is not None:
                problems.append(f"data.{key}: only without data.dataset; NLB datasets fix it")
        if cfg.bin_ms not in (5, 20):
            problems.append(f"data.bin_ms: NLB datasets use 5 or 20, got {cfg.bin_ms}")
    elif cfg.bin_ms < 1:
        problems.append(f"data.bin_ms: expected a positive number of ms, got {cfg.bin_ms}")
    if problems:
        raise ConfigError(problems)


# NeuralData -> the NLB result it came from, for the run-finished hook (same process).
_NLB_RESULTS: dict[int, tuple[weakref.ref, NLBResult, NWBConfig]] = {}


def nlb_result_for(data: Any) -> tuple[NLBResult, NWBConfig] | None:
    entry = _NLB_RESULTS.get(id(data))
    if entry is None or entry[0]() is not data:
        return None
    return entry[1], entry[2]


@attrs.define
class NWBSource:
    config: NWBConfig
    trial_ids: np.ndarray | None = None
    first_bins: np.ndarray | None = None
    data: NeuralData | None = None

    def load(self) -> NeuralData:
        cfg = self.config
        check_config(cfg)
        if cfg.dataset is not None:
            res = load_nlb(cfg.path, cfg.dataset, bin_ms=cfg.bin_ms, val_fraction=cfg.val_fraction,
                           seed=cfg.seed, behavior_lag_ms=cfg.behavior_lag_ms,
                           standardize_behavior=cfg.standardize_behavior)
            _NLB_RESULTS[id(res.data)] = (weakref.ref(res.data), res, cfg)
            self.trial_ids = res.trial_ids
            self.first_bins = res.first_bins
            self.data = res.data
            return res.data
        from blend_nwb.generic import load_generic

        res = load_generic(cfg.path, cfg)
        self.trial_ids, self.first_bins, self.data = res.trial_ids, res.first_bins, res.data
        return res.data

    def write_predictions(self, predictions: dict[str, Any], out_dir: Path) -> list[Path]:
        """A copy of the input session with the predictions in ``processing/blend`` (never the input)."""
        from blend_nwb.predictions import write_predictions_nwb

        if self.data is None:
            self.load()
        src = Path(self.config.path)
        out = Path(out_dir) / f"{src.stem}_blend-predictions.nwb"
        if out.resolve() == src.resolve():
            raise DataError(f"{out}: refusing to overwrite the input file")
        return [write_predictions_nwb(src, out, predictions, self.trial_ids, self.first_bins, self.data)]


def build_source(config: NWBConfig) -> NWBSource:
    check_config(config)
    return NWBSource(config)
