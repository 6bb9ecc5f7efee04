"""NDT's attention dropout is its own setting: 0 lets the CPU use the fused attention kernel."""

from __future__ import annotations

import pytest
import torch

from blend_core.backbones.ndt import NDT, NDTConfig
from blend_core.model import ModelDims

DIMS = ModelDims(input_dim=6, output_dim=8, seq_len=10)


def _outputs_differ(config: NDTConfig) -> bool:
    torch.manual_seed(0)
    model = NDT(config, DIMS).train()
    x = torch.rand(3, 10, 6)
    return not torch.equal(model(x).log_rates, model(x).log_rates)


def test_attention_dropout_is_wired_separately():
    base = dict(num_layers=1, d_model=8, ffn_dim=8, dropout=0.0, dropout_embedding=0.0)
    assert _outputs_differ(NDTConfig(**base, dropout_attention=0.5))
    assert not _outputs_differ(NDTConfig(**base, dropout_attention=0.0))
    assert not _outputs_differ(NDTConfig(**base))  # None: the same as dropout (0 here)


def test_attention_dropout_defaults_to_dropout():
    model = NDT(NDTConfig(num_layers=1, d_model=8, ffn_dim=8, dropout=0.25), DIMS)
    assert model.layers[0].attn_dropout == 0.25
    model = NDT(NDTConfig(num_layers=1, d_model=8, ffn_dim=8, dropout=0.25, dropout_attention=0.0), DIMS)
    assert model.layers[0].attn_dropout == 0.0


def test_attention_dropout_is_validated():
    with pytest.raises(ValueError, match="dropout_attention"):
        NDTConfig(dropout_attention=1.5)
