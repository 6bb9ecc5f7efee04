"""Where a run came from: versions, the git commit, and which plugin supplied each component.

Written as ``provenance.json`` into every run directory, so that a result can be
traced to the exact code that produced it.
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
    }


def write_provenance(out_dir: Path, config: Config, plugins: Any, data: Any = None) -> Path:
    path = Path(out_dir) / FILE
    write_json(path, provenance(config, plugins, data))
    return path
