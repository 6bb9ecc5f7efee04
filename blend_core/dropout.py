"""Dropout whose masks cost a quarter of a random draw per element on CPU.

``nn.Dropout`` on CPU draws one ``bernoulli_`` value per element (about 7 ns each
here), which made dropout masks the largest single cost of an NDT training step
(issue 21). This module draws 64-bit random words instead and cuts each into four
16-bit fields: one word gives four independent masks, and each mask is one integer
comparison. An element is dropped when its field falls below ``round(p * 2**16)``,
so the rate actually applied is that over ``2**16`` (within ``8e-6`` of ``p``),
and kept elements are scaled by ``1 / (1 - rate)``: the expectation is exact for
the applied rate.

The words come from torch's global generator, as ``nn.Dropout``'s do, so
``torch.manual_seed`` fixes the masks and a resumed run that restores the global
generator state (``training.fit``) draws what an uninterrupted run would. On
other devices (CUDA's fused dropout is already cheap) and under ``vmap`` (whose
per-model randomness the in-place draw does not support), it is ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_FIELD_BITS = 16
_LEVELS = 1 << _FIELD_BITS
_FIELDS_PER_WORD = 64 // _FIELD_BITS


def applied_rate(p: float) -> float:
    """The drop probability a mask for ``p`` really has: ``p`` rounded to a multiple of ``2**-16``."""
    return round(p * _LEVELS) / _LEVELS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean mask of ``shape``, each element False (dropped) with probability ``applied_rate(p)``.

    Elements are independent: each reads its own 16-bit field of a uniform 64-bit word.
    """
    n = 1
    for size in shape:
        n *= size
    words = torch.empty(-(-n // _FIELDS_PER_WORD), dtype=torch.int64, device=device)
    words.random_(-(2**63), None)  # the full 64-bit range: every bit uniform
    fields = words.view(torch.int16)[:n].view(shape)  # uniform on [-2**15, 2**15)
    return fields >= round(p * _LEVELS) - 2**15


def _is_batched(x: torch.Tensor) -> bool:
    """True inside ``torch.func.vmap`` (its tensors are wrappers without storage)."""
    return torch._C._functorch.is_batchedtensor(x)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with cheap masks on CPU (see the module docstring)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or _is_batched(x) or p >= 1.0:
        return F.dropout(x, p, training)
    rate = applied_rate(p)
    scale = keep_mask(x.shape, p, x.device).to(x.dtype).mul_(1.0 / (1.0 - rate))
    return x * scale


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` (same ``p``, same train/eval behaviour) with cheap CPU masks."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
