"""Warnings that explain a run's numbers: a model below a reference row, training cut short.

A newcomer who runs 3 epochs sees co-bps -7 and cannot tell broken from under-trained.
These checks turn what the run directory already holds into one line each:

- :func:`below_references`: a model scores below the best reference row that is not an
  upper bound (e.g. below ``smoothing``; the ``oracle`` bounds every model from above);
  read on the validation split (``metrics.json["val"]``) when the run scored it, else
  on the scored split;
- :func:`training_cut_short`: a role ended inside the lr warm-up, or ran out of epochs
  while its validation loss was still improving (early stopping never fired).

The CLI prints them under the table and ``blend report`` puts them on the page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

#: rows of models blend trains; every other row of metrics.json is a reference row (or ``val``)
MODEL_ROWS = ("teacher", "student", "baseline", "control_teacher", "control_student")
#: reference rows that bound the models from above: being below them is expected
UPPER_BOUNDS = ("oracle",)
#: metrics.json's key for the validation-split scores (blend_core.selection)
VAL_KEY = "val"
#: (role, metric) cells that are not comparable: the teacher is given behavior as input
NOT_COMPARABLE = (("teacher", "vel R2"), ("control_teacher", "vel R2"))
#: a role that ran out of epochs with its best epoch in this last fraction of them was still improving
STILL_IMPROVING = 0.1

Rows = Mapping[str, Mapping[str, Any]]


def _value(v: Any) -> float | None:
    """A metric's number: a scalar, or the ``mean`` of a ``--seeds`` summary cell."""
    if isinstance(v, Mapping):
        v = v.get("mean")
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def scored_rows(metrics: Rows) -> tuple[Rows, str]:
    """The rows to judge and which split they are on: ``val`` when present, else the scored split."""
    val = metrics.get(VAL_KEY)
    if isinstance(val, Mapping) and val:
        return val, "validation split"
    return {k: v for k, v in metrics.items() if k != VAL_KEY}, "scored split"


def below_references(metrics: Rows) -> str | None:
    """One line naming each model below the best (non-upper-bound) reference row, per metric; None if none is.

    Every metric is taken as higher-is-better (the NLB metrics, accuracy, F1); keys whose
    name says loss or nll are skipped.
    """
    rows, split = scored_rows(metrics)
    refs = {r: m for r, m in rows.items() if r not in MODEL_ROWS and r not in UPPER_BOUNDS and isinstance(m, Mapping)}
    if not refs:
        return None
    found: list[str] = []
    beaten_by: dict[str, None] = {}
    for role in (r for r in MODEL_ROWS if isinstance(rows.get(r), Mapping)):
        worse = []
        for name, v in rows[role].items():
            value = _value(v)
            if value is None or (role, name) in NOT_COMPARABLE or "loss" in name or "nll" in name:
                continue
            best = max(((_value(m.get(name)), r) for r, m in refs.items() if _value(m.get(name)) is not None),
                       default=None)
            if best is not None and value < best[0]:
                worse.append(name)
                beaten_by[best[1]] = None
        if worse:
            found.append(f"{role} ({', '.join(worse)})")
    if not found:
        return None
    return (f"below {' / '.join(beaten_by)} on the {split}: {', '.join(found)}; "
            "a model below a reference is under-trained or mis-configured, not yet a result")


def training_cut_short(train: Mapping[str, Any], history: Mapping[str, Sequence[Mapping[str, float]]]) -> list[str]:
    """Lines for roles that ended inside the lr warm-up, or ran all ``max_epochs`` while still improving.

    ``train`` is the run's resolved ``train`` section; ``history`` each role's validation
    records (``epoch``, ``lr``, ``val_loss``), as in ``history.csv``.
    """
    peak, max_epochs = float(train.get("lr", math.nan)), int(train.get("max_epochs", 0))
    warmup, improving = [], []
    for role, records in history.items():
        records = [r for r in records if "epoch" in r]
        if not records:
            continue
        lrs = [r.get("lr", math.nan) for r in records]
        epochs_run = int(max(r["epoch"] for r in records)) + 1
        if (train.get("warmup_steps", 0) and all(b >= a for a, b in zip(lrs, lrs[1:]))
                and lrs[-1] < peak * (1 - 1e-6)):
            warmup.append((role, lrs[-1]))
            continue
        losses = [(r.get("val_loss", math.nan), int(r["epoch"])) for r in records]
        losses = [(v, e) for v, e in losses if math.isfinite(v)]
        if epochs_run >= max_epochs and losses:
            best_epoch = min(losses)[1]
            if best_epoch >= epochs_run - max(1, round(STILL_IMPROVING * epochs_run)):
                improving.append((role, best_epoch))
    lines = []
    if warmup:
        roles = ", ".join(r for r, _ in warmup)
        lr = max(v for _, v in warmup)
        lines.append(f"{roles} ended inside the lr warm-up (lr {lr:.2g} of {peak:.2g} at the last epoch): "
                     "under-trained; raise train.max_epochs or lower train.warmup_steps")
    if improving:
        roles = ", ".join(f"{r} (best epoch {e + 1} of {max_epochs})" for r, e in improving)
        lines.append(f"{roles}: ran out of epochs while validation loss was still improving (early stopping "
                     "never fired); scores may rise with a larger train.max_epochs")
    return lines


def explain(metrics: Rows, train: Mapping[str, Any] | None = None,
            history: Mapping[str, Sequence[Mapping[str, float]]] | None = None) -> list[str]:
    """Every warning for one run's numbers (or a ``--seeds`` run's means), one line each."""
    lines = training_cut_short(train, history) if train and history else []
    below = below_references(metrics)
    return lines + ([below] if below else [])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _mean_rows(per_seed: Sequence[Rows]) -> dict[str, dict[str, float]]:
    """Row-wise, metric-wise mean over seeds of the rows ``scored_rows`` picks (so ``val`` when present)."""
    picked = [scored_rows(m) for m in per_seed]
    split = picked[0][1]
    out: dict[str, dict[str, float]] = {}
    for row in picked[0][0]:
        names = [n for n, v in picked[0][0][row].items() if _value(v) is not None] \
            if isinstance(picked[0][0][row], Mapping) else []
        cells = {}
        for n in names:
            values = [_value(rows.get(row, {}).get(n)) for rows, _ in picked]
            if all(v is not None for v in values):
                cells[n] = sum(values) / len(values)
        out[row] = cells
    return {VAL_KEY: out} if split == "validation split" else out


def run_warnings(run_dir: Path) -> list[str]:
    """The warnings for a run directory or a ``--seeds`` run (its seeds' means; training checks per seed)."""
    import yaml

    from blend_core.builtin.tracking import read_history

    run_dir = Path(run_dir)
    seeds = sorted(p for p in run_dir.glob("seed-*") if (p / "metrics.json").exists())
    dirs = seeds or [run_dir]
    per_seed = [m for m in (_read_json(d / "metrics.json") for d in dirs) if isinstance(m, Mapping)]
    if not per_seed:
        return []
    cut_short = []
    for d in dirs:
        try:
            config = yaml.safe_load((d / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            config = {}
        found = training_cut_short(config.get("train") or {}, read_history(d))
        if found:
            cut_short.append((d, found))
    lines: list[str] = []
    if cut_short:  # a --seeds run: the first such seed's lines, and how many seeds are alike
        d, found = cut_short[0]
        more = f" (and {len(cut_short) - 1} more of {len(dirs)} seeds)" if len(cut_short) > 1 else ""
        lines = [f"{d.name}{more}: {line}" for line in found] if seeds else found
    below = below_references(_mean_rows(per_seed) if seeds else per_seed[0])
    if below:
        lines.append(f"mean over {len(per_seed)} seeds: {below}" if seeds else below)
    return lines
