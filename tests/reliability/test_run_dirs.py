"""blend acts only on its own run directories: a user's folder survives --overwrite and --resume,
dangerous targets are refused, a second writer is refused naming the holder's PID, outputs respect the umask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from blend_core import rundir
from blend_core.io import write_text


@pytest.fixture
def user_dir(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "sub" / "data.bin").write_bytes(os.urandom(64))
    return folder


@pytest.mark.parametrize("flag, rule", [
    (None, "blend writes only into a new or empty folder"),
    ("--overwrite", "--overwrite replaces only directories blend created"),
    ("--resume", "--resume continues only runs blend created"),
])
def test_a_users_folder_survives(user_dir, tiny_config_file, cli, snapshot, flag, rule):
    before = snapshot(user_dir)
    code, _, err = cli("run", tiny_config_file, "--out", user_dir, *([flag] if flag else []))
    assert (code, err) == (2, f"error: {user_dir}: not a blend run directory (no run.json) and not empty; {rule}\n")
    assert snapshot(user_dir) == before


def test_overwrite_in_the_config_is_refused_on_a_users_folder(user_dir, tmp_path, tiny_raw, cli, snapshot):
    tiny_raw["output"] = {"dir": str(user_dir), "overwrite": True}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_raw))
    before = snapshot(user_dir)
    code, _, err = cli("run", config)
    assert code == 2 and "not a blend run directory" in err and snapshot(user_dir) == before


def _refusal(out, what: str) -> str:
    return (f"error: {out}: refusing to use {what} or a folder above it as a run directory; "
            "pick a new folder, e.g. --out runs/NAME\n")


@pytest.mark.parametrize("out", [".", ".."])
@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_current_directory_and_parents_are_refused(tmp_path, tiny_config_file, cli, snapshot, monkeypatch, out, flag):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    code, _, err = cli("run", tiny_config_file, "--out", out, flag)
    assert (code, err) == (2, _refusal(out, "the current directory"))
    assert snapshot(tmp_path) == before


def test_output_dir_dot_in_a_config_is_refused(tmp_path, tiny_raw, cli, snapshot, monkeypatch):
    tiny_raw["output"] = {"dir": ".", "overwrite": True}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_raw))
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = cli("run", "c.yaml")
    assert (code, err) == (2, _refusal(".", "the current directory"))
    assert snapshot(tmp_path) == before


def test_home_and_the_configs_folder_are_refused(tmp_path, tiny_config_file, cli, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert cli("run", tiny_config_file, "--out", home, "--overwrite")[2] == _refusal(home, "the home directory")
    monkeypatch.setenv("HOME", "/nonexistent-blend-home")  # tmp_path, the config's folder, is above home
    folder = tiny_config_file.parent
    code, _, err = cli("run", tiny_config_file, "--out", folder, "--overwrite")
    assert (code, err) == (2, _refusal(folder, f"the folder of {tiny_config_file.resolve()}"))
    assert tiny_config_file.exists()


def test_overwrite_moves_the_old_run_aside(tmp_path):
    run = tmp_path / "run"
    rundir.prepare_out_dir(run, overwrite=False, resume=False)
    (run / "metrics.json").write_text("{}")
    (run / "extra.txt").write_text("a file someone put here")
    rundir.release_lock(run)
    rundir.prepare_out_dir(run, overwrite=True, resume=False)
    rundir.release_lock(run)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1
    assert (aside[0] / "extra.txt").read_text() == "a file someone put here"  # nothing deleted
    assert sorted(p.name for p in run.iterdir()) == ["run.json", "run.lock"]
    assert rundir.is_run_dir(run)


def test_resume_needs_a_run_directory(tmp_path, tiny_config_file, cli):
    code, _, err = cli("run", tiny_config_file, "--out", tmp_path / "nope", "--resume")
    assert (code, err) == (2, f"error: {tmp_path / 'nope'}: nothing to resume (no such run directory)\n")


HOLD = """
import sys, time
from pathlib import Path
from blend_core.rundir import acquire_lock
acquire_lock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, tiny_config_file, cli):
    run = tmp_path / "run"
    run.mkdir()
    rundir.write_marker(run)
    (run / "metrics.json").write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = (f"error: {run}: another blend process (PID {holder.pid}) is writing to this run directory; "
                "wait for it to finish or use another --out\n")
        assert cli("run", tiny_config_file, "--out", run, "--overwrite")[2] == busy
        assert cli("run", tiny_config_file, "--out", run, "--resume")[2] == busy
        assert (run / "metrics.json").read_text() == "{}"
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock (and PID) stays in the file but is stale, and is taken over
    assert (run / "run.lock").read_text().split() == [str(holder.pid)]
    rundir.acquire_lock(run)
    assert (run / "run.lock").read_text().split() == [str(os.getpid())]
    rundir.release_lock(run)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_a_failed_command_removes_only_the_empty_run_directories_it_made(tmp_path):
    empty, seeds = tmp_path / "empty", tmp_path / "seeds"
    rundir.prepare_out_dir(empty, overwrite=False, resume=False)
    rundir.prepare_out_dir(seeds, overwrite=False, resume=False)
    rundir.prepare_out_dir(seeds / "seed-0", overwrite=False, resume=False)
    (seeds / "seed-0" / "checkpoints").mkdir()
    (seeds / "seed-0" / "checkpoints" / "teacher.pt").write_bytes(b"trained")
    rundir.release_lock(seeds / "seed-0")  # seed-0 finished
    rundir.prepare_out_dir(seeds / "seed-1", overwrite=False, resume=False)
    rundir.discard_unfinished()
    assert not empty.exists() and not (seeds / "seed-1").exists()
    assert (seeds / "seed-0" / "checkpoints" / "teacher.pt").read_bytes() == b"trained"
