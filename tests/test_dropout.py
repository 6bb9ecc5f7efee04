"""Cheap dropout masks (issue 21): the rate, independence, the expectation, determinism, fallbacks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from blend_core.dropout import Dropout, applied_rate, dropout, keep_mask

N = 1 << 20


def _sigma(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.3, 0.5, 0.9])
def test_the_drop_rate_is_p_within_sampling_error(p):
    torch.manual_seed(1)
    dropped = ~keep_mask((N,), p)
    assert abs(applied_rate(p) - p) <= 2**-17
    assert dropped.float().mean().item() == pytest.approx(p, abs=5 * _sigma(p, N))
    # each of the four 16-bit fields of a random word on its own, not only on average
    by_field = dropped.view(-1, 4).float().mean(0)
    assert torch.allclose(by_field, torch.full((4,), p), atol=5 * _sigma(p, N // 4))


@pytest.mark.parametrize("p", [0.1, 0.3])
@pytest.mark.parametrize("lag", [1, 2, 3, 4, 5])
def test_masks_of_neighbouring_elements_are_independent(p, lag):
    """P(both dropped) = p^2 for elements sharing a random word (lag < 4) and across words."""
    torch.manual_seed(2)
    dropped = ~keep_mask((N,), p)
    a, b = dropped[:-lag], dropped[lag:]
    both = (a & b).float().mean().item()
    rate = dropped.float().mean().item()
    assert both == pytest.approx(rate * rate, abs=5 * _sigma(p * p, N))


def test_a_biased_mask_would_fail_the_rate_test():
    """The tolerance above is tight enough to see a rate off by 1%: the test can fail."""
    torch.manual_seed(1)
    dropped = ~keep_mask((N,), 0.31)
    assert dropped.float().mean().item() != pytest.approx(0.3, abs=5 * _sigma(0.3, N))


def test_kept_elements_are_scaled_so_the_expectation_is_unchanged():
    torch.manual_seed(3)
    x = torch.ones(N)
    out = dropout(x, 0.3)
    kept = out != 0
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - applied_rate(0.3))))
    assert out.mean().item() == pytest.approx(1.0, abs=5 * _sigma(0.3, N) / 0.7)


def test_gradient_flows_through_kept_elements_only():
    torch.manual_seed(4)
    x = torch.randn(64, 33, requires_grad=True)
    out = dropout(x, 0.5)
    out.sum().backward()
    scale = 1 / (1 - applied_rate(0.5))
    torch.testing.assert_close(x.grad, (out != 0).float() * scale)


def test_masks_are_fixed_by_the_seed_and_by_the_global_generator_state():
    x = torch.randn(1000)
    torch.manual_seed(5)
    first = dropout(x, 0.3)
    state = torch.get_rng_state()
    second = dropout(x, 0.3)
    torch.manual_seed(5)
    assert torch.equal(dropout(x, 0.3), first)
    torch.set_rng_state(state)  # what a resumed run restores
    assert torch.equal(dropout(x, 0.3), second)
    assert not torch.equal(first, second)


def test_module_is_identity_in_eval_and_at_zero_and_validates_p():
    x = torch.randn(10, 10)
    module = Dropout(0.5).eval()
    assert module(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


def test_any_shape_and_dtype():
    torch.manual_seed(6)
    for shape in [(7,), (3, 5, 7), (2, 1, 3)]:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.ones(shape, dtype=dtype)
            out = dropout(x, 0.2)
            assert out.shape == x.shape and out.dtype == dtype


def test_under_vmap_it_falls_back_to_torch_dropout():
    x = torch.ones(3, 4096)
    out = torch.func.vmap(lambda row: dropout(row, 0.5), randomness="different")(x)
    assert out.shape == x.shape
    assert not torch.equal(out[0], out[1])  # each model its own mask
    assert (out == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)


def test_same_rate_as_torch_dropout():
    torch.manual_seed(7)
    x = torch.ones(N)
    ours = (dropout(x, 0.3) == 0).float().mean().item()
    theirs = (F.dropout(x, 0.3) == 0).float().mean().item()
    assert ours == pytest.approx(theirs, abs=10 * _sigma(0.3, N))
