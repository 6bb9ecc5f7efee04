"""Hand-made activity statistics per neuron: the reference a learned embedding has to beat. No torch here.

The feature set is fixed (so that the reference means the same thing in every run):

- **firing statistics** of the raw activity: mean, standard deviation, skewness;
- **autocorrelation** of the neuron's z-scored activity at lags ``LAGS`` frames;
- **population coupling**: correlation with the mean of the other neurons of the session;
- **neighbourhood coupling**: correlation with the mean of the other neurons of the session within
  ``radius_um`` (0 where a neuron has no neighbour), and how much it exceeds the population coupling;
- with ``behavior=True``, **behavior coupling**: correlation with each behavior variable.

Every statistic uses all frames of the neuron's session; labels are never used. The classifier is the
task's own (``classify.fit_predict``), fit on the ``train`` label split and scored on ``test``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blend_spatial.data import NeuronIdentityData

LAGS = (1, 2, 4, 8, 16)


def feature_names(behavior_names: Sequence[str] = ()) -> list[str]:
    return (["mean", "sd", "skewness"] + [f"autocorrelation lag {k}" for k in LAGS]
            + ["population coupling", "neighbour coupling", "neighbour - population coupling"]
            + [f"correlation with {b}" for b in behavior_names])


def _zscore(a: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit variance (a constant row becomes 0)."""
    a = a - a.mean(1, keepdims=True)
    return a / a.std(1, keepdims=True).clip(1e-12)


def _row_corr(z: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Pearson correlation of each z-scored row of ``z`` with the matching row of ``other``."""
    return (z * _zscore(other)).mean(1)


def neighbours(positions: np.ndarray, radius: float):
    """Sparse (n, n) 0/1 matrix: pairs of distinct neurons within ``radius`` (a k-d tree, not n² distances)."""
    from scipy.sparse import coo_matrix
    from scipy.spatial import cKDTree

    n = len(positions)
    pairs = cKDTree(positions).query_pairs(radius, output_type="ndarray")
    rows, cols = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])
    return coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n)).tocsr()


def session_features(activity: np.ndarray, positions: np.ndarray, radius_um: float,
                     behavior: np.ndarray | None = None) -> np.ndarray:
    """``(n, len(feature_names))`` statistics of one session's neurons (behavior columns when given)."""
    a = activity.astype(np.float64)
    n, n_frames = a.shape
    mean, sd = a.mean(1), a.std(1)
    z = _zscore(a)
    skew = (z**3).mean(1)
    lags = [(z[:, k:] * z[:, :-k]).sum(1) / n_frames if k < n_frames else np.zeros(n) for k in LAGS]
    loo = (z.sum(0, keepdims=True) - z) / max(n - 1, 1)  # the others' mean, per neuron
    pop = _row_corr(z, loo)
    adj = neighbours(positions, radius_um)
    count = np.asarray(adj.sum(1)).ravel()
    near = np.asarray(adj @ z) / count.clip(1)[:, None]
    nbr = np.where(count > 0, _row_corr(z, near), 0.0)
    cols = [mean, sd, skew, *lags, pop, nbr, nbr - pop]
    if behavior is not None:
        cols += [_row_corr(z, np.broadcast_to(b, z.shape)) for b in np.asarray(behavior, np.float64).T]
    return np.stack(cols, axis=1)


def activity_features(data: NeuronIdentityData, radius_um: float, *, behavior: bool = False) -> np.ndarray:
    """Features of every neuron, sessions concatenated in the data's order."""
    return np.concatenate([
        session_features(s.activity, s.positions, radius_um, s.behavior if behavior else None)
        for s in data.sessions
    ])

