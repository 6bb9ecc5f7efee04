"""A run killed at any point (SIGKILL, or SIGINT: Ctrl-C) and continued with --resume ends
with exactly the metrics of a run never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

SETTINGS = ["--set", "train.max_epochs=8", "--set", "train.checkpoint_every=1", "--set", "train.threads=1",
            "--set", "train.patience=100"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """metrics.json of the uninterrupted run, and the config it used."""
    import yaml

    from blend_core.cli import main

    import copy
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_tiny", Path(__file__).parents[1] / "conftest.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    folder = tmp_path_factory.mktemp("kill")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(copy.deepcopy(tiny.TINY)))
    assert main(["run", str(config), "--out", str(folder / "ref"), *SETTINGS]) == 0
    return config, json.loads((folder / "ref" / "metrics.json").read_text())


def _interrupt(config, out, wait_for: str, sig: int) -> int:
    """Start ``blend run`` in a child process; send ``sig`` as soon as ``out/wait_for`` exists."""
    child = subprocess.Popen([sys.executable, "-m", "blend_core.cli", "run", str(config), "--out", str(out),
                              *SETTINGS], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    target = out / wait_for
    deadline = time.monotonic() + 300
    while not target.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(sig)
    _, err = child.communicate(timeout=120)
    return child.returncode, err


def _resume_and_compare(config, out, expected, cli):
    assert not (out / "metrics.json").exists(), "the run finished before it was interrupted"
    code, _, err = cli("run", config, "--out", out, "--resume", *SETTINGS)
    assert (code, err) == (0, "")
    assert json.loads((out / "metrics.json").read_text()) == expected  # identical, not just close


def test_sigkill_mid_student_then_resume_is_identical(reference, tmp_path, cli):
    config, expected = reference
    code, _ = _interrupt(config, tmp_path / "run", "checkpoints/student-last.pt", signal.SIGKILL)
    assert code == -signal.SIGKILL
    _resume_and_compare(config, tmp_path / "run", expected, cli)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["run.json", "checkpoints/teacher-last.pt", "checkpoints/teacher.pt",
                                   "checkpoints/baseline-last.pt", "checkpoints/baseline.pt"])
def test_sigkill_anywhere_then_resume_is_identical(reference, tmp_path, cli, point):
    config, expected = reference
    code, _ = _interrupt(config, tmp_path / "run", point, signal.SIGKILL)
    assert code == -signal.SIGKILL
    _resume_and_compare(config, tmp_path / "run", expected, cli)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["checkpoints/teacher-last.pt", "checkpoints/student-last.pt"])
def test_ctrl_c_then_resume_is_identical(reference, tmp_path, cli, point):
    config, expected = reference
    code, err = _interrupt(config, tmp_path / "run", point, signal.SIGINT)
    last = err.strip().splitlines()[-1]  # on its own line: the exact command that continues the run
    assert code == 130 and last.startswith("interrupted; continue with: blend run ") and last.endswith(" --resume")
    _resume_and_compare(config, tmp_path / "run", expected, cli)
