"""One NDT attention block, forward + backward, at the CPU recipe's shape: where the CPU epoch goes.

Compares, interleaved in one process (so that a busy machine slows each alike), the
q/k/v layout blend uses (one fused projection, strided views), a contiguous copy of
q/k/v before attention, and attention written out by hand; each with attention
dropout (torch's unfused path) and without (the fused CPU kernel). Medians over
``--reps`` rounds of ``--inner`` calls; one thread.

    python benchmarks/bench_attention.py --json benchmarks/results/cpu-attention.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--bins", type=int, default=180)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--inner", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    B, L, W, H = args.batch, args.bins, args.d_model, args.heads
    D = W // H
    x = torch.randn(B, L, W, requires_grad=True)
    qkv_proj, out_proj = torch.nn.Linear(W, 3 * W), torch.nn.Linear(W, W)

    def strided(x: torch.Tensor, p: float) -> torch.Tensor:  # blend_core.backbones.ndt.TransformerLayer.attend
        q, k, v = qkv_proj(x).reshape(B, L, 3, H, D).movedim(-3, 0).transpose(-3, -2).unbind(0)
        return out_proj(F.scaled_dot_product_attention(q, k, v, dropout_p=p).transpose(-3, -2).reshape(B, L, W))

    def contiguous(x: torch.Tensor, p: float) -> torch.Tensor:
        q, k, v = qkv_proj(x).view(B, L, 3, H, D).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        return out_proj(F.scaled_dot_product_attention(q, k, v, dropout_p=p).transpose(1, 2).reshape(B, L, W))

    def by_hand(x: torch.Tensor, p: float) -> torch.Tensor:
        q, k, v = qkv_proj(x).view(B, L, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
        a = F.dropout(torch.softmax((q * D ** -0.5) @ k.transpose(-1, -2), dim=-1), p)
        return out_proj((a @ v).transpose(1, 2).reshape(B, L, W))

    variants = {"strided (blend)": strided, "contiguous q/k/v": contiguous, "by hand": by_hand}
    results = {}
    for p_drop in (0.3, 0.0):
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.reps):
            for name, fn in variants.items():
                start = time.perf_counter()
                for _ in range(args.inner):
                    fn(x, p_drop).sum().backward()
                times[name].append((time.perf_counter() - start) / args.inner)
        results[f"dropout {p_drop}"] = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"attention dropout {p_drop}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in results[f'dropout {p_drop}'].items()))
    report = {"torch_version": torch.__version__, "shape": {"batch": B, "bins": L, "d_model": W, "heads": H},
              "median_ms_forward_backward": results, "reps": args.reps, "inner": args.inner,
              "load_average": os.getloadavg()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
