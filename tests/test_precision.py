"""train.precision: what ``auto`` picks, that the choice is recorded, and that bf16 keeps the loss in fp32."""

from __future__ import annotations

import attrs
import pytest
import torch

import blend_core.training as training
from blend_core.config import build_config
from blend_core.provenance import compute_used
from blend_core.training import autocast, resolve_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


WIDE, NARROW = torch.nn.Linear(182, 546), torch.nn.Sequential(torch.nn.Linear(137, 64), torch.nn.Linear(64, 192))


@pytest.mark.parametrize("fast_bf16, want", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_on_cpu_only_with_native_bf16_and_a_wide_model(monkeypatch, fast_bf16, want):
    monkeypatch.setattr(training, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert training.linear_width(WIDE) == 182 and training.linear_width(NARROW) == 64
    assert resolve_precision(CPU, "auto", WIDE) == want
    assert resolve_precision(CPU, "auto", NARROW) == "fp32"  # the casts outweigh the faster matmuls
    assert resolve_precision(CPU, "auto") == "fp32"  # no model to judge by
    assert resolve_precision(CUDA, "auto") == "bf16"  # tensor cores: always
    for model in (WIDE, NARROW, None):
        assert resolve_precision(CPU, "fp32", model) == "fp32" and resolve_precision(CPU, "bf16", model) == "bf16"
    with autocast(CPU, "auto", WIDE):
        assert torch.is_autocast_enabled("cpu") == (want == "bf16")
    with autocast(CPU, "auto", NARROW):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_cpu_bf16_detection_follows_the_cpu_flags():
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if not flags:
        pytest.skip("no CPU flags listed")
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    assert training.cpu_has_fast_bf16() == native


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_the_run_records_the_precision_it_trains_in(monkeypatch, tiny_raw, builtin_plugins, fast_bf16, caplog):
    monkeypatch.setattr(training, "cpu_has_fast_bf16", lambda: fast_bf16)
    tiny_raw["train"].update(device="cpu", precision="auto")
    config = build_config(tiny_raw, builtin_plugins.registry)
    record = compute_used(config)
    assert record["precision_asked"] == "auto" and record["device"] == "cpu"
    assert record["cpu_fast_bf16"] is fast_bf16
    assert record["precision"].startswith("bf16 for models") if fast_bf16 else record["precision"] == "fp32"

    # and each role logs the precision it trains in (the run's log.txt): the tiny model is narrow
    import logging

    from blend_core.build import build_model, build_task
    from blend_core.synthetic import generate
    from blend_core.training import Objective, fit

    registry = builtin_plugins.registry
    task = build_task(config, registry, generate(config.data.options), CPU)
    model = build_model(config, registry, task, privileged=False)
    with caplog.at_level(logging.INFO, logger="blend"):
        fit(model, task, attrs.evolve(config.train, max_epochs=1), CPU, role="baseline", objective=Objective(task))
    assert "baseline: precision fp32 (train.precision: auto)" in caplog.text


@pytest.mark.slow  # three short trainings: about a minute on a loaded 2-core machine
def test_bf16_training_scores_like_fp32_within_seed_noise(tiny_raw, builtin_plugins):
    """A tiny model trained in bf16 scores (fp32 inference, NLB metrics) as fp32 does, up to seed noise."""
    from blend_core.build import build_model, build_task
    from blend_core.synthetic import generate
    from blend_core.training import Objective, fit

    tiny_raw["data"].update(n_trials=96)
    tiny_raw["train"].update(max_epochs=30, patience=100, warmup_steps=5, lr=5e-3)
    registry = builtin_plugins.registry
    config = build_config(tiny_raw, registry)
    task = build_task(config, registry, generate(config.data.options), CPU)

    def score(precision: str, seed: int) -> dict[str, float]:
        torch.manual_seed(seed)
        model = build_model(config, registry, task, privileged=False)
        train = attrs.evolve(config.train, precision=precision, seed=seed)
        result = fit(model, task, train, CPU, role=precision, objective=Objective(task))
        model.load_state_dict(result.best_state)
        return task.evaluate(model)

    fp32, bf16, other_seed = score("fp32", 0), score("bf16", 0), score("fp32", 1)
    for metric in ("co-bps", "fp-bps", "psth R2"):
        noise = abs(other_seed[metric] - fp32[metric])
        assert abs(bf16[metric] - fp32[metric]) <= 2 * noise + 0.01, (metric, fp32, bf16, other_seed)
