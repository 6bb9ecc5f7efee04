"""One trainer for every role: teacher, student and baseline differ only by its arguments."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import torch
from torch import nn

from blend_core.config import TrainConfig
from blend_core.io import load_checkpoint, save_torch
from blend_core.model import BlendModel, ModelOutput
from blend_core.progress import make_progress
from blend_core.task import Task

log = logging.getLogger("blend")


@attrs.define(kw_only=True)
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_val: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from blend_core.errors import BlendError

        raise BlendError("train.device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX), so autocast pays.

    Measured on an AMD EPYC with AVX512-BF16 and no AMX (docs/performance.md): a bf16 GEMM at
    the NDT's shapes runs 2.5-3.5x as fast as fp32 on one core. Without those instructions
    bf16 is emulated and slower than fp32.
    """
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


#: bf16 autocast pays on CPU only for models this wide (the largest ``min(in, out)`` of a linear layer):
#: at width 182 an NDT epoch took under half the CPU time of fp32, at width 64 1.5x as long
#: (docs/performance.md)
CPU_BF16_MIN_WIDTH = 128


def linear_width(model: nn.Module) -> int:
    """The widest linear layer of ``model``, as ``min(in_features, out_features)`` (0: none)."""
    return max((min(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)), default=0)


def resolve_precision(device: torch.device, precision: str, model: nn.Module | None = None) -> str:
    """``train.precision`` made concrete for ``model``: ``"bf16"`` (autocast) or ``"fp32"``.

    ``auto`` is bf16 on CUDA; on a CPU with native bf16 matmuls (``cpu_has_fast_bf16``) it is
    bf16 for a model at least ``CPU_BF16_MIN_WIDTH`` wide, where the matmuls outweigh the casts,
    and fp32 otherwise (and without a model). Under bf16, matmuls run in bf16; the readout,
    losses, softmax and metrics stay fp32.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    wide = model is not None and linear_width(model) >= CPU_BF16_MIN_WIDTH
    return "bf16" if device.type == "cpu" and wide and cpu_has_fast_bf16() else "fp32"


def autocast(device: torch.device, precision: str, model: nn.Module | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast where ``resolve_precision`` says bf16, else nothing (plain fp32)."""
    if resolve_precision(device, precision, model) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def warmup_cosine(warmup: int, total: int, final: float = 0.0):
    """lr factor at a step: linear warm-up over ``warmup`` steps, cosine down to ``final``
    at step ``total``, then ``final``: measured in optimizer steps, not epochs."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(params: list[torch.nn.Parameter], train: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW as every role trains with it: fused on CUDA, foreach on CPU."""
    return torch.optim.AdamW(
        params, lr=train.lr, weight_decay=train.weight_decay,
        **({"fused": True} if device.type == "cuda" else {"foreach": True}),
    )


def make_scheduler(opt: torch.optim.Optimizer, task: Task, train: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay, stepped once per batch.

    The decay lasts ``train.decay_steps`` optimizer steps when given (the same schedule
    whatever ``max_epochs`` is), else the rest of the ``max_epochs`` budget.
    """
    if train.decay_steps is not None:
        total = train.warmup_steps + train.decay_steps
    else:
        n_train = sum(len(b) for b in task.batches("train", train.batch_size, None))
        total = train.max_epochs * max(1, math.ceil(n_train / train.batch_size))
    return torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(train.warmup_steps, total, train.final_lr_ratio))


@attrs.define
class EarlyStopping:
    """The best validation loss so far, its epoch, and whether patience has run out.

    It never stops before ``min_epochs`` epochs: a model still on the mean-rate plateau
    (validation loss flat while the lr warms up) is not a converged one.
    """

    patience: int
    min_epochs: int = 0
    best_val: float = math.inf
    best_epoch: int = -1

    @classmethod
    def for_training(cls, train: TrainConfig) -> EarlyStopping:
        return cls(train.patience, train.min_epochs)

    def update(self, val: float, epoch: int) -> bool:
        """Record one validation; True when it is a new best."""
        if val < self.best_val:
            self.best_val, self.best_epoch = val, epoch
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        return epoch + 1 >= self.min_epochs and epoch - self.best_epoch >= self.patience

    def state_dict(self) -> dict[str, float | int]:
        """What a checkpoint keeps so that a resumed run stops where an uninterrupted one would."""
        return {"best_val": self.best_val, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_val, self.best_epoch = float(state["best_val"]), int(state["best_epoch"])


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


class Objective(nn.Module):
    """``alpha * (L_task + backbone terms) + (1 - alpha) * L_distill`` for one batch."""

    def __init__(
        self,
        task: Task,
        teacher: BlendModel | None = None,
        distiller: nn.Module | None = None,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        self.task = task
        self.teacher = teacher
        self.distiller = distiller
        self.alpha = alpha if teacher is not None else 1.0

    def forward(self, model: BlendModel, batch: Any, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        inputs = self.task.inputs(batch, generator)
        teacher_out = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_out = self.teacher(inputs)
        return self.terms(model(inputs), batch, inputs, teacher_out)

    def terms(
        self, out: ModelOutput, batch: Any, inputs: Any, teacher_out: ModelOutput | None
    ) -> dict[str, torch.Tensor]:
        """The named loss terms, and their combination under ``"loss"``, for given outputs."""
        terms = {"task": self.task.loss(out, batch, inputs), **{k: v.float() for k, v in out.losses.items()}}
        total = sum(terms.values())
        if teacher_out is not None and self.distiller is not None:
            terms["distill"] = self.distiller(out, teacher_out)
            total = self.alpha * total + (1.0 - self.alpha) * terms["distill"]
        terms["loss"] = total
        return terms


def add_terms(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor]) -> None:
    """Add one step's loss terms to running per-term sums, on the device (no host sync)."""
    for name, value in terms.items():
        value = value.detach().float()
        sums[name] = sums[name] + value if name in sums else value.clone()


def epoch_records(
    epoch: int, val: torch.Tensor, sums: dict[str, torch.Tensor], steps: int, lr: float, started: float,
) -> list[dict[str, float]]:
    """The epoch's record for each model (``val`` and the sums: scalars, or one entry per model).

    ``train_<term>`` is the mean of each loss term over the epoch's steps (``train_loss``
    their combination); everything is read from the device at once: the epoch's one host sync.
    """
    val = val.detach().float().reshape(-1)
    names = list(sums)
    rows = torch.stack([val, *(sums[n].reshape(-1).expand_as(val) / max(steps, 1) for n in names)]).tolist()
    seconds = time.perf_counter() - started
    records = []
    for k in range(len(rows[0])):
        record = {"epoch": epoch, "train_loss": math.nan, "val_loss": rows[0][k], "lr": lr, "seconds": seconds}
        record.update({f"train_{n}": row[k] for n, row in zip(names, rows[1:])})
        records.append(record)
    return records


def check_finite(role: str, record: dict[str, float], train: TrainConfig) -> None:
    """Stop a role whose validation loss is NaN or infinite: its weights are no longer a model.

    Read from the epoch's record (already on the host): no extra device sync.
    """
    val = record["val_loss"]
    if not math.isfinite(val):
        from blend_core.errors import TrainingDiverged

        raise TrainingDiverged(
            f"{role}: validation loss is {val} at epoch {int(record['epoch'])}: training diverged; "
            f"lower train.lr (now {train.lr:g}) and start again with a new --out"
        )


def format_record(role: str, record: dict[str, float]) -> str:
    """One log line for an epoch record."""
    cells = " ".join(f"{k}={v:.5g}" for k, v in record.items() if k != "epoch")
    return f"{role} epoch {int(record['epoch'])}: {cells}"


#: what an interrupted role's checkpoint holds; all of it tensors, numbers, lists and dicts
RESUME_KEYS = ("model", "distiller", "optimizer", "scheduler", "generator", "epoch", "best_val",
               "best_epoch", "best_state", "history")


def _global_rng() -> dict[str, Any]:
    """torch's global generator states (dropout uses them), as tensors: a resumed run draws what an
    uninterrupted one would."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_rng(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def validation_loss(model: BlendModel, task: Task, train: TrainConfig, device: torch.device) -> torch.Tensor:
    """Mean task loss on ``val`` with fixed masks, so that epochs are comparable."""
    was_training = model.training
    model.eval()
    gen = make_generator(device, train.seed + 1)
    total = torch.zeros((), device=device)
    count = 0
    with autocast(device, train.precision, model):
        for batch in task.batches("val", train.batch_size, None):
            inputs = task.inputs(batch, gen)
            total += task.loss(model(inputs), batch, inputs).float() * len(batch)
            count += len(batch)
    model.train(was_training)
    return total / max(count, 1)


def fit(
    model: BlendModel,
    task: Task,
    train: TrainConfig,
    device: torch.device,
    *,
    role: str,
    objective: Objective,
    checkpoint: Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    score: Callable[[BlendModel], float] | None = None,
) -> FitResult:
    """Train with AdamW, warm-up + cosine, clipping and early stopping on validation loss.

    ``score`` (``train.monitor: score``): a validation score, higher is better, computed on each
    validation epoch (``record["val_score"]``); early stopping and the kept weights then follow
    it instead of the loss, and ``FitResult.best_val`` is minus the best score.

    Resumes from ``checkpoint`` when it exists; saves it every ``checkpoint_every`` epochs.
    Losses stay on the device; the host reads them once per validation. ``on_epoch``
    receives each validation epoch's record (see ``epoch_records``), e.g. for tracking.
    """
    trainable = [p for p in list(model.parameters()) + list(objective.parameters()) if p.requires_grad]
    trainable = list({id(p): p for p in trainable}.values())
    opt = make_optimizer(trainable, train, device)
    sched = make_scheduler(opt, task, train)
    gen = make_generator(device, train.seed)
    stopper = EarlyStopping.for_training(train)
    start_epoch, history = 0, []
    best_state = _state_copy(model)
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, device, required=RESUME_KEYS)  # data only: no code runs
        model.load_state_dict(state["model"])
        if objective.distiller is not None:
            objective.distiller.load_state_dict(state["distiller"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"].cpu() if device.type == "cpu" else state["generator"])
        _set_global_rng(state.get("global_rng"))  # dropout draws from torch's global generators
        start_epoch = state["epoch"] + 1
        stopper.load_state_dict(state)
        best_state, history = state["best_state"], state["history"]
        log.info("%s: resuming at epoch %d", role, start_epoch)

    def save(epoch: int) -> None:
        if checkpoint is None:
            return
        save_torch(checkpoint, {
            "model": model.state_dict(),  # the frozen teacher has its own checkpoint: not saved again
            "distiller": objective.distiller.state_dict() if objective.distiller is not None else None,
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "generator": gen.get_state(), "epoch": epoch, **stopper.state_dict(),
            "best_state": best_state, "history": history,
            "global_rng": _global_rng(),
        })

    precision = resolve_precision(device, train.precision, model)
    log.info("%s: precision %s (train.precision: %s)", role, precision, train.precision)
    bar = make_progress(role, train.max_epochs, start_epoch, train.progress, train.progress_seconds)
    model.train()
    epoch = start_epoch - 1
    for epoch in range(start_epoch, train.max_epochs):
        started = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for batch in task.batches("train", train.batch_size, gen):
            with autocast(device, precision):
                terms = objective(model, batch, gen)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, train.grad_clip, foreach=True)
            opt.step()
            sched.step()
            add_terms(sums, terms)
            steps += 1
        if (epoch + 1) % train.eval_every and epoch + 1 != train.max_epochs:
            bar.update(epoch)
            if (epoch + 1) % train.checkpoint_every == 0:  # not only on evaluation epochs
                save(epoch)
            continue
        val_loss = validation_loss(model, task, train, device)
        (record,) = epoch_records(epoch, val_loss, sums, steps, opt.param_groups[0]["lr"], started)
        if score is not None:
            record["val_score"] = float(score(model))
        val = -record["val_score"] if score is not None else record["val_loss"]
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if not math.isfinite(val):
            log.info("%s", format_record(role, record))
            bar.close()
            check_finite(role, record, train)  # raises; the last checkpoint stays the one before
        if stopper.update(val, epoch):
            best_state = _state_copy(model)
        bar.update(epoch, loss=record["train_loss"], val=val, best=stopper.best_val)
        log.info("%s", format_record(role, record))
        if (epoch + 1) % train.checkpoint_every == 0:
            save(epoch)
        if stopper.should_stop(epoch):
            log.info("%s: early stop at epoch %d (best %d)", role, epoch, stopper.best_epoch)
            break
    bar.close()
    save(epoch)
    log.info("%s: best val %s %.5f at epoch %d", role, "score" if score is not None else "loss",
             -stopper.best_val if score is not None else stopper.best_val, stopper.best_epoch)
    return FitResult(
        best_state=best_state, best_val=stopper.best_val, best_epoch=stopper.best_epoch,
        epochs_run=epoch + 1, history=history,
    )

