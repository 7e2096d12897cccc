"""Waiting for another thread or process in a test: poll a condition until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], object], timeout: float = 3.0, step: float = 0.01) -> bool:
    """True as soon as `cond()` is truthy; after `timeout` seconds, whatever one last call says."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
