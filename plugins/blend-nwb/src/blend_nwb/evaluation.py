"""NLB submissions and targets (the h5 files ``nlb_tools.evaluation.evaluate`` reads) and their scoring.

``score_submission`` scores a submission as nlb_tools' evaluation does, with the one
implementation of the NLB metrics in ``blend_core.metrics`` (co-bps, vel R2 with one
ridge decoder per mask, psth R2 with DMFC's jitter, fp-bps) plus DMFC's speed-tp
correlation, which only this file format needs; tested against nlb_tools to 1e-6. Files are written like ``save_to_h5``: floats as
float32, integers as int32, ragged index lists as variable-length arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from blend_core.api import DataError, bits_per_spike, psth_r2, velocity_r2
from blend_nwb.nlb import SPECS

DATASETS = tuple(SPECS)  #: the NLB dataset names (one table: ``blend_nwb.nlb.SPECS``)
SUBMISSION_KEYS = ("train_rates_heldin", "train_rates_heldout", "eval_rates_heldin", "eval_rates_heldout",
                   "eval_rates_heldin_forward", "eval_rates_heldout_forward")


# ------------------------------------------------------------------ files

def _h5_dtype(val: np.ndarray) -> Any:
    if val.dtype == object:
        sub = np.asarray(val[0]).dtype
        sub = "float32" if np.issubdtype(sub, np.floating) else "int32" if np.issubdtype(sub, np.integer) else sub
        return h5py.vlen_dtype(np.dtype(sub))
    if np.issubdtype(val.dtype, np.floating):
        return "float32"
    if np.issubdtype(val.dtype, np.integer):
        return "int32"
    return val.dtype


def _write_group(group: h5py.Group, tree: dict[str, Any]) -> None:
    for key, val in tree.items():
        if isinstance(val, dict):
            _write_group(group.create_group(key), val)
        else:
            val = np.asarray(val) if not (isinstance(val, np.ndarray) and val.dtype == object) else val
            group.create_dataset(key, data=val, dtype=_h5_dtype(val), compression="gzip")


def write_h5(path: str | Path, tree: dict[str, Any]) -> Path:
    """Write a nested dict of arrays atomically (a new file; never appends)."""
    from blend_core.api import atomic_write

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            _write_group(f, tree)

    return atomic_write(path, write)


def read_h5(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        with h5py.File(path, "r") as f:
            def read(g: h5py.Group) -> dict[str, Any]:
                return {k: read(v) if isinstance(v, h5py.Group) else v[()] for k, v in g.items()}
            return read(f)
    except OSError:
        raise DataError(f"{path}: not a readable HDF5 {what} file") from None


def submission_tree(key: str, rates: np.ndarray, train_rows: np.ndarray, eval_rows: np.ndarray,
                    window_bins: int, n_heldin: int) -> dict[str, dict[str, np.ndarray]]:
    """The nlb_tools submission dict for rates over all our trials (held-in then held-out neurons)."""
    T, n = window_bins, n_heldin
    r = np.asarray(rates, dtype=np.float32)
    return {key: {
        "train_rates_heldin": r[train_rows, :T, :n],
        "train_rates_heldout": r[train_rows, :T, n:],
        "eval_rates_heldin": r[eval_rows, :T, :n],
        "eval_rates_heldout": r[eval_rows, :T, n:],
        "eval_rates_heldin_forward": r[eval_rows, T:, :n],
        "eval_rates_heldout_forward": r[eval_rows, T:, n:],
    }}


# ------------------------------------------------------------------ metrics (blend_core.metrics; DMFC's tp corr here)

def _core(what: str, fn, *args, **kwargs) -> float:
    """A ``blend_core.metrics`` function, its ``ValueError`` as a one-line ``DataError`` naming ``what``."""
    try:
        return float(fn(*args, **kwargs))
    except ValueError as exc:
        raise DataError(f"{what}: {exc}") from None


def speed_tp_correlation(eval_spikes_heldout: np.ndarray, eval_rates: np.ndarray, eval_behavior: np.ndarray) -> float:
    """DMFC_RSG: per condition (is_eye, theta, is_short), Pearson r of neural speed (set..go) and tp."""
    from scipy.stats import pearsonr

    masks = ~np.isnan(eval_spikes_heldout[..., 0])
    speeds = np.array([np.mean(np.linalg.norm(np.diff(r[m], axis=0), axis=1)) for r, m in zip(eval_rates, masks)])
    conds = np.unique(eval_behavior[:, [0, 1, 2]], axis=0)
    conds = conds[~np.all(np.isnan(conds), axis=1)]
    rs = []
    for cond in conds:
        m = np.all(eval_behavior[:, [0, 1, 2]] == cond, axis=1)
        rs.append(pearsonr(speeds[m], eval_behavior[m][:, -1])[0])
    return float(np.mean(rs))


def evaluate_dataset(key: str, target: dict[str, Any], sub: dict[str, Any]) -> dict[str, float]:
    """Scores of one dataset's submission against its target (nlb_tools' ``evaluate``)."""
    f = lambda d, k: np.asarray(d[k], dtype=float)  # noqa: E731
    for k in ("eval_rates_heldin", "eval_rates_heldout"):
        if k not in sub:
            raise DataError(f"submission: {key}/{k}: missing")
    eval_rates = np.concatenate([f(sub, "eval_rates_heldin"), f(sub, "eval_rates_heldout")], axis=-1)
    spikes = f(target, "eval_spikes_heldout")
    out: dict[str, float] = {"co-bps": _core(f"{key} co-bps", bits_per_spike,
                                             f(sub, "eval_rates_heldout"), spikes)}
    if key.startswith("dmfc_rsg"):
        out["tp corr"] = speed_tp_correlation(spikes, eval_rates, f(target, "eval_behavior"))
    else:
        train_rates = np.concatenate([f(sub, "train_rates_heldin"), f(sub, "train_rates_heldout")], axis=-1)
        masks = {}
        if "train_decode_mask" in target:
            masks = {"train_decode_mask": np.asarray(target["train_decode_mask"]).astype(bool),
                     "eval_decode_mask": np.asarray(target["eval_decode_mask"]).astype(bool)}
        out["vel R2"] = _core(f"{key} vel R2", velocity_r2, train_rates, f(target, "train_behavior"),
                              eval_rates, f(target, "eval_behavior"), **masks)
    if "psth" in target:
        jitter = np.asarray(target["eval_jitter"]).astype(int) if "eval_jitter" in target else None
        out["psth R2"] = _core(f"{key} psth R2", psth_r2, eval_rates, list(target["eval_cond_idx"]),
                               f(target, "psth"), jitter=jitter)
    if "eval_rates_heldin_forward" in sub and "eval_spikes_heldin_forward" in target:
        fs = np.dstack([f(target, "eval_spikes_heldin_forward"), f(target, "eval_spikes_heldout_forward")])
        fr = np.dstack([f(sub, "eval_rates_heldin_forward"), f(sub, "eval_rates_heldout_forward")])
        out["fp-bps"] = _core(f"{key} fp-bps", bits_per_spike, fr, fs)
    return out


def score_submission(submission_path: str | Path, target_path: str | Path) -> dict[str, dict[str, float]]:
    """Score an NLB submission h5 against an NLB target h5, dataset by dataset.

    Returns ``{dataset_key: {metric: value}}`` for every dataset key (e.g.
    ``mc_maze``, ``mc_maze_20``) present in both files; metric names are
    nlb_tools' (co-bps, vel R2 or tp corr, psth R2, fp-bps).
    """
    sub = read_h5(submission_path, "submission")
    target = read_h5(target_path, "target")
    keys = [d + suf for d in DATASETS for suf in ("", "_20")]
    found = [k for k in keys if k in sub and "eval_rates_heldout" in sub[k]]
    if not found:
        raise DataError(f"{submission_path}: no NLB dataset group with 'eval_rates_heldout' "
                        f"(expected one of {', '.join(DATASETS)})")
    out = {}
    for key in found:
        if key not in target or "eval_spikes_heldout" not in target[key]:
            raise DataError(f"{target_path}: no '{key}/eval_spikes_heldout'; is this the target for {key}?")
        out[key] = evaluate_dataset(key, target[key], sub[key])
    return out
