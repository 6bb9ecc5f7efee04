"""The ``nwb`` data source: its configuration, loading, and writing predictions back into NWB."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from blend_core.api import ConfigError, DataError, NeuralData
from blend_nwb.cache import cached_nlb, sha256_file
from blend_nwb.nlb import PHASES, SPECS, NLBResult, load_nlb

log = logging.getLogger("blend.nwb")

#: Keys that only mean something with ``dataset`` (NLB mode), refused without it, and what takes their place.
NLB_KEYS = {"val_fraction": "the validation trials come from data.split_column or data.split_fractions",
            "behavior_lag_ms": "the teacher sees the behavior series unshifted"}
#: NLB mode: share of NLB-train trials held out for early stopping when ``val_fraction`` is not given
NLB_VAL_FRACTION = 0.1
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
    val_fraction: float | None = None  #: NLB mode: share of NLB-train trials held out for early stopping (0.1)
    seed: int = 0  #: val carve-out (NLB) / random splits and held-out units (generic)
    behavior_lag_ms: int | None = None  #: NLB mode: lag of the teacher's behavior; default the dataset's
    standardize_behavior: bool = True  #: z-score the teacher's behavior with train statistics
    phase: str = "val"  #: NLB mode: ``val`` scores NLB val locally; ``test`` predicts the desc-test file
    test_path: str | None = None  #: NLB test phase: the desc-test file (default: next to ``path``)
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
        if cfg.phase not in PHASES:
            problems.append(f"data.phase: expected one of {', '.join(PHASES)}, got {cfg.phase!r}")
    else:
        if cfg.bin_ms < 1:
            problems.append(f"data.bin_ms: expected a positive number of ms, got {cfg.bin_ms}")
        if cfg.phase != "val" or cfg.test_path is not None:
            problems.append("data.phase / data.test_path: only with data.dataset (the NLB test phase)")
        for key, instead in NLB_KEYS.items():
            if getattr(cfg, key) is not None:
                problems.append(f"data.{key}: only with data.dataset (NLB mode); without it {instead}")
    if problems:
        raise ConfigError(problems)


def test_file_for(cfg: NWBConfig) -> Path:
    """The desc-test file: ``test_path``, or the DANDI sibling of the desc-train ``path``."""
    if cfg.test_path:
        return Path(cfg.test_path)
    path = Path(cfg.path)
    if "desc-train_behavior+ecephys" not in path.name:
        raise DataError(f"data.test_path: required with data.phase: test (cannot derive the desc-test file "
                        f"from {path.name})")
    return path.with_name(path.name.replace("desc-train_behavior+ecephys", "desc-test_ecephys"))


@attrs.define
class NWBSource:
    """Loads the session(s); keeps what it loaded for the run-finished hook and ``blend predict``."""

    config: NWBConfig
    result: Any = None  #: NLBResult (NLB mode) or GenericResult
    files: dict[str, dict[str, Any]] = attrs.Factory(dict)  #: role -> {path, sha256, bytes}

    def __attrs_post_init__(self) -> None:
        check_config(self.config)  # once per source, however it is built: before any file is read

    @property
    def data(self) -> NeuralData | None:
        return None if self.result is None else self.result.data

    @property
    def nlb(self) -> NLBResult | None:
        return self.result if isinstance(self.result, NLBResult) else None

    def _record(self, role: str, path: Path) -> str:
        if not path.is_file():  # the first thing a newcomer meets: say which key and how to get the file
            key = "test_path" if role == "test" else "path"
            fetch = (f"; download it with: blend fetch {self.config.dataset} (prints the path for data.path)"
                     if self.config.dataset else "")
            raise DataError(f"{path}: file not found (data.{key}, relative to the current directory){fetch}")
        digest = sha256_file(path)
        self.files[role] = {"path": str(path.resolve()), "sha256": digest, "bytes": path.stat().st_size}
        return digest

    def load(self) -> NeuralData:
        cfg = self.config
        path = Path(cfg.path)
        hashes = {"train": self._record("train" if cfg.dataset else "session", path)}
        if cfg.dataset is not None:
            test_path = None
            if cfg.phase == "test":
                test_path = test_file_for(cfg)
                hashes["test"] = self._record("test", test_path)
            cfg = attrs.evolve(cfg, val_fraction=NLB_VAL_FRACTION if cfg.val_fraction is None else cfg.val_fraction)
            settings = {k: getattr(cfg, k) for k in ("dataset", "bin_ms", "val_fraction", "seed", "behavior_lag_ms",
                                                     "standardize_behavior", "phase")}
            key = cfg.dataset + ("" if cfg.bin_ms == 5 else f"_{cfg.bin_ms}")
            self.result = cached_nlb(hashes, settings, f"{key} ({path.name})", lambda: load_nlb(
                path, cfg.dataset, bin_ms=cfg.bin_ms, val_fraction=cfg.val_fraction, seed=cfg.seed,
                behavior_lag_ms=cfg.behavior_lag_ms, standardize_behavior=cfg.standardize_behavior,
                phase=cfg.phase, test_path=test_path))
            return self.result.data
        from blend_nwb.generic import load_generic

        self.result = load_generic(path, cfg)
        return self.result.data

    def input_files(self) -> list[Path]:
        """The NWB files ``load`` read: their digests go into the run's provenance (``--resume`` checks them)."""
        return [Path(f["path"]) for f in self.files.values()]

    def write_predictions(self, predictions: dict[str, Any], out_dir: Path, run_dir: Path | None = None) -> list[Path]:
        """A small derived NWB file of the predicted trials (see ``blend_nwb.predictions``) and predictions.npz;
        ``run_dir`` (the trained run) puts its config and checkpoint checksum in the file's provenance."""
        from blend_nwb.predictions import write_predictions_nwb

        if self.result is None:
            self.load()
        return write_predictions_nwb(self, predictions, Path(out_dir), run_dir=None if run_dir is None else Path(run_dir))


def build_source(config: NWBConfig) -> NWBSource:
    return NWBSource(config)  # checks the config
