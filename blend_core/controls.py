"""The self-distillation control (``controls: [self]``): is a student's gain the teacher's information?

A student distilled from a teacher can beat the baseline for two reasons: the teacher
saw behavior (privileged information), or the teacher's outputs are simply smoother
targets than spikes (self-distillation, "born-again" networks). The control separates
them with two more roles, trained exactly as the teacher and the student are:

- ``control_teacher``: the teacher's model (backbone, privileged encoder, fusion,
  initialisation and budget) given **zeros instead of behavior**, in training and in
  evaluation. Its architecture and parameter count are the teacher's; its encoder sees a
  constant, so it carries no information about the trial: a model of the spikes alone.
- ``control_student``: the student's model, initialised like the student and distilled
  from ``control_teacher`` with the same loss, alpha and budget.

``student - control_student`` is then the part of the gain that needs behavior;
``control_student - baseline`` the part that distillation gives without it.
"""

from __future__ import annotations

import attrs
import torch

from blend_core.build import build_role
from blend_core.config import Config
from blend_core.model import BlendModel, Inputs, ModelOutput
from blend_core.registry import Registry
from blend_core.roles import CONTROLS, MAIN
from blend_core.roles import role as role_record
from blend_core.task import Task
from blend_core.training import Objective

#: the roles each control adds, in training order (their records: ``blend_core.roles``)
CONTROL_ROLES = CONTROLS


class WithoutBehavior(BlendModel):
    """A teacher's model whose behavior input is replaced by zeros: same architecture, no information."""

    def forward(self, inputs: Inputs) -> ModelOutput:
        if inputs.behavior is not None:
            inputs = attrs.evolve(inputs, behavior=torch.zeros_like(inputs.behavior))
        return super().forward(inputs)


def roles(config: Config) -> tuple[str, ...]:
    """Every role a run trains: teacher, student, baseline, then the configured controls' roles."""
    extra = [role for control in config.controls for role in CONTROL_ROLES[control]]
    return (*MAIN, *extra)


def teacher_roles(config: Config) -> set[str]:
    """The roles others distil from: trained first, then frozen."""
    return {t for role in roles(config) if (t := teacher_of(role)) is not None}


def teacher_of(role: str) -> str | None:
    """The role that ``role`` distils from (None for a role trained without a teacher)."""
    return role_record(role).teacher


def build_any_role(
    role: str, config: Config, registry: Registry, task: Task, device: torch.device,
    teacher: BlendModel | None = None,
) -> tuple[BlendModel, Objective]:
    """``build.build_role``, with a blind role's model (the teacher's, shown no behavior) wrapped."""
    model, objective = build_role(role, config, registry, task, device, teacher)
    if role_record(role).blind:
        model = WithoutBehavior(model.backbone, model.encoder, model.fusion)
    return model, objective
