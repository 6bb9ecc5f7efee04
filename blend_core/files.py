"""How blend writes files: never through a symbolic link, never half-written.

Run directories get copied and shared, so a file in one may be a link someone
planted (``log.txt -> ~/.bashrc``). Every file blend writes is therefore opened
with ``O_NOFOLLOW`` and must be a regular file; anything else is refused with one
line naming the path. Whole files are written atomically: into a temporary file
beside the target (``.NAME.XXXXXXXX.tmp``, created exclusively), then renamed over
it, so a kill leaves the old file or the new one, never half of one. The files
blend appends to (``history.csv``, ``log.txt``) are written one complete line per
``write``; a line without its newline is a torn record (the process died, or the
disk filled, mid-line) and is dropped the next time the file is opened or read.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable

from blend_core.errors import BlendError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: the temporary files :func:`atomic_write` makes (mkstemp's 8 random characters)
_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def _link_error(path: Path) -> BlendError:
    return BlendError(f"{path}: is a symbolic link; blend writes only regular files it creates "
                      "(remove the link, or use a new --out)")


def refuse_link(path: str | Path) -> None:
    """Refuse ``path`` if it is a symbolic link, or exists as something other than a regular file."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _link_error(path)
    if not stat.S_ISREG(st.st_mode):
        raise BlendError(f"{path}: exists and is not a regular file; blend writes only regular files")


def open_regular(path: str | Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that follows no link at ``path`` and accepts only a regular file; returns the fd."""
    path = Path(path)
    try:
        fd = os.open(path, flags | _NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(path) from None
        raise BlendError(f"{path}: cannot open ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BlendError(f"{path}: exists and is not a regular file; blend writes only regular files")
    os.set_blocking(fd, True)
    return fd


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def cannot_write(path: str | Path, exc: BaseException) -> BlendError:
    """The one line for a failed write (a full disk, a read-only folder, a quota)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:120]
    hint = "; is the disk full?" if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) else ""
    return BlendError(f"{path}: cannot write ({reason}){hint}")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then rename ``tmp`` over ``path`` in one step.

    ``path`` may not be a link (a rename would replace the link, but a planted link
    says the directory is not what blend made). The file gets the mode a plain
    ``open`` would give it (0666 less the umask), not ``mkstemp``'s private 0600. A
    failed write (e.g. a full disk) is one line naming ``path``; the temporary file is
    removed and the old file, if any, is left as it was.
    """
    path = Path(path)
    refuse_link(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL: no link
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def is_blend_tmp(name: str) -> bool:
    """Whether ``name`` is that of a temporary file :func:`atomic_write` makes."""
    return bool(_TMP.match(name))


def clean_stale_tmp(folder: str | Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` left under ``folder`` when a process was killed.

    Only regular files named like blend's own temporaries are removed; call it only
    while holding the folder's lock (no live writer can be using them).
    """
    removed = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if _TMP.match(name) and stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def first_link(folder: str | Path) -> Path | None:
    """The first symbolic link found under ``folder`` (not following any), or None."""
    for root, dirs, names in os.walk(folder):
        for name in sorted(dirs + names):
            if os.path.islink(os.path.join(root, name)):
                return Path(root) / name
    return None


# ------------------------------------------------------------------ append-only files

def _drop_torn_tail(fd: int) -> None:
    """Truncate after the last newline if the file does not end with one (a torn last record)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 65536)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def open_append(path: str | Path) -> int:
    """Open ``path`` for appending (created if missing), after dropping a torn last record."""
    fd = open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        _drop_torn_tail(fd)
    except OSError as exc:
        os.close(fd)
        raise cannot_write(path, exc) from None
    return fd


def write_all(fd: int, data: bytes, path: str | Path) -> None:
    """Write every byte of ``data`` (one record); a failure is one line naming ``path``."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise cannot_write(path, exc) from None


def append_line(path: str | Path, line: str) -> None:
    """Append one record (``line`` plus a newline) to ``path``."""
    fd = open_append(path)
    try:
        write_all(fd, (line.rstrip("\n") + "\n").encode(), path)
    finally:
        os.close(fd)


def read_records(path: str | Path) -> str:
    """The text of an append-only file up to its last newline: a torn last record is left out."""
    data = Path(path).read_bytes()
    try:
        return data[: data.rfind(b"\n") + 1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BlendError(f"{path}: not UTF-8 text (byte {exc.start}); not a file blend wrote") from None


def sha256_file(path: str | Path) -> str:
    """The file's sha256 (hex), read in 1 MiB blocks; one line naming the file if it cannot be read."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise BlendError(f"{path}: cannot read the input file ({exc.strerror})") from None
    return digest.hexdigest()
