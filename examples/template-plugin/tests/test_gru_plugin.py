"""A third-party plugin tests itself with blend's public API only: the conformance kit,
the registry its users will get, and an end-to-end ``blend run`` as the student of an
NDT teacher with feature distillation (a mixed pair)."""

import json

import pytest
import yaml
from blend_gru.plugin import GRUBackbone, GRUConfig

from blend_core.api import ConfigError, backbone_cases, build_config, check_backbone, plugin_registry, run_blend

SMALL = {"gru": GRUConfig(hidden_dim=8, num_layers=1)}


@pytest.fixture(scope="module")
def registry():
    """blend's built-ins plus this plugin, by its entry-point name, with autoloading off."""
    return plugin_registry("gru")


def test_gru_backbone_conforms():
    check_backbone(GRUBackbone, GRUConfig(hidden_dim=8, num_layers=1), input_dim=5, output_dim=7, seq_len=6,
                   context_dim=3)


def test_a_bad_option_is_refused_naming_its_key(registry):
    """The config class's validators (blend's and attrs' own) report through the config's messages."""
    for options, line in [({"hidden_dim": 1}, "backbone.hidden_dim: must be >= 2, got 1"),
                          ({"dropout": 1.5}, "backbone.dropout: must be in [0.0, 1.0), got 1.5")]:
        raw = {"data": {"type": "synthetic"}, "backbone": {"type": "gru", **options}}
        with pytest.raises(ConfigError) as err:
            build_config(raw, registry)
        assert err.value.problems == [line]


def test_every_backbone_of_the_registry_conforms(registry):
    """The plugin's backbone is registered under its name and passes with the built-ins."""
    assert registry.get("backbone", "gru").plugin == "gru"
    for name, config, factory in backbone_cases(registry, SMALL):
        if name == "gru":
            check_backbone(factory, config, input_dim=5, output_dim=7, seq_len=6, context_dim=3)


def test_gru_student_of_an_ndt_teacher_trains_through_blend_run(tmp_path, capsys):
    config = {
        "plugins": ["gru"],
        "data": {"type": "synthetic", "n_trials": 40, "n_heldin": 10, "n_heldout": 4,
                 "window_bins": 10, "fp_bins": 2, "n_conditions": 4},
        "backbone": {"type": "gru", "hidden_dim": 8, "num_layers": 2},  # student and baseline
        "teacher": {"type": "ndt", "num_layers": 1, "d_model": 16, "ffn_dim": 16, "num_heads": 2},
        "privileged": {"type": "linear", "out_dim": 4},
        "distillation": {"alpha": 0.5, "losses": [{"type": "hard"}, {"type": "feature", "weight": 0.5}]},
        "train": {"max_epochs": 1, "batch_size": 16, "warmup_steps": 1, "progress": False, "device": "cpu",
                  "threads": 1},
    }
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert run_blend(["run", str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"teacher", "student", "baseline"} <= set(metrics)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["components"]["backbone"]["plugin"] == "gru"
    assert provenance["components"]["backbone"]["version"].startswith("blend-gru ")
    assert provenance["components"]["teacher"]["name"] == "ndt"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["teacher"]["type"] == "ndt" and saved["backbone"]["type"] == "gru"
