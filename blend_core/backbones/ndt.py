"""Neural Data Transformer (Ye & Pandarinath 2021): a transformer encoder over time bins."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import blend_core.validators as v
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
    #: dropout on attention weights (None: ``dropout``); 0 lets the CPU use its fused attention kernel (~2x faster attention)
    dropout_attention: float | None = attrs.field(default=None, validator=attrs.validators.optional(v.PROBABILITY))
    #: bins a step may attend ahead (None: unlimited)
    context_forward: int | None = attrs.field(default=None, validator=v.NON_NEGATIVE)
    #: bins a step may attend behind (None: unlimited)
    context_backward: int | None = attrs.field(default=None, validator=v.NON_NEGATIVE)

    def __attrs_post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise v.FieldError("num_heads", f"must divide d_model ({self.d_model}), got {self.num_heads}")


class TransformerLayer(nn.Module):
    """Pre-norm self-attention + feed-forward, with fused attention."""

    def __init__(
        self, d_model: int, num_heads: int, ffn_dim: int, dropout: float, attn_dropout: float | None = None,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"backbone.d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout if attn_dropout is None else attn_dropout

    def attend(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Multi-head self-attention over dim -2 of ``x`` (any leading batch dims)."""
        *lead, length, width = x.shape
        qkv = self.qkv(x).reshape(*lead, length, 3, self.num_heads, width // self.num_heads)
        q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)  # (..., heads, length, head_dim)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0
        )
        return self.proj(out.transpose(-3, -2).reshape(*lead, length, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attend(self.norm1(x), mask))
        return x + self.dropout(self.ffn(self.norm2(x)))


def local_context_mask(
    length: int, forward: int | None, backward: int | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean mask (True = may attend) limiting attention to a window around each bin."""
    if forward is None and backward is None:
        return None
    idx = torch.arange(length, device=device)
    offset = idx[None, :] - idx[:, None]  # key - query
    allowed = torch.ones(length, length, dtype=torch.bool, device=device)
    if forward is not None:
        allowed &= offset <= forward
    if backward is not None:
        allowed &= offset >= -backward
    return allowed


class NDT(nn.Module):
    def __init__(self, config: NDTConfig, dims: ModelDims) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed = nn.Linear(dims.input_dim, d)
        self.context = nn.Linear(dims.context_dim, d) if dims.context_dim else None
        self.positions = nn.Parameter(torch.zeros(1, dims.seq_len, d))
        nn.init.normal_(self.positions, std=0.02)
        self.embed_dropout = nn.Dropout(config.dropout_embedding)
        self.layers = nn.ModuleList(
            TransformerLayer(d, config.num_heads, config.ffn_dim, config.dropout, config.dropout_attention)
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
        mask = local_context_mask(
            x.shape[1], self.config.context_forward, self.config.context_backward, x.device
        )
        features = []
        for layer in self.layers:
            h = layer(h, mask)
            features.append(h)
        return ModelOutput(log_rates=self.readout(self.norm(h)), features=tuple(features))


def build_ndt(config: NDTConfig, dims: ModelDims) -> NDT:
    return NDT(config, dims)
