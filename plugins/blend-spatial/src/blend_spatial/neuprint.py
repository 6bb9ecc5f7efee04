"""A NeuPRINT-style backbone (Mi et al., NeurIPS 2023): one time-invariant embedding per neuron.

An implicit dynamical model predicts a neuron's activity at each next frame from

- its own past activity (``x[..., :activity_dim]``),
- permutation-invariant population inputs at the predicted frame (``population``:
  leave-one-out population mean/std, neighbours' mean/std within a radius) —
  for a teacher with ``fusion: concat`` the encoded behavior arrives as the
  remaining columns of ``x`` and joins the population inputs; with ``fusion:
  add`` it arrives as ``context`` and a learned projection of it is added to
  the population pathway,
- and the neuron's embedding ``e_i`` (a row of a learned table indexed by
  ``neuron``), which gates the population pathway per feature
  (``pop ⊙ (1 + G e_i)``, so that neurons can differ in their coupling to
  the population and to behavior) and shifts the input.

A causal sequence model runs over the window: a GRU (fastest on CPUs at these
sizes), a dilated temporal convolution (``tcn``) or a transformer. Returns
``ModelOutput(log_rates=predicted activity (B, W, 1), features=(e_i (B, E),
hidden (B, W, H)))``: the embedding is ``features[0]``, which the
neuron-identity task reads and which feature distillation can match.
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from torch import nn

from blend_core.api import ModelDims, ModelOutput


@attrs.frozen(kw_only=True)
class NeuPRINTConfig:
    embedding_dim: int = 16
    hidden_dim: int = 64
    num_layers: int = 1
    model: Literal["gru", "tcn", "transformer"] = "gru"  #: the causal sequence model over the window
    kernel_size: int = 3  #: tcn only; layer l has dilation 2**l
    num_heads: int = 2  #: transformer only
    dropout: float = 0.1
    embedding_init: float = 0.1  #: standard deviation of the initial embeddings
    #: embeddings are stored divided by this factor and multiplied back in forward: under Adam(W) it
    #: multiplies their learning rate, as each row is updated only by its own neuron's windows
    embedding_lr_scale: float = 10.0


class CausalTCN(nn.Module):
    """Residual stack of causal dilated 1-d convolutions over time: ``(B, W, H) -> (B, W, H)``."""

    def __init__(self, width: int, num_layers: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.pads = [(kernel_size - 1) * 2**i for i in range(num_layers)]
        self.convs = nn.ModuleList(
            nn.Conv1d(width, width, kernel_size, dilation=2**i) for i in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for pad, conv, norm in zip(self.pads, self.convs, self.norms):
            z = norm(h).transpose(1, 2)
            z = conv(nn.functional.pad(z, (pad, 0))).transpose(1, 2)
            h = h + self.dropout(nn.functional.gelu(z))
        return h


class NeuPRINT(nn.Module):
    def __init__(self, config: NeuPRINTConfig, dims: ModelDims) -> None:
        super().__init__()
        missing = [k for k in ("n_neurons", "population_dim", "activity_dim") if k not in dims.extra]
        if missing:
            raise ValueError(f"backbone 'neuprint' needs the neuron_identity task (its dims lack {', '.join(missing)})")
        if config.model == "transformer" and config.hidden_dim % config.num_heads:
            raise ValueError(f"backbone.hidden_dim ({config.hidden_dim}) must be divisible by num_heads ({config.num_heads})")
        H, E = config.hidden_dim, config.embedding_dim
        self.activity_dim = dims.extra["activity_dim"]
        fused = dims.input_dim - self.activity_dim  # behavior concatenated by a 'concat' teacher
        self.embedding = nn.Embedding(dims.extra["n_neurons"], E)
        self.embedding_scale = config.embedding_lr_scale
        nn.init.normal_(self.embedding.weight, std=config.embedding_init / config.embedding_lr_scale)
        self.own = nn.Linear(self.activity_dim, H)
        self.population = nn.Linear(dims.extra["population_dim"] + fused, H)
        self.context = nn.Linear(dims.context_dim, H) if dims.context_dim else None
        self.gate = nn.Linear(E, H)
        self.shift = nn.Linear(E, H)
        self.kind = config.model
        if config.model == "tcn":
            self.seq = CausalTCN(H, config.num_layers, config.kernel_size, config.dropout)
        elif config.model == "gru":
            self.seq = nn.GRU(H, H, num_layers=config.num_layers, batch_first=True,
                              dropout=config.dropout if config.num_layers > 1 else 0.0)
        else:
            self.positions = nn.Parameter(torch.zeros(dims.seq_len, H))
            layer = nn.TransformerEncoderLayer(H, config.num_heads, 2 * H, config.dropout, batch_first=True,
                                               norm_first=True, activation="gelu")
            self.seq = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
            self.register_buffer("causal", torch.triu(torch.full((dims.seq_len, dims.seq_len), float("-inf")), 1),
                                 persistent=False)
        self.dropout = nn.Dropout(config.dropout)
        self.readout = nn.Linear(H, dims.output_dim)
        self.residual = dims.output_dim == self.activity_dim
        self.feature_dims = (E, H)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, *,
        neuron: torch.Tensor, population: torch.Tensor,
    ) -> ModelOutput:
        e = self.embedding(neuron) * self.embedding_scale  # (B, E)
        own, fused = x[..., : self.activity_dim], x[..., self.activity_dim :]
        pop = self.population(torch.cat([population.to(x.dtype), fused], dim=-1))
        if self.context is not None and context is not None:
            pop = pop + self.context(context.to(x.dtype))
        h = self.own(own) + pop * (1 + self.gate(e))[:, None] + self.shift(e)[:, None]
        h = self.dropout(torch.nn.functional.gelu(h))
        if self.kind == "tcn":
            hidden = self.seq(h)
        elif self.kind == "gru":
            hidden = self.seq(h)[0]
        else:
            W = h.shape[1]
            hidden = self.seq(h + self.positions[:W], mask=self.causal[:W, :W], is_causal=True)
        # the change from the last observed frame: extrapolates to amplitudes unseen in training
        predicted = own + self.readout(self.dropout(hidden)) if self.residual else self.readout(self.dropout(hidden))
        return ModelOutput(log_rates=predicted, features=(e, hidden))


def build_neuprint(config: NeuPRINTConfig, dims: ModelDims) -> NeuPRINT:
    return NeuPRINT(config, dims)
