"""Training progress that suits where stderr goes.

On a terminal each role gets a tqdm bar. Anywhere else (a log file, a SLURM job,
a pipe) a bar's redraws would pile up as kilobytes of carriage returns, so it
prints one plain line at the first epoch, then at most one every
``train.progress_seconds`` seconds, and at the last epoch. ``train.progress: false``
prints nothing. A Ctrl-C closes the open bar first (:func:`close_all`), so the
message that follows starts on its own line.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

#: progress reporters not yet closed (one per role in training): closed on Ctrl-C
_OPEN: list["Progress"] = []


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """Epochs of one role: ``update(epoch, **values)`` after each, ``close()`` at the end.

    ``mode`` is ``"bar"``, ``"lines"`` or ``"off"``; ``None`` picks a bar on a terminal,
    lines elsewhere.
    """

    def __init__(
        self, role: str, total: int, start: int = 0, *, mode: str | None = None,
        seconds: float = 30.0, stream: IO[str] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode = mode or ("bar" if is_terminal(self.stream) else "lines")
        self.role, self.total, self.done, self.seconds = role, total, start, seconds
        self.started = time.perf_counter()
        self.last_line = -float("inf")
        self.bar: Any = None
        self.pending = ""  # the latest epoch's line, not yet printed
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=f"{role:>8}", unit="ep", leave=True,
                            dynamic_ncols=True, file=self.stream)
        if self.mode != "off":
            _OPEN.append(self)

    def update(self, epoch: int, **values: float) -> None:
        """Epoch ``epoch`` (0-based) is done; ``values`` (e.g. val loss) are shown beside it."""
        self.done = epoch + 1
        if self.bar is not None:
            self.bar.n = self.done
            if values:
                self.bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()}, refresh=False)
            self.bar.refresh()
            return
        if self.mode != "lines":
            return
        now = time.perf_counter()
        cells = " ".join(f"{k}={v:.4f}" for k, v in values.items())
        self.pending = f"{self.role:>8}: epoch {self.done}/{self.total} {cells}".rstrip() + \
            f" ({now - self.started:.0f} s)"
        if epoch == 0 or self.done >= self.total or now - self.last_line >= self.seconds:
            self._print(now)

    def _print(self, now: float) -> None:
        if self.pending:
            print(self.pending, file=self.stream, flush=True)
        self.pending, self.last_line = "", now

    def close(self) -> None:
        """End the bar's line; in lines mode, print the last epoch's line if it was held back
        (early stopping ends a role before ``total``)."""
        if self in _OPEN:
            _OPEN.remove(self)
        self._print(time.perf_counter())
        if self.bar is not None:
            self.bar.close()  # leaves the bar and ends its line
            self.bar = None


def make_progress(role: str, total: int, start: int, enabled: bool, seconds: float) -> Progress:
    """The reporter ``fit`` uses for one role, from ``train.progress`` and ``train.progress_seconds``."""
    return Progress(role, total, start, mode=None if enabled else "off", seconds=seconds)


def close_all() -> None:
    """Close every open bar (on Ctrl-C), so that the next message starts on a line of its own."""
    for progress in list(_OPEN):
        progress.close()
