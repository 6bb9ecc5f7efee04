"""A BLEND run: teacher, then student distilled from the teacher's best checkpoint, and baseline."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import attrs
import torch

from blend_core.build import RunResult, build_task, load_data, resolve_task
from blend_core.contracts import check_run
from blend_core.builtin.tracking import require_tensorboard
from blend_core.config import Config, resolved_dict
from blend_core.controls import build_any_role, roles, teacher_of, teacher_roles
from blend_core.errors import BlendError
from blend_core.files import cannot_write, open_append
from blend_core.io import load_checkpoint, save_torch, write_json, write_yaml
from blend_core.model import BlendModel
from blend_core.plugins import Plugins
from blend_core.registry import Registry
from blend_core.stats import format_summary, format_table, summarize  # format_*: the CLI's tables
from blend_core.rundir import check_resumable, prepare_out_dir, release_lock
from blend_core.selection import VAL_KEY, monitor_score, validation_rows
from blend_core.task import Task
from blend_core.training import FitResult, fit, resolve_device

log = logging.getLogger("blend")

ROLES = ("teacher", "student", "baseline")


#: keys that change how a run looks or where it goes, never what it computes
COSMETIC_KEYS = {"output": None, "train": ("progress", "progress_seconds", "threads", "tensorboard")}


def _results_relevant(config: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for section, value in config.items():
        keys = COSMETIC_KEYS.get(section, ())
        if keys is None:
            continue
        out[section] = {k: v for k, v in value.items() if k not in keys} if isinstance(value, dict) else value
    return out


# ------------------------------------------------------------------ the run

def _final_path(out_dir: Path, role: str) -> Path:
    return out_dir / "checkpoints" / f"{role}.pt"


def _load_final(model: BlendModel, out_dir: Path, role: str, device: torch.device) -> None:
    path = _final_path(out_dir, role)
    state = load_checkpoint(path, device, required=("model",))["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise BlendError(f"{path}: checkpoint does not fit this run's {role} ({str(exc).splitlines()[0]})") from None
    log.info("%s: loaded finished checkpoint %s", role, path)


def _save_final(model: BlendModel, out_dir: Path, role: str, result: FitResult) -> None:
    """Keep the best (not the last) epoch's weights, in the model and on disk."""
    model.load_state_dict(result.best_state)
    save_torch(_final_path(out_dir, role), {
        "model": model.state_dict(), "role": role, "best_val": result.best_val,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "history": result.history,
    })
    (out_dir / "checkpoints" / f"{role}-last.pt").unlink(missing_ok=True)


def epoch_hook(plugins: Plugins | None, out_dir: Path, role: str) -> Callable[[dict[str, float]], None] | None:
    """The ``on_epoch`` callback of one role's training: the plugins' ``blend_epoch_end`` hook."""
    if plugins is None:
        return None

    def on_epoch(record: dict[str, float]) -> None:
        plugins.manager.hook.blend_epoch_end(run_dir=out_dir, role=role, record=record)

    return on_epoch


def train_role(
    role: str, config: Config, registry: Registry, task: Task, device: torch.device,
    out_dir: Path, teacher: BlendModel | None = None, *, plugins: Plugins | None = None,
) -> BlendModel:
    """Build and train one role (or load it if a finished checkpoint exists); return it in eval mode.

    Each validation epoch is reported to the ``blend_epoch_end`` hook of ``plugins``.
    """
    model, objective = build_any_role(role, config, registry, task, device, teacher)
    if config.train.compile:
        model.compile(dynamic=False)  # in place: state_dict keys are unchanged
    if _final_path(out_dir, role).exists():
        _load_final(model, out_dir, role, device)
    else:
        result = fit(
            model, task, config.train, device, role=role, objective=objective,
            checkpoint=out_dir / "checkpoints" / f"{role}-last.pt", on_epoch=epoch_hook(plugins, out_dir, role),
            score=monitor_score(task, config.train),
        )
        _save_final(model, out_dir, role, result)
    model.eval()
    return model


def _freeze(model: BlendModel) -> BlendModel:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _start(
    config: Config, out_dir: Path, *, overwrite: bool, resume: bool, plugins: Plugins | None = None, data: Any = None,
    source: Any = None,
) -> None:
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    if config.train.tensorboard:
        require_tensorboard()
    prepare_out_dir(out_dir, overwrite=overwrite or config.output.overwrite, resume=resume)
    resolved = resolved_dict(config)
    if resume:
        check_resumable(out_dir, resolved, _results_relevant)
    record = None
    if plugins is not None:  # on resume this refuses changed input data before anything is written
        from blend_core.provenance import FILE, run_provenance

        record = run_provenance(out_dir, config, plugins, data, source=source, resume=resume)
    write_yaml(out_dir / "config.yaml", resolved)  # first: a run directory with anything else has its config
    if record is not None:
        write_json(out_dir / FILE, record)
    _attach_log(out_dir / "log.txt")


def finish_run(
    config: Config, plugins: Plugins, out_dir: Path, source: Any, data: Any, task: Task,
    models: dict[str, BlendModel],
) -> RunResult:
    """Score and predict with every role, add the task's reference rows, let plugins add outputs,
    write ``metrics.json``: the scored split's rows, and under ``"val"`` the same rows scored on the
    validation split carved from training (``blend_core.selection``; what selection may read)."""
    order = sorted(models, key=lambda r: ("baseline", "teacher", "student").index(r) if r in ROLES else 3)
    predictions = {role: task.predict(models[role]) for role in order}
    metrics = {role: task.evaluate(models[role], predictions[role]) for role in order}
    metrics.update(reference_rows(task))
    val = validation_rows(task, {role: models[role] for role in order}, predictions)
    result = RunResult(
        config=config, out_dir=out_dir, source=source, data=data, task=task, models=models,
        metrics=metrics, predictions=predictions, val_metrics=val,
    )
    plugins.manager.hook.blend_run_finished(run=result)
    write_json(out_dir / "metrics.json", {**result.metrics, **({VAL_KEY: result.val_metrics} if result.val_metrics else {})})
    release_lock(out_dir, finished=True)  # no run.lock left in a finished run
    return result


def reference_rows(task: Task) -> dict[str, dict[str, Any]]:
    """Rows that say whether the models are any good (e.g. ``smoothing``, ``oracle``).

    A task offers them through an optional ``references()`` method; they are scored
    with the task's own metrics, so they sit beside the roles in every table.
    """
    references = getattr(task, "references", None)
    return dict(references()) if callable(references) else {}


def run(
    config: Config, plugins: Plugins, *, out_dir: Path | None = None,
    overwrite: bool = False, resume: bool = False, loaded: tuple[Any, Any] | None = None,
) -> RunResult:
    """Train teacher, student and baseline; score them; write the run directory.

    ``loaded`` is ``(source, data)`` when the caller has loaded the data already.
    """
    out_dir = Path(out_dir or config.output.dir)
    registry = plugins.registry
    device = resolve_device(config.train.device)
    source, data = loaded if loaded is not None else load_data(config, registry)  # bad data fails first
    config = resolve_task(config, registry, data)
    task = build_task(config, registry, data, device)
    check_run(config, registry, task, device)  # broken contracts fail before the run directory exists
    _start(config, out_dir, overwrite=overwrite, resume=resume, plugins=plugins, data=data, source=source)
    log.info("data %s on %s", getattr(data, "name", config.data.type), device)

    models: dict[str, BlendModel] = {}
    for role in roles(config):  # teacher, student, baseline, then any control roles
        source_role = teacher_of(role)
        model = train_role(role, config, registry, task, device, out_dir,
                           models[source_role] if source_role else None, plugins=plugins)
        models[role] = _freeze(model) if role in teacher_roles(config) else model
    return finish_run(config, plugins, out_dir, source, data, task, models)


def _train_at_once(
    role: str, configs: list[Config], registry: Registry, task: Task, device: torch.device,
    out_dirs: list[Path], teachers: list[BlendModel] | None = None, *, plugins: Plugins | None = None,
) -> list[BlendModel]:
    """One role for every seed, trained together by ``fit_many`` (one vmapped model)."""
    from blend_core.multi import fit_many

    built = [
        build_any_role(role, c, registry, task, device, teachers[i] if teachers else None)
        for i, c in enumerate(configs)
    ]
    models = [m for m, _ in built]
    if all(_final_path(d, role).exists() for d in out_dirs):
        for model, d in zip(models, out_dirs):
            _load_final(model, d, role, device)
    else:
        try:
            results = fit_many(models, task, configs[0].train, device, role=role,
                               objectives=[o for _, o in built], seeds=[c.train.seed for c in configs],
                               on_epoch=None if plugins is None else [epoch_hook(plugins, d, role) for d in out_dirs],
                               score=monitor_score(task, configs[0].train))
        except RuntimeError as exc:  # e.g. no vmap batching rule for nn.GRU
            if "Batching rule" not in str(exc):
                raise
            raise BlendError(
                f"--at-once: backbone {configs[0].backbone.type!r} cannot be trained at once "
                f"({str(exc).splitlines()[0]}); run the seeds one by one"
            ) from None
        for model, d, result in zip(models, out_dirs, results):
            _save_final(model, d, role, result)
    return [m.eval() for m in models]


def run_seeds(
    config: Config, plugins: Plugins, seeds: int, *, out_dir: Path | None = None,
    overwrite: bool = False, resume: bool = False, at_once: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """Repeat a run over ``seeds`` consecutive training seeds on the same data.

    Each seed gets ``OUT/seed-N``; ``OUT/summary.json`` holds, per role and metric,
    the mean, the standard deviation and the per-seed values, and the paired differences
    (student - baseline, and with the control student - control_student) with their 95%
    t-intervals (``blend_core.stats.summarize``), so that an effect is shown with its spread. ``at_once``
    trains each role for all seeds together (``blend_core.multi``): faster on a GPU.
    """
    out_dir = Path(out_dir or config.output.dir)
    loaded = load_data(config, plugins.registry)
    config = resolve_task(config, plugins.registry, loaded[1])
    device = resolve_device(config.train.device)
    check_run(config, plugins.registry, build_task(config, plugins.registry, loaded[1], device), device)
    prepare_out_dir(out_dir, overwrite=overwrite or config.output.overwrite, resume=resume)
    configs = [attrs.evolve(config, train=attrs.evolve(config.train, seed=config.train.seed + i))
               for i in range(seeds)]
    dirs = [out_dir / f"seed-{c.train.seed}" for c in configs]
    if at_once:
        per_seed = _run_at_once(configs, plugins, dirs, loaded, resume=resume)
    else:
        per_seed = [run(c, plugins, out_dir=d, resume=resume and d.exists(), loaded=loaded).metrics
                    for c, d in zip(configs, dirs)]
    summary = summarize(per_seed)
    write_json(out_dir / "summary.json", summary)
    release_lock(out_dir, finished=True)
    return summary


def _run_at_once(
    configs: list[Config], plugins: Plugins, dirs: list[Path], loaded: tuple[Any, Any], *, resume: bool,
) -> list[dict[str, dict[str, Any]]]:
    source, data = loaded
    if configs[0].train.compile:
        raise BlendError("--at-once: train.compile is not supported with models trained at once")
    for c, d in zip(configs, dirs):
        _start(c, d, overwrite=False, resume=resume and d.exists(), plugins=plugins, data=data, source=source)
    _attach_log(*(d / "log.txt" for d in dirs))  # trained together: every seed's log.txt gets the joint log
    registry = plugins.registry
    device = resolve_device(configs[0].train.device)
    task = build_task(configs[0], registry, data, device)
    trained: dict[str, list[BlendModel]] = {}
    for role in roles(configs[0]):
        source_role = teacher_of(role)
        models = _train_at_once(role, configs, registry, task, device, dirs,
                                trained[source_role] if source_role else None, plugins=plugins)
        trained[role] = [_freeze(m) for m in models] if role in teacher_roles(configs[0]) else models
    return [
        finish_run(c, plugins, d, source, data, task, {role: trained[role][i] for role in trained}).metrics
        for i, (c, d) in enumerate(zip(configs, dirs))
    ]


class RunLog(logging.StreamHandler):
    """``log.txt``: opened without following a link, a torn last line dropped, a failed write one line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(os.fdopen(open_append(path), "a", encoding="utf-8"))
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # e.g. a full disk: the run's log would be silently incomplete
            raise cannot_write(self.path, exc) from None
        super().handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            self.stream.close()
        finally:
            self.release()
        super().close()


def _attach_log(*paths: Path) -> None:
    """Log to ``paths`` (and no earlier run's file)."""
    for handler in list(log.handlers):
        if isinstance(handler, (logging.FileHandler, RunLog)):
            log.removeHandler(handler)
            handler.close()
    for path in paths:
        log.addHandler(RunLog(path))
    log.setLevel(logging.INFO)
