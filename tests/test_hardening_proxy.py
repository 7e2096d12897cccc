"""Issue 11, item 5: CurveZMQ on the proxy (both sides), one ZAP authenticator per context, no open binds.

The issue's probe: 221 of 221 messages injected into the proxy's frontend with a spoofed source id
reached the renderer side. Here the proxy runs as its CLI in another process; an authorised
publisher, an impostor with its own key pair and one without CurveZMQ all publish into it, and an
authorised renderer-side subscriber must see the authorised source only.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from helpers import free_port, one_line_error

from edge.keys import create_keys
from edge.publisher import CurveServerKeys, Publisher
from latentcast.assets import resolve
from latentcast.protocol import LatentMessage, TrackingStatus, encode_latents
from latentcast.subscriber import CurveClientKeys, LatentSubscriber

ROOT = Path(__file__).resolve().parents[1]
CLIP = "data/video/hand_landmarker_test_video.mp4"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("curve")
    out = {}
    for name in ("proxy", "edge", "device", "impostor", "renderer", "stranger"):
        out[name], out[f"{name}_secret"] = create_keys(root / "all", name)
    lists = {"devices": ["device"], "renderers": ["renderer"], "edge_clients": ["proxy", "renderer"]}
    for folder, members in lists.items():
        (root / folder).mkdir()
        for member in members:
            (root / folder / out[member].name).write_bytes(out[member].read_bytes())
        out[folder] = root / folder
    return out


def message(source: str, seq: int) -> bytes:
    now = time.monotonic_ns()
    return encode_latents(LatentMessage(source, seq, now, now, tracking=TrackingStatus.NO_SUBJECT))


def pub_into(context, endpoint: str, client: Path | None = None, server_public: Path | None = None):
    """A PUB that connects (a publisher behind the proxy's frontend), as a CURVE client when given keys."""
    import zmq.auth

    sock = context.socket(zmq.PUB)
    sock.linger = 0
    if client is not None:
        sock.curve_serverkey = zmq.auth.load_certificate(str(server_public))[0]
        sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(str(client))
    sock.connect(endpoint)
    return sock


def start_proxy(*args: str) -> subprocess.Popen:
    """The proxy CLI, returned once it says it is forwarding (start-up takes seconds on a busy machine)."""
    proc = subprocess.Popen([sys.executable, "-m", "edge.proxy", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))  # fmt: skip
    deadline, seen = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stderr.readline() if ready else ""
        seen.append(line)
        if not line or ": proxy (" in line:  # the start-up log line (logger __main__ under -m)
            break
    assert proc.poll() is None, "".join(seen)
    proc.startup_log = "".join(seen)
    return proc


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = proc.startup_log + err
    assert proc.returncode == 0, err
    return err


def collect(subs: dict[str, LatentSubscriber], senders: list[tuple[object, str]], seconds: float) -> dict:
    """Send from every (socket, source) at ~100 Hz while draining every subscriber; {subscriber: {source: n}}."""
    seen: dict[str, dict[str, int]] = {name: {} for name in subs}
    deadline, seq = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        for sock, source in senders:
            sock.send(message(source, seq), zmq.NOBLOCK)
        seq += 1
        time.sleep(0.01)
        for name, sub in subs.items():
            for msg in sub._drain():
                seen[name][msg.source_id] = seen[name].get(msg.source_id, 0) + 1
    return seen


def test_frontend_admits_only_authorised_publishers_and_backend_only_authorised_renderers(keys):
    front, back = free_port(), free_port()
    proxy = start_proxy("--frontend", f"tcp://127.0.0.1:{front}", "--backend", f"tcp://127.0.0.1:{back}",
                        "--curve-secret", str(keys["proxy_secret"]), "--authorized-devices", str(keys["devices"]),
                        "--authorized-clients", str(keys["renderers"]))  # fmt: skip
    context = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{front}"
    senders = [
        (pub_into(context, endpoint, keys["device_secret"], keys["proxy"]), "device"),
        (pub_into(context, endpoint, keys["impostor_secret"], keys["proxy"]), "spoofed-with-own-key"),
        (pub_into(context, endpoint), "spoofed-plain"),
    ]
    subs = {}
    for name in ("renderer", "stranger"):
        curve = CurveClientKeys.from_files(keys["proxy"], keys[f"{name}_secret"])
        subs[name] = LatentSubscriber(f"tcp://127.0.0.1:{back}", conflate=False, context=context, curve=curve)
    try:
        time.sleep(1.0)  # proxy start-up, handshakes, subscriptions travelling upstream
        seen = collect(subs, senders, seconds=3.0)
    finally:
        for sub in subs.values():
            sub.close()
        for sock, _ in senders:
            sock.close()
        context.term()
        err = stop(proxy)
    assert seen["renderer"].get("device", 0) > 50, seen
    assert set(seen["renderer"]) == {"device"}, seen  # 0 spoofed messages got through
    assert seen["stranger"] == {}, seen  # an unauthorised renderer reads nothing
    assert "not in the authorized keys" in err


def test_proxy_is_a_curve_client_of_devices_that_use_authorized_clients_and_preview(keys):
    """The edge side uses authorized_clients AND a preview socket: two sockets, one ZAP authenticator."""
    dev_port, back = free_port(), free_port()
    curve = CurveServerKeys.from_files(keys["edge_secret"], keys["edge_clients"])
    latents = Publisher(f"tcp://127.0.0.1:{dev_port}", curve=curve)
    preview = Publisher(f"tcp://127.0.0.1:{free_port()}", curve=curve)  # used to crash: a second ZAP authenticator
    proxy = start_proxy("--device", f"tcp://127.0.0.1:{dev_port}", "--device-key", str(keys["edge"]), "--backend",
                        f"tcp://127.0.0.1:{back}", "--curve-secret", str(keys["proxy_secret"]))  # fmt: skip
    context = zmq.Context()
    sub = LatentSubscriber(f"tcp://127.0.0.1:{back}", conflate=False, context=context,
                           curve=CurveClientKeys.from_files(keys["proxy"], keys["renderer_secret"]))  # fmt: skip
    try:
        time.sleep(1.0)
        seen = collect({"renderer": sub}, [(latents.socket, "edge0")], seconds=2.0)
    finally:
        sub.close()
        context.term()
        stop(proxy)
        latents.close()
        preview.close()
    assert seen["renderer"].get("edge0", 0) > 30, seen


def test_open_binds_without_keys_are_refused_unless_insecure(keys):
    run = [sys.executable, "-m", "edge.proxy"]
    port = free_port()
    result = subprocess.run([*run, "--frontend", f"tcp://*:{port}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    one_line_error(result, "frontend", "reachable from other hosts", "--authorized-devices")
    with_keys_no_list = [*run, "--frontend", f"tcp://*:{port}", "--curve-secret", str(keys["proxy_secret"])]
    one_line_error(subprocess.run(with_keys_no_list, cwd=ROOT, capture_output=True, text=True, timeout=60),
                   "--authorized-devices")  # fmt: skip
    backend = [*run, "--device", "tcp://127.0.0.1:1", "--backend", f"tcp://*:{port}"]
    one_line_error(subprocess.run(backend, cwd=ROOT, capture_output=True, text=True, timeout=60), "backend")
    proxy = start_proxy("--device", "tcp://127.0.0.1:1", "--backend", f"tcp://*:{port}", "--insecure")
    time.sleep(1.5)
    assert "INSECURE" in stop(proxy)


@pytest.mark.slow
def test_edge_binds_off_device_only_with_keys_or_a_loud_insecure_opt_in(keys, tmp_path):
    clip = f"file://{resolve(CLIP)}"
    run = [sys.executable, "-m", "edge.run", "--quiet", "--source", clip, "--fast", "--frames", "3"]
    refused = subprocess.run([*run, "--endpoint", f"tcp://*:{free_port()}"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    one_line_error(refused, "reachable from other hosts", "insecure")
    allowed = subprocess.run([*run, "--endpoint", f"tcp://*:{free_port()}", "--insecure"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert allowed.returncode == 0 and "INSECURE" in allowed.stderr, allowed.stderr
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[stream]\nendpoint = "tcp://*:{free_port()}"\npreview = true\npreview_endpoint = "tcp://*:{free_port()}"\n'
        f'[curve]\nserver_secret_key = "{keys["edge_secret"]}"\nauthorized_clients = "{keys["edge_clients"]}"\n'
    )
    keyed = subprocess.run([*run, "--config", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert keyed.returncode == 0 and "INSECURE" not in keyed.stderr, keyed.stderr  # keys + preview: no ZAP crash
