"""The training engine: behavior never reaches a student, best checkpoints, determinism, the demo's claim."""

from __future__ import annotations

from importlib.resources import files

import attrs
import numpy as np
import pytest
import torch

from blend_core import training
from blend_core.config import build_config, read_yaml
from blend_core.model import Inputs
from blend_core.neural_task import NeuralTask
from blend_core.build import build_model, build_task, load_data
from blend_core.runner import run, run_seeds

CPU = torch.device("cpu")


@pytest.fixture
def setup(tiny_raw, builtin_plugins):
    config = build_config(tiny_raw, builtin_plugins.registry)
    _, data = load_data(config, builtin_plugins.registry)
    return config, builtin_plugins.registry, data, build_task(config, builtin_plugins.registry, data, CPU)


@pytest.mark.parametrize("fusion", ["concat", "add"])
def test_behavior_never_reaches_the_student(setup, fusion):
    config, registry, data, task = setup
    config = attrs.evolve(config, privileged=attrs.evolve(config.privileged, fusion=fusion))
    student = build_model(config, registry, task, privileged=False).eval()
    teacher = build_model(config, registry, task, privileged=True).eval()
    batch = task.split_index["test"]
    inputs = task.inputs(batch, None)
    with torch.no_grad():
        reference = student(inputs).log_rates
        for behavior in (torch.full_like(inputs.behavior, float("nan")), torch.randn_like(inputs.behavior) * 100):
            assert torch.equal(student(Inputs(x=inputs.x, behavior=behavior)).log_rates, reference)
        assert torch.equal(student(Inputs(x=inputs.x, behavior=None)).log_rates, reference)
        # the teacher does read it: the same test would fail for a model that uses behavior
        noisy = Inputs(x=inputs.x, behavior=torch.randn_like(inputs.behavior) * 100)
        assert not torch.allclose(teacher(noisy).log_rates, teacher(inputs).log_rates)


def test_student_predictions_ignore_the_datas_behavior(setup):
    config, registry, data, task = setup
    student = build_model(config, registry, task, privileged=False)
    rates = task.predict(student)["rates"]
    noisy = attrs.evolve(data, behavior=np.random.default_rng(0).normal(size=data.behavior.shape) * 50)
    assert np.array_equal(NeuralTask(task.config, noisy, CPU).predict(student)["rates"], rates)
    without = attrs.evolve(data, behavior=None)
    assert np.array_equal(NeuralTask(task.config, without, CPU).predict(student)["rates"], rates)


def test_fit_returns_the_best_epoch_not_the_last(setup, monkeypatch):
    config, registry, data, task = setup
    losses = iter([3.0, 1.0, 2.0, 2.5, 2.7])
    states = []

    def fake_validation(model, *args):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return torch.tensor(next(losses))

    monkeypatch.setattr(training, "validation_loss", fake_validation)
    model = build_model(config, registry, task, privileged=False)
    train = attrs.evolve(config.train, max_epochs=5, patience=10)
    result = training.fit(model, task, train, CPU, role="baseline", objective=training.Objective(task))
    assert result.best_epoch == 1 and result.best_val == 1.0 and result.epochs_run == 5
    for key, value in result.best_state.items():
        assert torch.equal(value, states[1][key])
    assert not all(torch.equal(v, states[-1][k]) for k, v in result.best_state.items())


def test_early_stopping_respects_patience(setup, monkeypatch):
    config, registry, data, task = setup
    losses = iter([1.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    monkeypatch.setattr(training, "validation_loss", lambda *a: torch.tensor(next(losses)))
    model = build_model(config, registry, task, privileged=False)
    train = attrs.evolve(config.train, max_epochs=6, patience=2)
    result = training.fit(model, task, train, CPU, role="baseline", objective=training.Objective(task))
    assert result.epochs_run == 3 and result.best_epoch == 0


def test_same_seed_same_results(tmp_path, tiny_raw, builtin_plugins):
    config = build_config(tiny_raw, builtin_plugins.registry)
    first = run(config, builtin_plugins, out_dir=tmp_path / "a").metrics
    second = run(config, builtin_plugins, out_dir=tmp_path / "b").metrics
    assert first == second


#: The demo's earlier, short-budget settings (full attention, 80 epochs at lr 3e-3), at which
#: docs/synthetic.md measured the student - baseline gap over three seeds.
SHORT_BUDGET = {"backbone": {"d_model": 64, "ffn_dim": 128, "dropout": 0.2, "dropout_embedding": 0.2},
                "train": {"lr": 0.003, "warmup_steps": 50, "patience": 30, "batch_size": 16, "max_epochs": 80}}


def test_demo_student_beats_baseline_on_vel_r2_over_three_seeds(tmp_path, builtin_plugins):
    """docs/synthetic.md's claim at the short budget, over three training seeds rather than one lucky one.

    The synthetic data are built for this (see docs/synthetic.md): an effect here
    says nothing about real recordings.
    """
    raw = read_yaml(str(files("blend_core") / "configs" / "quickstart.yaml"))
    for section, values in SHORT_BUDGET.items():
        raw[section] = {**raw[section], **values}
    for key in ("context_forward", "context_backward"):  # full attention
        raw["backbone"].pop(key)
    raw["train"]["progress"] = False
    config = build_config(raw, builtin_plugins.registry)
    summary = run_seeds(config, builtin_plugins, 3, out_dir=tmp_path / "seeds")
    gaps = summary["student - baseline"]["vel R2"]["values"]
    assert len(gaps) == 3 and min(gaps) > 0.05, gaps


def test_interrupted_student_resumes_to_the_same_weights(setup, tmp_path, monkeypatch):
    """A student (with learned feature projections) stopped mid-run and resumed equals an uninterrupted one."""
    from blend_core.build import build_distiller

    config, registry, data, task = setup
    no_dropout = attrs.evolve(config.backbone.options, dropout=0.0, dropout_embedding=0.0)
    config = attrs.evolve(config, backbone=attrs.evolve(config.backbone, options=no_dropout))
    wide = attrs.evolve(config, backbone=attrs.evolve(config.backbone, options=attrs.evolve(no_dropout, d_model=8)))
    teacher = build_model(wide, registry, task, privileged=True).eval()
    feature = build_config({**_raw(config), "distillation": {"type": "feature"}}, registry)
    train = attrs.evolve(config.train, max_epochs=3, checkpoint_every=1)

    def student():
        torch.manual_seed(0)
        model = build_model(config, registry, task, privileged=False)
        distiller = build_distiller(feature, registry, model, teacher)
        assert any(p.numel() for p in distiller.parameters())  # 16 -> 8 projections
        return model, training.Objective(task, teacher, distiller, 0.5)

    model, objective = student()
    training.fit(model, task, train, CPU, role="student", objective=objective)
    expected = model.state_dict()

    original, calls = training.validation_loss, []

    def crash_on_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args)

    checkpoint = tmp_path / "student-last.pt"
    model, objective = student()
    monkeypatch.setattr(training, "validation_loss", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        training.fit(model, task, train, CPU, role="student", objective=objective, checkpoint=checkpoint)
    monkeypatch.setattr(training, "validation_loss", original)
    model, objective = student()
    training.fit(model, task, train, CPU, role="student", objective=objective, checkpoint=checkpoint)
    for key, value in model.state_dict().items():
        assert torch.allclose(value, expected[key], atol=1e-6), key


def _raw(config):
    from blend_core.config import resolved_dict

    return resolved_dict(config)
