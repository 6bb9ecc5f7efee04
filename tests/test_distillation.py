"""Distillation losses: definitions, and that feature distillation reaches hidden layers."""

from __future__ import annotations


import pytest
import torch

from blend_core.backbones.ndt import NDTConfig, build_ndt
from blend_core.distillation import (
    CorrelationLoss, FeatureLoss, HardLoss, PoissonKLLoss, SoftLoss, WeightedSum, pearson_matrix,
)
from blend_core.errors import BlendError
from blend_core.model import FeatureDims, ModelDims, ModelOutput


def out(log_rates, features=()):
    return ModelOutput(log_rates=log_rates, features=tuple(features))


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 7, 5, generator=g)
    t = torch.randn(3, 7, 5, generator=g)
    return s, t


def test_hard_is_mse(pair):
    s, t = pair
    assert torch.isclose(HardLoss()(out(s), out(t)), ((s - t) ** 2).mean())


def test_soft_matches_tempered_kl(pair):
    s, t = pair
    tau = 2.0
    p_t = torch.softmax(t / tau, -1)
    expected = tau**2 * (p_t * (torch.log(p_t) - torch.log_softmax(s / tau, -1))).sum(-1).mean()
    assert torch.isclose(SoftLoss(tau)(out(s), out(t)), expected)
    assert SoftLoss(tau)(out(t), out(t)).abs() < 1e-6


def test_poisson_kl_is_zero_iff_equal_and_positive_otherwise(pair):
    s, t = pair
    assert PoissonKLLoss()(out(t), out(t)).abs() < 1e-6
    lt, ls = t.exp(), s.exp()
    expected = (lt * torch.log(lt / ls) - lt + ls).mean()
    assert torch.isclose(PoissonKLLoss()(out(s), out(t)), expected, atol=1e-6)


def test_pearson_matrix_matches_numpy(pair):
    import numpy as np

    s, _ = pair
    c = pearson_matrix(s)
    for trial in range(s.shape[0]):
        ref = np.corrcoef(s[trial].numpy().T)
        assert np.allclose(c[trial].numpy(), ref, atol=1e-5)


def test_correlation_is_hard_plus_matrix_mse(pair):
    s, t = pair
    corr = ((pearson_matrix(s.exp()) - pearson_matrix(t.exp())) ** 2).mean()
    total = CorrelationLoss(0.5)(out(s), out(t))
    assert torch.isclose(total, ((s - t) ** 2).mean() + 0.5 * corr)


def test_feature_loss_projects_where_widths_differ():
    loss = FeatureLoss(FeatureDims(student=(4, 4, 6), teacher=(8, 6)), layers=None)
    assert loss.pairs == [(1, 0), (2, 1)]
    assert isinstance(loss.projections[0], torch.nn.Linear) and isinstance(loss.projections[1], torch.nn.Identity)
    with pytest.raises(BlendError, match="distillation.layers: layer 5 out of range"):
        FeatureLoss(FeatureDims(student=(4,), teacher=(4,)), layers=(5,))


def test_weighted_sum(pair):
    s, t = pair
    combined = WeightedSum([HardLoss(), PoissonKLLoss()], [0.5, 2.0])(out(s), out(t))
    assert torch.isclose(combined, 0.5 * HardLoss()(out(s), out(t)) + 2.0 * PoissonKLLoss()(out(s), out(t)))


def test_feature_distillation_reaches_the_students_hidden_layers():
    """The reference code's 'feature' loss silently equalled 'hard'; ours must move hidden layers.

    With identical log-rates but different features the loss must be non-zero and its
    gradient must reach the student's first layer; 'hard' gives that layer no gradient.
    """
    torch.manual_seed(0)
    dims = ModelDims(input_dim=6, output_dim=6, seq_len=5)
    student = build_ndt(NDTConfig(num_layers=3, d_model=8, ffn_dim=8, dropout=0.0, dropout_embedding=0.0), dims)
    teacher = build_ndt(NDTConfig(num_layers=2, d_model=16, ffn_dim=8, dropout=0.0, dropout_embedding=0.0), dims)
    x = torch.rand(2, 5, 6)
    s_out, t_out = student(x), teacher(x)
    t_out = ModelOutput(log_rates=s_out.log_rates.detach(), features=tuple(f.detach() for f in t_out.features))
    loss = FeatureLoss(FeatureDims(student=student.feature_dims, teacher=teacher.feature_dims), None)
    value = loss(s_out, t_out)
    assert value > 0
    value.backward()
    first = student.layers[0].qkv.weight.grad
    assert first is not None and first.abs().sum() > 0
    student.zero_grad()
    s_out = student(x)
    HardLoss()(s_out, t_out).backward()
    assert student.layers[0].qkv.weight.grad.abs().sum() == 0
