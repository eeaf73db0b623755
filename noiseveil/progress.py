"""Progress on stderr: tqdm's bar on a terminal, plain lines anywhere else.

tqdm redraws its bar with carriage returns; stderr redirected to a log keeps every frame on
one endless line. :func:`progress_bar` takes tqdm's arguments and gives tqdm's bar when stderr is
a terminal, and otherwise a :class:`PlainProgress` with the same methods that writes one line
(``encrypt: 640/1000 img (64%), 12.1 s``) each time another tenth of the total is done, at
most one a second, at least one every 10 s while counting, and a last one when it closes.
:func:`heartbeat` is for a step that counts nothing it could show (one batch of a slow
scheme): a line when it starts and one every 10 s until it ends.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

LINE_EVERY_SECONDS = 10.0  # a line at least this often while something is counted
MIN_SECONDS_BETWEEN_LINES = 1.0  # and at most one a second (a fast run: not one per tenth)


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    initial: float = 0,
    leave: bool = True,
    file: TextIO | None = None,
) -> Any:
    """A progress bar (tqdm's on a terminal) over ``iterable`` or up to ``total``."""
    stream = file or sys.stderr
    if disable or _is_terminal(stream):
        from tqdm import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            disable=disable,
            initial=initial,
            leave=leave,
            file=file,
        )
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: no terminal
        return False


class PlainProgress:
    """tqdm's interface (iterate, ``update``, ``set_postfix``, ``write``, ``close``, ``with``),
    written as plain lines."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        file: TextIO | None = None,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.file = file or sys.stderr
        self.postfix = ""
        self.start = self.last_line = time.monotonic()
        self.tenths_shown = self._tenths()
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tenths(self) -> int:
        return int(10 * self.n / self.total) if self.total else 0

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        new_tenth = self._tenths() > self.tenths_shown
        due = now - self.last_line >= LINE_EVERY_SECONDS
        if due or (new_tenth and now - self.last_line >= MIN_SECONDS_BETWEEN_LINES):
            self._line(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(ordered_dict or {}), **values}.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def write(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self.last_line, self.tenths_shown = now, self._tenths()
        count = f"{self.n:g}/{self.total:g} {self.unit}" if self.total else f"{self.n:g} {self.unit}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        label = f"{self.desc}: " if self.desc else ""
        print(f"{label}{count}{share}, {now - self.start:.1f} s{postfix}", file=self.file, flush=True)


@contextmanager
def heartbeat(what: str, every: float = LINE_EVERY_SECONDS, file: TextIO | None = None) -> Iterator[None]:
    """``what ...`` now, then ``what: still at it (N s)`` every ``every`` seconds until the
    block ends: a long step with nothing to count is not silent."""
    stream = file or sys.stderr
    print(f"{what} ...", file=stream, flush=True)
    done, start = threading.Event(), time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            print(f"{what}: still at it ({time.monotonic() - start:.0f} s)", file=stream, flush=True)

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    try:
        yield
    finally:
        done.set()
        beating.join()
