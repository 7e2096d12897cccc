"""Issue 11, items 1-2: non-finite or huge values never poison the renderer; implausible timestamps are counted.

The end-to-end test is what the issue reproduced: a real publisher process sends NaN, Inf and 3e38
values (and a timestamp with a flipped bit) in the middle of a valid stream; `python -m renderer.run`
with VMC on must keep every later VMC packet finite, count the bad messages and keep the latency
percentiles sane.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import renderer_support as support
from helpers import osc_floats as _osc_floats

from latentcast.protocol import (
    ProtocolValueError,
    check_values,
    decode_latents,
    encode_latents,
    model_id_from_manifest,
)
from renderer.animate import Animator
from renderer.character import CharacterRenderer
from renderer.latency import LatencyTracker
from renderer.params import CharacterParams
from renderer.smoothing import ParamSmoother, TrackingBlend
from renderer.vmc import VMCConfig, VMCSender

ROOT = Path(__file__).resolve().parents[1]
POISON = {  # seq -> how the message is broken (published in the middle of a valid stream)
    20: "pose_nan",
    21: "pose_inf",
    22: "pose_huge",
    23: "wrist_nan",
    24: "z_huge",
    25: "y_huge",
    26: "capture_flipped",  # bit 61 of capture_ns: decodes, but the timestamp cannot be true
    27: "capture_negative",  # bit 63: a negative monotonic time, rejected by the decoder
}


def _message(seq: int, model_id: bytes, kind: str | None):
    msg = support.synthetic_message(seq, model_id, hand_class=seq % 11, face_class=seq % 4)
    if kind == "pose_nan":
        msg.face.pose = np.array([np.nan, 0.0, 0.0], np.float32)
    elif kind == "pose_inf":
        msg.face.pose = np.array([np.inf, -np.inf, 0.0], np.float32)
    elif kind == "pose_huge":
        msg.face.pose = np.array([3e38, 0.0, 0.0], np.float32)
    elif kind == "wrist_nan":
        msg.hands[0].wrist = np.array([np.nan, 0.5, 0.0], np.float32)
    elif kind == "z_huge":
        msg.face.z = np.full(msg.face.z.size, 3e38, np.float32)
    elif kind == "y_huge":
        msg.hands[0].y = np.full(msg.hands[0].y.size, 3e38, np.float32)
    elif kind == "capture_flipped":
        msg.capture_ns ^= 1 << 61
    elif kind == "capture_negative":
        msg.capture_ns ^= 1 << 63
        msg.capture_ns -= 1 << 64
    return msg


def publish_poisoned(endpoint: str, bundle: str, frames: int) -> None:
    """Child process: a valid 30 fps stream with the POISON messages in the middle."""
    import time

    from edge.publisher import Publisher

    model_id = model_id_from_manifest((Path(bundle) / "manifest.json").read_bytes())
    pub = Publisher(endpoint)
    time.sleep(0.7)
    for seq in range(frames):
        pub.send(encode_latents(_message(seq, model_id, POISON.get(seq))))
        time.sleep(1 / 30)
    pub.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return support.make_bundle(tmp_path_factory.mktemp("bundle") / "latentcast-bundle-test")


@pytest.mark.parametrize("kind", sorted(set(POISON.values()) - {"capture_flipped"}))
def test_decoder_rejects_non_finite_huge_and_negative_values(kind):
    raw = encode_latents(_message(5, bytes(8), kind))
    with pytest.raises(ProtocolValueError):
        decode_latents(raw)


def test_decoder_accepts_the_edges_of_the_documented_ranges():
    msg = _message(5, bytes(8), None)
    msg.face.pose = np.array([180.0, -180.0, 0.0], np.float32)
    msg.hands[0].wrist = np.array([-1.0, 2.0, 0.0], np.float32)
    msg.face.z = np.array([1000.0, -1000.0, 0.0], np.float32)
    check_values(decode_latents(encode_latents(msg)))
    msg.face.z = np.array([1000.5, 0.0, 0.0], np.float32)
    with pytest.raises(ProtocolValueError, match="face z"):
        decode_latents(encode_latents(msg))


def _listen_udp() -> tuple[socket.socket, list[bytes], threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    packets: list[bytes] = []

    def run() -> None:
        while True:
            try:
                packets.append(sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return sock, packets, thread


@pytest.mark.slow
def test_renderer_cli_with_vmc_survives_nan_inf_huge_values_and_flipped_timestamps(bundle, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    code = (
        "import sys; sys.path.insert(0, 'tests'); import test_hardening_values as t; "
        f"t.publish_poisoned({endpoint!r}, {str(bundle)!r}, 120)"
    )
    publisher = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy())
    udp, packets, _ = _listen_udp()
    summary_path = tmp_path / "summary.json"
    cmd = [sys.executable, "-m", "renderer.run", "--endpoint", endpoint, "--bundle", str(bundle),
           "--vmc", f"127.0.0.1:{udp.getsockname()[1]}", "--out", str(tmp_path / "frames"), "--start-on-message",
           "--exit-after-silence", "1.5", "--duration", "20", "--summary", str(summary_path)]  # fmt: skip
    try:
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90)
    finally:
        publisher.wait(timeout=30)
        udp.close()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(summary_path.read_text())
    m = summary["messages"]
    # Six value kinds plus the negative timestamp are rejected by the decoder and counted.
    assert m["invalid_values"] >= 5, m
    assert m["implausible_timestamps"] >= 1 or m["received"] < 100, m
    lat = summary["latency"]["capture_to_render"]
    assert lat["count"] > 50 and lat["max_ms"] < 1000.0, lat  # the flipped bit would say ~2.3e11 ms
    assert len(packets) > 60 and summary["vmc"]["errors"] == 0
    floats = [v for packet in packets for v in _osc_floats(packet)]
    assert floats and all(math.isfinite(v) for v in floats)
    assert summary["frames"]["tracked"] > 50


def test_every_guard_layer_holds_when_bad_values_bypass_the_decoder(bundle):
    """Another transport (or a bug) hands the Animator NaN/Inf/3e38 directly: nothing non-finite comes out."""
    from renderer.decode import BundleDecoders

    decoders = BundleDecoders.from_bundle(bundle)
    animator = Animator(decoders)
    drawer = CharacterRenderer(160, 90)
    vmc = VMCSender(VMCConfig(port=9))  # discard port; only `build` is used
    for seq in range(60):
        kind = ["pose_nan", "pose_inf", "pose_huge", "wrist_nan"][seq % 4] if seq < 8 else None
        params = animator.update(_message(seq, decoders.model_id, kind), 1 / 30)
        assert np.isfinite(params.to_vector()).all(), (seq, kind)
        drawer.render(params)
        assert all(math.isfinite(v) for p in vmc.build(params, float(seq)) for v in _osc_floats(p))
    vmc.close()
    # The last frames follow the valid pose again (yaw of synthetic_message is 10 sin(seq / 10) degrees).
    assert abs(params.face.yaw - math.radians(10 * math.sin(59 / 10))) < 0.1
    for dt in (math.inf, math.nan, -1.0):  # a broken clock upstream: idle motion calls math.sin(t)
        assert np.isfinite(animator.update(None, dt).to_vector()).all()
    # Output stages on their own: math.sin(inf) used to raise in both.
    bad = CharacterParams()
    bad.face.yaw, bad.face.roll, bad.left_hand.dir_x, bad.idle = math.inf, math.nan, math.nan, math.nan
    bad.face.blendshapes = {"jawOpen": math.nan}
    drawer.render(bad)
    assert all(math.isfinite(v) for p in vmc.build(bad, math.inf) for v in _osc_floats(p))


def test_smoothing_state_is_never_poisoned():
    smoother, blend = ParamSmoother(), TrackingBlend()
    good = CharacterParams().to_vector()
    bad = good.copy()
    bad[1], bad[3] = math.nan, math.inf
    present = np.ones(3, bool)
    for target in (bad, good, bad, good):
        out = smoother.update(blend.update(target, present, good, 1 / 30), 1 / 30)
        assert np.isfinite(out).all()
    assert np.isfinite(smoother.update(good, math.nan)).all() and np.isfinite(smoother.update(good, -1.0)).all()


def test_implausible_timestamps_are_counted_and_kept_out_of_the_percentiles():
    for same_clock in (True, False):
        tracker = LatencyTracker(same_clock=same_clock)
        for seq in range(100):
            capture = 10**12 + seq * 33_000_000
            if seq == 50:
                capture ^= 1 << 60  # a flipped bit: 36 years
            publish, receive = capture + 1_000_000, 10**12 + seq * 33_000_000 + 5_000_000
            if tracker.received(seq, publish, receive, capture):
                tracker.rendered(capture, publish, receive, receive, receive + 1_000_000)
        s = tracker.summary()
        assert s["implausible_timestamps"] == 1, s
        assert s["capture_to_render"]["count"] == 99 and s["capture_to_render"]["p95_ms"] < 10.0, s
    gaps = LatencyTracker()
    for seq in (0, 1, 5, 2**60, 6):  # a corrupt seq is not 2**60 dropped frames
        gaps.received(seq, 0, 0)
    assert gaps.dropped < 10


def test_latency_memory_is_bounded_and_percentiles_stay_within_one_percent():
    """Issue 11, item 7: a long run keeps fixed-size histograms, not per-frame lists."""
    from renderer.latency import Histogram

    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=3.0, sigma=0.5, size=200_000)  # ms, a long right tail like real latency
    tracker = LatencyTracker()
    size = tracker.capture_to_render.counts.nbytes
    for i, v in enumerate(values):
        capture = 10**12 + i * 33_000_000
        done = capture + int(v * 1e6)
        tracker.rendered(capture, capture + 1_000, done - 100, done - 50, done)
    assert tracker.capture_to_render.counts.nbytes == size < 40_000 and len(tracker.recent_ms) == 90
    s = tracker.summary()["capture_to_render"]
    assert s["count"] == values.size
    for q in (50, 95, 99):
        exact = np.percentile(values, q)
        assert abs(s[f"p{q}_ms"] - exact) / exact < 0.01, (q, s, exact)
    assert s["max_ms"] == pytest.approx(values.max(), rel=1e-6)
    empty = Histogram()
    assert empty.summary() == {"count": 0}
