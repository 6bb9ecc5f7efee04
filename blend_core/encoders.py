"""Privileged-feature encoders E(b): how behavior is represented before fusion."""

from __future__ import annotations

import attrs
import torch
from torch import nn

import blend_core.validators as v


@attrs.frozen(kw_only=True)
class IdentityConfig:
    pass


@attrs.frozen(kw_only=True)
class LinearConfig:
    out_dim: int = attrs.field(default=16, validator=v.POSITIVE_INT)


@attrs.frozen(kw_only=True)
class MLPConfig:
    hidden_dim: int = attrs.field(default=64, validator=v.POSITIVE_INT)
    out_dim: int = attrs.field(default=16, validator=v.POSITIVE_INT)
    num_layers: int = attrs.field(default=2, validator=v.POSITIVE_INT)
    dropout: float = attrs.field(default=0.0, validator=v.PROBABILITY)


class Identity(nn.Module):
    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        return b


class Projection(nn.Module):
    """A learned map of behavior, linear or an MLP with GELU."""

    def __init__(self, dims: list[int], dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers += [nn.GELU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers)
        self.out_dim = dims[-1]

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        return self.net(b)


def build_identity(config: IdentityConfig, in_dim: int) -> Identity:
    return Identity(in_dim)


def build_linear(config: LinearConfig, in_dim: int) -> Projection:
    return Projection([in_dim, config.out_dim])


def build_mlp(config: MLPConfig, in_dim: int) -> Projection:
    if config.num_layers < 1:
        raise ValueError("privileged.num_layers must be >= 1")
    hidden = [config.hidden_dim] * (config.num_layers - 1)
    return Projection([in_dim, *hidden, config.out_dim], config.dropout)
