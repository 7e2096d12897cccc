"""Capture-to-render latency as the renderer sees it, from the timestamps every message carries.

Messages carry the edge's CLOCK_MONOTONIC capture and publish times (ns). On the same host the
renderer's `time.monotonic_ns()` is the same clock, so ``render - capture`` is exact. Across hosts
the clocks have an unknown offset; we estimate it as the minimum of ``receive - publish`` over a
sliding window (the classic one-way-delay trick: the fastest message saw ~zero queueing, so its
apparent delay is offset + minimum transit). Latencies are then ``render - capture - offset``,
which *excludes the minimum network transit* (a lower bound, typically off by 0.1-1 ms on a LAN);
the window lets the estimate follow slow clock drift.

Two guards, because a renderer runs for hours and its inputs cross a network:
- **Implausible timestamps** (a flipped bit, a rebooted edge, a broken clock) are counted and left
  out of the statistics *and* of the clock-offset window: publish must follow capture by at most
  `MAX_PLAUSIBLE_MS`, and the latency must lie in [-`MAX_SKEW_MS`, `MAX_PLAUSIBLE_MS`].
- **Bounded memory**: latencies go into fixed-size log histograms (1 % resolution), not lists, so
  a day-long run costs the same few kilobytes as a minute.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
MAX_PLAUSIBLE_MS = 10_000.0  # a frame older than 10 s is not latency, it is a wrong timestamp
MAX_SEQ_GAP = 100_000  # a larger jump in seq is a restarted edge or a corrupt number, not dropped frames
MAX_SKEW_MS = 50.0  # cross-host latencies are a lower bound and may dip a little below 0, never far


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


class Histogram:
    """Fixed-size log-bucketed histogram of non-negative-ish values (ms): percentiles within 1 %.

    Bucket i covers [LOW * RATIO**i, LOW * RATIO**(i+1)); values below LOW (including small negative
    cross-host latencies) share the first bucket, values above the top share the last. Exact count,
    mean, min and max are kept beside it. About 2300 int64 counters: 18 KB, whatever the run length.
    """

    LOW, HIGH, RATIO = 1e-3, 1e7, 1.01

    def __init__(self) -> None:
        self.n_buckets = math.ceil(math.log(self.HIGH / self.LOW) / math.log(self.RATIO)) + 1
        self.counts = np.zeros(self.n_buckets, dtype=np.int64)
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            return
        i = 0 if value <= self.LOW else int(math.log(value / self.LOW) / math.log(self.RATIO))
        self.counts[min(i, self.n_buckets - 1)] += 1
        self.count += 1
        self.total += value
        self.low, self.high = min(self.low, value), max(self.high, value)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100): the bucket's geometric middle, clamped to the exact min/max."""
        rank = q / 100.0 * (self.count - 1)
        i = int(np.searchsorted(np.cumsum(self.counts), rank, side="right"))
        middle = self.LOW * self.RATIO ** (i + 0.5)
        return float(min(max(middle, self.low), self.high))

    def summary(self) -> dict[str, float]:
        """The same keys as `percentiles` (count 0 only when empty)."""
        if self.count == 0:
            return {"count": 0}
        return {
            "count": self.count,
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "max_ms": self.high,
            "mean_ms": self.total / self.count,
        }


@dataclass
class LatencyTracker:
    """Collects per-frame latencies of messages that were rendered; one instance per stream."""

    same_clock: bool = True
    window: int = 300  # messages in the clock-offset window (about 10 s at 30 fps)
    capture_to_render: Histogram = field(default_factory=Histogram)
    capture_to_receive: Histogram = field(default_factory=Histogram)
    publish_to_receive: Histogram = field(default_factory=Histogram)
    render: Histogram = field(default_factory=Histogram)
    recent_ms: deque = field(default_factory=lambda: deque(maxlen=90))  # capture->render, for a live display
    dropped: int = 0  # sequence numbers never rendered (conflated away or lost)
    implausible: int = 0  # messages whose timestamps cannot be true: left out of every statistic
    _offsets: deque = field(default_factory=deque)
    _last_seq: int | None = None

    def offset_ns(self) -> int:
        """Estimated renderer clock minus edge clock (0 on the same host)."""
        return 0 if self.same_clock or not self._offsets else int(min(self._offsets))

    def plausible(self, capture_ns: int, publish_ns: int, receive_ns: int) -> bool:
        """Whether these timestamps can be true (see the module docstring); false ones are counted."""
        edge_ms = (publish_ns - capture_ns) / 1e6
        ok = 0.0 <= edge_ms <= MAX_PLAUSIBLE_MS
        if ok and (self.same_clock or self._offsets):
            latency_ms = (receive_ns - self.offset_ns() - capture_ns) / 1e6
            ok = -MAX_SKEW_MS <= latency_ms <= MAX_PLAUSIBLE_MS
        if not ok:
            self.implausible += 1
        return ok

    def received(self, seq: int, publish_ns: int, receive_ns: int, capture_ns: int | None = None) -> bool:
        """Record a message's arrival (call for every message taken from the socket).

        With `capture_ns`, implausible timestamps are counted and kept out of the offset window;
        returns whether the message's timestamps may enter the statistics.
        """
        ok = capture_ns is None or self.plausible(capture_ns, publish_ns, receive_ns)
        if ok and not self.same_clock:
            self._offsets.append(receive_ns - publish_ns)
            while len(self._offsets) > self.window:
                self._offsets.popleft()
        last = self._last_seq
        if last is not None and last + 1 < seq <= last + MAX_SEQ_GAP:
            self.dropped += seq - last - 1
        if last is None or seq > last + MAX_SEQ_GAP or seq < last - MAX_SEQ_GAP:
            self._last_seq = seq  # first message, a restarted edge or a corrupt seq: start counting again
        else:
            self._last_seq = max(seq, last)
        return ok

    def rendered(self, capture_ns: int, publish_ns: int, receive_ns: int, start_ns: int, done_ns: int) -> None:
        """Record one rendered frame: the message's timestamps, then when drawing started and finished."""
        offset = self.offset_ns()
        latency_ms = (done_ns - offset - capture_ns) / 1e6
        edge_ms = (publish_ns - capture_ns) / 1e6
        if not (-MAX_SKEW_MS <= latency_ms <= MAX_PLAUSIBLE_MS and 0.0 <= edge_ms <= MAX_PLAUSIBLE_MS):
            return  # counted by `received`; never let it into the percentiles
        self.capture_to_render.add(latency_ms)
        self.recent_ms.append(latency_ms)
        self.capture_to_receive.add((receive_ns - offset - capture_ns) / 1e6)
        self.publish_to_receive.add((receive_ns - offset - publish_ns) / 1e6)
        self.render.add((done_ns - start_ns) / 1e6)

    def recent_p50_ms(self) -> float | None:
        """Median capture->render of the last 90 rendered messages (None before the first)."""
        return float(np.median(self.recent_ms)) if self.recent_ms else None

    def summary(self) -> dict:
        return {
            "clock": "same host (CLOCK_MONOTONIC)" if self.same_clock else "offset estimate: min(receive - publish)",
            "capture_to_render": self.capture_to_render.summary(),
            "capture_to_receive": self.capture_to_receive.summary(),
            "publish_to_receive": self.publish_to_receive.summary(),
            "render_stage": self.render.summary(),
            "sequence_gaps": self.dropped,
            "implausible_timestamps": self.implausible,
            "max_plausible_ms": MAX_PLAUSIBLE_MS,
        }
