"""Fixtures of the fault-injection suite: the CLI in-process, file hashes, folder snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256): proves a folder was left as it was."""
    return {str(p.relative_to(folder)): _digest(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> (exit code, stdout, stderr)`` of ``blend`` run in this process."""
    from blend_core.cli import main

    def run(*argv) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def digest():
    return _digest


@pytest.fixture
def snapshot():
    return _snapshot
