"""Atomic file writes (``blend_core.files``) of text, JSON, YAML and checkpoints; checkpoints read as data only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from blend_core.files import atomic_write, cannot_write  # noqa: F401  (atomic_write: part of this module's API)


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | Path, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(obj, sort_keys=False))


def save_torch(path: str | Path, obj: Any) -> Path:
    """Save a checkpoint: tensors, numbers, strings, lists and dicts only (see :func:`load_checkpoint`)."""
    import torch

    def write(tmp: Path) -> None:
        try:
            with open(tmp, "wb") as f:  # a file object: a full disk is an OSError, not torch's RuntimeError
                torch.save(obj, f)
        except RuntimeError as exc:  # torch's writer failed (e.g. "unexpected pos" on a full disk)
            raise cannot_write(path, exc) from None

    return atomic_write(path, write)


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
