"""train.precision: what ``auto`` picks, that the choice is recorded, and that bf16 keeps the loss in fp32."""

from __future__ import annotations

import pytest
import torch

import blend_core.training as training
from blend_core.config import build_config
from blend_core.provenance import compute_used
from blend_core.training import autocast, resolve_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("fast_bf16, want", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_on_cpu_only_with_native_bf16(monkeypatch, fast_bf16, want):
    monkeypatch.setattr(training, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert resolve_precision(CPU, "auto") == want
    assert resolve_precision(CUDA, "auto") == "bf16"  # tensor cores: always
    assert resolve_precision(CPU, "fp32") == "fp32" and resolve_precision(CPU, "bf16") == "bf16"
    with autocast(CPU, "auto"):
        assert torch.is_autocast_enabled("cpu") == (want == "bf16")
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


@pytest.mark.parametrize("fast_bf16, want", [(True, "bf16"), (False, "fp32")])
def test_the_run_records_the_precision_it_trains_in(monkeypatch, tiny_raw, builtin_plugins, fast_bf16, want):
    monkeypatch.setattr(training, "cpu_has_fast_bf16", lambda: fast_bf16)
    tiny_raw["train"].update(device="cpu", precision="auto")
    config = build_config(tiny_raw, builtin_plugins.registry)
    record = compute_used(config)
    assert record["precision_asked"] == "auto" and record["precision"] == want and record["device"] == "cpu"
    assert record["cpu_fast_bf16"] is fast_bf16
