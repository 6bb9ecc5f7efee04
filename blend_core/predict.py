"""``blend predict``: a trained student applied to new sessions of the same layout."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blend_core.config import build_config, read_yaml
from blend_core.errors import BlendError
from blend_core.io import atomic_write, load_checkpoint
from blend_core.plugins import Plugins, load_plugins, report_failures
from blend_core.rundir import check_output_dir, open_output_dir, protect, release_lock
from blend_core.task import prediction_writer
from blend_core.build import build_model, build_task, load_data
from blend_core.training import resolve_device


def write_npz(predictions: dict[str, Any], out_dir: Path) -> list[Path]:
    """Default writer: one ``predictions.npz`` with every array the task predicted."""
    path = out_dir / "predictions.npz"
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: savez would append ".npz" to a path
            np.savez_compressed(f, **predictions)

    atomic_write(path, write)
    return [path]


def predict(
    run_dir: Path, *, data_path: str | None = None, out_dir: Path | None = None,
    overwrite: bool = False, plugin_names: Sequence[str] = (), plugins: Plugins | None = None,
) -> list[Path]:
    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoints" / "student.pt"
    for needed in (run_dir / "config.yaml", checkpoint):
        if not needed.exists():
            raise BlendError(f"{needed}: not found; is {run_dir} a finished blend run directory?")
    raw = read_yaml(run_dir / "config.yaml")
    protect(run_dir / "config.yaml")  # predictions never go into (or replace) the run they come from
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise BlendError(f"{run_dir / 'config.yaml'}: not a blend run config (no 'data' section)")
    state = load_checkpoint(checkpoint, "cpu")["model"]  # data only: a checkpoint cannot run code
    if data_path is not None:
        if "path" not in raw["data"]:
            raise BlendError(f"--data: data source {raw['data']['type']!r} reads no files (it has no 'path' key)")
        if not Path(data_path).exists():
            raise BlendError(f"--data: file not found: {data_path}")
        raw["data"]["path"] = str(data_path)
    named = [*plugin_names, *raw.get("plugins", [])]
    if plugins is None or any(not plugins.manager.has_plugin(n) for n in named):  # else: the command's own
        plugins = load_plugins(named)
        report_failures(plugins)
    config = build_config(raw, plugins.registry, source=str(run_dir / "config.yaml"))
    out_dir = Path(out_dir or run_dir / "predictions")
    check_output_dir(out_dir, overwrite=overwrite)  # refused before anything is loaded or created

    device = resolve_device(config.train.device)
    source, data = load_data(config, plugins.registry)
    task = build_task(config, plugins.registry, data, device)
    model = build_model(config, plugins.registry, task, privileged=False).to(device)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise BlendError(
            f"--data: data does not match the trained student's layout ({str(exc).splitlines()[1].strip()})"
        ) from None
    model.eval()
    predictions = task.predict(model)
    open_output_dir(out_dir, overwrite=overwrite)  # made (marked, locked) only now that there is something to write
    writer = prediction_writer(source)  # the DataSource protocol's optional member
    if writer is None:
        paths = write_npz(predictions, out_dir)
    else:
        # a writer that records provenance (config, checkpoint) takes the run directory, wherever --out is
        takes_run_dir = "run_dir" in inspect.signature(writer).parameters
        paths = writer(predictions, out_dir, run_dir=run_dir) if takes_run_dir else writer(predictions, out_dir)
    release_lock(out_dir, finished=True)  # the folder keeps its marker and outputs, not the lock
    return paths
