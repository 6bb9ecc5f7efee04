"""blend writes nothing through a link, nothing half, and one writer at a time: a planted link in a run
directory is refused naming it and its target is left alone; a torn last record of history.csv or
log.txt is dropped on --resume; a full disk is one line; two concurrent --overwrite never both win."""

from __future__ import annotations

import multiprocessing
import os
import shutil

import pytest

from blend_core import rundir
from blend_core.errors import BlendError

FAST = ["--set", "train.max_epochs=1"]


def _link_line(path) -> str:
    return (f"error: {path}: is a symbolic link; blend writes only regular files it creates "
            "(remove the link, or use a new --out)\n")


def _inside_line(path) -> str:
    return (f"error: {path}: a symbolic link inside the run directory; blend makes none and follows none "
            "(remove it, or use a new --out)\n")


@pytest.mark.parametrize("name", ["run.lock", "log.txt", "history.csv", "config.yaml", "checkpoints"])
@pytest.mark.parametrize("dangling", [False, True])
def test_a_planted_link_is_refused_on_resume_and_its_target_untouched(run_copy, tmp_path, cli, snapshot, name,
                                                                       dangling):
    config, run = run_copy
    victim = tmp_path / "victim"
    victim.mkdir()
    target = victim / "important"
    if name == "checkpoints":
        shutil.move(run / name, target)
    elif not dangling:
        target.write_text("the user's own file\n")
    else:
        (run / name).unlink(missing_ok=True)  # a finished run keeps no run.lock
    if name != "checkpoints":
        (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(target)
    before = snapshot(victim)
    code, _, err = cli("run", config, "--out", run, "--resume", *FAST)
    expected = _link_line(run / name) if name == "run.lock" else _inside_line(run / name)
    assert (code, err) == (2, expected)
    assert snapshot(victim) == before
    assert os.path.islink(run / name)


def test_a_linked_run_lock_is_refused_by_overwrite(run_copy, tmp_path, cli, digest):
    config, run = run_copy
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (run / "run.lock").unlink(missing_ok=True)  # a finished run keeps no run.lock
    (run / "run.lock").symlink_to(victim)
    code, _, err = cli("run", config, "--out", run, "--overwrite", *FAST)
    assert (code, err) == (2, _link_line(run / "run.lock"))
    assert victim.read_text() == "keep me\n" and (run / "metrics.json").exists()


def test_the_writers_refuse_links_and_other_non_regular_files(tmp_path):
    from blend_core.builtin.tracking import append_history
    from blend_core.files import append_line, atomic_write, open_append
    from blend_core.runner import RunLog

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    for name in ("a.json", "history.csv", "log.txt"):
        (tmp_path / name).symlink_to(victim)
    with pytest.raises(BlendError, match="a.json: is a symbolic link"):
        atomic_write(tmp_path / "a.json", lambda tmp: tmp.write_text("x"))
    with pytest.raises(BlendError, match="history.csv: is a symbolic link"):
        append_history(tmp_path, "teacher", {"epoch": 0, "val_loss": 1.0})
    with pytest.raises(BlendError, match="log.txt: is a symbolic link"):
        RunLog(tmp_path / "log.txt")
    (tmp_path / "dangling").symlink_to(tmp_path / "created-through-the-link")
    with pytest.raises(BlendError, match="dangling: is a symbolic link"):
        append_line(tmp_path / "dangling", "x")
    assert victim.read_text() == "keep me\n" and not (tmp_path / "created-through-the-link").exists()
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(BlendError, match="fifo: exists and is not a regular file"):
        open_append(tmp_path / "fifo")
    with pytest.raises(BlendError, match="fifo: exists and is not a regular file"):
        atomic_write(tmp_path / "fifo", lambda tmp: tmp.write_text("x"))


def test_a_torn_last_record_is_dropped(tmp_path):
    from blend_core.files import append_line, read_records

    path = tmp_path / "h.csv"
    path.write_bytes(b"a,b\n1,2\n3,")  # the process died mid-row
    assert read_records(path) == "a,b\n1,2\n"
    append_line(path, "5,6")
    assert path.read_bytes() == b"a,b\n1,2\n5,6\n"
    path.write_bytes(b"no newline at all")
    append_line(path, "x")
    assert path.read_bytes() == b"x\n"


def test_resume_after_a_torn_history_row_and_log_line(run_copy, cli):
    """A run killed mid-append: --resume drops the torn row and line (it crashed on the row before)."""
    config, run = run_copy
    (run / "checkpoints" / "baseline.pt").unlink()  # the baseline trains again on resume
    (run / "metrics.json").unlink()
    with open(run / "history.csv", "ab") as f:
        f.write(b"basel")
    with open(run / "log.txt", "ab") as f:
        f.write(b"2026-01-01 00:00:00,000 INFO torn-fragment")
    code, _, err = cli("run", config, "--out", run, "--resume", *FAST)
    assert code == 0, err
    rows = (run / "history.csv").read_text().splitlines()
    width = rows[0].count(",")
    assert all(r.count(",") == width for r in rows) and not any(r.startswith("basel,") for r in rows)
    assert [r.split(",")[0] for r in rows[1:]].count("baseline") == 1
    log = (run / "log.txt").read_text()
    assert "torn-fragment" not in log and log.endswith("\n")


@pytest.mark.parametrize("failure", ["OSError", "RuntimeError"])
def test_a_full_disk_is_one_line(tmp_path, tiny_config_file, cli, monkeypatch, failure):
    """torch.save on a full disk raises OSError(ENOSPC) into a file object, RuntimeError into a path."""
    import torch

    real = torch.save

    def full(obj, f, *args, **kwargs):
        if failure == "RuntimeError":
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        with open("/dev/full", "wb") as disk:
            real(obj, disk)

    monkeypatch.setattr(torch, "save", full)
    run = tmp_path / "run"
    code, _, err = cli("run", tiny_config_file, "--out", run, *FAST)
    reason = ("No space left on device); is the disk full?" if failure == "OSError"
              else "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534)")
    assert (code, err) == (2, f"error: {run}/checkpoints/teacher-last.pt: cannot write ({reason}\n")
    assert not list(run.rglob("*.tmp"))


def test_resume_removes_the_temporary_files_of_a_killed_write(run_copy, cli):
    config, run = run_copy
    stale = run / "checkpoints" / ".teacher-last.pt.k3j_x9a2.tmp"  # as atomic_write names them
    stale.write_bytes(b"half a checkpoint")
    mine = run / ".notes.tmp"  # not a name blend makes: kept
    mine.write_text("mine")
    assert cli("run", config, "--out", run, "--resume", *FAST)[0] == 0
    assert not stale.exists() and mine.read_text() == "mine"


# ------------------------------------------------------------------ two writers

def _overwrite(path, start, results, release):
    start.wait()
    try:
        rundir.prepare_out_dir(path, overwrite=True, resume=False)
        results.put("won")
        release.wait(60)  # keep the directory (and its lock) while the other tries
    except Exception as exc:  # noqa: BLE001  (before the fix: also a FileNotFoundError mid-rename)
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_concurrent_overwrites_never_both_win(tmp_path):
    """Before the lock beside the directory, both won in 34 of 190 tries."""
    ctx = multiprocessing.get_context("fork")
    tries = 40
    for i in range(tries):
        run = tmp_path / f"run{i}"
        rundir.prepare_out_dir(run, overwrite=False, resume=False)
        (run / "metrics.json").write_text("{}")
        rundir.release_lock(run)
        start, release, results = ctx.Barrier(2), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_overwrite, args=(run, start, results, release), daemon=True) for _ in range(2)]
        for p in procs:
            p.start()
        try:
            outcomes = [results.get(timeout=60) for _ in procs]
        finally:
            release.set()
            for p in procs:
                p.join(timeout=60)
        assert outcomes.count("won") == 1, (i, outcomes)
        assert "another blend process" in [o for o in outcomes if o != "won"][0]
        assert rundir.is_run_dir(run)
