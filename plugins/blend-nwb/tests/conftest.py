"""Tiny synthetic NLB-layout files, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from blend_nwb.synthetic import write_nlb_file

from blend_nwb.nlb import SPECS

DATASETS = tuple(SPECS)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never read or fill the user's cache (``~/.cache/blend``)."""
    import os

    old = os.environ.get("BLEND_CACHE_DIR")
    os.environ["BLEND_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("BLEND_CACHE_DIR", None)
    else:
        os.environ["BLEND_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def nlb_files(tmp_path_factory) -> dict[str, Path]:
    """One small train file per NLB dataset (60 trials; 150 for DMFC's per-condition tp correlation)."""
    root = tmp_path_factory.mktemp("nlb")
    return {
        ds: write_nlb_file(root / f"{ds}.nwb", dataset=ds, n_trials=150 if ds == "dmfc_rsg" else 60, n_heldin=10, n_heldout=4, seed=1)
        for ds in DATASETS
    }


@pytest.fixture(scope="session")
def tiny_test_phase_config():
    """A test-phase config for a desc-train file: the smallest models, one epoch on the CPU."""

    def make(train: Path) -> dict:
        return {
            "plugins": ["nwb"],
            "data": {"type": "nwb", "path": str(train), "dataset": "mc_maze", "phase": "test"},
            "backbone": {"type": "ndt", "num_layers": 1, "d_model": 8, "ffn_dim": 16, "num_heads": 2},
            "privileged": {"type": "mlp", "hidden_dim": 4, "out_dim": 4},
            "train": {"max_epochs": 1, "batch_size": 16, "warmup_steps": 1, "progress": False, "device": "cpu"},
        }

    return make
