"""Distillation losses between a student's and a frozen teacher's outputs (method.md §4).

``log_rates`` are compared over all bins and neurons; ``features`` layer by layer.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import blend_core.validators as v
from blend_core.errors import ConfigError
from blend_core.model import FeatureDims, ModelOutput


@attrs.frozen(kw_only=True)
class HardConfig:
    pass


@attrs.frozen(kw_only=True)
class SoftConfig:
    temperature: float = attrs.field(default=2.0, validator=v.positive_finite())


@attrs.frozen(kw_only=True)
class PoissonKLConfig:
    pass


@attrs.frozen(kw_only=True)
class FeatureConfig:
    #: layer indices to match (negative counts from the last); None pairs the last min(Ls, Lt) layers
    layers: tuple[int, ...] | None = None


@attrs.frozen(kw_only=True)
class CorrelationConfig:
    corr_weight: float = attrs.field(default=1.0, validator=v.non_negative_finite())


def _rates(out: ModelOutput) -> torch.Tensor:
    return out.log_rates.float()


class HardLoss(nn.Module):
    """MSE between log-rates."""

    def forward(self, student: ModelOutput, teacher: ModelOutput) -> torch.Tensor:
        return F.mse_loss(_rates(student), _rates(teacher))


class SoftLoss(nn.Module):
    """Temperature-scaled KL over the neuron axis, as in Hinton et al."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.tau = temperature

    def forward(self, student: ModelOutput, teacher: ModelOutput) -> torch.Tensor:
        t = F.log_softmax(_rates(teacher) / self.tau, dim=-1)
        s = F.log_softmax(_rates(student) / self.tau, dim=-1)
        kl = (t.exp() * (t - s)).sum(-1)
        return self.tau**2 * kl.mean()


class PoissonKLLoss(nn.Module):
    """KL(Poisson(λ_T) ‖ Poisson(λ_S)) per bin and neuron: the rate-space analogue of soft."""

    def forward(self, student: ModelOutput, teacher: ModelOutput) -> torch.Tensor:
        rs, rt = _rates(student), _rates(teacher)
        lt = rt.exp()
        return (lt * (rt - rs) - lt + rs.exp()).mean()


class FeatureLoss(nn.Module):
    """Σ_l MSE(P_l(h_S^l), h_T^l) with learned projections where widths differ."""

    def __init__(self, dims: FeatureDims, layers: tuple[int, ...] | None) -> None:
        super().__init__()
        ns, nt = len(dims.student), len(dims.teacher)
        if ns == 0 or nt == 0:
            raise ConfigError(["distillation.type: 'feature' needs backbones that expose features "
                               f"(student {ns}, teacher {nt} feature layers)"])
        if layers is None:
            n = min(ns, nt)
            pairs = [(ns - n + i, nt - n + i) for i in range(n)]
        else:
            pairs = []
            for layer in layers:
                if not (-ns <= layer < ns and -nt <= layer < nt):
                    raise ConfigError([f"distillation.layers: layer {layer} out of range "
                                       f"({ns} student, {nt} teacher feature layers)"])
                pairs.append((layer % ns, layer % nt))
        self.pairs = pairs
        self.projections = nn.ModuleList(
            nn.Identity() if dims.student[s] == dims.teacher[t] else nn.Linear(dims.student[s], dims.teacher[t])
            for s, t in pairs
        )

    def forward(self, student: ModelOutput, teacher: ModelOutput) -> torch.Tensor:
        total = student.log_rates.new_zeros((), dtype=torch.float32)
        for (s, t), proj in zip(self.pairs, self.projections):
            hs, ht = proj(student.features[s]).float(), teacher.features[t].float()
            if hs.shape != ht.shape:  # never broadcast: features of other layouts are not comparable
                raise ValueError(f"student feature {s} has shape {tuple(student.features[s].shape)} and teacher "
                                 f"feature {t} has shape {tuple(ht.shape)}; only the last (width) axis may differ")
            total = total + F.mse_loss(hs, ht)
        return total


def pearson_matrix(rates: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-trial neuron × neuron Pearson correlation over time: (trials, N, N)."""
    centered = rates - rates.mean(dim=1, keepdim=True)
    cov = centered.transpose(1, 2) @ centered
    std = centered.pow(2).sum(dim=1).clamp_min(eps).sqrt()
    return cov / (std[:, :, None] * std[:, None, :])


class CorrelationLoss(nn.Module):
    """hard + MSE between the per-trial correlation matrices of the rates."""

    def __init__(self, corr_weight: float) -> None:
        super().__init__()
        self.corr_weight = corr_weight
        self.hard = HardLoss()

    def forward(self, student: ModelOutput, teacher: ModelOutput) -> torch.Tensor:
        cs = pearson_matrix(_rates(student).exp())
        ct = pearson_matrix(_rates(teacher).exp())
        return self.hard(student, teacher) + self.corr_weight * F.mse_loss(cs, ct)


def build_hard(config: HardConfig, dims: FeatureDims) -> HardLoss:
    return HardLoss()


def build_soft(config: SoftConfig, dims: FeatureDims) -> SoftLoss:
    return SoftLoss(config.temperature)


def build_poisson_kl(config: PoissonKLConfig, dims: FeatureDims) -> PoissonKLLoss:
    return PoissonKLLoss()


def build_feature(config: FeatureConfig, dims: FeatureDims) -> FeatureLoss:
    return FeatureLoss(dims, config.layers)


def build_correlation(config: CorrelationConfig, dims: FeatureDims) -> CorrelationLoss:
    return CorrelationLoss(config.corr_weight)


class WeightedSum(nn.Module):
    """Several distillation losses combined with weights, as one module."""

    def __init__(self, losses: list[nn.Module], weights: list[float]) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)
        self.weights = list(weights)

    def forward(self, student: ModelOutput, teacher: ModelOutput) -> torch.Tensor:
        return sum(w * loss(student, teacher) for loss, w in zip(self.losses, self.weights))
