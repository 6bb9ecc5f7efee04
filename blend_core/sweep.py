"""``blend sweep``: grid or random search over config keys, each trial a full BLEND run, on Ray Tune.

The ``sweep:`` section of a config names the keys to vary (any dotted config key)
and how (docs/experiments.md). The trial list is drawn here, reproducibly from
``sweep.seed``, and handed to Ray Tune as a fixed list: Tune schedules the trials
on the CPUs/GPUs of one machine or a cluster, stops bad ones early (ASHA, on the
student's validation loss reported through the ``blend_epoch_end`` hook) and
restores an interrupted sweep. Roles that do not depend on a trial's swept keys
(the teacher when only ``distillation.*`` varies; the baseline when only
``distillation.*`` or ``privileged.*`` vary) are trained once per distinct
configuration, before the trials, and copied into every trial that uses them.

A sweep directory holds ``sweep.yaml`` (the config as given), ``trials/<id>/``
(one run directory per trial), ``shared/`` (the roles trained once),
``results.csv`` (and ``results.parquet`` with pyarrow), ``best.yaml`` and
``tune/`` (Ray Tune's own state, for ``--resume``).
"""

from __future__ import annotations

import collections
import copy
import csv
import hashlib
import itertools
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import yaml

from blend_core.errors import BlendError, ConfigError
from blend_core.hookspecs import hookimpl

INSTALL_HINT = "blend sweep needs Ray Tune: pip install 'blend-core[sweep]' (or: pip install 'ray[tune]>=2.9')"
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
#: config sections a role does not depend on: such a role is shared by trials that differ only there
INDEPENDENT_OF = {
    "teacher": ("distillation", "controls"),
    "baseline": ("distillation", "privileged", "teacher", "controls"),
}
#: the role whose per-epoch validation loss Tune's scheduler sees (the one every trial trains itself)
REPORTED_ROLE = "student"
#: the key whose values are seeds: with it swept, results are also summarised over seeds
SEED_KEY = "train.seed"


@attrs.frozen(kw_only=True)
class Resources:
    """What one trial (and one shared-role training) reserves from Ray."""

    cpu: float = 1.0
    gpu: float = 0.0


@attrs.frozen(kw_only=True)
class Param:
    """One swept key: a list of values (a grid axis; a uniform choice under ``random``) or a distribution."""

    key: str
    kind: str  #: "values" or one of DISTRIBUTIONS
    args: tuple[Any, ...]

    def candidates(self) -> list[Any]:
        """Values that must all give a valid config: every listed value, or a range's ends."""
        if self.kind in ("values", "choice"):
            return list(self.args)
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return list(self.args)

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind in ("values", "choice"):
            return self.args[int(rng.integers(len(self.args)))]
        lo, hi = self.args
        if self.kind == "uniform":
            return float(rng.uniform(lo, hi))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return int(rng.integers(lo, hi))  # randint: hi excluded, as in numpy and Ray Tune


@attrs.frozen(kw_only=True)
class SweepConfig:
    """The ``sweep:`` section (docs/experiments.md)."""

    params: dict[str, Any]
    method: Literal["grid", "random"] = "grid"
    num_samples: int = 1  #: grid: repeats of the whole grid; random: number of trials
    seed: int = 0  #: seeds the draws of distributions (and of lists under ``random``)
    metric: str = "student/co-bps"  #: ROLE/METRIC column of results.csv that picks best.yaml
    mode: Literal["max", "min"] = "max"
    scheduler: Literal["asha", "none"] = "none"
    grace_period: int = 1  #: ASHA: validations of the student before a trial may be stopped
    reduction_factor: int = 3  #: ASHA: keep the best 1/reduction_factor at each rung
    max_concurrent: int = 0  #: at most this many trials at once (0: as many as the resources allow)
    resources: Resources = Resources()
    #: wall-clock budget of the trials (Ray Tune's ``time_budget_s``); trials not finished by then are
    #: stopped, and the sweep picks among those that finished. 0: no budget
    budget_minutes: float = 0.0


@attrs.frozen(kw_only=True)
class SweepResult:
    """What ``run_sweep`` produced: the directory, one row per trial, the exported best config."""

    dir: Path
    rows: list[dict[str, Any]]
    best: Path | None
    table: str


@attrs.frozen(kw_only=True)
class Sweep:
    """A validated sweep: the base config (without ``sweep:``), its section, the swept keys."""

    base: dict[str, Any]
    config: SweepConfig
    params: tuple[Param, ...]
    source: str


# ------------------------------------------------------------------ parsing and validation

def set_key(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``raw`` with dotted ``key`` set to ``value`` (a copy), as ``--set`` would (``config.set_key``)."""
    from blend_core.config import set_key as set_in_place

    out = copy.deepcopy(raw)
    set_in_place(out, key, value, f"sweep.params.{key}")
    return out


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    for key, value in params.items():
        base = set_key(base, key, value)
    return base


def _param(key: str, spec: Any, problems: list[str]) -> Param | None:
    where = f"sweep.params.{key}"
    if not isinstance(key, str) or not key or not all(key.split(".")):
        problems.append(f"sweep.params: {key!r}: expected a dotted config key, e.g. train.lr")
        return None
    if isinstance(spec, list):
        if not spec:
            problems.append(f"{where}: expected a non-empty list of values")
            return None
        return Param(key=key, kind="values", args=tuple(spec))
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        problems.append(f"{where}: expected a list of values or one of "
                        f"{{{', '.join(f'{d}: [...]' for d in DISTRIBUTIONS)}}}, got {spec!r}")
        return None
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args:
        problems.append(f"{where}.{kind}: expected a non-empty list, got {args!r}")
        return None
    if kind == "choice":
        return Param(key=key, kind=kind, args=tuple(args))
    numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if len(args) != 2 or not numeric or not args[0] < args[1]:
        problems.append(f"{where}.{kind}: expected [low, high] numbers with low < high, got {args!r}")
        return None
    if kind == "loguniform" and args[0] <= 0:
        problems.append(f"{where}.loguniform: expected low > 0, got {args[0]!r}")
        return None
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        problems.append(f"{where}.randint: expected integers, got {args!r}")
        return None
    return Param(key=key, kind=kind, args=tuple(args))


def parse_sweep(raw: dict[str, Any], registry: Any, source: str = "config") -> Sweep:
    """Validate the ``sweep:`` section of ``raw`` and every value it can give each key.

    Each listed value (and each end of a range) is applied to the base config, which
    is then validated like any config: a typo in a key or an out-of-range value fails
    here, naming ``sweep.params.KEY=VALUE``, before Ray starts.
    """
    from blend_core.config import build_config, structure

    if not isinstance(raw, dict) or "sweep" not in raw:
        raise BlendError(f"{source}: no 'sweep:' section; see docs/experiments.md")
    base = {k: v for k, v in raw.items() if k != "sweep"}
    build_config(base, registry, source=source)  # the base config's own problems first
    problems: list[str] = []
    section = raw["sweep"]
    if not isinstance(section, dict) or not section.get("params"):
        raise ConfigError(["sweep.params: required: a mapping of dotted config keys to values"], source)
    sweep = structure({**section, "params": {}}, SweepConfig, "sweep.", problems)
    if not isinstance(section["params"], dict):
        problems.append(f"sweep.params: expected a mapping of dotted keys, got {section['params']!r}")
    params = [p for k, s in dict(section["params"]).items() for p in [_param(k, s, problems)] if p is not None] \
        if isinstance(section["params"], dict) else []
    if sweep is not None:
        if sweep.num_samples < 1:
            problems.append(f"sweep.num_samples: expected a positive int, got {sweep.num_samples}")
        if sweep.grace_period < 1:
            problems.append(f"sweep.grace_period: expected a positive int, got {sweep.grace_period}")
        if sweep.reduction_factor < 2:
            problems.append(f"sweep.reduction_factor: expected an int >= 2, got {sweep.reduction_factor}")
        if not sweep.budget_minutes >= 0:
            problems.append(f"sweep.budget_minutes: expected a number >= 0, got {sweep.budget_minutes}")
        if sweep.max_concurrent < 0:
            problems.append(f"sweep.max_concurrent: expected an int >= 0, got {sweep.max_concurrent}")
        if sweep.resources.cpu <= 0 or sweep.resources.gpu < 0:
            problems.append(f"sweep.resources: expected cpu > 0 and gpu >= 0, got {attrs.asdict(sweep.resources)}")
    metric = section.get("metric", SweepConfig.__attrs_attrs__.metric.default)
    if isinstance(metric, str) and not all(metric.partition("/")[::2]):
        problems.append(f"sweep.metric: expected ROLE/METRIC, e.g. 'student/co-bps', got {metric!r}")
    for p in params:
        for value in p.candidates():
            try:
                build_config(set_key(base, p.key, value), registry)
            except ConfigError as exc:
                problems.extend(f"sweep.params.{p.key}={value!r}: {line}" for line in exc.problems)
            except BlendError as exc:
                problems.append(str(exc))
    if problems:
        raise ConfigError(problems, source)
    return Sweep(base=base, config=attrs.evolve(sweep, params=dict(section["params"])),
                 params=tuple(params), source=source)


def trial_params(sweep: Sweep) -> list[dict[str, Any]]:
    """The overrides of every trial, in order: the grid (repeated ``num_samples`` times) or random draws."""
    rng = np.random.default_rng(sweep.config.seed)
    cfg = sweep.config
    if cfg.method == "random":
        return [{p.key: p.sample(rng) for p in sweep.params} for _ in range(cfg.num_samples)]
    axes = [p for p in sweep.params if p.kind == "values"]
    drawn = [p for p in sweep.params if p.kind != "values"]
    out = []
    for _ in range(cfg.num_samples):
        for combo in itertools.product(*(p.args for p in axes)):
            out.append({**dict(zip((p.key for p in axes), combo)), **{p.key: p.sample(rng) for p in drawn}})
    return [{p.key: t[p.key] for p in sweep.params} for t in out]  # keys in the order given


def share_key(raw: dict[str, Any], registry: Any, role: str) -> str:
    """Names what ``role`` depends on in a trial's config: equal keys, one training."""
    from blend_core.config import build_config, resolved_dict
    from blend_core.runner import _results_relevant

    resolved = _results_relevant(resolved_dict(build_config(raw, registry)))
    relevant = {k: v for k, v in resolved.items() if k not in INDEPENDENT_OF[role]}
    digest = hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
    return f"{role}-{digest}"


# ------------------------------------------------------------------ inside Ray workers

def _worker_plugins(context: dict[str, Any]):
    from blend_core.plugins import load_plugins

    os.chdir(context["cwd"])  # relative data paths mean what they meant where the sweep was started
    return load_plugins(context["plugins"], autoload=context["autoload"])


def _threads(config: Any, context: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(config.train.threads or max(1, int(context["resources"]["cpu"])))


def train_shared(context: dict[str, Any], role: str, params: dict[str, Any], shared_dir: str) -> str:
    """Train ``role`` once for every trial that shares it (a Ray task); resumable like any role."""
    from blend_core.build import build_task, load_data
    from blend_core.config import build_config
    from blend_core.runner import train_role
    from blend_core.training import resolve_device

    plugins = _worker_plugins(context)
    config = build_config(apply_params(context["base"], params), plugins.registry, source=context["source"])
    _threads(config, context)
    device = resolve_device(config.train.device)
    _, data = load_data(config, plugins.registry)
    task = build_task(config, plugins.registry, data, device)
    train_role(role, config, plugins.registry, task, device, Path(shared_dir), plugins=plugins)
    return shared_dir


class TuneReporter:
    """A plugin object registered in each trial: the student's epochs go to Ray Tune (for ASHA)."""

    def __init__(self, role: str = REPORTED_ROLE) -> None:
        self.role = role

    @hookimpl
    def blend_epoch_end(self, run_dir: Path, role: str, record: dict[str, float]) -> None:
        if role == self.role:
            from ray import tune

            scores = {"val_score": float(record["val_score"])} if "val_score" in record else {}
            tune.report({"val_loss": float(record["val_loss"]), **scores, "epoch": int(record["epoch"])})


def _copy_shared(shared_dir: Path, trial_dir: Path, role: str) -> None:
    """Put a shared role's finished checkpoint (and its history rows) into a trial's run directory."""
    from blend_core.builtin.tracking import HISTORY, append_history
    from blend_core.io import atomic_write

    target = trial_dir / "checkpoints" / f"{role}.pt"
    if target.exists():
        return
    history = shared_dir / HISTORY
    if history.exists():
        with history.open(newline="") as f:
            for row in csv.DictReader(f):
                if row["role"] == role:
                    append_history(trial_dir, role, {k: float(v) for k, v in row.items()
                                                     if k != "role" and v != ""})
    atomic_write(target, lambda tmp: shutil.copyfile(shared_dir / "checkpoints" / f"{role}.pt", tmp))


def run_trial(tune_config: dict[str, Any], context: dict[str, Any]) -> None:
    """One trial (Ray Tune's function trainable): a full BLEND run in ``trials/<id>``, resumable."""
    from blend_core.build import load_data, resolve_task
    from blend_core.config import build_config, resolved_dict
    from blend_core.io import write_yaml
    from blend_core.rundir import is_run_dir, write_marker
    from blend_core.runner import run

    trial = tune_config["trial"]
    start = time.monotonic()
    plugins = _worker_plugins(context)
    plugins.manager.register(TuneReporter(), name="blend-sweep-tune-reporter")
    sweep_dir = Path(context["sweep_dir"])
    trial_dir = sweep_dir / "trials" / trial["id"]
    raw = set_key(apply_params(context["base"], trial["params"]), "output.dir", str(trial_dir))
    config = build_config(raw, plugins.registry, source=f"{context['source']} (trial {trial['id']})")
    _threads(config, context)
    loaded = load_data(config, plugins.registry)
    if not is_run_dir(trial_dir):  # a fresh trial: blend's marker and the config first, then the shared roles
        trial_dir.mkdir(parents=True, exist_ok=True)
        write_marker(trial_dir)
        resolved = resolved_dict(resolve_task(config, plugins.registry, loaded[1]))
        write_yaml(trial_dir / "config.yaml", resolved)  # as run() saves it: --resume checks against it
    for role, name in trial["shared"].items():
        _copy_shared(sweep_dir / "shared" / name, trial_dir, role)
    run(config, plugins, out_dir=trial_dir, resume=True, loaded=loaded)
    _write_trial_info(trial_dir, trial, seconds=time.monotonic() - start)


def _write_trial_info(trial_dir: Path, trial: dict[str, Any], seconds: float) -> None:
    """``trial.json``: the trial's values, its wall time and the Ray node it ran on."""
    import ray

    from blend_core.io import write_json

    write_json(trial_dir / "trial.json", {**trial, "seconds": seconds, "node": ray.get_runtime_context().get_node_id()})


# ------------------------------------------------------------------ the driver

def require_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.tune") is None:
        raise BlendError(INSTALL_HINT)


def _check_same_sweep(sweep_dir: Path, raw: dict[str, Any]) -> None:
    saved = sweep_dir / "sweep.yaml"
    if saved.exists() and yaml.safe_load(saved.read_text()) != json.loads(json.dumps(raw)):
        raise BlendError(f"{saved}: config differs from the sweep being resumed; use a new --out")


def plan(sweep: Sweep, registry: Any) -> list[dict[str, Any]]:
    """Every trial: its id, its overrides, and the shared role trainings it uses."""
    from blend_core.config import build_config

    trials = []
    for i, params in enumerate(trial_params(sweep)):
        raw = apply_params(sweep.base, params)
        shared = {role: share_key(raw, registry, role) for role in INDEPENDENT_OF}
        monitor = build_config(raw, registry).train.monitor
        trials.append({"id": f"trial-{i:03d}", "params": params, "shared": shared, "monitor": monitor})
    uses = collections.Counter(name for t in trials for name in t["shared"].values())
    for trial in trials:  # a role no other trial shares is trained in its trial, under Tune's scheduler and budget
        trial["shared"] = {role: name for role, name in trial["shared"].items() if uses[name] > 1}
    return trials


def _ray_init(address: str | None) -> bool:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start Ray on this machine; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False if address is None else None,
             logging_level="WARNING", log_to_driver=False, configure_logging=False)
    return True


def _train_shared_roles(trials: list[dict[str, Any]], context: dict[str, Any], sweep_dir: Path) -> None:
    import ray

    res = context["resources"]
    task = ray.remote(num_cpus=res["cpu"], num_gpus=res["gpu"], max_retries=0)(train_shared)
    pending = {}
    for trial in trials:
        for role, name in trial["shared"].items():
            shared_dir = sweep_dir / "shared" / name
            if name not in pending and not (shared_dir / "checkpoints" / f"{role}.pt").exists():
                pending[name] = task.remote(context, role, trial["params"], str(shared_dir))
    try:
        ray.get(list(pending.values()))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), BlendError) else None
        if cause is not None:
            raise BlendError(str(cause)) from None
        raise


def run_sweep(
    raw: dict[str, Any], plugins: Any, *, source: str, out_dir: Path | None = None, overwrite: bool = False,
    resume: bool = False, address: str | None = None, plugin_names: list[str] = (),
) -> SweepResult:
    """Run (or resume) the sweep of config ``raw``; write results.csv and best.yaml; return the sweep dir."""
    require_ray()
    from blend_core.io import write_yaml
    from blend_core.plugins import autoload_disabled
    from blend_core.runner import prepare_out_dir

    sweep = parse_sweep(raw, plugins.registry, source)
    sweep_dir = Path(out_dir or sweep.base.get("output", {}).get("dir", "runs/sweep")).resolve()
    prepare_out_dir(sweep_dir, overwrite=overwrite, resume=resume)
    if resume:
        _check_same_sweep(sweep_dir, raw)
    write_yaml(sweep_dir / "sweep.yaml", json.loads(json.dumps(raw)))
    trials = plan(sweep, plugins.registry)
    context = {
        "base": sweep.base, "source": source, "cwd": os.getcwd(), "sweep_dir": str(sweep_dir),
        "plugins": [*plugin_names, *sweep.base.get("plugins", [])],
        "autoload": not autoload_disabled(),  # the driver's reading, passed on to the Ray workers
        "resources": attrs.asdict(sweep.config.resources),
    }
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's console tables off: the table is ours
    started = _ray_init(address)
    try:
        _train_shared_roles(trials, context, sweep_dir)
        grid = _tune(sweep, trials, context, sweep_dir, resume=resume)
    finally:
        if started:
            import ray

            ray.shutdown()
    rows = collect(sweep, trials, sweep_dir, grid)
    write_results(rows, sweep_dir)
    if SEED_KEY in (p.key for p in sweep.params):
        write_results(seed_summary(rows, sweep), sweep_dir, "summary")
    if any(r["status"] in ("interrupted", "pending") for r in rows):
        raise KeyboardInterrupt
    best = write_best(sweep, rows, sweep_dir)
    return SweepResult(dir=sweep_dir, rows=rows, best=best, table=format_results(rows, sweep))


def _tune(sweep: Sweep, trials: list[dict[str, Any]], context: dict[str, Any], sweep_dir: Path, *,
          resume: bool) -> dict[str, dict[str, Any]]:
    """Run the trials on Ray Tune; per trial id, Tune's status and last reported values."""
    from ray import tune

    res = sweep.config.resources
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context),
                                    {"cpu": res.cpu, "gpu": res.gpu})
    path = sweep_dir / "tune"
    if resume and tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        scheduler = None
        if sweep.config.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            max_t = max(int(apply_params(sweep.base, t["params"]).get("train", {}).get("max_epochs", 200))
                        for t in trials)
            # max_t above the last report: ASHA stops a trial that reaches max_t, which would cut
            # it off after the student's last epoch, before the baseline and the scores
            # the student's validation score when every trial early-stops on it (train.monitor: score)
            on_score = all(t["monitor"] == "score" for t in trials)
            scheduler = ASHAScheduler(metric="val_score" if on_score else "val_loss", mode="max" if on_score else "min",
                                      time_attr="training_iteration",
                                      grace_period=min(sweep.config.grace_period, max_t + 1), max_t=max_t + 1,
                                      reduction_factor=sweep.config.reduction_factor)
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=sweep.config.max_concurrent or None,
                                        reuse_actors=True, time_budget_s=sweep.config.budget_minutes * 60 or None),
            run_config=tune.RunConfig(storage_path=str(sweep_dir), name="tune", verbose=0),
        )
    started = time.monotonic()
    results = tuner.fit()
    out: dict[str, dict[str, Any]] = {}
    budget = sweep.config.budget_minutes * 60
    finished = results.num_terminated + results.num_errors == len(results) or bool(
        budget and time.monotonic() - started >= budget)  # the budget ran out: what did not finish never will
    for result in results:
        if not result.config:
            continue
        out[result.config["trial"]["id"]] = {
            "error": str(result.error).strip().splitlines()[-1] if result.error else None,
            "reports": int((result.metrics or {}).get("training_iteration", 0) or 0),
            "val_loss": (result.metrics or {}).get("val_loss"),
            "finished": finished,
        }
    return out


# ------------------------------------------------------------------ results

def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def collect(sweep: Sweep, trials: list[dict[str, Any]], sweep_dir: Path,
            tune_state: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per trial: id, status, swept values, every numeric metric of every row of metrics.json."""
    rows = []
    for trial in trials:
        trial_dir = sweep_dir / "trials" / trial["id"]
        state = tune_state.get(trial["id"], {})
        row: dict[str, Any] = {"trial": trial["id"]}
        metrics_path = trial_dir / "metrics.json"
        if metrics_path.exists():
            row["status"] = "finished"
        elif state.get("error"):
            row["status"] = f"error: {state['error']}"
        elif state.get("finished") and state.get("reports"):
            row["status"] = "stopped early"
        elif state.get("finished"):
            row["status"] = "not run"
        else:
            row["status"] = "interrupted" if trial_dir.exists() else "pending"
        row.update({k: v for k, v in trial["params"].items()})
        info = trial_dir / "trial.json"
        row["seconds"] = json.loads(info.read_text())["seconds"] if info.exists() else float("nan")
        row["last val_loss"] = state.get("val_loss") if state.get("val_loss") is not None else float("nan")
        if metrics_path.exists():
            row.update(metric_columns(json.loads(metrics_path.read_text())))
        row["dir"] = str(Path("trials") / trial["id"])
        rows.append(row)
    return rows


def metric_columns(metrics: dict[str, Any]) -> dict[str, float]:
    """``ROLE/METRIC`` for every numeric score of the scored split, then ``val/ROLE/METRIC`` for the
    validation split's (``blend_core.selection``): the columns selection reads."""
    from blend_core.selection import VAL_KEY, scored_rows, val_rows

    out: dict[str, float] = {}
    for prefix, rows in (("", scored_rows(metrics)), (f"{VAL_KEY}/", val_rows(metrics))):
        for role, values in rows.items():
            for name, value in values.items():
                if _numeric(value):
                    out[f"{prefix}{role}/{name}"] = float(value)
    return out


def selection_column(metric: str) -> str:
    """The results column that ranks trials for ``metric`` (ROLE/METRIC): its validation score, never the scored split's."""
    from blend_core.selection import VAL_KEY

    return f"{VAL_KEY}/{metric}"


def write_results(rows: list[dict[str, Any]], sweep_dir: Path, name: str = "results") -> list[Path]:
    """``NAME.csv`` (and ``NAME.parquet`` when pyarrow is installed), written atomically."""
    from blend_core.io import atomic_write

    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    paths = [atomic_write(sweep_dir / f"{name}.csv", write_csv)]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return paths
    table = pa.table({c: [_cell(r.get(c)) for r in rows] for c in columns})
    paths.append(atomic_write(sweep_dir / f"{name}.parquet", lambda tmp: pq.write_table(table, tmp)))
    return paths


def _cell(value: Any) -> Any:
    """Parquet columns need one type: swept values of mixed types become strings."""
    return value if value is None or _numeric(value) else str(value)


def seed_summary(rows: list[dict[str, Any]], sweep: Sweep) -> list[dict[str, Any]]:
    """With ``train.seed`` swept: one row per configuration of the other keys, over its finished seeds.

    Each ``ROLE/METRIC`` column becomes ``... mean`` and ``... sd``; each paired comparison of
    ``blend_core.stats.COMPARISONS`` whose roles are present (``student - baseline``, ...) gets
    its mean and t-based 95% CI over seeds (``A - B/METRIC mean``, ``... ci_low``, ``... ci_high``).
    """
    from blend_core.stats import COMPARISONS, describe, difference_name, paired_difference

    keys = [p.key for p in sweep.params if p.key != SEED_KEY]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row[k] for k in keys]), []).append(row)
    out = []
    for members in groups.values():
        done = sorted((r for r in members if r["status"] == "finished"), key=lambda r: r[SEED_KEY])
        summary: dict[str, Any] = {"trial": " ".join(r["trial"] for r in members),
                                   **{k: members[0][k] for k in keys}, "seeds": len(members), "finished": len(done)}
        columns = [c for c in (done[0] if done else {}) if "/" in c and all(_numeric(r.get(c)) for r in done)]
        for col in columns:
            d = describe([r[col] for r in done])
            summary[f"{col} mean"], summary[f"{col} sd"] = d["mean"], d["sd"]
        for a, b in COMPARISONS:
            for col in columns:
                role, name = col.split("/", 1)
                if role == a and f"{b}/{name}" in columns:
                    diff = paired_difference([r[col] for r in done], [r[f"{b}/{name}"] for r in done])
                    for stat in ("mean", "ci_low", "ci_high"):
                        summary[f"{difference_name(a, b)}/{name} {stat}"] = diff[stat]
        summary["status"] = "finished" if done else "no finished seed"
        out.append(summary)
    return out


def best_row(rows: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    scored = [r for r in rows if r["status"] == "finished" and _numeric(r.get(metric)) and math.isfinite(r[metric])]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda r: r[metric])


def write_best(sweep: Sweep, rows: list[dict[str, Any]], sweep_dir: Path) -> Path | None:
    """``best.yaml``: the config as given, with the best trial's values, runnable with ``blend run``.

    Trials are ranked on ``sweep.metric``'s validation column (``val/ROLE/METRIC``): the scores of
    the validation split carved from training, never the scored split's.
    """
    from blend_core.io import write_text

    cfg = sweep.config
    column = selection_column(cfg.metric)
    keys = [p.key for p in sweep.params]
    over_seeds = SEED_KEY in keys
    if over_seeds:  # the best configuration by its mean over seeds; the seed stays the base config's
        keys.remove(SEED_KEY)
        groups = [g for g in seed_summary(rows, sweep) if g["finished"] == g["seeds"]]
        best = best_row(groups, f"{column} mean", cfg.mode)
    else:
        best = best_row(rows, column, cfg.mode)
    if best is None:
        if any(r["status"] == "finished" for r in rows):
            raise BlendError(f"sweep.metric: {cfg.metric!r} has no validation column {column!r} in "
                             f"{sweep_dir / 'results.csv'}; expected ROLE/METRIC of a score the task also "
                             "computes on its validation split, as in the header's val/... columns")
        return None
    params = {k: best[k] for k in keys}
    raw = set_key(apply_params(sweep.base, params), "output.dir", str(sweep_dir / "best"))
    score = (f"{column} = {best[f'{column} mean']:.6g} ± {best[f'{column} sd']:.3g} (mean ± s.d. over "
             f"{best['seeds']} seeds, {cfg.mode})" if over_seeds else f"{column} = {best[column]:.6g} ({cfg.mode})")
    header = (f"# best {'configuration' if over_seeds else 'trial'} of the sweep in {sweep_dir}: {best['trial']}, "
              f"{score}\n"
              + "".join(f"# {k}: {json.dumps(v)}\n" for k, v in params.items()))
    return write_text(sweep_dir / "best.yaml", header + yaml.safe_dump(json.loads(json.dumps(raw)), sort_keys=False))


def format_results(rows: list[dict[str, Any]], sweep: Sweep) -> str:
    """The trial table printed at the end: id, status, swept values, the sweep's metric."""
    keys = [p.key for p in sweep.params]
    columns = ["trial", *keys, selection_column(sweep.config.metric), sweep.config.metric, "status"]
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def load_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """``results.csv`` read back, numbers as floats."""
    with (sweep_dir / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                pass
    return rows
