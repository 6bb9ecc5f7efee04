"""Built-in tracking: every role's per-epoch record into ``history.csv``, and TensorBoard if asked.

Registered like any plugin (``BUILTIN_PLUGINS``): it implements ``blend_epoch_end``
exactly as an external tracker (MLflow, W&B, ...) would.
"""

from __future__ import annotations

import atexit
import csv
import functools
import importlib.util
from pathlib import Path
from typing import Any

import yaml

from blend_core.errors import BlendError
from blend_core.hookspecs import hookimpl
from blend_core.io import atomic_write

HISTORY = "history.csv"
TENSORBOARD_DIR = "tensorboard"
#: the leading columns; the ``train_<term>`` columns follow in the order they first appear
FIRST = ("role", "epoch", "train_loss", "val_loss", "lr", "seconds")


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.exists():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def append_history(run_dir: Path, role: str, record: dict[str, Any]) -> None:
    """Append one row to ``run_dir/history.csv``, flushed.

    The header is the union of the columns seen so far: it grows (the file is rewritten
    atomically, older rows left blank there) only when a role brings new loss terms.
    An epoch reported again (after ``--resume``) replaces that role's rows from that
    epoch on, so no row is ever duplicated.
    """
    path = Path(run_dir) / HISTORY
    row = {"role": role, **record}
    header, rows = _read(path)
    kept = [r for r in rows if r["role"] != role or float(r["epoch"]) < float(record["epoch"])]
    new = [k for k in row if k not in header]
    if not header:
        header = [*FIRST, *(k for k in new if k not in FIRST)]
    elif new:
        header = header + new
    if new or len(kept) != len(rows):
        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header, restval="")
                writer.writeheader()
                writer.writerows(kept)

        atomic_write(path, write)
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=header, restval="").writerow(row)
        f.flush()


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def require_tensorboard() -> None:
    """Fail before training, in one line, when TensorBoard is asked for but not installed."""
    if not tensorboard_available():
        raise BlendError("train.tensorboard: true needs the 'tensorboard' package; pip install tensorboard")


@functools.lru_cache(maxsize=64)
def _wants_tensorboard(config_path: Path, mtime_ns: int) -> bool:
    saved = yaml.safe_load(config_path.read_text()) or {}
    return bool((saved.get("train") or {}).get("tensorboard", False))


_writers: dict[Path, Any] = {}


def _writer(run_dir: Path):
    key = Path(run_dir).resolve()
    if key not in _writers:
        from torch.utils.tensorboard import SummaryWriter

        _writers[key] = SummaryWriter(log_dir=str(key / TENSORBOARD_DIR))
    return _writers[key]


@atexit.register
def _close_writers() -> None:
    while _writers:
        _writers.popitem()[1].close()


def log_tensorboard(run_dir: Path, role: str, record: dict[str, Any]) -> None:
    """Scalars ``ROLE/KEY`` at step ``epoch`` in ``run_dir/tensorboard``."""
    writer = _writer(run_dir)
    step = int(record["epoch"])
    for key, value in record.items():
        if key != "epoch":
            writer.add_scalar(f"{role}/{key}", value, step)
    writer.flush()


@hookimpl
def blend_epoch_end(run_dir: Path, role: str, record: dict[str, float]) -> None:
    append_history(run_dir, role, record)
    config_path = Path(run_dir) / "config.yaml"
    if config_path.exists() and _wants_tensorboard(config_path, config_path.stat().st_mtime_ns):
        log_tensorboard(run_dir, role, record)
