"""Many models of one shape trained at once in one process (issue 5).

K models that share an architecture (different seeds, distillation losses or
alphas) are trained as one: their parameters are stacked along a new leading
dimension (``torch.func.stack_module_state``) and one ``vmap`` of
``functional_call`` runs all K forwards, so a small model fills the device.
The optimiser is one AdamW over the stacked tensors: AdamW is elementwise, so
this is exactly K independent AdamWs. Gradient clipping uses each model's own
norm, and early stopping keeps each model's own best epoch and state.

Batches are shared by default: every model sees the same batch order and the
same masks (one generator seeded with ``train.seed``), which is what a sweep over
losses or alphas wants and lets the teacher run once per batch. Pass ``seeds``
to give model ``k`` the batch order and masks that :func:`blend_core.training.fit`
would draw with ``train.seed = seeds[k]``; with dropout off, ``fit_many`` then
reproduces K separate ``fit`` runs up to float rounding. Dropout draws differ
from a sequential run (``vmap(randomness="different")``).

Not supported here (use ``fit``): checkpoint/resume and ``train.compile``.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from blend_core.config import TrainConfig
from blend_core.errors import BlendError
from blend_core.model import BlendModel, Inputs, ModelOutput
from blend_core.task import Task
from blend_core.training import (
    EarlyStopping, FitResult, Objective, add_terms, autocast, check_finite, epoch_records, format_record,
    make_generator, make_optimizer, make_scheduler,
)

log = logging.getLogger("blend")


def _signature(model: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()]


class StackedModels:
    """K same-shaped modules as stacked tensors, called with one ``vmap``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        first = _signature(models[0])
        for i, m in enumerate(models[1:], 1):
            if _signature(m) != first:
                raise ValueError(f"model {i} does not have the shapes of model 0; fit_many needs one architecture")
        self.k = len(models)
        self.params, self.buffers = stack_module_state(list(models))
        self.base = copy.deepcopy(models[0]).to("meta")
        self.keys = list(models[0].state_dict())

    def __call__(self, x: torch.Tensor, behavior: torch.Tensor | None, extra: dict[str, Any], *,
                 batched_inputs: bool, training: bool):
        """Forward all K models; returns log_rates (K, ...), features and losses stacked on dim 0."""
        self.base.train(training)

        def one(params, buffers, x, behavior):
            out: ModelOutput = functional_call(self.base, (params, buffers), (Inputs(x=x, behavior=behavior, extra=extra),))
            return out.log_rates, tuple(out.features), dict(out.losses)

        d = 0 if batched_inputs else None
        return vmap(one, in_dims=(0, 0, d, d), randomness="different")(self.params, self.buffers, x, behavior)

    def state(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k``'s state dict (detached copies), keyed like the original module's."""
        both = {**self.params, **self.buffers}
        return {name: both[name][k].detach().clone() for name in self.keys if name in both}

    @torch.no_grad()
    def write_back(self, models: Sequence[nn.Module]) -> None:
        for k, model in enumerate(models):
            model.load_state_dict(self.state(k), strict=False)


def _split(stacked: tuple[torch.Tensor, tuple[torch.Tensor, ...], dict[str, torch.Tensor]], k: int) -> ModelOutput:
    log_rates, features, losses = stacked
    return ModelOutput(
        log_rates=log_rates[k], features=tuple(f[k] for f in features),
        losses={n: v[k] for n, v in losses.items()},
    )


class _Batches:
    """Per step, the batch and inputs of each model: one shared draw, or one per seed."""

    def __init__(self, task: Task, k: int) -> None:
        self.task, self.k = task, k

    def steps(self, split: str, batch_size: int, shuffle: bool, gens: list[torch.Generator]):
        """Yield (batches, inputs, x, behavior, batched) per step; one generator: shared by all models."""
        orders = [self.task.batches(split, batch_size, g if shuffle else None) for g in gens]
        for batches in zip(*orders):
            inputs = [self.task.inputs(b, g) for b, g in zip(batches, gens)]
            if len(inputs) > 1 and any(i.extra for i in inputs):
                raise BlendError("--at-once: this task passes extra inputs per model, which cannot be stacked yet; run the seeds one by one")
            if len(inputs) == 1:
                yield [batches[0]] * self.k, [inputs[0]] * self.k, inputs[0].x, inputs[0].behavior, False
            else:
                x = torch.stack([i.x for i in inputs])
                beh = torch.stack([i.behavior for i in inputs]) if inputs[0].behavior is not None else None
                yield list(batches), inputs, x, beh, True


def _teacher_outputs(objectives: Sequence[Objective], teachers: StackedModels | None, inputs: list[Inputs],
                     x: torch.Tensor, behavior: torch.Tensor | None, batched: bool) -> list[ModelOutput | None]:
    k = len(objectives)
    if objectives[0].teacher is None:
        return [None] * k
    with torch.no_grad():
        if teachers is None:  # one teacher for all
            teacher = objectives[0].teacher
            if not batched:
                return [teacher(inputs[0])] * k
            stacked = vmap(lambda x, b: _unpack(teacher(Inputs(x=x, behavior=b, extra=inputs[0].extra))),
                           in_dims=(0, 0 if behavior is not None else None), randomness="different")(x, behavior)
        else:
            stacked = teachers(x, behavior, inputs[0].extra, batched_inputs=batched, training=False)
    return [_split(stacked, i) for i in range(k)]


def _unpack(out: ModelOutput):
    return out.log_rates, tuple(out.features), dict(out.losses)


def fit_many(
    models: Sequence[BlendModel],
    task: Task,
    train: TrainConfig,
    device: torch.device,
    *,
    role: str,
    objectives: Sequence[Objective],
    seeds: Sequence[int] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | Sequence[Callable[[dict[str, float]], None]] | None = None,
    score: Callable[[BlendModel], float] | None = None,
) -> list[FitResult]:
    """Train ``models`` at once as :func:`blend_core.training.fit` trains one; one FitResult each.

    ``on_epoch`` receives each model's record of each validation epoch (until that model
    stops early): ``on_epoch(k, record)``, or a list with one ``callback(record)`` per model.

    ``objectives[k]`` is model ``k``'s objective (its task must be ``task``; teachers,
    distillers and alphas may differ, teachers are frozen). ``seeds``: per-model data
    order and masks (see the module docstring); by default all models share
    ``train.seed``'s. The final (last-epoch) weights are written back into ``models``.
    ``score``: as in ``fit`` (``train.monitor: score``), each model scored on its own.
    """
    k = len(models)
    if k == 0 or len(objectives) != k:
        raise ValueError(f"fit_many: {k} models and {len(objectives)} objectives; expected the same number, > 0")
    if seeds is not None and len(seeds) != k:
        raise ValueError(f"fit_many: {len(seeds)} seeds for {k} models")
    if on_epoch is not None and not callable(on_epoch) and len(on_epoch) != k:
        raise ValueError(f"fit_many: {len(on_epoch)} on_epoch callbacks for {k} models")
    has_teacher = [o.teacher is not None for o in objectives]
    if any(has_teacher) and not all(has_teacher):
        raise ValueError("fit_many: either every objective has a teacher or none has")
    teachers = None
    if all(has_teacher) and len({id(o.teacher) for o in objectives}) > 1:
        teachers = StackedModels([o.teacher for o in objectives])
        for p in list(teachers.params.values()):
            p.requires_grad_(False)
    for model in models:
        model.train()
    stack = StackedModels(models)
    teacher_ids = {id(p) for o in objectives if o.teacher is not None for p in o.teacher.parameters()}
    extras = [
        list({id(p): p for p in o.parameters() if p.requires_grad and id(p) not in teacher_ids}.values())
        for o in objectives
    ]
    stacked_params = list(stack.params.values())
    opt = make_optimizer(stacked_params + [p for ps in extras for p in ps], train, device)
    sched = make_scheduler(opt, task, train)
    seed_list = list(seeds) if seeds is not None and len(set(seeds)) > 1 else [train.seed if seeds is None else seeds[0]]
    gens = [make_generator(device, s) for s in seed_list]
    data = _Batches(task, k)

    stoppers = [EarlyStopping.for_training(train) for _ in range(k)]
    best_state = [stack.state(i) for i in range(k)]
    history: list[list[dict[str, float]]] = [[] for _ in range(k)]
    stopped = [False] * k
    epochs_run = [0] * k
    epoch = -1
    for epoch in range(train.max_epochs):
        started = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for batches, inputs, x, behavior, batched in data.steps("train", train.batch_size, True, gens):
            with autocast(device, train.precision):
                outs = stack(x, behavior, inputs[0].extra, batched_inputs=batched, training=True)
                teacher_outs = _teacher_outputs(objectives, teachers, inputs, x, behavior, batched)
                terms = [
                    objectives[i].terms(_split(outs, i), batches[i], inputs[i], teacher_outs[i]) for i in range(k)
                ]
            opt.zero_grad(set_to_none=True)
            losses = torch.stack([t["loss"] for t in terms])
            losses.sum().backward()
            if train.grad_clip > 0:
                _clip_per_model(stacked_params, extras, train.grad_clip, k)
            opt.step()
            sched.step()
            add_terms(sums, {name: torch.stack([t[name] for t in terms]) for name in terms[0]})
            steps += 1
        if (epoch + 1) % train.eval_every and epoch + 1 != train.max_epochs:
            continue
        val_loss = _validation(stack, objectives, data, train, device, seed_list)
        records = epoch_records(epoch, val_loss, sums, steps, opt.param_groups[0]["lr"], started)
        if score is not None:  # each model's current weights, scored by the task
            stack.write_back(models)
            for model, record in zip(models, records):
                record["val_score"] = float(score(model))
        vals = [-r["val_score"] if score is not None else r["val_loss"] for r in records]
        for i in range(k):
            if stopped[i]:
                continue
            record = records[i]
            history[i].append(record)
            log.info("%s", format_record(f"{role}[{i}]", record))
            if callable(on_epoch):
                on_epoch(i, record)
            elif on_epoch is not None:
                on_epoch[i](record)
            check_finite(f"{role} (seed {seeds[i]})" if seeds is not None else f"{role}[{i}]", record, train)
            if stoppers[i].update(vals[i], epoch):
                best_state[i] = stack.state(i)
            if stoppers[i].should_stop(epoch):
                stopped[i], epochs_run[i] = True, epoch + 1
                log.info("%s[%d]: early stop at epoch %d (best %d)", role, i, epoch, stoppers[i].best_epoch)
        if all(stopped):
            break
    for i in range(k):
        if not stopped[i]:
            epochs_run[i] = epoch + 1
    stack.write_back(models)
    log.info("%s: %d models, best val losses %s", role, k, ", ".join(f"{s.best_val:.5f}" for s in stoppers))
    return [
        FitResult(best_state=best_state[i], best_val=stoppers[i].best_val, best_epoch=stoppers[i].best_epoch,
                  epochs_run=epochs_run[i], history=history[i])
        for i in range(k)
    ]


@torch.no_grad()
def _clip_per_model(stacked: list[torch.Tensor], extras: list[list[torch.Tensor]], max_norm: float, k: int) -> None:
    """``clip_grad_norm_`` applied to each model's gradients separately."""
    grads = [p.grad for p in stacked if p.grad is not None]
    sq = torch.zeros(k, device=grads[0].device if grads else "cpu", dtype=torch.float32)
    for g in grads:
        sq += g.float().pow(2).flatten(1).sum(1)
    for i, ps in enumerate(extras):
        for p in ps:
            if p.grad is not None:
                sq[i] += p.grad.float().pow(2).sum()
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))).to(g.dtype))
    for i, ps in enumerate(extras):
        for p in ps:
            if p.grad is not None:
                p.grad.mul_(coef[i].to(p.grad.dtype))


@torch.no_grad()
def _validation(stack: StackedModels, objectives: Sequence[Objective], data: _Batches, train: TrainConfig,
                device: torch.device, seeds: list[int]) -> torch.Tensor:
    """Each model's ``training.validation_loss``: mean task loss on ``val`` with fixed masks."""
    k = stack.k
    gens = [make_generator(device, s + 1) for s in seeds]
    total = torch.zeros(k, device=device)
    count = 0
    with autocast(device, train.precision):
        for batches, inputs, x, behavior, batched in data.steps("val", train.batch_size, False, gens):
            outs = stack(x, behavior, inputs[0].extra, batched_inputs=batched, training=False)
            total += torch.stack([
                objectives[i].task.loss(_split(outs, i), batches[i], inputs[i]).float() for i in range(k)
            ]) * len(batches[0])
            count += len(batches[0])
    return total / max(count, 1)
