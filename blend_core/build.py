"""Turning a validated config into data, a task and models: what a run, ``predict`` and benchmarks share."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from blend_core.config import Config, Selected, structure
from blend_core.distillation import WeightedSum
from blend_core.errors import ConfigError, DataError, PluginError
from blend_core.model import BlendModel, FeatureDims, fused_dims
from blend_core.registry import Registry
from blend_core.results import RunResult  # noqa: F401  (where runner and older plugins import it)
from blend_core.roles import role as role_record
from blend_core.task import DataSource, Task
from blend_core.training import Objective


def load_data(config: Config, registry: Registry) -> tuple[Any, Any]:
    """The configured data source and what it loaded."""
    comp = registry.get("data source", config.data.type, "data.type")
    source = comp.build(config.data.options)
    if not isinstance(source, DataSource):
        raise PluginError(f"data {comp.label(registry)}: built a {type(source).__name__} without load(); "
                          "a data source needs load() -> data")
    return source, source.load()


def task_selection(config: Config, registry: Registry, data: Any) -> Selected:
    """The task to build: the configured one, or the one the data's class names (``data.task``),
    with the ``task:`` keys given without ``type:`` structured into that task's config."""
    if config.task is not None and config.task.type is not None:
        registry.get("task", config.task.type, "task.type")
        return config.task
    name = getattr(data, "task", None)
    if not isinstance(name, str):
        raise PluginError(f"data.type {config.data.type!r}: the loaded {type(data).__name__} names no task "
                          "(a class attribute `task`); give task.type in the config")
    comp = registry.get("task", name, "data.type")
    if config.task is None:
        return Selected(type=name, options=comp.config_cls())
    problems: list[str] = []
    options = structure(config.task.options, comp.config_cls, "task.", problems)
    if problems:
        raise ConfigError(problems)
    return Selected(type=name, options=options)


def resolve_task(config: Config, registry: Registry, data: Any) -> Config:
    """``config`` with a ``task:`` section given without ``type:`` resolved against the loaded data."""
    if config.task is None or config.task.type is not None:
        return config
    return attrs.evolve(config, task=task_selection(config, registry, data))


def build_task(config: Config, registry: Registry, data: Any, device: torch.device) -> Task:
    sel = task_selection(config, registry, data)
    comp = registry.get("task", sel.type, "task.type")
    task = comp.build(sel.options, data, device)
    if not isinstance(task, Task):
        missing = [m for m in ("dims", "behavior_dim", "batches", "inputs", "loss", "evaluate", "predict")
                   if not hasattr(task, m)]
        raise PluginError(f"{comp.label(registry)}: built a {type(task).__name__} that lacks "
                          f"{', '.join(missing)} of the Task protocol (blend_core.api.Task)")
    return task


def backbone_selection(config: Config, role: str) -> tuple[Selected, str]:
    """The backbone ``role`` uses and its config section: the teacher's own (``teacher:``) or ``backbone``."""
    if role_record(role).privileged and config.teacher is not None:
        return config.teacher, "teacher"
    return config.backbone, "backbone"


def build_model(config: Config, registry: Registry, task: Task, *, privileged: bool) -> BlendModel:
    encoder = None
    if privileged:
        if task.behavior_dim == 0:
            raise DataError(f"data.type {config.data.type!r}: no behavior in the data; the teacher needs it")
        sel = config.privileged.encoder
        encoder = registry.get("encoder", sel.type, "privileged.type").build(sel.options, task.behavior_dim)
    dims = fused_dims(task.dims, encoder, config.privileged.fusion)
    sel, section = backbone_selection(config, "teacher" if privileged else "student")
    backbone = registry.get("backbone", sel.type, f"{section}.type").build(sel.options, dims)
    return BlendModel(backbone, encoder, config.privileged.fusion)


def build_distiller(config: Config, registry: Registry, student: BlendModel, teacher: BlendModel) -> WeightedSum:
    dims = FeatureDims(student=student.feature_dims, teacher=teacher.feature_dims)
    losses, weights = [], []
    for i, w in enumerate(config.distillation.losses):
        comp = registry.get("distillation loss", w.loss.type, f"distillation.losses.{i}.type")
        losses.append(comp.build(w.loss.options, dims))
        weights.append(w.weight)
    return WeightedSum(losses, weights)


def build_role(
    role: str, config: Config, registry: Registry, task: Task, device: torch.device,
    teacher: BlendModel | None = None,
) -> tuple[BlendModel, Objective]:
    """A freshly initialised model for ``role`` (seeded by ``train.seed``) and its objective.

    The role's record says which model it is (the teacher's or the student's architecture) and
    whether it distils from a teacher (``blend_core.roles``). A blind control teacher's wrapper
    is ``blend_core.controls``'.
    """
    record = role_record(role)
    torch.manual_seed(config.train.seed)
    model = build_model(config, registry, task, privileged=record.privileged).to(device)
    if record.teacher is None:
        return model, Objective(task)
    distiller = build_distiller(config, registry, model, teacher).to(device)
    return model, Objective(task, teacher, distiller, config.distillation.alpha)
