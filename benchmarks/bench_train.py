"""Training-speed benchmark: NDT baseline, teacher and students on MC_Maze-shaped synthetic data.

Runs the real training code (``blend_core.training.fit`` with the runner's
``build_model``/``build_distiller`` and an ``Objective``), times every epoch and
reports, per model: median seconds per epoch after warm-up, trials/s, optimizer
steps/s, peak GPU memory (CUDA only) and the projected time of the paper's
50,501-epoch budget. ``--many K`` also times K baselines trained at once with
``blend_core.multi.fit_many`` against one alone. Prints a table; ``--json``
writes the figures with the device, torch version and settings.

    python benchmarks/bench_train.py --device cuda --epochs 12 --json bench-h100.json
    python benchmarks/bench_train.py --small --epochs 2           # CPU smoke run

The per-epoch time includes the epoch's validation pass when ``--eval-every 1``
(the default), as early stopping with patience needs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from blend_core.config import Config, build_config  # noqa: E402
from blend_core.model import BlendModel  # noqa: E402
from blend_core.plugins import load_plugins  # noqa: E402
from blend_core.build import build_distiller, build_model, build_task  # noqa: E402
from blend_core.training import Objective, cpu_has_fast_bf16, fit, resolve_device, resolve_precision  # noqa: E402

FULL_BUDGET_EPOCHS = 50_501  #: the BLEND/NDT MC_Maze configs' epoch budget
LOSSES = ("hard", "soft", "poisson_kl", "feature", "correlation")
MODELS = ("baseline", "teacher", *(f"student-{loss}" for loss in LOSSES))

#: MC_Maze shape: 137 held-in + 45 held-out neurons, 140 + 40 bins, 2295 trials (1721 train).
MC_MAZE = {"n_trials": 2295, "n_heldin": 137, "n_heldout": 45, "window_bins": 140, "fp_bins": 40,
           "split_fractions": [0.75, 0.10, 0.15]}
#: the CPU recipe's shape (examples/nlb/*_cpu.yaml on a 300-trial synthetic NLB file): 60 + 20 neurons,
#: a 700 ms window + 200 ms forward, at 20 ms bins (35 + 10, the CPU recipes) or 5 ms (140 + 40, the GPU ones)
CPU_RECIPE = {"n_trials": 300, "n_heldin": 60, "n_heldout": 20, "n_conditions": 12,
              "split_fractions": [0.63, 0.07, 0.30]}


def cpu_recipe_shape(bin_ms: int) -> dict[str, Any]:
    return {**CPU_RECIPE, "window_bins": 700 // bin_ms, "fp_bins": 200 // bin_ms, "bin_ms": bin_ms}
SMALL = {"n_trials": 120, "n_heldin": 16, "n_heldout": 6, "window_bins": 16, "fp_bins": 4,
         "n_conditions": 4, "split_fractions": [0.6, 0.15, 0.25]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--epochs", type=int, default=6, help="epochs per model (the first --warmup are not timed)")
    p.add_argument("--warmup", type=int, default=1, help="epochs left out of the median (compilation, caches)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="train.precision (auto: bf16 autocast on CUDA and on CPUs with native bf16, else fp32)")
    p.add_argument("--compile", action="store_true", help="train.compile: torch.compile each model")
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated subset of {', '.join(MODELS)}")
    p.add_argument("--d-model", type=int, default=128, help="NDT width (the reference's ~0.79 M parameters is 182)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--many", type=int, default=0, metavar="K",
                   help="also time K baselines trained at once (blend_core.multi) against one alone")
    p.add_argument("--small", action="store_true", help="a tiny shape for CPU smoke runs")
    p.add_argument("--cpu-recipe", action="store_true",
                   help="the CPU recipe's shape: 300 trials, 60+20 neurons, NDT 2x64, batch 16 (bins: --bin-ms)")
    p.add_argument("--bin-ms", type=int, default=20, choices=[5, 20],
                   help="with --cpu-recipe: bin width; 20 (35+10 bins) as the CPU recipes, 5 (140+40) as before")
    p.add_argument("--dropout-attention", type=float, default=None,
                   help="backbone.dropout_attention (default: the NDT default, equal to dropout)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown:
        p.error(f"--models: unknown {', '.join(unknown)}; expected a subset of {', '.join(MODELS)}")
    if args.epochs <= args.warmup:
        p.error(f"--epochs ({args.epochs}) must exceed --warmup ({args.warmup})")
    return args


def make_config(args: argparse.Namespace, registry, loss: str = "correlation") -> Config:
    small = args.small or args.cpu_recipe
    raw = {
        "data": {"type": "synthetic", **(cpu_recipe_shape(args.bin_ms) if args.cpu_recipe else SMALL if small else MC_MAZE)},
        "backbone": {"type": "ndt", "num_layers": 2 if small else 4, "num_heads": 2,
                     "d_model": 64 if args.cpu_recipe else 16 if small else args.d_model,
                     "ffn_dim": 128 if args.cpu_recipe else 32 if small else 128,
                     **({} if args.dropout_attention is None else {"dropout_attention": args.dropout_attention})},
        "privileged": {"type": "identity", "fusion": "concat"},
        "distillation": {"alpha": 0.5, "type": loss},
        "train": {
            "max_epochs": args.epochs, "batch_size": 16 if small else args.batch_size, "lr": 1e-3,
            "weight_decay": 5e-5, "warmup_steps": 5000, "patience": 10**9, "eval_every": args.eval_every,
            "checkpoint_every": 10**9, "device": args.device, "precision": args.precision,
            "compile": args.compile, "progress": False,
        },
    }
    return build_config(raw, registry, source="bench_train")


class TimedTask:
    """A task whose ``batches('train', ..., generator)`` call, once per epoch, stamps the time."""

    def __init__(self, task: Any, device: torch.device) -> None:
        self._task, self._device = task, device
        self.marks: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def mark(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        self.marks.append(time.perf_counter())

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None):
        if split == "train" and generator is not None:
            self.mark()
        return self._task.batches(split, batch_size, generator)

    def epoch_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def summarize(name: str, seconds: list[float], warmup: int, n_models: int, n_train: int,
              steps_per_epoch: int, params: int, peak_mb: float | None) -> dict[str, Any]:
    timed = seconds[warmup:]
    median = statistics.median(timed)
    return {
        "model": name, "models_at_once": n_models, "parameters": params,
        "epoch_seconds": seconds, "median_epoch_s": median,
        "trials_per_s": n_models * n_train / median, "steps_per_s": steps_per_epoch / median,
        "peak_gpu_mb": peak_mb,
        "projected_full_budget_h": median * FULL_BUDGET_EPOCHS / 3600,
    }


def time_one(name: str, config: Config, registry, task: TimedTask, device: torch.device,
             teacher: BlendModel | None, warmup: int, n_train: int, steps: int) -> tuple[dict[str, Any], BlendModel]:
    """Train one model as ``runner.train_role`` does (without the checkpoint files) and time it."""
    _reset_memory(device)
    torch.manual_seed(config.train.seed)
    model = build_model(config, registry, task, privileged=name == "teacher").to(device)
    objective = Objective(task)
    if teacher is not None:
        distiller = build_distiller(config, registry, model, teacher).to(device)
        objective = Objective(task, teacher, distiller, config.distillation.alpha)
    if config.train.compile:
        model.compile(dynamic=False)
    task.marks.clear()
    fit(model, task, config.train, device, role=name, objective=objective)
    task.mark()
    params = sum(p.numel() for p in model.parameters())
    row = summarize(name, task.epoch_seconds(), warmup, 1, n_train, steps, params, _peak_mb(device))
    row["precision"] = resolve_precision(device, config.train.precision, model)
    return row, model.eval()


def time_many(k: int, config: Config, registry, task: TimedTask, device: torch.device,
              warmup: int, n_train: int, steps: int) -> dict[str, Any]:
    from blend_core.multi import fit_many

    _reset_memory(device)
    models = []
    for i in range(k):
        torch.manual_seed(config.train.seed + i)
        models.append(build_model(config, registry, task, privileged=False).to(device))
    task.marks.clear()
    fit_many(models, task, config.train, device, role=f"baseline x{k}", objectives=[Objective(task)] * k)
    task.mark()
    params = sum(p.numel() for p in models[0].parameters())
    row = summarize(f"baseline x{k} (multi)", task.epoch_seconds(), warmup, k, n_train, steps, params,
                    _peak_mb(device))
    row["precision"] = resolve_precision(device, config.train.precision)  # fit_many: no per-model choice
    return row


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'model':<26}{'params':>10}{'s/epoch':>10}{'trials/s':>11}{'steps/s':>9}{'peak MB':>9}{'50,501 ep (h)':>15}"
    lines = [head, "-" * len(head)]
    for r in rows:
        peak = f"{r['peak_gpu_mb']:.0f}" if r["peak_gpu_mb"] is not None else "-"
        lines.append(
            f"{r['model']:<26}{r['parameters']:>10,}{r['median_epoch_s']:>10.4f}{r['trials_per_s']:>11.0f}"
            f"{r['steps_per_s']:>9.1f}{peak:>9}{r['projected_full_budget_h']:>15.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = load_plugins(autoload=False).registry
    base = make_config(args, registry)
    device = resolve_device(base.train.device)
    from blend_core.synthetic import generate

    data = generate(base.data.options)
    task = TimedTask(build_task(base, registry, data, device), device)
    bs = base.train.batch_size
    n_train = sum(len(b) for b in task.batches("train", bs, None))
    steps = -(-n_train // bs)
    wanted = args.models.split(",")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    teacher: BlendModel | None = None
    for name in ("baseline", "teacher"):
        if name in wanted:
            row, model = time_one(name, base, registry, task, device, None, args.warmup, n_train, steps)
            rows.append(row)
            print(format_table([row]).splitlines()[-1], flush=True)
            if name == "teacher":
                teacher = model
    if any(w.startswith("student-") for w in wanted):
        if teacher is None:  # an untrained teacher times the same
            torch.manual_seed(base.train.seed)
            teacher = build_model(base, registry, task, privileged=True).to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        for loss in LOSSES:
            name = f"student-{loss}"
            if name in wanted:
                config = make_config(args, registry, loss)
                row, _ = time_one(name, config, registry, task, device, teacher, args.warmup, n_train, steps)
                rows.append(row)
                print(format_table([row]).splitlines()[-1], flush=True)

    many = None
    if args.many:
        one = next((r for r in rows if r["model"] == "baseline"), None)
        if one is None:
            one, _ = time_one("baseline", base, registry, task, device, None, args.warmup, n_train, steps)
            rows.append(one)
        many = time_many(args.many, base, registry, task, device, args.warmup, n_train, steps)
        rows.append(many)
        many = {
            "k": args.many, "median_epoch_s": many["median_epoch_s"], "one_model_epoch_s": one["median_epoch_s"],
            "throughput_vs_one": args.many * one["median_epoch_s"] / many["median_epoch_s"],
        }

    by_name = {r["model"]: r["projected_full_budget_h"] for r in rows}
    projected = {
        f"teacher + student-{loss} + baseline": by_name["teacher"] + by_name[f"student-{loss}"] + by_name["baseline"]
        for loss in LOSSES
        if {"teacher", f"student-{loss}", "baseline"} <= set(by_name)
    }
    report = {
        "device": str(device), "device_name": device_name(device), "torch_version": torch.__version__,
        "python": platform.python_version(), "cuda": torch.version.cuda, "git_commit": _git_commit(),
        "settings": {
            "shape": "cpu_recipe" if args.cpu_recipe else "small" if args.small else "mc_maze",
            "data": {**(cpu_recipe_shape(args.bin_ms) if args.cpu_recipe else SMALL if args.small else MC_MAZE)},
            "backbone": base.backbone.type, "backbone_options": {
                k: getattr(base.backbone.options, k) for k in ("num_layers", "num_heads", "d_model", "ffn_dim",
                                                               "dropout", "dropout_embedding",
                                                               "dropout_attention")},
            "batch_size": bs, "train_trials": n_train, "steps_per_epoch": steps, "epochs": args.epochs,
            "warmup_epochs": args.warmup, "eval_every": args.eval_every, "precision": args.precision,
            "cpu_fast_bf16": cpu_has_fast_bf16(),
            "compile": args.compile, "many": args.many, "threads": torch.get_num_threads(),
            "full_budget_epochs": FULL_BUDGET_EPOCHS,
        },
        "results": rows,
        "projected_run_h": projected,
        "many": many,
        "wall_s": time.perf_counter() - t0,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,  # other work on the machine
    }
    print()
    print(f"{report['device_name']} · torch {torch.__version__} · precision {args.precision}"
          f" ({', '.join(sorted({r['precision'] for r in rows}))})"
          f"{' · compile' if args.compile else ''} · {n_train} train trials, batch {bs}, {steps} steps/epoch")
    print(format_table(rows))
    for name, hours in projected.items():
        print(f"{name}: {hours:.2f} h for {FULL_BUDGET_EPOCHS:,} epochs each")
    if many:
        print(f"{many['k']} models at once: {many['throughput_vs_one']:.2f}x the throughput of one alone")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
