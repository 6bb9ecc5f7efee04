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


# ------------------------------------------------------------ banded and explicit attention (issue 21)

import torch.nn.functional as F  # noqa: E402

from blend_core.backbones.attention import (  # noqa: E402
    band_block, banded_attention, local_context_mask, self_attention,
)


def _qkv(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("length, forward, backward, block", [
    (180, 4, 8, 12), (180, 4, 8, 20), (50, 0, 5, 8), (50, 5, 0, 8), (37, 3, 3, 8), (45, 2, 9, 11), (9, 1, 1, 8),
])
def test_banded_attention_equals_masked_full_attention(length, forward, backward, block):
    q, k, v = _qkv((2, 3, length, 5))
    mask = local_context_mask(length, forward, backward, q.device)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    grads_want = torch.autograd.grad(want.square().sum(), (q, k, v))
    for p in (0.0, 1e-300):  # the fused kernel, and the explicit product (dropout that drops nothing)
        got = banded_attention(q, k, v, forward, backward, block, p)
        torch.testing.assert_close(got, want)
        for g, w in zip(torch.autograd.grad(got.square().sum(), (q, k, v)), grads_want):
            torch.testing.assert_close(g, w)


def test_band_is_used_only_when_the_window_is_narrow():
    assert band_block(180, 4, 8) == 12
    assert band_block(40, 4, 8) is None  # blocks as long as the trial: nothing saved
    assert band_block(45, 2, 9) == 11


@pytest.mark.parametrize("window", [(2, 3), (None, None), (None, 3)])
def test_attention_dropout_never_reaches_outside_the_window(window):
    """Keys outside a query's window have weight exactly 0, dropout or not (here: huge values there)."""
    forward, backward = window
    length = 64
    torch.manual_seed(0)
    q, k = torch.randn(2, 2, length, 8), torch.randn(2, 2, length, 8)
    v = torch.rand(2, 2, length, 8)
    v[..., 40:, :] = 1e6  # out of reach of queries 0..(39 - forward)
    reach = 40 - (forward or 0) if forward is not None else 0
    out = self_attention(q, k, v, forward=forward, backward=backward, dropout_p=0.3)
    scale = 1 / (1 - 0.3)
    assert (out[..., :reach, :] <= scale + 1e-4).all()
    assert not torch.equal(out, self_attention(q, k, v, forward=forward, backward=backward, dropout_p=0.3))


def test_attention_dropout_keeps_the_expected_output():
    """Averaged over many draws, attention with dropout equals attention without (up to sampling)."""
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 1, 30, 4) for _ in range(3))
    for forward, backward in [(2, 3), (None, None)]:
        want = self_attention(q, k, v, forward=forward, backward=backward)
        draws = torch.stack([self_attention(q, k, v, forward=forward, backward=backward, dropout_p=0.3)
                             for _ in range(2000)])
        torch.testing.assert_close(draws.mean(0), want, atol=0.08, rtol=0)


def test_ndt_with_a_local_window_matches_full_attention_in_eval():
    """The backbone's banded path gives the masked full-attention output (dropout off in eval)."""
    from blend_core.backbones import attention as attention_module

    cfg = NDTConfig(num_layers=2, d_model=8, ffn_dim=8, context_forward=1, context_backward=2)
    dims = ModelDims(input_dim=6, output_dim=8, seq_len=40)
    torch.manual_seed(0)
    model = NDT(cfg, dims).eval()
    x = torch.rand(3, 40, 6)
    assert attention_module.band_block(40, 1, 2) is not None
    banded = model(x).log_rates
    original = attention_module.band_block
    try:
        attention_module.band_block = lambda *a: None
        full = model(x).log_rates
    finally:
        attention_module.band_block = original
    torch.testing.assert_close(banded, full, rtol=1e-5, atol=1e-5)
