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


def tiny_raw_config() -> dict:
    """A copy of the tests' tiny synthetic config (``tests/conftest.py``), for module-scoped fixtures."""
    import copy
    import importlib.util

    spec = importlib.util.spec_from_file_location("_tiny", Path(__file__).parents[1] / "conftest.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    return copy.deepcopy(tiny.TINY)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """``(config file, run directory)`` of a finished one-epoch tiny run; copy it before changing it."""
    import yaml

    from blend_core.cli import main

    folder = tmp_path_factory.mktemp("finished")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config()))
    assert main(["run", str(config), "--out", str(folder / "run"), "--set", "train.max_epochs=1"]) == 0
    return config, folder / "run"


@pytest.fixture
def run_copy(finished, tmp_path):
    """A copy of the finished run in this test's folder: ``(config file, run directory)``."""
    import shutil

    config, run = finished
    shutil.copytree(run, tmp_path / "run")
    return config, tmp_path / "run"
