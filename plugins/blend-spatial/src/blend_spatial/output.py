"""Results back into AnnData: embeddings in ``obsm``, predicted labels in ``obs``, in new files. No torch here.

For each session, a copy of its input ``.h5ad`` (or of the in-memory AnnData)
gains:

- ``obsm["X_blend"]``: the student's embedding (``X_blend_teacher``,
  ``X_blend_baseline`` for the other roles of a run);
- ``obs["blend_<label>"]``: the student's predicted class, and
  ``obs["blend_<label>_prob_<class>"]`` its probabilities (for ``classifier: svm``,
  scores that sum to 1 rather than calibrated probabilities; the subclass
  classifier is fit on inhibitory neurons: read its output for IN cells);
- ``obs["blend_split"]``: ``train`` (fit the classifier: predictions there are
  in-sample) or ``test`` (scored);

so that ``sc.pp.neighbors(adata, use_rep="X_blend")`` and ``sc.tl.umap`` work
directly. Files are named ``<input stem>.blend.h5ad``; an input is never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from blend_core.api import BlendError
from blend_spatial.data import NeuronIdentityData

LABEL_ROLE = "student"


def _obsm_key(role: str) -> str:
    return "X_blend" if role == LABEL_ROLE else f"X_blend_{role}"


def write_h5ad(data: NeuronIdentityData, predictions: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """One ``.blend.h5ad`` per session in ``out_dir``; ``predictions`` maps role to ``task.predict`` output."""
    import anndata as ad
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    label_preds = predictions.get(LABEL_ROLE) or next(iter(predictions.values()))
    paths = []
    for session, start, stop in zip(data.sessions, data.offsets[:-1], data.offsets[1:]):
        rows = slice(int(start), int(stop))
        if session.adata is not None:
            adata = session.adata.copy()
            stem = session.name
        else:
            adata = ad.read_h5ad(session.origin)
            stem = Path(session.origin).stem
        if not np.array_equal(np.asarray(adata.obs_names).astype(str), session.neuron_names):
            raise BlendError(f"{session.origin}: the file changed since it was read (obs_names differ); rerun")
        for role, preds in predictions.items():
            adata.obsm[_obsm_key(role)] = np.asarray(preds["embedding"][rows], dtype=np.float32)
        for lab in data.labels:
            classes = [str(c) for c in label_preds[f"{lab.key}_classes"]]
            adata.obs[f"blend_{lab.key}"] = pd.Categorical(label_preds[f"{lab.key}_pred"][rows], categories=classes)
            proba = label_preds[f"{lab.key}_proba"][rows]
            for j, c in enumerate(classes):
                adata.obs[f"blend_{lab.key}_prob_{c}"] = proba[:, j].astype(np.float32)
        adata.obs["blend_split"] = pd.Categorical(data.split[rows], categories=["train", "test"])
        adata.uns["blend"] = {"X_blend": f"{LABEL_ROLE} embedding", "roles": list(predictions)}
        path = out_dir / f"{stem}.blend.h5ad"
        if session.origin and path.resolve() == Path(session.origin).resolve():
            raise BlendError(f"{path}: refusing to overwrite an input file")
        tmp = path.with_name(f".{path.stem}.tmp.h5ad")
        try:
            adata.write_h5ad(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(path)
    return paths
