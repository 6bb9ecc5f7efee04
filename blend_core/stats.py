"""Statistics over seeds, and the tables that show them.

An effect is a paired difference: for each seed, one role's metric minus another's
on the same data and seed, so that what the seed changes for both cancels. Over K
seeds we report its mean and a t-based 95% confidence interval,
``mean ± t(0.975, K-1) · sd / sqrt(K)``, which with 3 seeds is wide (t = 4.30) on purpose.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats as sps

from blend_core.roles import ROLES

CONFIDENCE = 0.95
#: paired differences reported over seeds, when both roles are present: (minuend, subtrahend)
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("student", "baseline"),  # the whole gain of distillation
    ("student", "control_student"),  # the part that needs the teacher's behavior
    ("control_student", "baseline"),  # the part a behavior-blind teacher gives too
)
#: metrics that decode behavior, and the roles given behavior as input: those cells are not comparable
BEHAVIOR_METRICS: tuple[str, ...] = ("vel R2",)
SEES_BEHAVIOR: tuple[str, ...] = tuple(r.name for r in ROLES.values() if r.sees_behavior)
NOT_COMPARABLE_NOTE = ("* not comparable: the teacher is given behavior as input, so its behavior "
                       "decoding (vel R2) can exceed even an oracle's")


def difference_name(a: str, b: str) -> str:
    return f"{a} - {b}"


def _numbers(values: Sequence[float]) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=float)


def describe(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value), count and the values themselves."""
    x = _numbers(values)
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "sd": sd, "n": len(x), "values": x.tolist()}


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The t-based confidence interval of the mean (NaN bounds for fewer than two values)."""
    x = _numbers(values)
    if len(x) < 2:
        return math.nan, math.nan
    half = float(sps.t.ppf(0.5 + confidence / 2, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return float(x.mean()) - half, float(x.mean()) + half


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """``a[i] - b[i]`` per seed: its ``describe`` and ``ci_low``/``ci_high`` (t-based, ``confidence``)."""
    if len(a) != len(b):
        raise ValueError(f"paired difference of {len(a)} and {len(b)} values; expected one pair per seed")
    diffs = _numbers(a) - _numbers(b)
    low, high = t_interval(diffs, confidence)
    return {**describe(diffs), "ci_low": low, "ci_high": high, "confidence": confidence}


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summarize(per_seed: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Per role (and reference row) and metric, ``describe`` over seeds; then, for each of
    ``COMPARISONS`` whose roles are present, the paired difference per metric under
    ``"A - B"``. ``per_seed[i]`` is seed ``i``'s ``metrics.json``."""
    out: dict[str, Any] = {}
    for role in per_seed[0]:
        out[role] = {
            name: describe([m[role][name] for m in per_seed])
            for name, value in per_seed[0][role].items() if _scalar(value)
        }
    for a, b in COMPARISONS:
        if a in out and b in out:
            out[difference_name(a, b)] = {
                name: paired_difference(out[a][name]["values"], out[b][name]["values"])
                for name in out[a] if name in out[b]
            }
    return out


def is_difference(key: str) -> bool:
    return " - " in key


def comparable(role: str, metric: str) -> bool:
    return not (role in SEES_BEHAVIOR and metric in BEHAVIOR_METRICS)


def _names(rows: Sequence[Mapping[str, Any]], keep) -> list[str]:
    """The keys of ``rows`` whose values pass ``keep``, in order of first appearance."""
    names: dict[str, None] = {}
    for row in rows:
        names.update((k, None) for k, v in row.items() if keep(v))
    return list(names)


def _table(header: list[str], rows: list[tuple[str, list[str]]], marked: bool) -> str:
    width = max(len(label) for label, _ in rows) + 2
    cols = [max(len(h), *(len(cells[i]) for _, cells in rows)) + 2 for i, h in enumerate(header)]
    lines = [" " * width + "".join(f"{h:>{c}}" for h, c in zip(header, cols))]
    lines += [f"{label:<{width}}" + "".join(f"{cell:>{c}}" for cell, c in zip(cells, cols)) for label, cells in rows]
    if marked:
        lines.append(NOT_COMPARABLE_NOTE)
    return "\n".join(lines)


def _mark(role: str, name: str, text: str) -> str:
    return text + ("*" if not comparable(role, name) else " ")


def format_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """One run's scalar metrics, roles as rows; non-comparable cells marked ``*`` with a footnote."""
    roles = list(metrics)
    names = _names([metrics[r] for r in roles], _scalar)
    rows = [(role, [_mark(role, n, f"{metrics[role].get(n, math.nan):.4f}") for n in names]) for role in roles]
    return _table(names, rows, any(not comparable(r, n) for r in roles for n in names))


def format_summary(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Mean ± sd per role over seeds, then each paired difference as mean [95% CI]."""
    roles = [r for r in summary if not is_difference(r)]
    names = _names([summary[r] for r in roles], lambda v: isinstance(v, Mapping))
    rows = []
    for role in roles:
        cells = []
        for n in names:
            s = summary[role].get(n)
            cells.append(_mark(role, n, f"{s['mean']:.4f} ± {s['sd']:.4f}" if s else "-"))
        rows.append((role, cells))
    for key in (k for k in summary if is_difference(k)):
        cells = []
        for n in names:
            d = summary[key].get(n)
            cells.append(f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] " if d else "- ")
        rows.append((key, cells))
    note = any(not comparable(r, n) for r in roles for n in names)
    text = _table(names, rows, note)
    if any(is_difference(k) for k in summary):
        n_seeds = len(next(iter(summary[roles[0]].values()))["values"]) if roles and summary[roles[0]] else 0
        text += f"\ndifferences: paired per seed, mean [{CONFIDENCE:.0%} t-interval over {n_seeds} seeds]"
    return text
