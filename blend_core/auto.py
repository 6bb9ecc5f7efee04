"""``blend run CONFIG --auto``: a per-dataset search of the recipe, then the final run with what it chose.

One recipe does not fit every dataset; the field's answer is to tune on the user's own
validation data (AutoLFADS). ``--auto`` runs a random search with ASHA over a documented
space per task (``SPACES``; ``auto.search_space`` adds or replaces keys) on Ray Tune, as a
sweep (``blend_core.sweep``): every trial is a full BLEND run, and trials are ranked on
the **validation split** carved from training only (``blend_core.selection``). The bar
to beat is the best reference row's validation score (``smoothing`` for neural data, the
activity-statistics rows for neuron identity); whether the chosen trial beat it is
recorded and printed. Then the final teacher, student and baseline (and controls, and
``--seeds K``) train with the chosen settings.

``OUT/auto/`` is the search (a sweep directory: ``results.csv``, ``best.yaml``,
``trials/``, ``auto.json``); ``OUT/final/`` is the final run, the one ``blend run
OUT/auto/best.yaml`` reproduces.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import attrs
import yaml

from blend_core.errors import BlendError, ConfigError

#: the search space of each task: dotted config key -> a list (a uniform choice) or a distribution
#: (``blend_core.sweep`` syntax). Keys the configured components do not have are left out.
SPACES: dict[str, dict[str, Any]] = {
    "neural": {
        "train.lr": {"loguniform": [3.0e-4, 1.0e-2]},
        "train.weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
        "train.batch_size": [16, 32, 64],
        "backbone.d_model": [32, 64, 128],
        "backbone.ffn_dim": [64, 128, 256],
        "backbone.num_layers": [1, 2, 4],
        "backbone.dropout": {"uniform": [0.0, 0.5]},
        "backbone.dropout_embedding": {"uniform": [0.0, 0.5]},
        "backbone.dropout_attention": {"uniform": [0.0, 0.5]},
        "task.mask_ratio": {"uniform": [0.1, 0.5]},
        "distillation.alpha": {"uniform": [0.2, 0.9]},
        "distillation.type": ["correlation", "hard", "poisson_kl"],
    },
    "neuron_identity": {
        "train.lr": {"loguniform": [1.0e-3, 1.0e-2]},
        "backbone.embedding_dim": [8, 16, 32],
        "task.window": [8, 16, 32],
        "task.classifier": ["logistic", "svm"],
        "task.svm_c": {"loguniform": [0.1, 10.0]},
        "task.normalize": ["neuron", "session"],
        "distillation.alpha": {"uniform": [0.2, 0.9]},
    },
}
#: the score that ranks trials when ``auto.metric`` is not given (a ROLE/METRIC of the validation split)
METRICS = {"neural": "student/co-bps", "neuron_identity": "student/accuracy (subclass)"}
#: reference rows that are not a bar: the truth, where a synthetic source knows it
NOT_A_BAR = ("oracle",)


@attrs.frozen(kw_only=True)
class AutoConfig:
    """The ``auto:`` section (docs/experiments.md)."""

    budget_minutes: float = 15.0  #: wall-clock budget of the search (sized for a 2-core CPU)
    trials: int = 16  #: trials drawn; those not finished within the budget are stopped
    search_space: dict[str, Any] = attrs.Factory(dict)  #: keys added to (or replacing) the task's space
    metric: str | None = None  #: ROLE/METRIC ranking trials on the validation split (None: the task's)
    seed: int = 0  #: seeds the draws
    grace_period: int = 5  #: ASHA: the student's validation epochs before a trial may be stopped
    reduction_factor: int = 3
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


def parse_auto(raw: dict[str, Any]) -> AutoConfig:
    """The ``auto:`` section of ``raw`` (defaults when absent), checked; ConfigError names the key."""
    from blend_core.config import structure

    section = raw.get("auto") or {}
    problems: list[str] = []
    if not isinstance(section, dict):
        raise ConfigError([f"auto: expected a mapping, got {section!r}"])
    auto = structure(section, AutoConfig, "auto.", problems)
    if auto is not None:
        if not auto.budget_minutes > 0:
            problems.append(f"auto.budget_minutes: expected a number > 0, got {auto.budget_minutes}")
        if auto.trials < 1:
            problems.append(f"auto.trials: expected a positive int, got {auto.trials}")
        if not isinstance(section.get("search_space", {}), dict):
            problems.append("auto.search_space: expected a mapping of dotted config keys to values")
    if problems:
        raise ConfigError(problems)
    return auto


def search_space(base: dict[str, Any], task: str, auto: AutoConfig, registry: Any) -> dict[str, Any]:
    """The task's space, less the keys this config's components lack, plus ``auto.search_space``."""
    from blend_core.config import build_config
    from blend_core.sweep import _param, set_key

    space = {}
    for key, spec in SPACES.get(task, {}).items():
        param = _param(key, spec, [])
        try:
            for value in param.candidates():
                build_config(set_key(base, key, value), registry)
        except (ConfigError, BlendError):
            continue  # e.g. backbone.d_model of a backbone without one
        space[key] = spec
    space.update(auto.search_space)
    if not space:
        raise BlendError(f"auto.search_space: the task {task!r} has no default search space; give one")
    return space


def default_metric(task: str, data: Any = None) -> str:
    """The ROLE/METRIC that ranks trials by default: ``METRICS[task]``; for neuron identity, the accuracy
    of the data's last label set (the finest, e.g. subclass), whatever it is called."""
    labels = getattr(data, "labels", ())
    if task == "neuron_identity" and labels:
        return f"student/accuracy ({labels[-1].name})"
    return METRICS.get(task, "student/co-bps")


def sweep_raw(raw: dict[str, Any], task: str, auto: AutoConfig, registry: Any, data: Any = None) -> dict[str, Any]:
    """The config of the search: the given one, without ``auto:``, plus a random ASHA ``sweep:`` section."""
    base = {k: v for k, v in raw.items() if k not in ("auto", "sweep")}
    if task in SPACES:  # ASHA compares trials on the validation score: losses under other mask ratios do not compare
        base = {**base, "train": {"monitor": "score", **(base.get("train") or {})}}
    return {**base, "sweep": {
        "method": "random", "num_samples": auto.trials, "seed": auto.seed,
        "params": search_space(base, task, auto, registry),
        "metric": auto.metric or default_metric(task, data), "mode": "max",
        "scheduler": "asha", "grace_period": auto.grace_period, "reduction_factor": auto.reduction_factor,
        "resources": {"cpu": auto.cpus_per_trial, "gpu": auto.gpus_per_trial},
        "budget_minutes": auto.budget_minutes,
    }}


def the_bar(row: dict[str, Any], metric: str) -> tuple[str, float] | None:
    """The best reference row's validation score for ``metric``'s name, from a results row: (row, score)."""
    from blend_core.selection import VAL_KEY
    from blend_core.sweep import _numeric

    name = metric.partition("/")[2]
    roles = ("teacher", "student", "baseline")
    scores = {
        col.split("/")[1]: v for col, v in row.items()
        if col.startswith(f"{VAL_KEY}/") and col.endswith(f"/{name}") and _numeric(v)
        and col.split("/")[1] not in (*roles, *NOT_A_BAR) and not col.split("/")[1].startswith("control")
    }
    if not scores:
        return None
    best = max(scores, key=scores.__getitem__)
    return best, float(scores[best])


def run_auto(
    raw: dict[str, Any], plugins: Any, *, source: str, out_dir: Path, seeds: int = 1, overwrite: bool = False,
    resume: bool = False, address: str | None = None, plugin_names: list[str] = (),
) -> dict[str, Any]:
    """Search, then the final run; writes ``OUT/auto/`` and ``OUT/final/``; returns ``auto.json``'s content."""
    from blend_core.build import load_data, task_selection
    from blend_core.config import build_config, read_yaml
    from blend_core.io import write_json, write_text
    from blend_core.rundir import prepare_out_dir, release_lock
    from blend_core.runner import run, run_seeds
    from blend_core.sweep import best_row, require_ray, run_sweep, selection_column

    require_ray()
    auto = parse_auto(raw)
    config = build_config({k: v for k, v in raw.items() if k != "auto"}, plugins.registry, source=source)
    _, data = load_data(config, plugins.registry)
    task = task_selection(config, plugins.registry, data).type
    search = sweep_raw(raw, task, auto, plugins.registry, data)
    out_dir = Path(out_dir).resolve()
    prepare_out_dir(out_dir, overwrite=overwrite, resume=resume)
    started = time.monotonic()
    result = run_sweep(search, plugins, source=source, out_dir=out_dir / "auto",
                       resume=resume and (out_dir / "auto").exists(), address=address, plugin_names=plugin_names)
    search_s = time.monotonic() - started
    metric = search["sweep"]["metric"]
    column = selection_column(metric)
    chosen = best_row(result.rows, column, "max")
    if chosen is None or result.best is None:
        raise BlendError(f"--auto: no trial finished within auto.budget_minutes={auto.budget_minutes:g}; "
                         f"raise the budget or lower train.max_epochs (see {out_dir / 'auto' / 'results.csv'})")
    bar = the_bar(chosen, metric)
    summary: dict[str, Any] = {
        "task": task, "metric": column, "trials": len(result.rows),
        "finished": sum(r["status"] == "finished" for r in result.rows),
        "budget_minutes": auto.budget_minutes, "search_seconds": round(search_s, 1),
        "chosen": {"trial": chosen["trial"], "score": chosen[column],
                   "params": {k: chosen[k] for k in search["sweep"]["params"]}},
        "bar": None if bar is None else {"row": bar[0], "score": bar[1]},
        "beaten": None if bar is None else bool(chosen[column] > bar[1]),
    }
    final = copy.deepcopy(read_yaml(result.best))  # best.yaml reruns the final run: its output is OUT/final
    final.setdefault("output", {})["dir"] = str(out_dir / "final")
    header = "".join(line + "\n" for line in result.best.read_text().splitlines() if line.startswith("#"))
    write_text(result.best, header + yaml.safe_dump(json.loads(json.dumps(final)), sort_keys=False))
    write_json(out_dir / "auto" / "auto.json", summary)
    final_config = build_config(final, plugins.registry, source=str(result.best))
    again = resume and (out_dir / "final").exists()  # --resume: continue the final run if it had started
    if seeds > 1:
        summary["final"] = run_seeds(final_config, plugins, seeds, out_dir=out_dir / "final", resume=again)
    else:
        summary["final"] = run(final_config, plugins, out_dir=out_dir / "final", resume=again).metrics
    release_lock(out_dir, finished=True)
    return summary


def format_auto(summary: dict[str, Any]) -> str:
    """The lines ``--auto`` prints after the final table: what was searched, what was chosen, the bar."""
    chosen = summary["chosen"]
    lines = [f"auto: {summary['finished']} of {summary['trials']} trials finished in "
             f"{summary['search_seconds'] / 60:.1f} min (budget {summary['budget_minutes']:g} min); chose "
             f"{chosen['trial']}: {summary['metric']} = {chosen['score']:.4f}"]
    bar = summary["bar"]
    if bar is None:
        lines.append("auto: no reference row scores this metric; nothing to beat")
    elif summary["beaten"]:
        lines.append(f"auto: beats the best reference, {bar['row']} ({summary['metric'].split('/', 2)[2]} "
                     f"{bar['score']:.4f} on the validation split)")
    else:
        lines.append(f"warning: auto: the chosen trial ({chosen['score']:.4f}) is below the best reference, "
                     f"{bar['row']} ({bar['score']:.4f}), on the validation split")
    return "\n".join(lines)
