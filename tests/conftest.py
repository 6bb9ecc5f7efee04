"""Shared fixtures: tiny synthetic configs that train in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY = {
    "data": {"type": "synthetic", "n_trials": 48, "n_heldin": 12, "n_heldout": 4,
             "window_bins": 12, "fp_bins": 4, "n_conditions": 4},
    "backbone": {"type": "ndt", "num_layers": 2, "d_model": 16, "ffn_dim": 32, "num_heads": 2},
    "privileged": {"type": "mlp", "fusion": "concat", "hidden_dim": 8, "out_dim": 4},
    "distillation": {"alpha": 0.5, "type": "correlation"},
    "train": {"max_epochs": 2, "batch_size": 16, "warmup_steps": 2, "progress": False, "device": "cpu"},
}


@pytest.fixture
def tiny_raw() -> dict:
    import copy

    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_config_file(tmp_path: Path, tiny_raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    return path


@pytest.fixture
def builtin_plugins():
    from blend_core.plugins import load_plugins

    return load_plugins(autoload=False)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models on a 2-core machine run fastest, and steadiest, on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """``slow`` and ``gpu`` tests run only when asked for with ``-m``."""
    asked = config.getoption("markexpr") or ""
    for item in items:
        for marker in ("slow", "gpu"):
            if marker in item.keywords and marker not in asked:
                item.add_marker(pytest.mark.skip(reason=f"{marker}: opt in with -m {marker}"))
