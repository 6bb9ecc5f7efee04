"""Tiny synthetic sessions (3 animals x 2 sessions) shared by the tests; they train in seconds on a CPU."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from blend_spatial.synthetic import SyntheticSpatialConfig, write_dataset

TINY_DATA = dict(n_subjects=3, sessions_per_subject=2, neurons_per_session=40, n_frames=800,
                 inhibitory_fraction=0.5, n_genes=12, seed=1)

TINY_RUN = {
    "data": {"type": "anndata", "path": "", "split": "subject", "test": ["SB028"]},
    "task": {"type": "neuron_identity", "window": 16, "windows_per_neuron": 8, "val_windows_per_neuron": 2},
    "backbone": {"type": "neuprint", "embedding_dim": 8, "hidden_dim": 16},
    "privileged": {"type": "linear", "out_dim": 4, "fusion": "add"},
    "distillation": {"alpha": 0.5, "losses": [{"type": "hard"}, {"type": "feature", "layers": [0]}]},
    "train": {"max_epochs": 15, "batch_size": 64, "lr": 0.005, "warmup_steps": 5, "patience": 100,
              "progress": False, "device": "cpu"},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """``slow`` tests run only when asked for (``-m slow``)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """Six .h5ad sessions in the method.md §6 layout (read-only: copy before changing)."""
    out = tmp_path_factory.mktemp("sessions")
    write_dataset(SyntheticSpatialConfig(**TINY_DATA), out)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_dir):
    """A fresh copy of the tiny run config reading the tiny sessions, per call."""

    def make() -> dict:
        raw = copy.deepcopy(TINY_RUN)
        raw["data"]["path"] = str(tiny_dir)
        return raw

    return make
