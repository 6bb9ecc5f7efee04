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
def tiny_identity_raw() -> dict:
    """A one-epoch neuron-identity run on blend-spatial's synthetic sessions (skips without the plugin)."""
    pytest.importorskip("blend_spatial")
    return {
        "data": {"type": "spatial_synthetic", "n_subjects": 2, "sessions_per_subject": 1, "neurons_per_session": 30,
                 "n_frames": 200, "inhibitory_fraction": 0.5},
        "task": {"type": "neuron_identity", "window": 8, "windows_per_neuron": 2},
        "backbone": {"type": "neuprint", "embedding_dim": 4, "hidden_dim": 8},
        "privileged": {"type": "identity", "fusion": "concat"},
        "distillation": {"type": "hard"},
        "train": {"max_epochs": 1, "batch_size": 64, "progress": False, "device": "cpu"},
        "plugins": ["spatial"],
    }


@pytest.fixture
def tiny_config_file(tmp_path: Path, tiny_raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    return path


SHUFFLE_PLUGIN = '''
"""A test data source: the built-in synthetic data, optionally with the test trials' held-out spikes shuffled."""
import attrs
import numpy as np
from blend_core.hookspecs import hookimpl
from blend_core.synthetic import SyntheticConfig, generate


@attrs.frozen(kw_only=True)
class ShuffledConfig(SyntheticConfig):
    shuffle: bool = False


@attrs.define
class ShuffledSource:
    config: ShuffledConfig

    def load(self):
        base = SyntheticConfig(**{f.name: getattr(self.config, f.name) for f in attrs.fields(SyntheticConfig)})
        data = generate(base)
        if not self.config.shuffle:
            return data
        test = np.flatnonzero(data.split == "test")
        heldout = data.heldout.copy()
        heldout[test] = heldout[np.random.default_rng(123).permutation(test)]
        return attrs.evolve(data, heldout=heldout)


@hookimpl
def blend_add_data_sources(register):
    register("shuffled_synthetic", ShuffledConfig, ShuffledSource, "synthetic, test trials' held-out spikes shuffled")
'''


@pytest.fixture
def shuffle_plugin(tmp_path_factory, monkeypatch) -> str:
    """Install plugin ``shuffled`` (data source ``shuffled_synthetic``: the synthetic data, and with
    ``shuffle: true`` the test trials' held-out spikes permuted across trials) as a real entry point
    in a temporary site directory, on ``PYTHONPATH`` too, so that Ray's worker processes find it."""
    import importlib
    import os

    root = tmp_path_factory.mktemp("site")
    (root / "blend_shuffled_test.py").write_text(SHUFFLE_PLUGIN)
    info = root / "blend_shuffled_test-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: blend-shuffled-test\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[blend]\nshuffled = blend_shuffled_test\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("BLEND_DISABLE_PLUGIN_AUTOLOAD", "1")
    importlib.invalidate_caches()
    return "shuffled_synthetic"


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
