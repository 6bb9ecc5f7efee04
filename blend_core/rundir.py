"""Run directories: what blend creates, may replace, may resume, and who is writing to one.

A run directory carries a marker, ``run.json`` (blend's version and the creation
time), written when blend creates it. ``--overwrite`` and ``--resume`` act only on
directories with that marker, so a directory of the user's own files is never
emptied or written into. ``--overwrite`` deletes nothing: it moves the previous
run aside to ``NAME.old-YYYYmmdd-HHMMSS`` beside it. The current directory, the
home directory, their parents and the folders holding the config are refused as
run directories altogether.

While a run writes, it holds ``run.lock`` (an ``flock`` plus the holder's PID):
a second writer is refused with a line naming that PID. The kernel drops the
lock when the holder exits, however it exits, so a lock left by a killed run is
simply taken over by ``--resume``. Checking, moving aside and creating a
directory happen under a second lock beside it (``PARENT/.NAME.lock``), whose
path does not move with the directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from blend_core.errors import BlendError
from blend_core.files import clean_stale_tmp, first_link, is_blend_tmp, open_regular

MARKER = "run.json"
LOCK = "run.lock"

#: input files read in this process (configs); a directory holding one is never a run directory
_PROTECTED: set[Path] = set()
#: locks this process holds, by resolved run directory: path -> open file descriptor
_HELD: dict[Path, int] = {}
#: run directories this process created, not yet holding a checkpoint: removed again if the run fails early
_FRESH: set[Path] = set()


def protect(path: str | Path) -> None:
    """Never use ``path``'s folder, or any folder above it, as a run directory (e.g. the config's)."""
    _PROTECTED.add(Path(path).resolve())


def _protected_roots() -> list[tuple[Path, str]]:
    roots = [(Path.cwd().resolve(), "the current directory"), (Path.home().resolve(), "the home directory")]
    roots += [(p, f"the folder of {p}") for p in sorted(_PROTECTED)]
    return roots


def check_not_protected(out_dir: Path) -> None:
    """Refuse ``.``, ``..``, home, ``/`` and any folder that holds the config, before touching anything."""
    target = out_dir.resolve()
    for root, what in _protected_roots():
        if target == root or target in root.parents:
            raise BlendError(
                f"{out_dir}: refusing to use {what} or a folder above it as a run directory; "
                "pick a new folder, e.g. --out runs/NAME"
            )


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` carries blend's marker (a JSON object with a ``blend`` key)."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and "blend" in marker


def write_marker(path: Path, note: str = "a blend run directory; blend --overwrite moves it aside, "
                 "--resume continues it") -> None:
    from blend_core import __version__
    from blend_core.io import write_json

    write_json(path / MARKER, {
        "blend": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "note": note,
    })


# ------------------------------------------------------------------ the lock

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> str:
    try:
        return path.read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


def _lock(path: Path, *, wait: bool) -> int:
    """An open, ``flock``-ed descriptor of the lock file ``path`` (regular, no link), or BlendError if busy."""
    fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except ImportError:  # no flock on this platform: fall back to the PID in the file
        holder = _holder(path)
        if holder.isdigit() and int(holder) != os.getpid() and _pid_alive(int(holder)):
            os.close(fd)
            raise _Busy(holder) from None
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise _Busy(_holder(path)) from None
        raise BlendError(f"{path}: cannot lock the run directory ({exc.strerror})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class _Busy(Exception):
    def __init__(self, holder: str) -> None:
        self.holder = holder


def acquire_lock(out_dir: Path) -> None:
    """Hold ``out_dir/run.lock`` for this process; refuse, naming the holder's PID, if another holds it.

    Re-entrant within one process (a second ``run`` in the same interpreter takes
    the lock over); released by :func:`release_lock` or when the process ends.
    """
    key = out_dir.resolve()
    if key in _HELD:
        return
    try:
        _HELD[key] = _lock(out_dir / LOCK, wait=False)
    except _Busy as busy:
        raise BlendError(_busy(out_dir, busy.holder)) from None


@contextlib.contextmanager
def preparing(out_dir: Path) -> Iterator[None]:
    """Hold the lock beside ``out_dir`` (``PARENT/.NAME.lock``) while it is checked, moved aside and made.

    ``run.lock`` lives inside the directory, so it moves with it when ``--overwrite``
    moves a run aside; this lock's path does not, so two processes preparing one
    directory take turns, and the second sees the first's new, locked directory.
    It is kept (never deleted: deleting a lock file lets two processes lock two files).
    """
    target = out_dir.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BlendError(f"{out_dir}: cannot create the folder {exc.filename} ({exc.strerror})") from None
    fd = _lock(target.parent / f".{target.name}.lock", wait=True)
    try:
        yield
    finally:
        os.close(fd)


def _busy(out_dir: Path, holder: str) -> str:
    return (f"{out_dir}: another blend process (PID {holder}) is writing to this run directory; "
            "wait for it to finish or use another --out")


def release_lock(out_dir: Path, *, finished: bool = False) -> None:
    """Let other processes write to ``out_dir`` again.

    ``finished``: the run is complete, so its ``run.lock`` is removed rather than left in the
    results. That happens under the lock beside the directory (:func:`preparing`), which every
    process holds while it takes ``run.lock``: none can be locking the file being removed.
    """
    key = out_dir.resolve()
    fd = _HELD.pop(key, None)
    _FRESH.discard(key)
    if fd is None:
        return
    if not finished:
        os.close(fd)  # closing drops the flock
        return
    with preparing(out_dir):
        (out_dir / LOCK).unlink(missing_ok=True)
        os.close(fd)


def release_all() -> None:
    for key in list(_HELD):
        release_lock(key)


def discard_unfinished() -> None:
    """Remove run directories this process created in this call if no checkpoint was written yet.

    Called when a run fails on bad input after its directory was made, so that no
    half-made directory blocks the rerun. Everything in such a directory was
    written by this process seconds ago; a directory with any checkpoint is kept.
    """
    for key in list(_FRESH):
        release_lock(key)
        if key.is_dir() and not _has_results(key):
            shutil.rmtree(key, ignore_errors=True)
    _FRESH.clear()


def _has_results(folder: Path) -> bool:
    """Whether anything under ``folder`` (seed runs included) is a checkpoint or a finished run's metrics."""
    return any(p.suffix == ".pt" or p.name == "metrics.json" for p in folder.rglob("*"))


# ------------------------------------------------------------------ prepare

def _move_aside(out_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = out_dir.with_name(f"{out_dir.name}.old-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = out_dir.with_name(f"{out_dir.name}.old-{stamp}-{n}")
    out_dir.rename(aside)
    return aside


def _check(out_dir: Path, *, overwrite: bool, resume: bool) -> bool:
    """Refuse what may not become this run directory; True if it holds blend's marker and files."""
    check_not_protected(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BlendError(f"{out_dir}: output path exists and is not a directory")
    # a lock or a temporary file alone (a writer about to put its marker there) is no content
    if not (out_dir.exists() and any(p.name != LOCK and not is_blend_tmp(p.name) for p in out_dir.iterdir())):
        if resume:
            raise BlendError(f"{out_dir}: nothing to resume (no such run directory)")
        return False
    if not is_run_dir(out_dir):
        what = ("--resume continues only runs blend created" if resume
                else "--overwrite replaces only directories blend created" if overwrite
                else "blend writes only into a new or empty folder")
        raise BlendError(f"{out_dir}: not a blend run directory (no {MARKER}) and not empty; {what}")
    if not (resume or overwrite):
        raise BlendError(
            f"{out_dir}: output directory exists; pass --overwrite to replace it or --resume to continue it"
        )
    return True


def prepare_out_dir(out_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Create, replace or reopen ``out_dir`` as a run directory, and lock it for this process.

    Everything from the checks to the new directory's ``run.lock`` happens under the
    lock beside it (:func:`preparing`), so of two concurrent ``--overwrite`` writers
    exactly one gets the directory. A directory to resume must hold no symbolic link
    (blend makes none); temporary files a killed run left there are removed.
    """
    out_dir = Path(out_dir)
    try:
        _check(out_dir, overwrite=overwrite, resume=resume)  # refused before anything is created
    except FileNotFoundError:  # moved aside meanwhile by another writer: checked again under the lock
        pass
    with preparing(out_dir):
        if _check(out_dir, overwrite=overwrite, resume=resume):
            if (out_dir / MARKER).is_symlink():
                raise BlendError(f"{out_dir / MARKER}: is a symbolic link, not blend's marker; use a new --out")
            acquire_lock(out_dir)  # refused if a run is writing there
            if resume:
                link = first_link(out_dir)
                if link is not None:
                    release_lock(out_dir)
                    raise BlendError(f"{link}: a symbolic link inside the run directory; blend makes none and "
                                     "follows none (remove it, or use a new --out)")
                clean_stale_tmp(out_dir)
                return
            release_lock(out_dir)
            aside = _move_aside(out_dir)
            print(f"note: moved the previous run {out_dir} to {aside}", file=sys.stderr)
        fresh = not out_dir.exists()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_marker(out_dir)
            acquire_lock(out_dir)
        except PermissionError as exc:
            raise BlendError(f"{out_dir}: cannot write the run directory ({exc.strerror})") from None
        if fresh:
            _FRESH.add(out_dir.resolve())


# ------------------------------------------------------------------ output folders (blend predict)

def _own(path: Path) -> bool:
    """A file blend keeps in any folder it made: its marker, its lock, a temporary file of a killed write."""
    return path.name in (MARKER, LOCK) or is_blend_tmp(path.name)


def check_output_dir(out_dir: Path, *, overwrite: bool) -> None:
    """Refuse an output folder (``blend predict --out``) before anything is computed or created.

    A folder blend did not make is never written into unless empty; one it made is
    written into again only with ``overwrite`` (its own marker, lock and the temporary
    files of a killed command do not count as contents).
    """
    check_not_protected(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BlendError(f"{out_dir}: output path exists and is not a directory")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not is_run_dir(out_dir) or (out_dir / MARKER).is_symlink():
        raise BlendError(f"{out_dir}: not a folder blend created (no {MARKER}) and not empty; "
                         "blend writes only into a new or empty folder, or one it created")
    if not overwrite and any(not _own(p) for p in out_dir.iterdir()):
        raise BlendError(f"{out_dir}: output directory exists; pass --overwrite to replace its files")


def open_output_dir(out_dir: Path, *, overwrite: bool) -> None:
    """Check, create (with blend's marker) and lock an output folder; remove a killed command's temporaries."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite=overwrite)
    with preparing(out_dir):
        check_output_dir(out_dir, overwrite=overwrite)
        fresh = not out_dir.exists()
        out_dir.mkdir(parents=True, exist_ok=True)
        acquire_lock(out_dir)
        if fresh:
            _FRESH.add(out_dir.resolve())
        clean_stale_tmp(out_dir)
        if not is_run_dir(out_dir):
            write_marker(out_dir, "a folder of blend outputs; blend --overwrite replaces its files")


def check_resumable(
    out_dir: Path, resolved: dict[str, Any], relevant: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Refuse to resume with a config whose ``relevant`` part differs from the saved one."""
    from blend_core.yamltext import parse_yaml

    saved_path = out_dir / "config.yaml"
    if not saved_path.exists():  # a run killed before it saved its config has nothing else either
        if any(p.name not in (MARKER, LOCK) and not is_blend_tmp(p.name) for p in out_dir.iterdir()):
            raise BlendError(f"{saved_path}: missing, so this cannot be checked to be the run being resumed "
                             "(a run saves its config before anything else); use a new --out")
        return
    try:
        saved = parse_yaml(saved_path.read_text(), str(saved_path))
    except (OSError, UnicodeDecodeError):
        raise BlendError(f"{saved_path}: cannot read the saved config") from None
    if not isinstance(saved, dict):
        raise BlendError(f"{saved_path}: not a blend run config")
    where = _difference(relevant(saved), relevant(resolved))
    if where is not None:
        raise BlendError(f"{saved_path}: config differs from the run being resumed ({where}); use a new --out")


def _difference(saved: Any, now: Any, path: str = "") -> str | None:
    """The first key whose value differs, as ``key: saved -> now``; None if equal."""
    from blend_core.validators import short_repr

    if isinstance(saved, dict) and isinstance(now, dict):
        for key in [*saved, *(k for k in now if k not in saved)]:
            found = _difference(saved.get(key), now.get(key), f"{path}{key}.")
            if found is not None:
                return found
        return None
    if saved != now:
        return f"{path.rstrip('.')}: {short_repr(saved, 30)} -> {short_repr(now, 30)}"
    return None


def end_of_command() -> None:
    """Forget what one command protected and release its locks (the CLI may be called again in-process)."""
    release_all()
    _FRESH.clear()
    _PROTECTED.clear()
