"""ZeroMQ stream across real processes: exact decoding, bad input counted, slow subscribers harmless."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from latentcast.protocol import (  # noqa: E402
    FaceBlock,
    HandBlock,
    Handedness,
    LatentMessage,
    TrackingStatus,
    encode_latents,
)
from latentcast.subscriber import LatentSubscriber  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_message(seq: int) -> LatentMessage:
    """Deterministic per seq, so two processes agree on what message `seq` must be."""
    rng = np.random.default_rng(seq)
    return LatentMessage(
        source_id=f"edge-{seq % 3}",
        seq=seq,
        capture_ns=1_000_000 * seq,
        publish_ns=1_000_000 * seq + 250_000,
        model_id=bytes(rng.integers(0, 256, 8, dtype=np.uint8)),
        tracking=TrackingStatus(seq % 3),
        face=FaceBlock(bool(seq % 2), rng.random(7), rng.normal(size=16), rng.normal(size=3)),
        hands=[
            HandBlock(True, Handedness.LEFT, rng.random(11), rng.normal(size=8), rng.random(3)),
            HandBlock(bool(seq % 2), Handedness.RIGHT, rng.random(11), rng.normal(size=8), rng.random(3)),
        ],
    )


PUBLISHER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "tests")]
    from edge.publisher import Publisher
    from latentcast.protocol import encode_latents
    from test_stream import make_message
    mode, count, hz = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    pub = Publisher("tcp://127.0.0.1:0")
    print(pub.bound_endpoint, flush=True)
    sys.stdin.readline()  # the parent's subscriber is connected
    def rss_kb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    start, worst, rss = time.perf_counter(), 0.0, []
    for i in range(count):
        # memory test: a fresh 64 KB frame each time, which a queue would have to keep
        if mode == "memory":
            frame = b"LCLT" + bytes(64 * 1024) + i.to_bytes(4, "little")
        else:
            frame = encode_latents(make_message(i))
        if mode == "garbage":
            frame = [frame, frame[:20], b"LCLT\\x09\\x00" + frame[6:], b"nonsense"][i % 4]
        t0 = time.perf_counter()
        pub.send(frame)
        worst = max(worst, time.perf_counter() - t0)
        if i == count // 10:
            rss.append(rss_kb())
        due = start + (i + 1) / hz
        time.sleep(max(0.0, due - time.perf_counter()))
    rss.append(rss_kb())
    elapsed = time.perf_counter() - start
    report = {"rate": count / elapsed, "worst_send_s": worst, "rss_kb": rss, "sent": pub.stats.sent}
    print(json.dumps(report), flush=True)
    pub.close()
    """
)


def start_publisher(mode: str, count: int, hz: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(ROOT), mode, str(count), str(hz)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    endpoint = proc.stdout.readline().strip()
    assert endpoint.startswith("tcp://127.0.0.1:"), endpoint
    return proc, endpoint


def go(proc: subprocess.Popen) -> None:
    time.sleep(0.3)  # PUB/SUB slow joiner: let the subscription reach the publisher
    proc.stdin.write("go\n")
    proc.stdin.flush()


def finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


def test_messages_from_another_process_decode_exactly():
    proc, endpoint = start_publisher("exact", 200, 200.0)
    received = []
    with LatentSubscriber(endpoint) as sub:
        go(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            msg = sub.recv(100)
            if msg is not None:
                received.append(msg)
        report = finish(proc)
        assert sub.stats.malformed == 0 and sub.stats.wrong_version == 0
    assert report["sent"] == 200
    # Conflation may skip some under load, but most arrive and every one decodes to exactly what was sent.
    assert len(received) >= 100
    seqs = [m.seq for m in received]
    assert seqs == sorted(set(seqs))
    for msg in received:
        assert encode_latents(msg) == encode_latents(make_message(msg.seq))


def test_malformed_and_other_version_messages_are_rejected_and_counted():
    proc, endpoint = start_publisher("garbage", 200, 100.0)
    valid = []
    with LatentSubscriber(endpoint) as sub:
        go(proc)
        while proc.poll() is None or sub.socket.poll(200):
            msg = sub.recv(100)
            if msg is not None:
                valid.append(msg)
        finish(proc)
        stats = sub.stats
    assert stats.received == len(valid) >= 20
    assert stats.malformed >= 20 and stats.wrong_version >= 20
    assert all(m.seq % 4 == 0 for m in valid)


def test_slow_subscriber_grows_neither_memory_nor_slows_the_publisher():
    # A subscriber that never reads and pushes back (tiny RCVHWM and socket buffer), with big frames.
    count, hz = 1000, 500.0
    proc, endpoint = start_publisher("memory", count, hz)
    context = zmq.Context()
    lazy = context.socket(zmq.SUB)
    lazy.setsockopt(zmq.RCVHWM, 1)
    lazy.setsockopt(zmq.RCVBUF, 4096)
    lazy.setsockopt(zmq.SUBSCRIBE, b"")
    lazy.connect(endpoint)
    go(proc)
    report = finish(proc)
    lazy.close(linger=0)
    context.term()
    grown_mb = (report["rss_kb"][-1] - report["rss_kb"][0]) / 1024
    # 1000 frames of 64 KB = 64 MB if anything queued them; latest-value keeps it flat.
    assert grown_mb < 16, report
    assert report["rate"] > 0.8 * hz, report
    assert report["worst_send_s"] < 0.05, report


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_curve_encrypted_stream_reaches_a_keyed_subscriber(tmp_path):
    from edge.keys import create_keys
    from edge.publisher import CurveServerKeys, Publisher
    from latentcast.subscriber import CurveClientKeys

    server_public, server_secret = create_keys(tmp_path, "server")
    _, client_secret = create_keys(tmp_path, "renderer")
    pub = Publisher("tcp://127.0.0.1:0", curve=CurveServerKeys.from_files(server_secret))
    try:
        with LatentSubscriber(
            pub.bound_endpoint, curve=CurveClientKeys.from_files(server_public, client_secret)
        ) as sub:
            got = None
            deadline = time.monotonic() + 5
            while got is None and time.monotonic() < deadline:
                pub.send(encode_latents(make_message(5)))
                got = sub.recv(50)
            assert got is not None and encode_latents(got) == encode_latents(make_message(5))
    finally:
        pub.close()


def test_proxy_joins_two_devices_into_one_renderer_endpoint():
    from edge.publisher import Publisher

    devices = [Publisher("tcp://127.0.0.1:0"), Publisher("tcp://127.0.0.1:0")]
    ctx = zmq.Context.instance()
    probe = ctx.socket(zmq.PUB)
    backend_port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    backend = f"tcp://127.0.0.1:{backend_port}"
    args = [a for d in devices for a in ("--device", d.bound_endpoint)]
    proxy = subprocess.Popen([sys.executable, "-m", "edge.proxy", *args, "--backend", backend], cwd=ROOT)
    try:
        seen = set()
        with LatentSubscriber(backend, conflate=False) as sub:
            deadline = time.monotonic() + 20
            while seen != {"edge-1", "edge-2"} and time.monotonic() < deadline:
                for seq, device in ((1, devices[0]), (2, devices[1])):
                    device.send(encode_latents(make_message(seq)))
                time.sleep(0.05)
                for source, msg in sub.latest_per_source().items():
                    assert encode_latents(msg) == encode_latents(make_message(msg.seq))
                    seen.add(source)
        assert seen == {"edge-1", "edge-2"}
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        for device in devices:
            device.close()


def test_curve_authorized_clients_folder_admits_only_listed_renderers(tmp_path):
    import shutil

    from edge.keys import create_keys
    from edge.publisher import CurveServerKeys, Publisher
    from latentcast.subscriber import CurveClientKeys

    server_public, server_secret = create_keys(tmp_path / "server", "server")
    allowed_public, allowed_secret = create_keys(tmp_path / "clients", "allowed")
    _, stranger_secret = create_keys(tmp_path / "others", "stranger")
    (tmp_path / "authorized").mkdir()
    shutil.copy(allowed_public, tmp_path / "authorized")
    pub = Publisher("tcp://127.0.0.1:0", curve=CurveServerKeys.from_files(server_secret, tmp_path / "authorized"))
    try:
        allowed = LatentSubscriber(pub.bound_endpoint, curve=CurveClientKeys.from_files(server_public, allowed_secret))
        stranger = LatentSubscriber(
            pub.bound_endpoint, curve=CurveClientKeys.from_files(server_public, stranger_secret)
        )
        got_allowed = got_stranger = None
        deadline = time.monotonic() + 5
        while got_allowed is None and time.monotonic() < deadline:
            pub.send(encode_latents(make_message(3)))
            got_allowed = allowed.recv(50)
            got_stranger = got_stranger or stranger.recv(0)
        for _ in range(10):  # keep offering messages: the stranger must still get none
            pub.send(encode_latents(make_message(4)))
            got_stranger = got_stranger or stranger.recv(20)
        allowed.close()
        stranger.close()
    finally:
        pub.close()
    assert got_allowed is not None and got_stranger is None
