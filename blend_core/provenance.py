"""Where a run came from: versions, the git commit, which plugin supplied each component, and
the sha256 of every input data file.

Written as ``provenance.json`` into every run directory, so that a result can be
traced to the exact code and data that produced it. A data source declares the
files it read with an optional ``input_files()`` (see ``blend_core.task.DataSource``).
``--resume`` keeps the file as it was, refuses to continue when an input file's
digest changed, and appends what resumed it under ``resumed``.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

from blend_core.build import backbone_selection, task_selection
from blend_core.config import Config
from blend_core.errors import BlendError
from blend_core.io import write_json

FILE = "provenance.json"


def distribution_of(module: str) -> str | None:
    """``"name version"`` of the installed distribution that provides ``module``, or None."""
    top = module.split(".")[0]
    for dist in packages_distributions().get(top, []):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return None


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the git checkout holding blend_core (``+dirty`` with local changes), or None."""
    where = start or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def components_used(config: Config, registry: Any, data: Any = None) -> dict[str, dict[str, str]]:
    """Config section -> the component it picked and the plugin (with version) that registered it.

    With ``data``, a task the config leaves to the data (``data.task``) is recorded too.
    """
    task = config.task.type if config.task is not None else None
    if task is None and data is not None:
        task = task_selection(config, registry, data).type
    picks: list[tuple[str, str, str | None]] = [
        ("data", "data source", config.data.type),
        ("task", "task", task),
        ("backbone", "backbone", config.backbone.type),
        ("privileged", "encoder", config.privileged.encoder.type),
    ]
    if config.teacher is not None:
        picks.append(("teacher", "backbone", backbone_selection(config, "teacher")[0].type))
    picks += [(f"distillation.losses.{i}", "distillation loss", w.loss.type)
              for i, w in enumerate(config.distillation.losses)]
    out = {}
    for section, kind, name in picks:
        if name is None:
            continue
        comp = registry.get(kind, name, f"{section}.type")
        out[section] = {"kind": kind, "name": name, "plugin": comp.plugin, "version": registry.origin(comp.plugin)}
    return out


def provenance(config: Config, plugins: Any, data: Any = None) -> dict[str, Any]:
    """Versions of blend, torch and Python, the git commit, every loaded plugin, the components used."""
    import torch

    from blend_core import __version__

    return {
        "blend": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": sys.argv,
        "git_commit": git_commit(),
        "plugins": [{"name": i.name, "version": i.version, "builtin": i.builtin} for i in plugins.infos],
        "components": components_used(config, plugins.registry, data),
        "compute": compute_used(config),
    }


def compute_used(config: Config) -> dict[str, Any]:
    """The device and the precision the run trains in (``train.precision: auto`` resolved here;
    on a CPU with native bf16 it depends on each model's width: each role logs its own)."""
    import torch

    from blend_core.training import CPU_BF16_MIN_WIDTH, cpu_has_fast_bf16, resolve_device, resolve_precision

    device = resolve_device(config.train.device)
    asked, fast = config.train.precision, cpu_has_fast_bf16()
    precision = resolve_precision(device, asked)
    if asked == "auto" and device.type == "cpu" and fast:
        precision = f"bf16 for models with a linear layer >= {CPU_BF16_MIN_WIDTH} wide, else fp32"
    return {"device": device.type, "precision_asked": asked, "precision": precision,
            "cpu_fast_bf16": fast, "threads": torch.get_num_threads()}


def input_digests(source: Any) -> list[dict[str, Any]]:
    """``{path, sha256, bytes}`` of each file the data source says it read (its ``input_files()``)."""
    from blend_core.files import sha256_file

    declared = getattr(source, "input_files", None)
    if not callable(declared):
        return []
    out = []
    for item in declared():
        path = Path(item).resolve()
        out.append({"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size})
    return out


def check_same_inputs(saved: list[dict[str, Any]], now: list[dict[str, Any]], where: Path) -> None:
    """Refuse to resume on data other than the run's: one line naming the first file that differs."""
    hint = "--resume continues a run only on the data it started with; use a new --out"
    for old, new in zip(saved, now):
        if old.get("sha256") != new["sha256"]:
            raise BlendError(f"{new['path']}: input data changed since the run started (sha256 "
                             f"{str(old.get('sha256'))[:12]}... in {where}, now {new['sha256'][:12]}...); {hint}")
    if len(saved) != len(now):
        raise BlendError(f"{where}: the run read {len(saved)} input file(s), the data now has {len(now)}; {hint}")


def run_provenance(
    out_dir: Path, config: Config, plugins: Any, data: Any = None, *, source: Any = None, resume: bool = False,
) -> dict[str, Any]:
    """The ``provenance.json`` to write; on ``resume`` the saved one with this resume appended, after
    checking the input files against it (a BlendError naming a changed file)."""
    path = Path(out_dir) / FILE
    record = {**provenance(config, plugins, data), "inputs": input_digests(source)}
    if resume and path.exists():
        saved = _read(path)
        if "inputs" in saved:
            check_same_inputs(saved["inputs"], record["inputs"], path)
        else:  # written before blend recorded inputs: record them from now on
            saved["inputs"] = record["inputs"]
        keys = ("blend", "torch", "python", "platform", "command", "git_commit")
        saved.setdefault("resumed", []).append({**{k: record[k] for k in keys}, "time": _now()})
        record = saved
    return record


def write_provenance(
    out_dir: Path, config: Config, plugins: Any, data: Any = None, *, source: Any = None, resume: bool = False,
) -> Path:
    """Write ``provenance.json`` (see :func:`run_provenance`)."""
    record = run_provenance(out_dir, config, plugins, data, source=source, resume=resume)
    return write_json(Path(out_dir) / FILE, record)


def _read(path: Path) -> dict[str, Any]:
    import json

    try:
        saved = json.loads(path.read_bytes())
    except (OSError, ValueError):
        raise BlendError(f"{path}: not readable JSON; cannot check the run's inputs (use a new --out)") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("inputs", []), list) \
            or not isinstance(saved.get("resumed", []), list):
        raise BlendError(f"{path}: not a blend provenance record (use a new --out)")
    return saved


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
