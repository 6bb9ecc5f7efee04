"""Neural Data Transformer (Ye & Pandarinath 2021): a transformer encoder over time bins."""

from __future__ import annotations

import attrs
import torch
from torch import nn

import blend_core.validators as v
from blend_core.backbones.attention import self_attention
from blend_core.dropout import Dropout
from blend_core.model import ModelDims, ModelOutput


@attrs.frozen(kw_only=True)
class NDTConfig:
    """Defaults follow the BLEND/NDT MC_Maze configs (method.md §3)."""

    num_layers: int = attrs.field(default=4, validator=v.POSITIVE_INT)
    num_heads: int = attrs.field(default=2, validator=v.POSITIVE_INT)
    d_model: int = attrs.field(default=128, validator=v.POSITIVE_INT)
    ffn_dim: int = attrs.field(default=128, validator=v.POSITIVE_INT)
    dropout: float = attrs.field(default=0.3, validator=v.PROBABILITY)
    dropout_embedding: float = attrs.field(default=0.2, validator=v.PROBABILITY)
    #: dropout on attention weights (None: ``dropout``); 0 lets the CPU use its fused attention kernel
    dropout_attention: float | None = attrs.field(default=None, validator=attrs.validators.optional(v.PROBABILITY))
    #: bins a step may attend ahead (None: unlimited)
    context_forward: int | None = attrs.field(default=None, validator=attrs.validators.optional(v.NON_NEGATIVE))
    #: bins a step may attend behind (None: unlimited)
    context_backward: int | None = attrs.field(default=None, validator=attrs.validators.optional(v.NON_NEGATIVE))

    def __attrs_post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise v.FieldError("num_heads", f"must divide d_model ({self.d_model}), got {self.num_heads}")


class TransformerLayer(nn.Module):
    """Pre-norm self-attention + feed-forward; attention within an optional local window.

    ``context_forward`` / ``context_backward``: bins a step may attend ahead / behind
    (None: unlimited); with both set, attention is banded (see ``backbones.attention``).
    """

    def __init__(
        self, d_model: int, num_heads: int, ffn_dim: int, dropout: float, attn_dropout: float | None = None,
        context_forward: int | None = None, context_backward: int | None = None,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"backbone.d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)  # output laid out (q|k|v, head, head_dim)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )
        self.dropout = Dropout(dropout)
        self.attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.context_forward, self.context_backward = context_forward, context_backward

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention over dim -2 of ``x`` (any leading batch dims).

        q, k and v are strided views of the one projection (no copy); the attention
        kernels read them as they are.
        """
        *lead, length, width = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(*lead, length, 3, heads, width // heads)
        q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)  # (..., heads, length, head_dim)
        out = self_attention(
            q, k, v, forward=self.context_forward, backward=self.context_backward,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )
        return self.proj(out.transpose(-3, -2).reshape(*lead, length, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attend(self.norm1(x)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class NDT(nn.Module):
    def __init__(self, config: NDTConfig, dims: ModelDims) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed = nn.Linear(dims.input_dim, d)
        self.context = nn.Linear(dims.context_dim, d) if dims.context_dim else None
        self.positions = nn.Parameter(torch.zeros(1, dims.seq_len, d))
        nn.init.normal_(self.positions, std=0.02)
        self.embed_dropout = Dropout(config.dropout_embedding)
        self.layers = nn.ModuleList(
            TransformerLayer(d, config.num_heads, config.ffn_dim, config.dropout, config.dropout_attention,
                             config.context_forward, config.context_backward)
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.readout = nn.Linear(d, dims.output_dim)
        self.feature_dims = (d,) * config.num_layers

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> ModelOutput:
        h = self.embed(x) + self.positions[:, : x.shape[1]]
        if self.context is not None and context is not None:
            h = h + self.context(context.to(h.dtype))
        h = self.embed_dropout(h)
        features = []
        for layer in self.layers:
            h = layer(h)
            features.append(h)
        with torch.autocast(h.device.type, enabled=False):  # log-rates (and so the loss) in fp32 under bf16
            log_rates = self.readout(self.norm(h.float()))
        return ModelOutput(log_rates=log_rates, features=tuple(features))


def build_ndt(config: NDTConfig, dims: ModelDims) -> NDT:
    return NDT(config, dims)
