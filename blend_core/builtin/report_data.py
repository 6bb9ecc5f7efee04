"""Built-in: what ``blend report`` draws that a run does not otherwise keep, in ``report-data.npz``.

For neural-population runs (``NeuralData``): a few test trials' true and decoded
behavior per role, true and predicted PSTHs of a few neurons per condition, and
the student's latent trajectories projected on their first principal components,
with each test trial's condition. Small (a few hundred kB at most) and written
atomically when the run finishes. Other tasks write nothing here (the
neuron-identity task's report reads its ``metrics.json`` and ``h5ad/`` outputs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from blend_core.hookspecs import hookimpl

FILE = "report-data.npz"
N_TRIALS = 4  #: test trials shown with decoded behavior
N_NEURONS = 4  #: neurons shown with PSTHs: the held-out ones with the most spikes
N_COMPONENTS = 3  #: principal components of the student's latents kept


def decode(rates: np.ndarray, behavior: np.ndarray, fit: np.ndarray, show: np.ndarray) -> np.ndarray:
    """Behavior decoded linearly from rates, as vel R2 scores it (ridge fit on the ``fit`` trials)."""
    from sklearn.linear_model import RidgeCV

    x = rates[fit].reshape(-1, rates.shape[-1])
    y = behavior[fit].reshape(-1, behavior.shape[-1])
    keep = ~np.isnan(y).any(axis=1)
    model = RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(x[keep], y[keep])
    shown = rates[show]
    return model.predict(shown.reshape(-1, shown.shape[-1])).reshape(*shown.shape[:2], -1)


def pca(latents: np.ndarray, k: int) -> np.ndarray:
    """``(trials, bins, d)`` latents projected on their top ``k`` principal components."""
    flat = latents.reshape(-1, latents.shape[-1]).astype(np.float64)
    flat = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    k = min(k, vt.shape[0])
    return (flat @ vt[:k].T).reshape(*latents.shape[:2], k)


def report_arrays(data: Any, predictions: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """The arrays of ``report-data.npz`` for one neural-population run."""
    test = np.flatnonzero(data.split == "test")
    fit = data.split != "test"
    T = data.window_bins
    out: dict[str, np.ndarray] = {"test_trials": test, "bin_ms": np.asarray(data.bin_ms)}
    roles = [r for r, p in predictions.items() if "rates" in p]
    out["roles"] = np.asarray(roles, dtype=str)
    if data.conditions is not None:
        out["conditions"] = np.asarray(data.conditions)[test]
    if data.decode_behavior is not None:
        show = test[:N_TRIALS]
        out["behavior_trials"] = show
        out["behavior_true"] = data.decode_behavior[show]
        out["behavior_names"] = np.asarray(data.behavior_names or [f"b{i}" for i in range(data.decode_behavior.shape[-1])],
                                           dtype=str)[: data.decode_behavior.shape[-1]]
        for role in roles:
            out[f"behavior_pred/{role}"] = decode(predictions[role]["rates"][:, :T], data.decode_behavior, fit, show)
    if data.psth is not None and data.conditions is not None:
        n_in = data.n_heldin
        counts = np.nansum(data.heldout[fit, :T], axis=(0, 1))
        neurons = n_in + np.argsort(counts)[::-1][:N_NEURONS]
        out["psth_neurons"] = neurons
        out["n_heldin"] = np.asarray(n_in)  # neurons at or past it are held out (the report marks them)
        out["psth_true"] = data.psth[:, :, neurons] / (data.bin_ms / 1000.0)  # spikes/s
        cond = np.asarray(data.conditions)[test]
        for role in roles:
            rates = predictions[role]["rates"][test][:, :T][:, :, neurons]
            means = [rates[cond == c].mean(0) if np.any(cond == c) else np.full(rates.shape[1:], np.nan)
                     for c in range(data.psth.shape[0])]
            out[f"psth_pred/{role}"] = np.stack(means) / (data.bin_ms / 1000.0)
    if "student" in predictions and "latents" in predictions["student"]:
        out["latents_pca"] = pca(predictions["student"]["latents"][test][:, :T], N_COMPONENTS)
    return out


def write_report_data(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    from blend_core.io import atomic_write

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


@hookimpl
def blend_run_finished(run) -> None:
    """``RUN_DIR/report-data.npz`` for neural-population runs."""
    from blend_core.data import NeuralData

    if not isinstance(run.data, NeuralData):
        return
    write_report_data(Path(run.out_dir) / FILE, report_arrays(run.data, run.predictions))
