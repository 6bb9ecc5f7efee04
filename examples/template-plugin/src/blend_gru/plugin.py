"""A bidirectional GRU backbone, contributed to blend through the ``blend`` entry point."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from blend_core.api import POSITIVE_INT, PROBABILITY, ModelDims, ModelOutput, Register, hookimpl


@attrs.frozen(kw_only=True)
class GRUConfig:
    # validators from blend_core.api: a bad value is one line naming the key (backbone.dropout: ...)
    hidden_dim: int = attrs.field(default=64, validator=attrs.validators.ge(2))  # two directions of >= 1
    num_layers: int = attrs.field(default=2, validator=POSITIVE_INT)
    dropout: float = attrs.field(default=0.1, validator=PROBABILITY)


class GRUBackbone(nn.Module):
    def __init__(self, config: GRUConfig, dims: ModelDims) -> None:
        super().__init__()
        self.embed = nn.Linear(dims.input_dim, config.hidden_dim)
        # 'add' fusion: the teacher's encoded behavior arrives as ``context``.
        self.context = nn.Linear(dims.context_dim, config.hidden_dim) if dims.context_dim else None
        self.layers = nn.ModuleList(
            nn.GRU(config.hidden_dim, config.hidden_dim // 2, batch_first=True, bidirectional=True)
            for _ in range(config.num_layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.readout = nn.Linear(config.hidden_dim, dims.output_dim)
        self.feature_dims = (config.hidden_dim // 2 * 2,) * config.num_layers

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> ModelOutput:
        h = self.embed(x)
        if self.context is not None and context is not None:
            h = h + self.context(context)
        features = []
        for gru in self.layers:
            h = self.dropout(gru(h)[0])
            features.append(h)
        return ModelOutput(log_rates=self.readout(h), features=tuple(features))


@hookimpl
def blend_add_backbones(register: Register) -> None:
    register("gru", GRUConfig, GRUBackbone, "bidirectional GRU over time bins (template plugin)")
