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
from blend_core.api import h5safe
from blend_nwb.nlb import SPECS

DATASETS = tuple(SPECS)  #: the NLB dataset names (one table: ``blend_nwb.nlb.SPECS``)
DATASET_KEYS = tuple(d + suffix for d in DATASETS for suffix in ("", "_20"))  #: groups in the files


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
    """The NLB dataset groups (``mc_maze``, ``mc_maze_20``, ...) of a submission or target file.

    Only those groups are read, each dataset after ``h5safe`` checked it: no link or data
    outside the file, no declared size beyond what the file can hold; anything malformed is
    one line naming the file and the object.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")

    def fail(obj: str, msg: str) -> DataError:
        return DataError(f"{path}: {obj}: {msg}")

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise DataError(f"{path}: not a readable HDF5 {what} file") from None
    with f:
        out: dict[str, Any] = {}
        for key in DATASET_KEYS:
            group = h5safe.resolve(f, key, fail)
            if group is None:
                continue
            if not isinstance(group, h5py.Group):
                raise fail(key, "a dataset; expected a group of arrays (nlb_tools' layout)")
            out[key] = {}
            for name in group:
                ds = h5safe.dataset(f, f"{key}/{name}", fail)
                if ds is not None:
                    out[key][name] = h5safe.read(ds, f"{key}/{name}", fail)
        return out


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


class _Files:
    """Arrays of one dataset group of a submission and of its target, checked before any metric sees them."""

    def __init__(self, key: str, sub: dict[str, Any], target: dict[str, Any], sub_name: str, target_name: str) -> None:
        self.key, self.sub, self.target = key, sub, target
        self.names = {id(sub): sub_name, id(target): target_name}

    def fail(self, tree: dict[str, Any], name: str, msg: str) -> DataError:
        return DataError(f"{self.names[id(tree)]}: {self.key}/{name}: {msg}")

    def get(self, tree: dict[str, Any], name: str, ndim: tuple[int, ...] = (3,), rates: bool = False) -> np.ndarray:
        if name not in tree:
            raise self.fail(tree, name, "missing")
        value = np.asarray(tree[name])
        if value.dtype.kind not in "fiub":
            raise self.fail(tree, name, f"expected numbers, got {h5safe.dtype_name(value.dtype)}")
        if value.ndim not in ndim:
            want = " or ".join(f"{n}-d" for n in ndim)
            raise self.fail(tree, name, f"expected a {want} array of numbers, got shape {value.shape}")
        value = value.astype(float)
        if rates and not (np.isfinite(value).all() and (value >= 0).all()):
            raise self.fail(tree, name, "expected finite rates >= 0 (found NaN, infinite or negative values)")
        return value

    def same(self, tree: dict[str, Any], name: str, value: np.ndarray, shape: tuple[int, ...], like: str) -> None:
        if value.shape[: len(shape)] != shape:
            raise self.fail(tree, name, f"shape {value.shape} does not fit {like} {shape}")


def evaluate_dataset(key: str, target: dict[str, Any], sub: dict[str, Any], *, sub_name: str = "submission",
                     target_name: str = "target") -> dict[str, float]:
    """Scores of one dataset's submission against its target (nlb_tools' ``evaluate``).

    Every array is checked (present, numeric, its shape fitting the others) first, so that a
    malformed file is one line naming the file and the array, never an exception from numpy.
    """
    c = _Files(key, sub, target, sub_name, target_name)
    spikes = c.get(target, "eval_spikes_heldout")
    E, T, n_out = spikes.shape
    eval_out = c.get(sub, "eval_rates_heldout", rates=True)
    c.same(sub, "eval_rates_heldout", eval_out, spikes.shape, "the target's eval_spikes_heldout")
    eval_in = c.get(sub, "eval_rates_heldin", rates=True)
    c.same(sub, "eval_rates_heldin", eval_in, (E, T), "the target's eval trials x bins")
    eval_rates = np.concatenate([eval_in, eval_out], axis=-1)
    out: dict[str, float] = {"co-bps": _core(f"{target_name}: {key} co-bps", bits_per_spike, eval_out, spikes)}
    if key.startswith("dmfc_rsg"):
        behavior = c.get(target, "eval_behavior", ndim=(2,))
        if behavior.shape[0] != E or behavior.shape[1] < 4:
            raise c.fail(target, "eval_behavior", f"expected ({E} trials, is_eye, theta, is_short, ..., tp), "
                         f"got shape {behavior.shape}")
        out["tp corr"] = speed_tp_correlation(spikes, eval_rates, behavior)
    else:
        train_in = c.get(sub, "train_rates_heldin", rates=True)
        train_out = c.get(sub, "train_rates_heldout", rates=True)
        c.same(sub, "train_rates_heldin", train_in, (train_in.shape[0], T, eval_in.shape[2]), "eval_rates_heldin's bins x neurons")
        c.same(sub, "train_rates_heldout", train_out, (train_in.shape[0], T, n_out), "train_rates_heldin and eval_rates_heldout")
        train_rates = np.concatenate([train_in, train_out], axis=-1)
        train_beh = c.get(target, "train_behavior", ndim=(2, 3))
        eval_beh = c.get(target, "eval_behavior", ndim=(2, 3))
        c.same(target, "train_behavior", train_beh, train_in.shape[:1], "the submission's train trials")
        c.same(target, "eval_behavior", eval_beh, (E,), "the eval trials")
        masks = {}
        if "train_decode_mask" in target:
            masks = {m: c.get(target, m, ndim=(2,)).astype(bool) for m in ("train_decode_mask", "eval_decode_mask")}
            c.same(target, "train_decode_mask", masks["train_decode_mask"], (len(train_in),), "the train trials")
            c.same(target, "eval_decode_mask", masks["eval_decode_mask"], (E,), "the eval trials")
        out["vel R2"] = _core(f"{target_name}: {key} vel R2", velocity_r2, train_rates, train_beh, eval_rates, eval_beh, **masks)
    if "psth" in target:
        psth = c.get(target, "psth")
        if psth.shape[2] != eval_rates.shape[2]:
            raise c.fail(target, "psth", f"{psth.shape[2]} neurons, but the submission's eval rates have "
                         f"{eval_rates.shape[2]}")
        cond_idx = _cond_index(c, target, E)
        jitter = None
        if "eval_jitter" in target:
            jitter = c.get(target, "eval_jitter", ndim=(1,)).astype(int)
            c.same(target, "eval_jitter", jitter, (E,), "the eval trials")
        out["psth R2"] = _core(f"{target_name}: {key} psth R2", psth_r2, eval_rates, cond_idx, psth, jitter=jitter)
    if "eval_rates_heldin_forward" in sub and "eval_spikes_heldin_forward" in target:
        fs_in = c.get(target, "eval_spikes_heldin_forward")
        fs_out = c.get(target, "eval_spikes_heldout_forward")
        fr_in = c.get(sub, "eval_rates_heldin_forward", rates=True)
        fr_out = c.get(sub, "eval_rates_heldout_forward", rates=True)
        c.same(sub, "eval_rates_heldin_forward", fr_in, fs_in.shape, "the target's eval_spikes_heldin_forward")
        c.same(sub, "eval_rates_heldout_forward", fr_out, fs_out.shape, "the target's eval_spikes_heldout_forward")
        c.same(target, "eval_spikes_heldout_forward", fs_out, fs_in.shape[:2], "eval_spikes_heldin_forward")
        out["fp-bps"] = _core(f"{target_name}: {key} fp-bps", bits_per_spike, np.dstack([fr_in, fr_out]), np.dstack([fs_in, fs_out]))
    return out


def _cond_index(c: _Files, target: dict[str, Any], n_eval: int) -> list[np.ndarray]:
    """``eval_cond_idx``: per condition, eval trial indices in [0, n_eval)."""
    if "eval_cond_idx" not in target:
        raise c.fail(target, "eval_cond_idx", "missing (needed with psth)")
    out = []
    for part in np.asarray(target["eval_cond_idx"], dtype=object).reshape(-1):
        idx = np.asarray(part)
        if idx.dtype.kind not in "iu" or idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n_eval)):
            raise c.fail(target, "eval_cond_idx", f"expected lists of eval trial indices in [0, {n_eval})")
        out.append(idx.astype(np.int64))
    return out


def score_submission(submission_path: str | Path, target_path: str | Path) -> dict[str, dict[str, float]]:
    """Score an NLB submission h5 against an NLB target h5, dataset by dataset.

    Returns ``{dataset_key: {metric: value}}`` for every dataset key (e.g.
    ``mc_maze``, ``mc_maze_20``) present in both files; metric names are
    nlb_tools' (co-bps, vel R2 or tp corr, psth R2, fp-bps).
    """
    sub = read_h5(submission_path, "submission")
    target = read_h5(target_path, "target")
    found = [k for k in DATASET_KEYS if k in sub and "eval_rates_heldout" in sub[k]]
    if not found:
        raise DataError(f"{submission_path}: no NLB dataset group with 'eval_rates_heldout' "
                        f"(expected one of {', '.join(DATASETS)})")
    out = {}
    for key in found:
        if key not in target or "eval_spikes_heldout" not in target[key]:
            raise DataError(f"{target_path}: no '{key}/eval_spikes_heldout'; is this the target for {key}?")
        out[key] = evaluate_dataset(key, target[key], sub[key], sub_name=str(submission_path),
                                    target_name=str(target_path))
    return out
