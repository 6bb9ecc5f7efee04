"""Mixed pairs: a ``teacher:`` section gives the teacher its own backbone; student and baseline use ``backbone``."""

from __future__ import annotations

import json

import pytest
import yaml

from blend_core.api import installed_plugin
from blend_core.cli import main
from blend_core.config import build_config, resolved_dict
from blend_core.errors import ConfigError

NDT = {"type": "ndt", "num_layers": 2, "d_model": 16, "ffn_dim": 16, "num_heads": 2}
TEACHERS = {
    "stndt": {"type": "stndt", "num_layers": 1, "num_heads": 1, "ffn_dim": 16},
    "lfads": {"type": "lfads", "ic_enc_dim": 8, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 8,
              "gen_dim": 12, "fac_dim": 6},
}


def test_teacher_section_without_type_overrides_backbone_keys(tiny_raw, builtin_plugins):
    tiny_raw["teacher"] = {"num_layers": 3}
    config = build_config(tiny_raw, builtin_plugins.registry)
    assert config.backbone.options.num_layers == 2
    assert config.teacher.type == "ndt" and config.teacher.options.num_layers == 3
    assert config.teacher.options.d_model == config.backbone.options.d_model  # the other keys are the backbone's
    again = build_config(resolved_dict(config), builtin_plugins.registry)  # the saved config reloads the same
    assert again.teacher == config.teacher


def test_teacher_of_another_type_takes_only_its_own_keys(tiny_raw, builtin_plugins):
    tiny_raw["teacher"] = {"type": "stndt", "d_model": 16}  # d_model is NDT's key, not STNDT's
    with pytest.raises(ConfigError) as info:
        build_config(tiny_raw, builtin_plugins.registry)
    assert "teacher.d_model: unknown key" in str(info.value)


def run(tmp_path, raw, capsys, command="run"):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    args = [command, str(path)] + (["--out", str(tmp_path / "run")] if command == "run" else [])
    code = main(args)
    return code, capsys.readouterr()


@pytest.mark.parametrize("teacher", sorted(TEACHERS))
def test_mixed_pair_trains_end_to_end_with_feature_distillation(teacher, tmp_path, tiny_raw, capsys):
    """STNDT -> NDT and LFADS -> NDT: other widths and depths, matched through learned projections."""
    tiny_raw["backbone"] = NDT
    tiny_raw["teacher"] = TEACHERS[teacher]
    tiny_raw["distillation"] = {"alpha": 0.5, "losses": [{"type": "hard"}, {"type": "feature", "weight": 0.5}]}
    tiny_raw["train"]["max_epochs"] = 1
    code, out = run(tmp_path, tiny_raw, capsys)
    assert code == 0, out.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"teacher", "student", "baseline"} <= set(metrics)
    student = json.loads((tmp_path / "run" / "provenance.json").read_text())["components"]
    assert (student["teacher"]["name"], student["backbone"]["name"]) == (teacher, "ndt")
    assert student["task"] == {"kind": "task", "name": "neural", "plugin": "blend_core.builtin.tasks",
                               "version": student["backbone"]["version"]}  # implied by the data, recorded too


UNCOMPARABLE = '''
import attrs, torch
from blend_core.api import ModelOutput, hookimpl

@attrs.frozen(kw_only=True)
class Config:
    width: int = 8

class PerTrial(torch.nn.Module):
    """features[0] is one vector per trial (no time axis): valid, but not comparable with NDT's layers."""
    def __init__(self, config, dims):
        super().__init__()
        self.inp = torch.nn.Linear(dims.input_dim, config.width)
        self.out = torch.nn.Linear(config.width, dims.output_dim)
        self.feature_dims = (config.width,)
    def forward(self, x, context=None):
        h = self.inp(x)
        return ModelOutput(log_rates=self.out(h), features=(h.mean(1),))

@hookimpl
def blend_add_backbones(register):
    register("uncomparable", Config, PerTrial)
'''


def test_validate_refuses_features_that_cannot_be_compared(tmp_path, tiny_raw, capsys, monkeypatch):
    (tmp_path / "tests_uncomparable_plugin.py").write_text(UNCOMPARABLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    installed_plugin(monkeypatch, "tests_uncomparable_plugin", "tests_uncomparable_plugin")
    """A feature loss between layers of other layouts (not only other widths) is refused before training."""
    tiny_raw["teacher"] = {**NDT, "type": "ndt"}
    tiny_raw["backbone"] = {"type": "uncomparable"}
    tiny_raw["plugins"] = ["tests_uncomparable_plugin"]
    tiny_raw["distillation"] = {"type": "feature"}
    code, out = run(tmp_path, tiny_raw, capsys, "validate")
    assert code == 2
    assert out.err.count("\n") == 1
    assert out.err.startswith("error: distillation.losses.0 'feature' (blend-core ")
    assert "cannot compare student backbone 'uncomparable' and teacher backbone 'ndt'" in out.err
    assert "only the last (width) axis may differ" in out.err
