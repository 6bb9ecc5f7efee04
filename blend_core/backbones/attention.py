"""Self-attention over time bins for the transformer backbones, cheap on CPU.

Three ways to compute the same ``softmax(q k^T / sqrt(d) + mask) v``, picked by
what the call needs (issue 21):

* no attention dropout, no useful band: ``F.scaled_dot_product_attention``, which
  on CPU is a fused (flash) kernel;
* attention dropout: the product written out, with the softmax in fp32 and
  dropout masks from :mod:`blend_core.dropout`. torch's own path for dropout on
  CPU is its unfused "math" kernel, which clones q/k/v and draws a ``bernoulli_``
  per weight; this does neither;
* a local window (``context_forward`` and ``context_backward`` both set, and
  narrow against the trial): *banded*. Queries are cut into blocks of ``block``
  bins, and each block attends only to the ``block + forward + backward`` keys its
  window can reach, so scores cost ``T * (block + forward + backward)`` instead of
  ``T * T``. Keys outside a query's window get zero weight either way, so this is
  the same function as full attention under the window's mask (the same values up
  to float rounding, dropout aside: here dropout draws only the in-window weights,
  the only ones that are not zero).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from blend_core.dropout import dropout as cheap_dropout


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


def band_block(length: int, forward: int, backward: int) -> int | None:
    """Query-block size for banded attention, or None where full attention is as cheap.

    A block of ``b`` queries scores ``b + forward + backward`` keys; blocks near the
    window's width keep the wasted (masked) scores to about half while the matmuls
    stay large enough to run at speed.
    """
    span = forward + backward
    block = max(8, span)
    if 2 * (block + span) > length:
        return None
    return block


def band_mask(length: int, block: int, forward: int, backward: int, device: torch.device) -> torch.Tensor:
    """``(blocks, block, block + forward + backward)`` booleans: True where query may attend key.

    Row ``r`` of block ``j`` is query ``j * block + r``; column ``c`` is key
    ``j * block - backward + c``. Keys past either end of the trial are padding and
    never attended, except by padding queries (past the end), whose outputs are
    discarded but must stay finite.
    """
    blocks = -(-length // block)
    width = block + forward + backward
    r = torch.arange(block, device=device)[:, None]
    c = torch.arange(width, device=device)[None, :]
    in_window = (c >= r) & (c <= r + forward + backward)  # key - query in [-backward, forward]
    query = torch.arange(blocks, device=device)[:, None, None] * block + r
    key = query - r - backward + c
    real_key = (key >= 0) & (key < length)
    return in_window & (real_key | (query >= length))


def banded_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, forward: int, backward: int, block: int, dropout_p: float,
) -> torch.Tensor:
    """Attention of each bin to the keys within ``[-backward, +forward]`` bins of it.

    ``q, k, v``: ``(..., length, head_dim)``; returns ``(..., length, head_dim)``.
    """
    *lead, length, dim = q.shape
    blocks = -(-length // block)
    extra = blocks * block - length
    span = forward + backward  # <= block (band_block): a block's keys are its own and the next block's first `span`
    mask = band_mask(length, block, forward, backward, q.device)
    qb = F.pad(q, (0, 0, 0, extra)).reshape(*lead, blocks, block, dim)

    def windows(x: torch.Tensor) -> torch.Tensor:  # (..., blocks, block + span, dim), contiguous
        xb = F.pad(x, (0, 0, backward, extra + block - backward)).reshape(*lead, blocks + 1, block, dim)
        return torch.cat([xb[..., :-1, :, :], xb[..., 1:, :span, :]], dim=-2)

    kb, vb = windows(k), windows(v)
    if dropout_p == 0.0:
        out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask)
    else:
        out = _explicit(qb, kb.transpose(-1, -2), vb, mask, dropout_p)
    return out.reshape(*lead, blocks * block, dim)[..., :length, :]


def _explicit(
    q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout_p: float
) -> torch.Tensor:
    """``dropout(softmax(q k_t / sqrt(d) + mask)) v``, the softmax in fp32 at least; ``k_t`` is ``k`` transposed."""
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k_t
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
    weights = cheap_dropout(weights, dropout_p, True)
    return weights.to(v.dtype) @ v


def self_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    forward: int | None = None,
    backward: int | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Attention of ``q`` over ``k, v`` (``(..., length, head_dim)``) within an optional local window.

    ``dropout_p`` is applied to the attention weights (pass 0 in evaluation).
    """
    length = q.shape[-2]
    block = band_block(length, forward, backward) if forward is not None and backward is not None else None
    if block is not None:
        return banded_attention(q, k, v, forward, backward, block, dropout_p)
    mask = local_context_mask(length, forward, backward, q.device)
    if dropout_p == 0.0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return _explicit(q, k.transpose(-1, -2), v, mask, dropout_p)
