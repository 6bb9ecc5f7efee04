"""Turning a validated config into data, a task and models: what a run, ``predict`` and benchmarks share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from blend_core.config import Config
from blend_core.distillation import WeightedSum
from blend_core.errors import DataError
from blend_core.model import BlendModel, FeatureDims, fused_dims
from blend_core.registry import Registry
from blend_core.task import Task
from blend_core.training import Objective


@attrs.define(kw_only=True)
class RunResult:
    """Everything a run produced; handed to ``blend_run_finished`` hooks.

    ``source`` is the data source that loaded ``data``, so that a plugin can reach
    its own files (e.g. to write benchmark submissions) without global state.
    """

    config: Config
    out_dir: Path
    source: Any
    data: Any
    task: Task
    models: dict[str, BlendModel]
    metrics: dict[str, dict[str, Any]]
    predictions: dict[str, dict[str, np.ndarray]]


def load_data(config: Config, registry: Registry) -> tuple[Any, Any]:
    """The configured data source and what it loaded."""
    source = registry.get("data source", config.data.type).build(config.data.options)
    return source, source.load()


def build_task(config: Config, registry: Registry, data: Any, device: torch.device) -> Task:
    if config.task is not None:
        comp, options = registry.get("task", config.task.type, "task.type"), config.task.options
    else:
        comp = registry.get("task", data.task, "data.type")
        options = comp.config_cls()
    return comp.build(options, data, device)


def build_model(config: Config, registry: Registry, task: Task, *, privileged: bool) -> BlendModel:
    encoder = None
    if privileged:
        if task.behavior_dim == 0:
            raise DataError(f"data.type {config.data.type!r}: no behavior in the data; the teacher needs it")
        sel = config.privileged.encoder
        encoder = registry.get("encoder", sel.type, "privileged.type").build(sel.options, task.behavior_dim)
    dims = fused_dims(task.dims, encoder, config.privileged.fusion)
    backbone = registry.get("backbone", config.backbone.type, "backbone.type").build(config.backbone.options, dims)
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

    Only the teacher sees behavior; only the student has a teacher to distil from.
    """
    torch.manual_seed(config.train.seed)
    model = build_model(config, registry, task, privileged=role == "teacher").to(device)
    if role != "student":
        return model, Objective(task)
    distiller = build_distiller(config, registry, model, teacher).to(device)
    return model, Objective(task, teacher, distiller, config.distillation.alpha)
