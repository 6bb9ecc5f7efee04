"""The schedule in optimizer steps, and early stopping that cannot stop a model on the plateau."""

from __future__ import annotations

import attrs
import pytest
import torch

from blend_core import training
from blend_core.build import build_model, build_task, load_data
from blend_core.config import TrainConfig, build_config
from blend_core.errors import ConfigError

CPU = torch.device("cpu")


@pytest.fixture
def task(tiny_raw, builtin_plugins):
    config = build_config(tiny_raw, builtin_plugins.registry)
    _, data = load_data(config, builtin_plugins.registry)
    return config, build_task(config, builtin_plugins.registry, data, CPU)


def _lrs(task, train: TrainConfig, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=train.lr)
    sched = training.make_scheduler(opt, task, train)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_decay_in_steps_does_not_depend_on_max_epochs(task):
    config, t = task
    short = attrs.evolve(config.train, lr=1.0, warmup_steps=4, decay_steps=10, final_lr_ratio=0.1, max_epochs=2)
    long = attrs.evolve(short, max_epochs=500)
    a, b = _lrs(t, short, 30), _lrs(t, long, 30)
    assert a == b
    assert a[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert a[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 5 / 10)).item()))
    assert a[14:] == pytest.approx([0.1] * 16)  # the floor, after warm-up + decay steps


def test_without_decay_steps_the_cosine_spans_the_budget(task):
    config, t = task
    train = attrs.evolve(config.train, lr=1.0, warmup_steps=2, max_epochs=3)
    steps = 3 * len(list(t.batches("train", train.batch_size, None)))
    lrs = _lrs(t, train, steps + 1)
    assert lrs[1] == pytest.approx(1.0) and lrs[steps] == pytest.approx(0.0, abs=1e-12)
    assert all(x > 0 for x in lrs[:steps])


def test_early_stopping_waits_for_min_epochs(task, builtin_plugins, monkeypatch):
    config, t = task
    monkeypatch.setattr(training, "validation_loss", lambda *a: torch.tensor(1.0))  # a flat plateau
    model = build_model(config, builtin_plugins.registry, t, privileged=False)
    train = attrs.evolve(config.train, max_epochs=9, patience=1, min_epochs=6)
    result = training.fit(model, t, train, CPU, role="baseline", objective=training.Objective(t))
    assert result.epochs_run == 6 and result.best_epoch == 0
    stopper = training.EarlyStopping(patience=1, min_epochs=6)
    stopper.update(1.0, 0)
    assert [stopper.should_stop(e) for e in range(7)] == [False] * 5 + [True, True]


def test_early_stopping_state_round_trips():
    """A restored stopper decides exactly as the one it was saved from (resume stops where a run would)."""
    saved = training.EarlyStopping(patience=2, min_epochs=0)
    for epoch, val in enumerate([3.0, 2.0, 2.5]):
        saved.update(val, epoch)
    restored = training.EarlyStopping(patience=2, min_epochs=0)
    restored.load_state_dict(saved.state_dict())
    assert (restored.best_val, restored.best_epoch) == (2.0, 1)
    assert [restored.update(v, e) for e, v in [(3, 2.1), (4, 1.5)]] == [False, True]
    assert [restored.should_stop(e) for e in (5, 6)] == [False, True]


@pytest.mark.parametrize("key, value", [("decay_steps", 0), ("final_lr_ratio", 1.5), ("min_epochs", -1)])
def test_schedule_fields_are_validated(tiny_raw, builtin_plugins, key, value):
    tiny_raw["train"][key] = value
    with pytest.raises(ConfigError, match=f"train.{key}"):
        build_config(tiny_raw, builtin_plugins.registry)
