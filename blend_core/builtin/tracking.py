"""Built-in tracking: every role's per-epoch record into ``history.csv``, and TensorBoard if asked.

Registered like any plugin (``BUILTIN_PLUGINS``): it implements ``blend_epoch_end``
exactly as an external tracker (MLflow, W&B, ...) would.
"""

from __future__ import annotations

import atexit
import csv
import functools
import importlib.util
import io
import math
from pathlib import Path
from typing import Any

import yaml

from blend_core.errors import BlendError
from blend_core.hookspecs import hookimpl
from blend_core.files import append_line, atomic_write, read_records

HISTORY = "history.csv"
TENSORBOARD_DIR = "tensorboard"
#: the leading columns; the ``train_<term>`` columns follow in the order they first appear
FIRST = ("role", "epoch", "train_loss", "val_loss", "lr", "seconds")


def read_history_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a ``history.csv``; a torn last row (a run killed mid-write) is left out.

    A file that is not such a table (no ``role`` and ``epoch`` columns, a row that
    does not fit the header, an epoch that is not a number) is one line naming it.
    """
    if not path.exists():
        return [], []
    try:
        reader = csv.DictReader(io.StringIO(read_records(path), newline=""))
        header, rows = list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BlendError(f"{path}: not a readable history.csv ({exc})") from None
    if rows and not {"role", "epoch"} <= set(header):
        raise BlendError(f"{path}: not a blend history.csv (no 'role' and 'epoch' columns)")
    for n, row in enumerate(rows, 2):
        try:
            if None in row or None in row.values() or not math.isfinite(float(row["epoch"])):
                raise ValueError
        except ValueError:
            raise BlendError(f"{path}: line {n} does not fit the header (a number of cells or an epoch "
                             "that is not a number); not a history.csv blend wrote") from None
    return header, rows


def read_history(run_dir: Path) -> dict[str, list[dict[str, float]]]:
    """Per role, its validation epochs: ``history.csv``, else the histories kept in ``checkpoints/*.pt``."""
    out: dict[str, list[dict[str, float]]] = {}
    path = run_dir / "history.csv"
    for n, row in enumerate(read_history_csv(path)[1], 2):  # a torn last row (killed run) is left out
        try:
            out.setdefault(row["role"], []).append(
                {k: float(v) for k, v in row.items() if k != "role" and v not in ("", None)})
        except ValueError:
            raise BlendError(f"{path}: line {n} holds a value that is not a number; not a history.csv "
                             "blend wrote") from None
    for ckpt in sorted((run_dir / "checkpoints").glob("*.pt")):
        role = ckpt.stem
        if role in out or role.endswith("-last"):
            continue
        from blend_core.io import load_checkpoint

        history = load_checkpoint(ckpt, "cpu").get("history") or []  # data only: a checkpoint runs no code
        if history:
            out[role] = [{k: float(v) for k, v in h.items()} for h in history]
    return out


def append_history(run_dir: Path, role: str, record: dict[str, Any]) -> None:
    """Append one row to ``run_dir/history.csv`` (no link followed; a torn last row dropped first).

    The header is the union of the columns seen so far: it grows (the file is rewritten
    atomically, older rows left blank there) only when a role brings new loss terms.
    An epoch reported again (after ``--resume``) replaces that role's rows from that
    epoch on, so no row is ever duplicated.
    """
    path = Path(run_dir) / HISTORY
    row = {"role": role, **record}
    header, rows = read_history_csv(path)
    kept = [r for r in rows if r["role"] != role or float(r["epoch"]) < float(record["epoch"])]
    new = [k for k in row if k not in header]
    if not header:
        header = [*FIRST, *(k for k in new if k not in FIRST)]
    elif new:
        header = header + new
    if new or len(kept) != len(rows):
        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header, restval="", lineterminator="\n")
                writer.writeheader()
                writer.writerows(kept)

        atomic_write(path, write)
    line = io.StringIO(newline="")
    csv.DictWriter(line, fieldnames=header, restval="", lineterminator="\n").writerow(row)
    append_line(path, line.getvalue())  # one write per row: a kill tears at most this row


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
