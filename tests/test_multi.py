"""blend_core.multi: K models trained at once match K models trained one by one with ``fit``."""

from __future__ import annotations

import copy

import attrs
import pytest
import torch

from blend_core.config import build_config
from blend_core.multi import fit_many
from blend_core.build import build_distiller, build_model, build_task
from blend_core.synthetic import generate
from blend_core.training import Objective, fit

CPU = torch.device("cpu")


@pytest.fixture
def setup(tiny_raw, builtin_plugins):
    tiny_raw["backbone"].update(dropout=0.0, dropout_embedding=0.0)
    # fp32: vmapped and one-by-one bf16 matmuls round differently; these tests compare the algorithms
    tiny_raw["train"].update(max_epochs=3, patience=1, precision="fp32")
    registry = builtin_plugins.registry
    config = build_config(tiny_raw, registry)
    task = build_task(config, registry, generate(config.data.options), CPU)
    return tiny_raw, config, registry, task


def _models(config, registry, task, k, privileged=False):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(build_model(config, registry, task, privileged=privileged))
    return out


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], d_model: int) -> None:
    for name in a:
        x, y = a[name], b[name]
        if name.endswith("qkv.bias"):
            # The key bias has an exactly zero true gradient (softmax is shift-invariant), so
            # its gradient is rounding noise that Adam scales up to ~lr: compare q and v only.
            x, y = torch.cat([x[:d_model], x[2 * d_model:]]), torch.cat([y[:d_model], y[2 * d_model:]])
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def _assert_same_results(many, ref, d_model):
    for got, want in zip(many, ref):
        assert got.best_epoch == want.best_epoch
        assert got.epochs_run == want.epochs_run
        assert len(got.history) == len(want.history)
        for g, w in zip(got.history, want.history):
            assert g.keys() == w.keys()
            for key in g.keys() - {"seconds"}:  # wall time differs, of course
                assert g[key] == pytest.approx(w[key], rel=1e-5, abs=1e-6), key
        _assert_same_state(got.best_state, want.best_state, d_model)


@pytest.mark.parametrize("seeds", [None, [0, 1, 2]], ids=["shared-batches", "per-model-seeds"])
def test_baselines_match_fit_one_by_one(setup, seeds):
    raw, config, registry, task = setup
    train = attrs.evolve(config.train, grad_clip=0.5)  # small enough that clipping acts, per model
    models = _models(config, registry, task, 3)
    reference = copy.deepcopy(models)
    many = fit_many(models, task, train, CPU, role="baseline", objectives=[Objective(task)] * 3, seeds=seeds)
    ref = [
        fit(m, task, attrs.evolve(train, seed=seeds[i] if seeds else train.seed), CPU,
            role="baseline", objective=Objective(task))
        for i, m in enumerate(reference)
    ]
    d = raw["backbone"]["d_model"]
    _assert_same_results(many, ref, d)
    for m, r in zip(models, reference):  # the last-epoch weights are written back
        _assert_same_state(m.state_dict(), r.state_dict(), d)


def test_students_with_different_losses_and_alphas_match_fit(setup):
    raw, config, registry, task = setup
    torch.manual_seed(10)
    teacher = build_model(config, registry, task, privileged=True).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    specs = [("hard", 0.5), ("feature", 0.3), ("correlation", 0.8)]

    def objective(model, loss, alpha):
        cfg = build_config({**raw, "distillation": {"alpha": alpha, "type": loss}}, registry)
        return Objective(task, teacher, build_distiller(cfg, registry, model, teacher), alpha)

    models = _models(config, registry, task, 3)
    reference = copy.deepcopy(models)
    many = fit_many(models, task, config.train, CPU, role="student",
                    objectives=[objective(m, *s) for m, s in zip(models, specs)])
    ref = [fit(m, task, config.train, CPU, role="student", objective=objective(m, *s))
           for m, s in zip(reference, specs)]
    assert all("train_distill" in h for r in many for h in r.history)
    _assert_same_results(many, ref, raw["backbone"]["d_model"])


def test_teachers_stacked_per_model(setup):
    """Each student has its own teacher (K seeds): teachers are stacked and vmapped too."""
    raw, config, registry, task = setup
    teachers = _models(config, registry, task, 2, privileged=True)
    for t in teachers:
        t.eval().requires_grad_(False)
    models = _models(config, registry, task, 2)
    reference = copy.deepcopy(models)

    def objective(model, teacher):
        return Objective(task, teacher, build_distiller(config, registry, model, teacher), 0.5)

    many = fit_many(models, task, config.train, CPU, role="student",
                    objectives=[objective(m, t) for m, t in zip(models, teachers)], seeds=[0, 1])
    ref = [fit(m, task, attrs.evolve(config.train, seed=i), CPU, role="student", objective=objective(m, t))
           for i, (m, t) in enumerate(zip(reference, teachers))]
    _assert_same_results(many, ref, raw["backbone"]["d_model"])


def test_dropout_draws_differ_between_models(setup, tiny_raw, builtin_plugins):
    raw, _, registry, task = setup
    raw["backbone"].update(dropout=0.5)
    config = build_config(raw, registry)
    torch.manual_seed(0)
    model = build_model(config, registry, task, privileged=False)
    models = [model, copy.deepcopy(model)]  # same init: only dropout can tell them apart
    train = attrs.evolve(config.train, max_epochs=1)
    fit_many(models, task, train, CPU, role="baseline", objectives=[Objective(task)] * 2)
    assert not torch.equal(models[0].backbone.readout.weight, models[1].backbone.readout.weight)


def test_rejects_models_of_different_shapes(setup):
    raw, config, registry, task = setup
    torch.manual_seed(0)
    a = build_model(config, registry, task, privileged=False)
    wider = build_config({**raw, "backbone": {**raw["backbone"], "d_model": 32}}, registry)
    b = build_model(wider, registry, task, privileged=False)
    with pytest.raises(ValueError, match="shapes"):
        fit_many([a, b], task, config.train, CPU, role="baseline", objectives=[Objective(task)] * 2)
