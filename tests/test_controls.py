"""The self-distillation control: a behavior-blind teacher of the teacher's architecture, and its student."""

from __future__ import annotations

import json

import pytest
import torch

from blend_core.build import build_task, load_data
from blend_core.config import build_config, resolved_dict
from blend_core.controls import WithoutBehavior, build_any_role, roles, teacher_of, teacher_roles
from blend_core.errors import ConfigError
from blend_core.model import Inputs
from blend_core.runner import run, run_seeds

CPU = torch.device("cpu")
CONTROL_ROLES = ["control_teacher", "control_student"]


@pytest.fixture
def controlled(tiny_raw, builtin_plugins):
    tiny_raw["controls"] = ["self"]
    return build_config(tiny_raw, builtin_plugins.registry), builtin_plugins


def test_controls_key_is_validated_and_saved(tiny_raw, builtin_plugins, controlled):
    config, _ = controlled
    assert config.controls == ("self",)
    assert resolved_dict(config)["controls"] == ["self"]
    assert "controls" not in resolved_dict(build_config(tiny_raw | {"controls": []}, builtin_plugins.registry))
    with pytest.raises(ConfigError) as info:
        build_config(tiny_raw | {"controls": ["self", "shuffle"]}, builtin_plugins.registry)
    assert info.value.problems == ["controls: unknown control 'shuffle'; expected one of: self"]
    with pytest.raises(ConfigError) as info:
        build_config(tiny_raw | {"controls": "self"}, builtin_plugins.registry)
    assert info.value.problems[0].startswith("controls: expected a list")


def test_roles_and_who_distils_from_whom(controlled, tiny_raw, builtin_plugins):
    config, _ = controlled
    assert roles(config) == ("teacher", "student", "baseline", *CONTROL_ROLES)
    assert [teacher_of(r) for r in roles(config)] == [None, "teacher", None, None, "control_teacher"]
    assert teacher_roles(config) == {"teacher", "control_teacher"}
    plain = build_config(tiny_raw | {"controls": []}, builtin_plugins.registry)
    assert roles(plain) == ("teacher", "student", "baseline")


def test_control_teacher_is_the_teacher_without_behavior(controlled):
    config, plugins = controlled
    registry = plugins.registry
    _, data = load_data(config, registry)
    task = build_task(config, registry, data, CPU)
    teacher, _ = build_any_role("teacher", config, registry, task, CPU)
    control, objective = build_any_role("control_teacher", config, registry, task, CPU)
    assert isinstance(control, WithoutBehavior) and objective.teacher is None
    # the teacher's architecture and initialisation: same parameters, same values
    assert control.state_dict().keys() == teacher.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(control.state_dict().values(), teacher.state_dict().values()))
    control.eval(), teacher.eval()
    inputs = task.inputs(task.split_index["test"], None)
    noisy = Inputs(x=inputs.x, behavior=torch.randn_like(inputs.behavior) * 100)
    zeros = Inputs(x=inputs.x, behavior=torch.zeros_like(inputs.behavior))
    with torch.no_grad():
        out = control(inputs).log_rates
        assert torch.equal(control(noisy).log_rates, out)  # behavior does not reach it
        assert torch.equal(teacher(zeros).log_rates, out)  # it is the teacher given zeros
        assert not torch.allclose(teacher(inputs).log_rates, out)

    student, s_obj = build_any_role("student", config, registry, task, CPU, teacher)
    control_student, c_obj = build_any_role("control_student", config, registry, task, CPU, control)
    assert c_obj.teacher is control and s_obj.teacher is teacher
    assert c_obj.alpha == s_obj.alpha and type(c_obj.distiller) is type(s_obj.distiller)
    assert not control_student.privileged
    # the same initialisation as the student: the pair differs only in its teacher
    assert all(torch.equal(a, b) for a, b in zip(control_student.state_dict().values(), student.state_dict().values()))


def test_run_with_the_control_scores_and_tracks_its_roles(controlled, tmp_path):
    config, plugins = controlled
    out = tmp_path / "run"
    result = run(config, plugins, out_dir=out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics)[:5] == ["baseline", "teacher", "student", *CONTROL_ROLES]
    assert metrics == {**result.metrics, "val": result.val_metrics}
    assert set(metrics["val"]) == set(result.metrics)  # every row scored on the validation split too
    for role in CONTROL_ROLES:
        assert (out / "checkpoints" / f"{role}.pt").exists()
        assert {"co-bps", "vel R2"} <= set(metrics[role])
    history = (out / "history.csv").read_text().splitlines()
    assert sum(line.startswith("control_student,") for line in history) == config.train.max_epochs
    # the control student was distilled (its loss has a distillation term), the control teacher was not
    header = history[0].split(",")
    distill = header.index("train_distill")
    for line in history[1:]:
        role, cells = line.split(",")[0], line.split(",")
        assert (cells[distill] != "") == (role in ("student", "control_student"))


def test_control_roles_train_at_once_over_seeds(controlled, tmp_path):
    config, plugins = controlled
    summary = run_seeds(config, plugins, 2, out_dir=tmp_path / "seeds", at_once=True)
    for seed in (0, 1):
        metrics = json.loads((tmp_path / "seeds" / f"seed-{seed}" / "metrics.json").read_text())
        assert set(CONTROL_ROLES) <= set(metrics)
    assert set(CONTROL_ROLES) <= set(summary)
