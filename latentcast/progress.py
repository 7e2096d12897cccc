"""Progress for long jobs: a tqdm bar on a terminal, plain periodic lines anywhere else.

Why: a tqdm bar redraws with carriage returns many times a second. Sent to a log file, a pipe or
journald (the demo's log, CI, systemd) that is megabytes of half-lines nobody can read. Every
progress display in the project goes through `progress(...)`, which checks whether its stream is
a terminal: if so it is a normal tqdm bar; if not, one line every `interval_s` seconds (and one
at the end), e.g. ``recording s.npz: 120/300 frame (40%), 29.8 frame/s``.

    for batch in progress(range(n), desc="epoch 3"):   # or: with progress(total=n) as bar: bar.update(1)
        ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

DEFAULT_INTERVAL_S = 10.0


class PlainProgress:
    """The part of tqdm's interface the project uses, printing a plain line every `interval_s` seconds."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        unit_scale: bool = False,
        disable: bool = False,
        leave: bool = True,
        file: TextIO | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.iterable, self.desc, self.unit, self.unit_scale = iterable, desc, unit, unit_scale
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.disable, self.leave, self.interval_s = total, disable, leave, interval_s
        self.file = file or sys.stderr
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False
        self.printed = 0  # lines printed so far

    def _amount(self, value: float) -> str:
        if not self.unit_scale:
            return f"{value:g}" if isinstance(value, float) else str(value)
        for prefix in ("", "k", "M", "G", "T"):
            if abs(value) < 1000:
                return f"{value:.1f}{prefix}"
            value /= 1000
        return f"{value:.1f}P"

    def line(self) -> str:
        """The status line as it would be printed now."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        done = self._amount(self.n)
        text = f"{self.desc}: " if self.desc else ""
        if self.total:
            text += f"{done}/{self._amount(self.total)} {self.unit} ({100.0 * self.n / self.total:.0f}%)"
        else:
            text += f"{done} {self.unit}"
        text += f", {self._amount(self.n / elapsed)} {self.unit}/s"
        return text + (f", {self.postfix}" if self.postfix else "")

    def _emit(self) -> None:
        if not self.disable:
            print(self.line(), file=self.file, flush=True)
            self.printed += 1
        self.last = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval_s:
            self._emit()

    def set_postfix(self, values: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(values or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.leave or self.printed:  # leave=False: a short job stays silent, a long one says it ended
                self._emit()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable | None = None, *, file: TextIO | None = None, interval_s: float = DEFAULT_INTERVAL_S,
             **kwargs: Any):  # fmt: skip
    """A tqdm bar when `file` (default stderr) is a terminal, else `PlainProgress` with the same calls.

    Keyword arguments are tqdm's (total, desc, unit, unit_scale, disable, leave).
    """
    stream = file or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        from tqdm import tqdm

        return tqdm(iterable, file=stream, **kwargs)
    return PlainProgress(iterable, file=stream, interval_s=interval_s, **kwargs)
