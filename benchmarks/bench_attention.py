"""One NDT attention block, forward + backward, at the CPU recipe's shape: where the CPU epoch goes.

Compares, interleaved in one process (so that a busy machine slows each alike),
``scaled_dot_product_attention`` on strided q/k/v views (blend before issue 21), a
contiguous copy of q/k/v, attention written out by hand, and blend's
``backbones.attention.self_attention`` (explicit product with cheap dropout masks, or
banded with ``--window``); each with attention dropout and without. Medians of CPU
time over ``--reps`` rounds of ``--inner`` calls; one thread.

    python benchmarks/bench_attention.py --json benchmarks/results/cpu-attention.json
    python benchmarks/bench_attention.py --batch 64 --d-model 182 --window 4,8   # MC_Maze, the reference's window
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from blend_core.backbones.attention import local_context_mask, self_attention  # noqa: E402


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--bins", type=int, default=180)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--inner", type=int, default=5)
    p.add_argument("--window", default=None, metavar="FORWARD,BACKWARD",
                   help="limit attention to a local window (NDT's context_forward/backward)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    forward, backward = (int(n) for n in args.window.split(",")) if args.window else (None, None)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    B, L, W, H = args.batch, args.bins, args.d_model, args.heads
    D = W // H
    x = torch.randn(B, L, W, requires_grad=True)
    qkv_proj, out_proj = torch.nn.Linear(W, 3 * W), torch.nn.Linear(W, W)

    mask = local_context_mask(L, forward, backward, x.device)

    def strided(x: torch.Tensor, p: float) -> torch.Tensor:  # blend's TransformerLayer.attend before issue 21
        q, k, v = qkv_proj(x).reshape(B, L, 3, H, D).movedim(-3, 0).transpose(-3, -2).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return out_proj(out.transpose(-3, -2).reshape(B, L, W))

    def contiguous(x: torch.Tensor, p: float) -> torch.Tensor:
        q, k, v = qkv_proj(x).view(B, L, 3, H, D).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return out_proj(out.transpose(1, 2).reshape(B, L, W))

    def by_hand(x: torch.Tensor, p: float) -> torch.Tensor:
        q, k, v = qkv_proj(x).view(B, L, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q * D ** -0.5) @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        a = F.dropout(torch.softmax(scores, dim=-1), p)
        return out_proj((a @ v).transpose(1, 2).reshape(B, L, W))

    def blend(x: torch.Tensor, p: float) -> torch.Tensor:  # blend_core.backbones.ndt.TransformerLayer.attend
        q, k, v = qkv_proj(x).reshape(B, L, 3, H, D).movedim(-3, 0).transpose(-3, -2).unbind(0)
        out = self_attention(q, k, v, forward=forward, backward=backward, dropout_p=p)
        return out_proj(out.transpose(-3, -2).reshape(B, L, W))

    variants = {"sdpa, strided q/k/v": strided, "sdpa, contiguous q/k/v": contiguous, "by hand": by_hand,
                "blend (backbones.attention)": blend}
    results = {}
    for p_drop in (0.3, 0.0):
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.reps):
            for name, fn in variants.items():
                start = time.process_time()
                for _ in range(args.inner):
                    fn(x, p_drop).sum().backward()
                times[name].append((time.process_time() - start) / args.inner)
        results[f"dropout {p_drop}"] = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"attention dropout {p_drop}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in results[f'dropout {p_drop}'].items()))
    report = {"torch_version": torch.__version__,
              "shape": {"batch": B, "bins": L, "d_model": W, "heads": H, "window": args.window},
              "median_cpu_ms_forward_backward": results, "reps": args.reps, "inner": args.inner,
              "load_average": os.getloadavg()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
