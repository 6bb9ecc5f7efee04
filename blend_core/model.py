"""The model contract: what a backbone returns, and how behavior is fused into a teacher."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal, Mapping

import attrs
import torch
from torch import nn


@attrs.define(kw_only=True)
class ModelOutput:
    """What every backbone returns.

    ``log_rates``: the task's prediction (log-rates ``(trials, bins, neurons)`` for
    spiking tasks; predicted activity for the neuron-identity task); ``features``: per-layer hidden states used by feature
    distillation, each ``(..., width)``; ``losses``: extra named loss terms the
    backbone adds to the task loss (e.g. LFADS' KL terms).
    """

    log_rates: torch.Tensor
    features: tuple[torch.Tensor, ...] = ()
    # an immutable default, not a factory: torch.compile cannot trace attrs' factory defaults
    losses: Mapping[str, torch.Tensor] = attrs.field(default=MappingProxyType({}))


@attrs.frozen(kw_only=True)
class ModelDims:
    """Shapes a backbone is built for, as the task defines them."""

    input_dim: int  #: width of x (behavior already concatenated for 'concat' fusion)
    output_dim: int
    seq_len: int
    context_dim: int = 0  #: width of the additive context ('add' fusion), 0 if none
    extra: dict[str, Any] = attrs.field(factory=dict)  #: task-specific facts (e.g. number of neurons)


@attrs.frozen(kw_only=True)
class FeatureDims:
    """Feature widths of the student and teacher, for distillation losses with projections."""

    student: tuple[int, ...]
    teacher: tuple[int, ...]


@attrs.define(kw_only=True)
class Inputs:
    """One batch as the model sees it. ``behavior`` is read by a teacher only."""

    x: torch.Tensor
    behavior: torch.Tensor | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)  #: passed to the backbone as keyword arguments
    meta: dict[str, Any] = attrs.field(factory=dict)  #: for the task's loss only (e.g. loss masks)


class BlendModel(nn.Module):
    """A backbone, plus a privileged encoder and fusion for a teacher.

    A student or baseline has no encoder: its forward never reads ``inputs.behavior``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        encoder: nn.Module | None = None,
        fusion: Literal["concat", "add"] = "concat",
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.encoder = encoder
        self.fusion = fusion

    @property
    def privileged(self) -> bool:
        return self.encoder is not None

    @property
    def feature_dims(self) -> tuple[int, ...]:
        return tuple(self.backbone.feature_dims)

    def forward(self, inputs: Inputs) -> ModelOutput:
        x, context = inputs.x, None
        if self.encoder is not None:
            if inputs.behavior is None:
                raise ValueError("a teacher needs behavior in its inputs")
            encoded = self.encoder(inputs.behavior)
            if self.fusion == "concat":
                x = torch.cat([x, encoded.to(x.dtype)], dim=-1)
            else:
                context = encoded
        return self.backbone(x, context=context, **inputs.extra)


def fused_dims(base: ModelDims, encoder: nn.Module | None, fusion: str) -> ModelDims:
    """The dims a backbone gets once behavior of width ``encoder.out_dim`` is fused in."""
    if encoder is None:
        return base
    if fusion == "concat":
        return attrs.evolve(base, input_dim=base.input_dim + encoder.out_dim)
    return attrs.evolve(base, context_dim=encoder.out_dim)
