"""The fast path (issue 5) gives the plain path's results: masking on device, bf16, torch.compile."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from blend_core.config import build_config
from blend_core.model import Inputs
from blend_core.build import build_model, build_task
from blend_core.synthetic import generate
from blend_core.training import Objective, autocast, fit, make_generator

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def setup(tiny_raw, builtin_plugins):
    tiny_raw["backbone"].update(dropout=0.0, dropout_embedding=0.0)
    registry = builtin_plugins.registry
    config = build_config(tiny_raw, registry)
    task = build_task(config, registry, generate(config.data.options), CPU)
    return config, registry, task


# ------------------------------------------------------------------ masking


def test_masking_zeroes_exactly_the_masked_bins_and_the_loss_mask_covers_the_rest(setup):
    _, _, task = setup
    batch = task.split_index["train"][:16]
    inputs = task.inputs(batch, make_generator(CPU, 3))
    masked = task._bin_mask(len(batch), make_generator(CPU, 3))  # the same draw
    W, n_in = task.window, task.n_in
    assert masked.any() and not masked.all()
    original = task.targets[batch][:, :, :n_in]
    x, loss_mask, observed = inputs.x, inputs.meta["loss_mask"], task.observed[batch]

    assert x.shape[-1] == n_in  # held-out neurons never enter the input
    assert torch.equal(x[:, :W][masked], torch.zeros_like(x[:, :W][masked]))
    assert torch.equal(x[:, :W][~masked], original[:, :W][~masked])
    assert torch.equal(x[:, W:], torch.zeros_like(x[:, W:]))  # forward bins enter as zeros
    # loss: masked held-in window bins, all forward bins, all held-out entries; never unmasked held-in
    assert torch.equal(loss_mask[:, :W, :n_in], masked[:, :, None].expand(-1, -1, n_in) & observed[:, :W, :n_in])
    assert torch.equal(loss_mask[:, W:, :n_in], observed[:, W:, :n_in])
    assert torch.equal(loss_mask[:, :, n_in:], observed[:, :, n_in:])
    # the task's own arrays are untouched
    assert torch.equal(task.targets[batch][:, :, :n_in], original)


def test_mask_ratio_is_respected(setup):
    _, _, task = setup
    masked = task._bin_mask(4096, make_generator(CPU, 0))
    assert masked.float().mean().item() == pytest.approx(task.config.mask_ratio, abs=0.01)


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.__name__)
        return func(*args, **(kwargs or {}))


#: ops that read a device value on the host (``.item()``, data-dependent shapes)
SYNCING = {"_local_scalar_dense", "nonzero", "masked_select", "item", "is_nonzero", "unique", "_unique2"}


def test_training_step_has_no_host_synchronisation(setup):
    """No op whose result shape or value the host must wait for: masking, forward, loss, backward."""
    config, registry, task = setup
    torch.manual_seed(0)
    model = build_model(config, registry, task, privileged=False)
    objective = Objective(task)
    batch = next(task.batches("train", 16, make_generator(CPU, 0)))
    with _Ops() as ops:
        terms = objective(model, batch, make_generator(CPU, 1))
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
    assert "_scaled_dot_product_flash_attention_for_cpu" in ops.names or "scaled_dot_product_attention" in ops.names \
        or any("scaled_dot_product" in n for n in ops.names)
    bad = {n.split(".")[0] for n in ops.names} & SYNCING
    assert not bad, f"host-synchronising ops in a training step: {sorted(bad)}"


# ------------------------------------------------------------------ bf16


def test_bf16_autocast_on_cpu_runs_and_stays_close_to_fp32(setup):
    config, registry, task = setup
    torch.manual_seed(0)
    model = build_model(config, registry, task, privileged=False)
    seen = []
    model.backbone.layers[0].qkv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    for precision, matmul in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        with autocast(CPU, precision):
            out = model(Inputs(x=task.heldin[:4]))
        assert seen.pop() == matmul  # the projections run in the precision asked for
        assert out.log_rates.dtype == torch.float32  # the readout, and so the loss, stay fp32

    results = {}
    for precision in ("fp32", "bf16"):
        m = copy.deepcopy(model)
        train = attrs.evolve(config.train, precision=precision, max_epochs=2)
        results[precision] = fit(m, task, train, CPU, role=precision, objective=Objective(task))
    for a, b in zip(results["fp32"].history, results["bf16"].history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.03)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.03)


# ------------------------------------------------------------------ torch.compile


@pytest.mark.slow  # inductor compiles C++ kernels with gcc: about a minute on 2 cores (cold cache)
def test_compiled_training_matches_eager(setup):
    config, registry, task = setup
    torch.manual_seed(0)
    eager = build_model(config, registry, task, privileged=False)
    compiled = copy.deepcopy(eager)
    compiled.compile(dynamic=False)  # as runner.train_role does for train.compile
    train = attrs.evolve(config.train, max_epochs=2, precision="fp32")  # bf16 would round eager and compiled apart
    want = fit(eager, task, train, CPU, role="eager", objective=Objective(task))
    got = fit(compiled, task, train, CPU, role="compiled", objective=Objective(task))
    for a, b in zip(want.history, got.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    d = config.backbone.options.d_model
    for name, p in eager.state_dict().items():
        q = compiled.state_dict()[name]
        if name.endswith("qkv.bias"):  # the key bias: zero true gradient, Adam-scaled rounding noise
            p, q = torch.cat([p[:d], p[2 * d:]]), torch.cat([q[:d], q[2 * d:]])
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


# ------------------------------------------------------------------ benchmark smoke run


def test_benchmark_smoke_run_writes_its_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--small", "--epochs", "2",
         "--many", "2", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"device", "device_name", "torch_version", "settings", "results", "projected_run_h", "many"} <= set(report)
    models = [r["model"] for r in report["results"]]
    assert models[:7] == ["baseline", "teacher", "student-hard", "student-soft", "student-poisson_kl",
                          "student-feature", "student-correlation"]
    for row in report["results"]:
        assert {"median_epoch_s", "trials_per_s", "steps_per_s", "peak_gpu_mb", "projected_full_budget_h"} <= set(row)
        assert row["median_epoch_s"] > 0 and row["peak_gpu_mb"] is None  # CPU
    assert report["many"]["k"] == 2 and report["many"]["throughput_vs_one"] > 0
    assert "baseline" in proc.stdout and "50,501" in proc.stdout
