"""Honest model selection: scores on the validation split carved from the training data.

A run's ``metrics.json`` scores each role on the *scored* split (the test trials, the
held-out animal). Choosing anything on those numbers (a sweep's ``best.yaml``, an
``--auto`` search's settings, an early-stopping epoch) is model selection on the test
set. So every run also scores each role, and each reference row, on the validation
split the task carves from its training data, and writes them under ``"val"``::

    metrics.json = {"student": {...scored split...}, ..., "val": {"student": {...}, "smoothing": {...}}}

Selection reads only ``metrics["val"]``. A task offers validation scores through optional
members (``blend_core.task``): ``evaluate_val(model, predictions)`` (a role's scores),
``val_references()`` (the reference rows' scores) and ``val_score(model)`` (one number,
higher is better, that ``train.monitor: score`` early-stops on). For the built-in neural
task the validation split is the ``val`` trials (on NLB files, the 10% of NLB's train
trials kept for early stopping); for neuron identity it is leave-one-training-animal-out
over the ``train`` label split, never the held-out animal.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from blend_core.config import TrainConfig
from blend_core.errors import BlendError

#: the key of ``metrics.json`` under which the validation scores sit, one row per role/reference
VAL_KEY = "val"


def monitor_score(task: Any, train: TrainConfig) -> Callable[[Any], float] | None:
    """The task's validation score when ``train.monitor`` is ``score``, else None (early stopping on the loss)."""
    if train.monitor != "score":
        return None
    score = getattr(task, "val_score", None)
    if not callable(score):
        raise BlendError(f"train.monitor: 'score' needs a task with a validation score (val_score); "
                         f"{type(task).__name__} has none; use 'loss'")
    return score


def validation_rows(task: Any, models: Mapping[str, Any], predictions: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every role's and every reference row's scores on the validation split ({} if the task has none)."""
    evaluate = getattr(task, "evaluate_val", None)
    if not callable(evaluate):
        return {}
    rows = {role: dict(evaluate(models[role], predictions.get(role))) for role in models}
    references = getattr(task, "val_references", None)
    if callable(references):
        rows.update({name: dict(values) for name, values in references().items()})
    return rows


def scored_rows(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics.json`` without its validation scores: the rows of the scored split."""
    return {k: v for k, v in metrics.items() if k != VAL_KEY}


def val_rows(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The validation scores of ``metrics.json`` ({} for a run made before they were written)."""
    val = metrics.get(VAL_KEY, {})
    return val if isinstance(val, dict) else {}
