"""UMAP of the learned neuron embeddings (``obsm["X_blend"]``) of a neuron-identity run, colored by type.

    blend run examples/spatial/identity.yaml --out runs/spatial
    python examples/spatial/umap.py runs/spatial              # -> runs/spatial/umap.png

Reads every ``RUN/h5ad/*.blend.h5ad`` (one per session), joins them, and plots
three panels: the true cell type (inhibitory subclass, or EC), the student's
predicted subclass, and the subject, with held-out-animal neurons marked.
Plain scanpy: the files need nothing from blend to be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its name would shadow umap-learn
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a finished `blend run` directory of the neuron_identity task")
    p.add_argument("--rep", default="X_blend", help="obsm key to embed (X_blend_teacher, X_blend_baseline ...)")
    p.add_argument("--out", type=Path, help="PNG path (default: RUN_DIR/umap.png)")
    args = p.parse_args(argv)

    import anndata as ad
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc

    files = sorted((args.run_dir / "h5ad").glob("*.blend.h5ad"))
    if not files:
        raise SystemExit(f"error: no {args.run_dir}/h5ad/*.blend.h5ad; is it a finished neuron_identity run?")
    adata = ad.concat([sc.read_h5ad(f) for f in files], merge="same", index_unique=None)
    cell_type = adata.obs["subclass"].astype(str).where(adata.obs["subclass"].notna(), adata.obs["ei_class"].astype(str))
    adata.obs["cell type"] = cell_type.astype("category")
    adata.obs["predicted subclass (IN)"] = adata.obs["blend_subclass"].astype(str).where(
        adata.obs["blend_ei_class"] == "IN", "EC").astype("category")

    sc.pp.neighbors(adata, use_rep=args.rep, n_neighbors=15, random_state=0)
    sc.tl.umap(adata, random_state=0)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, key in zip(axes, ("cell type", "predicted subclass (IN)", "subject")):
        sc.pl.umap(adata, color=key, ax=ax, show=False, size=30, title=f"{args.rep}: {key}")
    out = args.out or args.run_dir / "umap.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)
    return out


if __name__ == "__main__":
    main()
