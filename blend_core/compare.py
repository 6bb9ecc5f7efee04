"""``blend compare RUN...``: every role and reference row of several runs in one table.

Each run directory (a run, or a ``--seeds`` run whose cells are mean ± sd over seeds,
from ``blend_core.stats.describe``) gives one line per row of its ``metrics.json``;
a second table shows the config keys whose values differ between the runs (what
makes them different), and the warnings of ``blend_core.explain`` follow. The same
table is written as CSV (``--csv``) or Markdown (``--markdown``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from blend_core.errors import BlendError
from blend_core.stats import comparable, describe

#: config keys that say where a run went or how it looked, never what it computed
SKIP_KEYS = ("output.", "train.progress", "train.progress_seconds", "train.threads", "train.tensorboard")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BlendError(f"{path}: cannot read ({exc})") from None


def _is_metric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seed_dirs(run_dir: Path) -> list[Path]:
    from blend_core.loaded import seed_dirs

    return [d for d in seed_dirs(run_dir) if (d / "metrics.json").exists()]


def run_rows(run_dir: Path) -> tuple[int, dict[str, dict[str, dict[str, float]]]]:
    """``(seeds, {row: {metric: describe(...)}})`` of one run directory (one seed: sd 0)."""
    run_dir = Path(run_dir)
    seeds = _seed_dirs(run_dir) if not (run_dir / "metrics.json").exists() else []
    per_seed = [_json(d / "metrics.json") for d in seeds] if seeds else None
    if per_seed is None:
        if not (run_dir / "metrics.json").exists():
            raise BlendError(f"{run_dir}: not a finished run or --seeds run (no metrics.json, no seed-N/metrics.json)")
        per_seed = [_json(run_dir / "metrics.json")]
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for row, values in per_seed[0].items():
        if row == "val" or not isinstance(values, Mapping):  # the validation-split scores: selection's
            continue
        rows[row] = {}
        for name, value in values.items():
            cells = [m.get(row, {}).get(name) for m in per_seed]
            if _is_metric(value) and all(_is_metric(c) for c in cells):
                rows[row][name] = describe(cells)
    return len(per_seed), rows


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(node, list) and node and all(isinstance(v, Mapping) for v in node):
        out = {}
        for i, v in enumerate(node):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): node}


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config, flattened to ``a.b.c: value`` (a --seeds run: its first seed's, with
    ``train.seed`` the range of its seeds)."""
    run_dir = Path(run_dir)
    seeds = _seed_dirs(run_dir) if not (run_dir / "config.yaml").exists() else []
    path = (seeds[0] if seeds else run_dir) / "config.yaml"
    try:
        flat = _flatten(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError):
        return {}
    if seeds:  # the seeds differ by design: shown as their range
        flat["train.seed"] = f"{seeds[0].name[5:]}..{seeds[-1].name[5:]}"
    return {k: v for k, v in flat.items() if not k.startswith(SKIP_KEYS)}


def config_differences(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys whose values are not the same in every config (missing counts as different)."""
    keys: dict[str, None] = {}
    for c in configs:
        keys.update(dict.fromkeys(c))
    return [k for k in keys if len({json.dumps(c.get(k, "<unset>"), sort_keys=True, default=str)
                                    for c in configs}) > 1]


def run_names(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's folder name, or its path where two folders share a name."""
    names = [Path(d).name for d in run_dirs]
    return [str(d) if names.count(n) > 1 else n for d, n in zip(run_dirs, names)]


class Comparison:
    """The runs' rows and config differences, ready to print as text, CSV or Markdown."""

    def __init__(self, run_dirs: Sequence[Path]) -> None:
        if not run_dirs:
            raise BlendError("blend compare: give at least one run directory")
        self.dirs = [Path(d) for d in run_dirs]
        for d in self.dirs:
            if not d.is_dir():
                raise BlendError(f"{d}: no such run directory")
        self.names = run_names(self.dirs)
        self.runs = [run_rows(d) for d in self.dirs]
        configs = [run_config(d) for d in self.dirs]
        self.diff_keys = config_differences(configs) if len(configs) > 1 else []
        self.configs = configs
        metrics: dict[str, None] = {}
        for _, rows in self.runs:
            for values in rows.values():
                metrics.update(dict.fromkeys(values))
        self.metrics = list(metrics)

    def _cell(self, row: str, name: str, d: Mapping[str, float] | None, seeds: int) -> str:
        if d is None:
            return "-"
        mark = "" if comparable(row, name) else "*"
        return (f"{d['mean']:.4f} ± {d['sd']:.4f}" if seeds > 1 else f"{d['mean']:.4f}") + mark

    def table(self) -> tuple[list[str], list[list[str]]]:
        header = ["run", "row", "seeds", *self.metrics]
        body = []
        for name, (seeds, rows) in zip(self.names, self.runs):
            for row, values in rows.items():
                body.append([name, row, str(seeds), *(self._cell(row, m, values.get(m), seeds) for m in self.metrics)])
        return header, body

    def differences(self) -> tuple[list[str], list[list[str]]]:
        header = ["run", *self.diff_keys]
        return header, [[n, *(_show(c.get(k, "<unset>")) for k in self.diff_keys)]
                        for n, c in zip(self.names, self.configs)]

    def notes(self) -> list[str]:
        from blend_core.explain import run_warnings

        lines = [f"warning: {name}: {line}" for name, d in zip(self.names, self.dirs) for line in run_warnings(d)]
        if any(not comparable(r, m) for _, rows in self.runs for r in rows for m in self.metrics):
            from blend_core.stats import NOT_COMPARABLE_NOTE

            lines.insert(0, NOT_COMPARABLE_NOTE)
        return lines

    def text(self) -> str:
        out = [_aligned(*self.table())]
        if self.diff_keys:
            out += ["", "config differences:", _aligned(*self.differences())]
        elif len(self.dirs) > 1:
            out += ["", "config differences: none (apart from output and cosmetic keys)"]
        notes = self.notes()
        return "\n".join(out + ([""] + notes if notes else []))

    def markdown(self) -> str:
        out = [_markdown(*self.table())]
        if self.diff_keys:
            out += ["", "Config differences:", "", _markdown(*self.differences())]
        notes = self.notes()
        return "\n".join(out + ([""] + [f"- {n}" for n in notes] if notes else []))

    def csv(self) -> str:
        """One row per run and row: mean (and sd, n for --seeds runs) per metric, then the differing config keys."""
        f = io.StringIO()
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["run", "row", "seeds", *(c for m in self.metrics for c in (m, f"{m} sd")), *self.diff_keys])
        for name, (seeds, rows), config in zip(self.names, self.runs, self.configs):
            for row, values in rows.items():
                cells = []
                for m in self.metrics:
                    d = values.get(m)
                    cells += [repr(d["mean"]), repr(d["sd"])] if d else ["", ""]
                writer.writerow([name, row, seeds, *cells, *(_show(config.get(k, "")) for k in self.diff_keys)])
        return f.getvalue()


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _aligned(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(header), *(line(r) for r in rows)])


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *(line(r) for r in rows)])


def compare(run_dirs: Sequence[Path], fmt: str = "text") -> str:
    """The comparison of ``run_dirs`` as ``text``, ``csv`` or ``markdown``."""
    comparison = Comparison(run_dirs)
    return {"text": comparison.text, "csv": comparison.csv, "markdown": comparison.markdown}[fmt]()
