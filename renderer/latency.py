"""Capture-to-render latency as the renderer sees it, from the timestamps every message carries.

Messages carry the edge's CLOCK_MONOTONIC capture and publish times (ns). On the same host the
renderer's `time.monotonic_ns()` is the same clock, so ``render - capture`` is exact. Across hosts
the clocks have an unknown offset; we estimate it as the minimum of ``receive - publish`` over a
sliding window (the classic one-way-delay trick: the fastest message saw ~zero queueing, so its
apparent delay is offset + minimum transit). Latencies are then ``render - capture - offset``,
which *excludes the minimum network transit* (a lower bound, typically off by 0.1-1 ms on a LAN);
the window lets the estimate follow slow clock drift.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def same_host(endpoint: str) -> bool:
    """True when `endpoint` is on this machine (loopback, ipc://, inproc://): the monotonic clocks agree."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in LOCAL_HOSTS


def percentiles(values_ms: list[float] | np.ndarray) -> dict[str, float]:
    """p50 / p95 / p99 / max / mean and the count, in ms (empty input: count 0 only)."""
    v = np.asarray(values_ms, dtype=np.float64)
    if v.size == 0:
        return {"count": 0}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {
        "count": int(v.size),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(v.max()),
        "mean_ms": float(v.mean()),
    }


@dataclass
class LatencyTracker:
    """Collects per-frame latencies of messages that were rendered; one instance per stream."""

    same_clock: bool = True
    window: int = 300  # messages in the clock-offset window (about 10 s at 30 fps)
    capture_to_render_ms: list[float] = field(default_factory=list)
    capture_to_receive_ms: list[float] = field(default_factory=list)
    publish_to_receive_ms: list[float] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)
    dropped: int = 0  # sequence numbers never rendered (conflated away or lost)
    _offsets: deque = field(default_factory=deque)
    _last_seq: int | None = None

    def offset_ns(self) -> int:
        """Estimated renderer clock minus edge clock (0 on the same host)."""
        return 0 if self.same_clock or not self._offsets else int(min(self._offsets))

    def received(self, seq: int, publish_ns: int, receive_ns: int) -> None:
        """Record a message's arrival (call for every message taken from the socket)."""
        if not self.same_clock:
            self._offsets.append(receive_ns - publish_ns)
            while len(self._offsets) > self.window:
                self._offsets.popleft()
        if self._last_seq is not None and seq > self._last_seq + 1:
            self.dropped += seq - self._last_seq - 1
        self._last_seq = seq if self._last_seq is None else max(seq, self._last_seq)

    def rendered(self, capture_ns: int, publish_ns: int, receive_ns: int, start_ns: int, done_ns: int) -> None:
        """Record one rendered frame: the message's timestamps, then when drawing started and finished."""
        offset = self.offset_ns()
        self.capture_to_render_ms.append((done_ns - offset - capture_ns) / 1e6)
        self.capture_to_receive_ms.append((receive_ns - offset - capture_ns) / 1e6)
        self.publish_to_receive_ms.append((receive_ns - offset - publish_ns) / 1e6)
        self.render_ms.append((done_ns - start_ns) / 1e6)

    def summary(self) -> dict:
        return {
            "clock": "same host (CLOCK_MONOTONIC)" if self.same_clock else "offset estimate: min(receive - publish)",
            "capture_to_render": percentiles(self.capture_to_render_ms),
            "capture_to_receive": percentiles(self.capture_to_receive_ms),
            "publish_to_receive": percentiles(self.publish_to_receive_ms),
            "render_stage": percentiles(self.render_ms),
            "sequence_gaps": self.dropped,
        }
