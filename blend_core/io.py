"""Atomic file writes: a crash never leaves a half-written checkpoint or result."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then rename ``tmp`` over ``path`` in one step.

    The file gets the mode a plain ``open`` would give it (0666 less the umask),
    not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | Path, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(obj, sort_keys=False))


def save_torch(path: str | Path, obj: Any) -> Path:
    """Save a checkpoint: tensors, numbers, strings, lists and dicts only (see :func:`load_checkpoint`)."""
    import torch

    return atomic_write(path, lambda p: torch.save(obj, p))


def load_checkpoint(path: str | Path, device: Any = "cpu", required: tuple[str, ...] = ("model",)) -> dict[str, Any]:
    """Load a checkpoint blend wrote, as data only: ``weights_only=True`` unpickles
    tensors, numbers, strings, lists and dicts and refuses anything else, so a
    checkpoint cannot run code. Anything that is not such a dict with the
    ``required`` keys (a foreign, corrupt, truncated or empty file) is a one-line
    :class:`~blend_core.errors.BlendError` naming the file."""
    import pickle

    import torch

    from blend_core.errors import BlendError

    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise BlendError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc) or "nsupported class" in str(exc):  # weights_only refused an object: not data
            raise BlendError(f"{path}: not a blend checkpoint (holds objects other than tensors and plain "
                             "data; refusing to unpickle it)") from None
        raise BlendError(f"{path}: not a readable checkpoint (corrupt, truncated, empty or not a torch file)") from None
    except Exception:  # truncated, empty or not a torch file at all
        raise BlendError(f"{path}: not a readable checkpoint (corrupt, truncated, empty or not a torch file)") from None
    if not isinstance(state, dict) or any(key not in state for key in required):
        missing = [k for k in required if not isinstance(state, dict) or k not in state]
        raise BlendError(f"{path}: not a blend checkpoint (missing {', '.join(map(repr, missing))})")
    return state
