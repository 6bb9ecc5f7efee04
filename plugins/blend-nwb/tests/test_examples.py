"""Every examples/nlb/<dataset>.yaml is a valid config whose data loads from a file of that layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from blend_nwb.nlb import SPECS

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "nlb"


@pytest.mark.parametrize("dataset", list(SPECS))
def test_example_config(nlb_files, dataset):
    from blend_core.config import apply_overrides, build_config, read_yaml
    from blend_core.plugins import load_plugins

    path = EXAMPLES / f"{dataset}.yaml"
    if not path.exists():
        pytest.skip("examples/ not in this checkout")
    plugins = load_plugins(["nwb"])
    raw = apply_overrides(read_yaml(path), [f"data.path={nlb_files[dataset]}"])
    config = build_config(raw, plugins.registry, source=str(path))
    assert config.data.type == "nwb" and config.data.options.dataset == dataset
    source = plugins.registry.get("data source", "nwb").build(config.data.options)
    data = source.load()
    assert data.name.startswith(dataset)


def test_generic_keys_from_yaml(nlb_files):
    from blend_core.config import build_config
    from blend_core.plugins import load_plugins

    plugins = load_plugins(["nwb"])
    raw = {"data": {"type": "nwb", "path": str(nlb_files["mc_maze"]), "window_ms": [-250, 450],
                    "align_field": "move_onset_time", "behavior": ["hand_vel"], "fp_ms": 200},
           "backbone": {"type": "ndt"}}
    config = build_config(raw, plugins.registry)
    assert config.data.options.window_ms == (-250, 450)
    data = plugins.registry.get("data source", "nwb").build(config.data.options).load()
    assert (data.window_bins, data.fp_bins) == (140, 40)
