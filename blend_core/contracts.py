"""Contracts checked where they are used: a dry run of every built model before training.

``blend run`` (before the run directory exists) and ``blend validate`` build the
teacher, the student (with its distillation losses) and the baseline, run one
forward each on a tiny batch of the task, and check what the components
promise: ``log_rates`` of shape ``(batch, dims.seq_len, dims.output_dim)`` and
the input's dtype, ``features`` matching ``feature_dims``, finite values, and
distillation losses that can compare this teacher with this student. A broken
contract is one line naming the config section, the component and the plugin
(with its distribution version) that registered it.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from blend_core.build import backbone_selection, build_distiller, build_model
from blend_core.roles import role as role_record
from blend_core.config import Config
from blend_core.errors import BlendError, ConfigError
from blend_core.model import BlendModel, Inputs, ModelOutput
from blend_core.registry import Registry
from blend_core.selection import monitor_score
from blend_core.task import Task

#: trials in the dry-run batch
DRY_RUN_BATCH = 8


class ContractError(BlendError):
    """A component breaks its contract: what it returned is not what the task and the trainer need."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_output(out: Any, model: BlendModel, inputs: Inputs, task: Task) -> str | None:
    """What is wrong with one backbone output for this task's batch, or None."""
    if not isinstance(out, ModelOutput):
        return f"forward returned {type(out).__name__}, expected ModelOutput"
    rates = out.log_rates
    if not isinstance(rates, torch.Tensor):
        return f"log_rates is a {type(rates).__name__}, expected a tensor"
    n = inputs.x.shape[0]
    expected = (n, task.dims.seq_len, task.dims.output_dim)
    if _shape(rates) != expected:
        return f"log_rates has shape {_shape(rates)}, expected {expected}"
    if rates.dtype != inputs.x.dtype:
        return f"log_rates has dtype {rates.dtype}, expected {inputs.x.dtype} (the input's)"
    if not bool(torch.isfinite(rates).all()):
        return "log_rates contain NaN or inf"
    dims = getattr(model.backbone, "feature_dims", None)
    if dims is None:
        return "the module has no `feature_dims` attribute"
    dims = tuple(dims)
    if not all(isinstance(w, int) and w > 0 for w in dims):
        return f"feature_dims must be positive ints, got {dims!r}"
    features = tuple(out.features)
    if len(features) != len(dims):
        return f"{len(features)} features returned, but feature_dims has {len(dims)} entries"
    for i, (feat, width) in enumerate(zip(features, dims)):
        shape = _shape(feat)
        if shape[:1] != (n,) or shape[-1:] != (width,):
            return f"features[{i}] has shape {shape}, expected ({n}, ..., {width}) from feature_dims"
        if len(shape) == 3 and shape[1] != task.dims.seq_len:
            return f"features[{i}] has shape {shape}, expected {task.dims.seq_len} bins"
        if not bool(torch.isfinite(feat).all()):
            return f"features[{i}] contain NaN or inf"
    for name, value in out.losses.items():
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            return f"loss term {name!r} is not a 0-dim tensor"
        if not bool(torch.isfinite(value)):
            return f"loss term {name!r} is {value.item()}"
    return None


def dry_batch(task: Task) -> tuple[Any, Inputs]:
    """A tiny unshuffled, unmasked batch of the task's training split."""
    batch = next(iter(task.batches("train", DRY_RUN_BATCH, None)), None)
    if batch is None:
        raise ContractError("task: no training batch for the dry run (an empty training split?)")
    return batch, task.inputs(batch, None)


def _role_output(
    role: str, config: Config, registry: Registry, task: Task, inputs: Inputs, device: torch.device,
) -> tuple[BlendModel, ModelOutput]:
    sel, section = backbone_selection(config, role)
    label = _label(section, registry.get("backbone", sel.type, f"{section}.type"), registry)
    try:
        model = build_model(config, registry, task, privileged=role_record(role).privileged).to(device).eval()
    except BlendError:
        raise
    except Exception as exc:
        raise ContractError(f"{label}: building the {role} failed: {_first_line(exc)}") from exc
    try:
        with torch.no_grad():
            out = model(inputs)
    except Exception as exc:
        raise ContractError(f"{label}: the {role}'s forward failed on a batch of the task "
                            f"(x {_shape(inputs.x)}): {_first_line(exc)}") from exc
    problem = check_output(out, model, inputs, task)
    if problem:
        raise ContractError(f"{label}: {problem}")
    return model, out


def _label(section: str, comp: Any, registry: Registry) -> str:
    """``backbone 'tcn' (blend-tcn 0.2.0)``: the config section, the component, who registered it."""
    return f"{section} '{comp.name}' ({registry.origin(comp.plugin)})"


def check_losses_meaningful(config: Config, task: Task) -> None:
    """Refuse distillation losses that the task declares meaningless (``task.refused_losses``)."""
    refused = dict(getattr(task, "refused_losses", None) or {})
    problems = [
        f"distillation.losses.{i}.type: {w.loss.type!r} is refused by this task: {refused[w.loss.type]}"
        for i, w in enumerate(config.distillation.losses) if w.loss.type in refused
    ]
    if problems:
        raise ConfigError(problems)


def check_pair(
    config: Config, registry: Registry, student: BlendModel, teacher: BlendModel,
    student_out: ModelOutput, teacher_out: ModelOutput, device: torch.device,
) -> None:
    """Every distillation loss can be built for this pair and gives a finite scalar on the dry batch."""
    for i, w in enumerate(config.distillation.losses):
        path = f"distillation.losses.{i}"
        label = _label(path, registry.get("distillation loss", w.loss.type, f"{path}.type"), registry)
        pair = (f"student backbone {config.backbone.type!r} and "
                f"teacher backbone {backbone_selection(config, 'teacher')[0].type!r}")
        single = attrs.evolve(config, distillation=attrs.evolve(config.distillation, losses=(w,)))
        try:
            loss = build_distiller(single, registry, student, teacher).to(device)
            with torch.no_grad():
                value = loss(student_out, teacher_out)
        except BlendError:
            raise
        except Exception as exc:
            raise ContractError(f"{label}: cannot compare {pair}: {_first_line(exc)}") from exc
        if not isinstance(value, torch.Tensor) or value.dim() != 0 or not bool(torch.isfinite(value)):
            raise ContractError(f"{label}: gives {value!r} for {pair}, expected a finite scalar")


def check_run(config: Config, registry: Registry, task: Task, device: torch.device) -> None:
    """The dry run: refused losses, then teacher, student (and its losses) and baseline on a tiny batch.

    Leaves torch's global random state as it found it, so that training is unchanged.
    """
    check_losses_meaningful(config, task)
    monitor_score(task, config.train)  # train.monitor: score needs a task that scores its validation split
    state = torch.random.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        _, inputs = dry_batch(task)
        # the baseline is built exactly like the student (without a teacher): checking the student covers it
        teacher, t_out = _role_output("teacher", config, registry, task, inputs, device)
        student, s_out = _role_output("student", config, registry, task, inputs, device)
        check_pair(config, registry, student, teacher, s_out, t_out, device)
    finally:
        torch.random.set_rng_state(state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
