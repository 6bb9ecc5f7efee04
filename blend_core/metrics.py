"""NLB'21 evaluation metrics, re-implemented to agree with ``nlb_tools`` to 1e-6.

``nlb_tools`` is the reference (method.md §7) but it is pinned to old pandas and
uses ``assert`` for input validation, so the package computes its own scores
here and the tests check them against ``nlb_tools.evaluation`` on the same data.
Only numpy/scipy/scikit-learn are used so that scoring never needs torch.

Array conventions: rates and spikes are ``(trials, time, neurons)`` with rates
in expected spikes per bin; behaviour is ``(trials, time, dims)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln
from sklearn.linear_model import Ridge
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, r2_score
from sklearn.model_selection import GridSearchCV, KFold

__all__ = [
    "bits_per_spike",
    "classification_scores",
    "nlb_scores",
    "poisson_nll",
    "psth_r2",
    "velocity_r2",
]

#: Rates of exactly zero are replaced by this before taking the log (as nlb_tools).
ZERO_RATE = 1e-9
#: Ridge penalty grid searched by the NLB velocity decoder.
DEFAULT_ALPHAS = np.logspace(-4, 0, 9)


# --------------------------------------------------------------------------- bps
def poisson_nll(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Total Poisson NLL over the observed (non-NaN) spike entries.

    Entries whose spike count is NaN are unobserved and do not constrain the
    rates, so NaN/negative rates there are allowed; anywhere else they are a
    bug in the model output and raise ``ValueError`` rather than yielding a
    silently meaningless score. The inputs are never modified.
    """
    rates = np.asarray(rates, dtype=np.float64)
    spikes = np.asarray(spikes, dtype=np.float64)
    if rates.shape != spikes.shape:
        raise ValueError(
            f"rates and spikes must have the same shape, got rates {rates.shape} "
            f"and spikes {spikes.shape}"
        )
    observed = ~np.isnan(spikes)
    r = rates[observed]  # boolean indexing copies: callers' arrays stay untouched
    n = spikes[observed]
    if np.isnan(r).any():
        raise ValueError(
            f"rate predictions contain NaN at {int(np.isnan(r).sum())} observed "
            "entries; rates must be finite wherever spikes are observed"
        )
    if (r < 0).any():
        raise ValueError(
            f"rate predictions contain {int((r < 0).sum())} negative values "
            f"(min {float(r.min()):.3g}); Poisson rates must be >= 0"
        )
    r[r == 0] = ZERO_RATE
    return float(np.sum(r - n * np.log(r) + gammaln(n + 1.0)))


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """NLB co-bps / fp-bps: log-likelihood gain over a per-neuron constant-rate model.

    The null model predicts each neuron's mean count over all evaluated trials
    and bins, so a score > 0 means the model explains more than firing rate
    alone; the gain is normalised per spike and expressed in bits.
    """
    rates = np.asarray(rates, dtype=np.float64)
    spikes = np.asarray(spikes, dtype=np.float64)
    nll_model = poisson_nll(rates, spikes)
    with warnings.catch_warnings():
        # a neuron whose every entry is NaN has an undefined mean; its entries
        # are all unobserved, so the NaN never reaches the likelihood.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(spikes, axis=tuple(range(spikes.ndim - 1)), keepdims=True)
    null_rates = np.broadcast_to(mean, spikes.shape)
    nll_null = poisson_nll(null_rates, spikes)
    total_spikes = float(np.nansum(spikes))
    if total_spikes <= 0:
        raise ValueError("bits per spike is undefined: the evaluated spikes contain no spikes")
    return (nll_null - nll_model) / total_spikes / math.log(2)


# ------------------------------------------------------------------------ vel R2
def _flatten_time(x: np.ndarray) -> np.ndarray:
    """Trials' time bins become independent samples for the decoder."""
    return x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x


def _drop_missing_behavior(
    rates: np.ndarray, behavior: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bins without behaviour (NaN padding) carry no decoding target."""
    keep = ~np.isnan(behavior).any(axis=1)
    return rates[keep], behavior[keep]


def _fit_and_score_decoder(
    train_rates: np.ndarray,
    train_behavior: np.ndarray,
    eval_rates: np.ndarray,
    eval_behavior: np.ndarray,
    alphas: np.ndarray,
    folds: int,
) -> float:
    train_rates, train_behavior = _drop_missing_behavior(
        _flatten_time(train_rates), _flatten_time(train_behavior)
    )
    eval_rates, eval_behavior = _drop_missing_behavior(
        _flatten_time(eval_rates), _flatten_time(eval_behavior)
    )
    if np.isnan(train_rates).any() or np.isnan(eval_rates).any():
        raise ValueError("rate predictions contain NaN in bins where behaviour is defined")
    if len(train_behavior) < folds or len(eval_behavior) == 0:
        raise ValueError(f"too few bins with behaviour to decode ({len(train_behavior)} train, {len(eval_behavior)} eval)")
    flat = np.ptp(eval_behavior, axis=0) == 0
    if flat.any():  # R2 of a constant target is 1 for an exact fit, else 0: it would measure nothing
        raise ValueError(f"behaviour dimension {int(np.flatnonzero(flat)[0])} is constant over the evaluated bins; "
                         "R2 is undefined")
    search = GridSearchCV(
        Ridge(), {"alpha": np.asarray(alphas, dtype=np.float64)}, cv=KFold(n_splits=folds)
    )
    search.fit(train_rates, train_behavior)
    prediction = search.best_estimator_.predict(eval_rates)
    return float(r2_score(eval_behavior, prediction, multioutput="uniform_average"))


def velocity_r2(
    train_rates: np.ndarray,
    train_behavior: np.ndarray,
    eval_rates: np.ndarray,
    eval_behavior: np.ndarray,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    folds: int = 5,
    *,
    train_decode_mask: np.ndarray | None = None,
    eval_decode_mask: np.ndarray | None = None,
) -> float:
    """NLB vel R2: how linearly decodable behaviour is from the inferred rates.

    A ridge decoder (penalty chosen by ``folds``-fold unshuffled CV, time bins
    as samples) is fit on train trials and scored by R² averaged uniformly over
    behaviour dims on eval trials. Bins whose behaviour is NaN are dropped.
    Decode masks ``(trials, n_decoders)`` (Area2's two decoders split by
    ``ctr_hold_bump``) fit one decoder per column and average their R²s.
    """
    train_rates = np.asarray(train_rates, dtype=np.float64)
    train_behavior = np.asarray(train_behavior, dtype=np.float64)
    eval_rates = np.asarray(eval_rates, dtype=np.float64)
    eval_behavior = np.asarray(eval_behavior, dtype=np.float64)
    if train_rates.shape[:-1] != train_behavior.shape[:-1]:
        raise ValueError(
            f"train rates {train_rates.shape} and behaviour {train_behavior.shape} disagree "
            "on trials/time"
        )
    if eval_rates.shape[:-1] != eval_behavior.shape[:-1]:
        raise ValueError(
            f"eval rates {eval_rates.shape} and behaviour {eval_behavior.shape} disagree "
            "on trials/time"
        )
    if (train_decode_mask is None) != (eval_decode_mask is None):
        raise ValueError("give both train_decode_mask and eval_decode_mask, or neither")
    if train_decode_mask is None:
        return _fit_and_score_decoder(
            train_rates, train_behavior, eval_rates, eval_behavior, alphas, folds
        )
    tmask = np.asarray(train_decode_mask, dtype=bool).reshape(len(train_rates), -1)
    emask = np.asarray(eval_decode_mask, dtype=bool).reshape(len(eval_rates), -1)
    if tmask.shape[1] != emask.shape[1]:
        raise ValueError(
            f"train and eval decode masks have {tmask.shape[1]} and {emask.shape[1]} columns"
        )
    scores = [
        _fit_and_score_decoder(
            train_rates[tmask[:, k]],
            train_behavior[tmask[:, k]],
            eval_rates[emask[:, k]],
            eval_behavior[emask[:, k]],
            alphas,
            folds,
        )
        for k in range(tmask.shape[1])
    ]
    return float(np.mean(scores))


# ----------------------------------------------------------------------- psth R2
def _shift_trial(trial: np.ndarray, shift: int) -> np.ndarray:
    """Delay (shift > 0) or advance (shift < 0) a (time, neurons) trial, NaN-padding."""
    if shift == 0:
        return trial
    out = np.full_like(trial, np.nan)
    if abs(shift) >= trial.shape[0]:
        return out
    if shift > 0:
        out[shift:] = trial[:-shift]
    else:
        out[:shift] = trial[-shift:]
    return out


def psth_r2(
    eval_rates: np.ndarray,
    eval_cond_idx: Sequence[np.ndarray],
    target_psth: np.ndarray,
    *,
    jitter: np.ndarray | None = None,
) -> float:
    """NLB psth R2: do trial-averaged predictions reproduce each condition's PSTH?

    ``eval_cond_idx[c]`` lists the eval trials of condition ``c`` (row ``c`` of
    ``target_psth``, shaped ``(conditions, time, neurons)``); empty conditions
    are skipped. Time bins where the target is NaN (past a condition's end) are
    dropped, the remaining bins of all conditions are stacked, and R² is taken
    per neuron over that stack and averaged uniformly over neurons. ``jitter``
    (bins per eval trial) shifts trials before averaging, as in nlb_tools.
    """
    eval_rates = np.asarray(eval_rates, dtype=np.float64)
    target_psth = np.asarray(target_psth, dtype=np.float64)
    if target_psth.ndim != 3 or eval_rates.ndim != 3:
        raise ValueError(
            f"expected 3-d eval_rates and target_psth, got {eval_rates.shape} and "
            f"{target_psth.shape}"
        )
    if len(eval_cond_idx) > target_psth.shape[0]:
        raise ValueError(
            f"{len(eval_cond_idx)} conditions given but target_psth has {target_psth.shape[0]}"
        )
    shifts = (
        np.zeros(len(eval_rates), dtype=int) if jitter is None else np.asarray(jitter).astype(int)
    )
    targets: list[np.ndarray] = []
    predictions: list[np.ndarray] = []
    for cond, idx in enumerate(eval_cond_idx):
        idx = np.asarray(idx, dtype=int).ravel()
        if idx.size == 0:
            continue
        pred = np.mean([_shift_trial(eval_rates[t], int(shifts[t])) for t in idx], axis=0)
        valid = ~np.isnan(target_psth[cond]).any(axis=1)
        pred = pred[valid]
        if np.isnan(pred).any():
            raise ValueError(
                f"condition {cond}: rate predictions are NaN within the condition's PSTH window"
            )
        targets.append(target_psth[cond][valid])
        predictions.append(pred)
    if not targets:
        raise ValueError("psth R2 needs at least one condition with eval trials")
    return float(r2_score(np.vstack(targets), np.vstack(predictions)))


# ---------------------------------------------------------------------- combined
def nlb_scores(
    *,
    eval_rates_heldout: np.ndarray,
    eval_spikes_heldout: np.ndarray,
    eval_rates_forward: np.ndarray,
    eval_spikes_forward: np.ndarray,
    eval_rates_heldin: np.ndarray | None = None,
    train_rates: np.ndarray | None = None,
    train_behavior: np.ndarray | None = None,
    eval_behavior: np.ndarray | None = None,
    eval_cond_idx: Sequence[np.ndarray] | None = None,
    psth: np.ndarray | None = None,
    train_decode_mask: np.ndarray | None = None,
    eval_decode_mask: np.ndarray | None = None,
    jitter: np.ndarray | None = None,
) -> dict[str, float]:
    """All NLB scores of one dataset in the leaderboard's key names and order.

    Forward arrays hold held-in and held-out neurons concatenated on the last
    axis, as does ``train_rates``; the eval rates used for vel/psth R2 are
    ``eval_rates_heldin`` followed by ``eval_rates_heldout`` (the nlb_tools
    layout). "vel R2" is included only when ``train_rates``, ``train_behavior``
    and ``eval_behavior`` are given, "psth R2" only when ``eval_cond_idx`` and
    ``psth`` are given; both need ``eval_rates_heldin``.
    """
    want_vel = train_rates is not None or train_behavior is not None or eval_behavior is not None
    if want_vel and (train_rates is None or train_behavior is None or eval_behavior is None):
        raise ValueError("vel R2 needs train_rates, train_behavior and eval_behavior together")
    want_psth = eval_cond_idx is not None or psth is not None
    if want_psth and (eval_cond_idx is None or psth is None):
        raise ValueError("psth R2 needs eval_cond_idx and psth together")
    if (want_vel or want_psth) and eval_rates_heldin is None:
        raise ValueError("vel R2 and psth R2 need eval_rates_heldin (all-neuron eval rates)")

    scores: dict[str, float] = {
        "co-bps": bits_per_spike(eval_rates_heldout, eval_spikes_heldout)
    }
    eval_rates = None
    if eval_rates_heldin is not None:
        eval_rates = np.concatenate(
            [np.asarray(eval_rates_heldin, dtype=np.float64),
             np.asarray(eval_rates_heldout, dtype=np.float64)],
            axis=-1,
        )
    if want_vel:
        scores["vel R2"] = velocity_r2(
            train_rates,
            train_behavior,
            eval_rates,
            eval_behavior,
            train_decode_mask=train_decode_mask,
            eval_decode_mask=eval_decode_mask,
        )
    if want_psth:
        scores["psth R2"] = psth_r2(eval_rates, eval_cond_idx, psth, jitter=jitter)
    scores["fp-bps"] = bits_per_spike(eval_rates_forward, eval_spikes_forward)
    return scores


# ---------------------------------------------------------------- classification
def classification_scores(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    labels: Sequence | np.ndarray,
) -> dict[str, object]:
    """Scores for neuron-identity prediction that stay meaningful under class imbalance.

    Accuracy alone is dominated by the commonest cell type, so macro F1 (each
    label in ``labels`` weighted equally; labels never predicted score 0) and
    the confusion matrix are reported too. ``confusion[i][j]`` counts true
    ``labels[i]`` predicted as ``labels[j]``; ``support[i]`` counts true
    ``labels[i]``. Lists (not arrays) keep the result JSON-serialisable.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(labels)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if y_true.size == 0:
        raise ValueError("classification scores need at least one sample")
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro F1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "confusion": confusion.astype(int).tolist(),
        "support": [int((y_true == label).sum()) for label in labels],
    }
