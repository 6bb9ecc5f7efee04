"""Spatiotemporal NDT (Le & Shlizerman, NeurIPS 2022): NDT plus attention across neurons.

Each layer is an NDT layer over time followed by a *spatial* block. The spatial
block treats every input channel (neuron) as a token whose features are its
activity over the trial, computes a neuron x neuron attention matrix ``A`` from
those tokens, and mixes the neuron axis of the temporal stream with it::

    h  = h + Drop(TemporalMHA(LN(h)))          # attention across time bins
    h  = h + Drop(FFN(LN(h)))
    A  = mean_heads softmax(Q_s K_s^T / sqrt(d_s)),  Q_s, K_s from LN_s(s)  # (neurons, neurons)
    z  = h + Drop(LN(h) A^T)                    # z[t, n] = h[t, n] + sum_m A[n, m] LN(h)[t, m]
    z  = z + Drop(FFN_s(LN(z)))

``s``, the spatial tokens, are a linear embedding over time of the input's
neurons plus a learned per-neuron embedding in the first layer and the previous
layer's output, transposed, afterwards. As in STNDT, the width of the residual
stream is the number of input channels (``dims.input_dim``: held-in neurons,
the zeroed held-out neurons, and concatenated behavior for a 'concat' teacher),
so spatial attention really mixes neurons. The spatial weights are applied with
fused attention: ``A @ V`` with ``V`` the temporal stream transposed.

Differences from the reference code: learnable positions (as our NDT) instead
of sinusoidal ones, no embedding scale, no contrastive loss, and per-head
attention widths of ``width / num_heads`` rounded up to a multiple of 8 (so any
neuron count works with any head count).
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from blend_core.backbones.attention import self_attention
from blend_core.dropout import Dropout
import blend_core.validators as v
from blend_core.model import ModelDims, ModelOutput

_positive = v.POSITIVE_INT
_probability = v.PROBABILITY


@attrs.frozen(kw_only=True)
class STNDTConfig:
    """Defaults follow the STNDT MC_Maze config (4 layers, 2 heads, FFN 128, pre-norm)."""

    num_layers: int = attrs.field(default=4, validator=_positive)
    num_heads: int = attrs.field(default=2, validator=_positive)
    ffn_dim: int = attrs.field(default=128, validator=_positive)  #: hidden width of both FFNs
    dropout: float = attrs.field(default=0.3, validator=_probability)
    dropout_embedding: float = attrs.field(default=0.2, validator=_probability)
    dropout_rates: float = attrs.field(default=0.2, validator=_probability)  #: before the readout
    #: bins a step may attend ahead (None: unlimited)
    context_forward: int | None = attrs.field(default=None, validator=attrs.validators.optional(v.NON_NEGATIVE))
    #: bins a step may attend behind (None: unlimited)
    context_backward: int | None = attrs.field(default=None, validator=attrs.validators.optional(v.NON_NEGATIVE))


def _ffn(width: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, width))


def _head_dim(width: int, heads: int) -> int:
    """``width / heads`` rounded up to a multiple of 8 (any width works; fused kernels like it)."""
    return 8 * math.ceil(width / (8 * heads))


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(batch, length, heads * d)`` -> ``(batch, heads, length, d)``."""
    batch, length, _ = x.shape
    return x.reshape(batch, length, num_heads, -1).transpose(1, 2)


class STLayer(nn.Module):
    """One STNDT layer: temporal self-attention + FFN, then neuron mixing by spatial attention + FFN."""

    def __init__(self, width: int, seq_len: int, config: STNDTConfig) -> None:
        super().__init__()
        heads = config.num_heads
        self.num_heads = heads
        inner_t = heads * _head_dim(width, heads)  # temporal attention width
        inner_s = heads * _head_dim(seq_len, heads)  # spatial query/key width
        # temporal block: tokens are time bins, features are the `width` channels
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * inner_t)
        self.proj = nn.Linear(inner_t, width)
        self.norm2 = nn.LayerNorm(width)
        self.ffn = _ffn(width, config.ffn_dim, config.dropout)
        # spatial block: tokens are channels, features are their `seq_len` bins
        self.spatial_norm = nn.LayerNorm(seq_len)
        self.spatial_qk = nn.Linear(seq_len, 2 * inner_s)
        self.mix_norm = nn.LayerNorm(width)
        self.norm3 = nn.LayerNorm(width)
        self.spatial_ffn = _ffn(width, config.ffn_dim, config.dropout)
        self.dropout = Dropout(config.dropout)
        self.attn_dropout = config.dropout
        self.context_forward, self.context_backward = config.context_forward, config.context_backward

    def temporal(self, h: torch.Tensor) -> torch.Tensor:
        q, k, v = (_split_heads(t, self.num_heads) for t in self.qkv(h).chunk(3, dim=-1))
        out = self_attention(
            q, k, v, forward=self.context_forward, backward=self.context_backward,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )
        return self.proj(out.transpose(1, 2).flatten(2))

    def spatial_mix(self, spatial: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``A @ h^T`` with ``A`` the head-averaged attention among the tokens of ``spatial``.

        ``spatial``: ``(batch, channels, seq_len)``; ``h``: ``(batch, seq_len, channels)``.
        Averaging ``A_k @ V`` over heads equals applying the averaged weights, as in STNDT.
        """
        q, k = (_split_heads(t, self.num_heads) for t in self.spatial_qk(spatial).chunk(2, dim=-1))
        v = h.transpose(1, 2).unsqueeze(1).expand(-1, self.num_heads, -1, -1).contiguous()  # (B, heads, N, T)
        mixed = F.scaled_dot_product_attention(q, k, v).mean(dim=1)  # (B, N, T)
        return mixed.transpose(1, 2)

    def forward(self, h: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
        h = h + self.dropout(self.temporal(self.norm1(h)))
        h = h + self.dropout(self.ffn(self.norm2(h)))
        z = h + self.dropout(self.spatial_mix(self.spatial_norm(spatial), self.mix_norm(h)))
        return z + self.dropout(self.spatial_ffn(self.norm3(z)))


class STNDT(nn.Module):
    def __init__(self, config: STNDTConfig, dims: ModelDims) -> None:
        super().__init__()
        self.config = config
        self.seq_len = dims.seq_len
        width = dims.input_dim
        self.embed = nn.Linear(width, width)
        self.context = nn.Linear(dims.context_dim, width) if dims.context_dim else None
        self.positions = nn.Parameter(torch.zeros(1, dims.seq_len, width))
        self.spatial_embed = nn.Linear(dims.seq_len, dims.seq_len)
        self.neuron_embedding = nn.Parameter(torch.zeros(1, width, dims.seq_len))
        nn.init.normal_(self.positions, std=0.02)
        nn.init.normal_(self.neuron_embedding, std=0.02)
        self.embed_dropout = Dropout(config.dropout_embedding)
        self.layers = nn.ModuleList(STLayer(width, dims.seq_len, config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(width)
        self.rate_dropout = Dropout(config.dropout_rates)
        self.readout = nn.Linear(width, dims.output_dim)
        self.feature_dims = (width,) * config.num_layers

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> ModelOutput:
        if x.shape[1] != self.seq_len:
            raise ValueError(
                f"STNDT was built for {self.seq_len} bins (its spatial tokens are whole trials); got {x.shape[1]}"
            )
        h = self.embed(x) + self.positions
        if self.context is not None and context is not None:
            h = h + self.context(context.to(h.dtype))
        h = self.embed_dropout(h)
        spatial = self.embed_dropout(self.spatial_embed(x.transpose(1, 2)) + self.neuron_embedding)
        features = []
        for layer in self.layers:
            h = layer(h, spatial)
            spatial = h.transpose(1, 2)
            features.append(h)
        log_rates = self.readout(self.rate_dropout(self.norm(h)))
        return ModelOutput(log_rates=log_rates, features=tuple(features))


def build_stndt(config: STNDTConfig, dims: ModelDims) -> STNDT:
    return STNDT(config, dims)
