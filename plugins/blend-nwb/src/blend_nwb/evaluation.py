"""NLB submissions and targets (the h5 files ``nlb_tools.evaluation.evaluate`` reads) and their scoring.

``score_submission`` restates nlb_tools' evaluation (co-bps, vel R2 with one ridge
decoder per mask, psth R2 with DMFC's jitter, DMFC's speed-tp correlation, fp-bps)
and is tested against it to 1e-6. Files are written like ``save_to_h5``: floats as
float32, integers as int32, ragged index lists as variable-length arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from blend_core.errors import DataError

DATASETS = ("mc_maze", "mc_rtt", "area2_bump", "dmfc_rsg", "mc_maze_large", "mc_maze_medium", "mc_maze_small")
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
    from blend_core.io import atomic_write

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


# ------------------------------------------------------------------ metrics (nlb_tools' definitions)

def _nll(rates: np.ndarray, spikes: np.ndarray, what: str) -> float:
    from scipy.special import gammaln

    keep = ~np.isnan(spikes)
    rates, spikes = rates[keep].copy(), spikes[keep]
    if np.isnan(rates).any():
        raise DataError(f"{what}: NaN rate predictions")
    if (rates < 0).any():
        raise DataError(f"{what}: negative rate predictions")
    rates[rates == 0] = 1e-9
    return float(np.sum(rates - spikes * np.log(rates) + gammaln(spikes + 1.0)))


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray, what: str = "rates") -> float:
    if rates.shape != spikes.shape:
        raise DataError(f"{what}: rates shape {rates.shape} does not match spikes {spikes.shape}")
    null = np.broadcast_to(np.nanmean(spikes, axis=tuple(range(spikes.ndim - 1)), keepdims=True), spikes.shape)
    return (_nll(null, spikes, what) - _nll(rates, spikes, what)) / np.nansum(spikes) / np.log(2)


def _decode_r2(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray) -> float:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV

    keep = ~np.isnan(train_y[:, 0])
    train_x, train_y = train_x[keep], train_y[keep]
    keep = ~np.isnan(eval_y[:, 0])
    eval_x, eval_y = eval_x[keep], eval_y[keep]
    if np.isnan(train_x).any() or np.isnan(eval_x).any():
        raise DataError("vel R2: NaN rate predictions within the decoded bins")
    decoder = GridSearchCV(Ridge(), {"alpha": np.logspace(-4, 0, 9)})
    decoder.fit(train_x, train_y)
    return float(decoder.score(eval_x, eval_y))


def velocity_r2(train_rates, train_behavior, train_masks, eval_rates, eval_behavior, eval_masks) -> float:
    flat = lambda x: x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x  # noqa: E731
    scores = [
        _decode_r2(flat(train_rates[train_masks[:, i]]), flat(train_behavior[train_masks[:, i]]),
                   flat(eval_rates[eval_masks[:, i]]), flat(eval_behavior[eval_masks[:, i]]))
        for i in range(train_masks.shape[1])
    ]
    return float(np.mean(scores))


def psth_r2(psth: np.ndarray, eval_rates: np.ndarray, cond_idx, jitter: np.ndarray | None = None) -> float:
    from sklearn.metrics import r2_score

    if jitter is None:
        jitter = np.zeros(len(eval_rates), int)

    def shift(x: np.ndarray, j: int) -> np.ndarray:
        if j == 0:
            return x
        pad = np.full((abs(j), x.shape[1]), np.nan)
        return np.vstack([pad, x[:-j]]) if j > 0 else np.vstack([x[-j:], pad])

    true, pred = [], []
    for c, idx in enumerate(cond_idx):
        idx = np.asarray(idx, dtype=int)
        if idx.size == 0:
            continue
        p = np.mean([shift(eval_rates[i], int(jitter[i])) for i in idx], axis=0)
        rows = ~np.isnan(psth[c, :, 0])
        if np.isnan(p[rows]).any():
            raise DataError("psth R2: NaN rate predictions within the PSTH bins")
        true.append(psth[c][rows])
        pred.append(p[rows])
    return float(r2_score(np.vstack(true), np.vstack(pred)))


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
    out: dict[str, float] = {"co-bps": float(bits_per_spike(f(sub, "eval_rates_heldout"), spikes, f"{key} co-bps"))}
    if key.startswith("dmfc_rsg"):
        out["tp corr"] = speed_tp_correlation(spikes, eval_rates, f(target, "eval_behavior"))
    else:
        train_rates = np.concatenate([f(sub, "train_rates_heldin"), f(sub, "train_rates_heldout")], axis=-1)
        if "train_decode_mask" in target:
            tm, em = np.asarray(target["train_decode_mask"]), np.asarray(target["eval_decode_mask"])
        else:
            tm, em = np.ones((len(train_rates), 1), bool), np.ones((len(eval_rates), 1), bool)
        out["vel R2"] = velocity_r2(train_rates, f(target, "train_behavior"), tm.astype(bool),
                                    eval_rates, f(target, "eval_behavior"), em.astype(bool))
    if "psth" in target:
        jitter = np.asarray(target["eval_jitter"]).astype(int) if "eval_jitter" in target else None
        out["psth R2"] = psth_r2(f(target, "psth"), eval_rates, target["eval_cond_idx"], jitter)
    if "eval_rates_heldin_forward" in sub and "eval_spikes_heldin_forward" in target:
        fs = np.dstack([f(target, "eval_spikes_heldin_forward"), f(target, "eval_spikes_heldout_forward")])
        fr = np.dstack([f(sub, "eval_rates_heldin_forward"), f(sub, "eval_rates_heldout_forward")])
        out["fp-bps"] = float(bits_per_spike(fr, fs, f"{key} fp-bps"))
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
