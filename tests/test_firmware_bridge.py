"""The bridge as an output: mapping-file errors name the key, slew limits hold, the safe pose on lost
tracking, pause and a silent MCU, and button presses run the same actions as the CLI.

The far end is the C reference firmware running as `mcu_sim` on a real pty; the parameters are the
renderer's real CharacterParams.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polling import wait_until

from firmware_bridge.mapping import ChannelMap, SlewLimiter, load_mapping, param_getter, parse_mapping
from firmware_bridge.output import FirmwareOutput, ParamsTap
from firmware_bridge.protocol import Led, q16
from firmware_bridge.sim import Simulator, build_host_tools
from latentcast.errors import UserError
from renderer.params import CharacterParams, FaceParams

PUPPET = Path(__file__).resolve().parents[1] / "firmware_bridge" / "puppet.toml"


def base_doc() -> dict:
    return {
        "channels": {
            "jaw": {"channel": 0, "param": "face.mouth_open", "range": [0.0, 1.0], "limits": [0.2, 0.8],
                    "slew": 2.0, "safe": 0.2},
            "pan": {"channel": 1, "param": "face.yaw", "range": [-0.5, 0.5], "invert": True, "safe": 0.5},
        }
    }  # fmt: skip


def test_example_mapping_loads_and_every_param_exists_in_character_params():
    m = load_mapping(PUPPET)
    assert [c.channel for c in m.channels] == list(range(6))
    params = CharacterParams()
    for c in m.channels:
        param_getter(c, params, m.source)(params)  # raises if a name is not a CharacterParams field


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["channels"]["jaw"].update(range=[0.5, 0.5]), "channels.jaw.range"),
        (lambda d: d["channels"]["jaw"].update(range="wide"), "channels.jaw.range"),
        (lambda d: d["channels"]["jaw"].update(limits=[0.1, 1.5]), "channels.jaw.limits"),
        (lambda d: d["channels"]["jaw"].update(safe=0.9), "channels.jaw.safe"),
        (lambda d: d["channels"]["jaw"].pop("safe"), "channels.jaw.safe"),
        (lambda d: d["channels"]["jaw"].update(slew=-1), "channels.jaw.slew"),
        (lambda d: d["channels"]["jaw"].update(invert="yes"), "channels.jaw.invert"),
        (lambda d: d["channels"]["jaw"].update(param="face mouth"), "channels.jaw.param"),
        (lambda d: d["channels"]["jaw"].update(servo=3), "channels.jaw.servo"),
        (lambda d: d["channels"]["pan"].update(channel=0), "channels.pan.channel"),
        (lambda d: d["channels"]["pan"].update(channel=2), "channels.pan.channel"),
        (lambda d: d["channels"]["pan"].update(channel=40), "channels.pan.channel"),
        (lambda d: d.update(buttons={"0": "dance"}), "buttons.0"),
        (lambda d: d.update(buttons={"zero": "pause"}), "buttons.zero"),
        (lambda d: d.update(actions={"calibrate_neutral": "python -m x"}), "actions.calibrate_neutral"),
        (lambda d: d.update(actions={"pause": ["true"]}), "actions.pause"),
        (lambda d: d.update(link={"mcu_watchdog_ms": 1e9}), "link.mcu_watchdog_ms"),
        (lambda d: d.update(tracking={"lost_when_idle_above": 2}), "tracking.lost_when_idle_above"),
        (lambda d: d.update(chanels={}), "chanels"),
        (lambda d: d.pop("channels"), "channels"),
    ],
)
def test_mapping_errors_name_the_key(edit, key):
    doc = base_doc()
    edit(doc)
    with pytest.raises(UserError) as err:
        parse_mapping(doc, "puppet.toml")
    assert f"puppet.toml: {key} " in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_parameter_is_reported_with_its_key_on_the_first_frame():
    doc = base_doc()
    doc["channels"]["pan"]["param"] = "face.jaw_open"
    m = parse_mapping(doc, "puppet.toml")
    with pytest.raises(UserError, match=r"puppet.toml: channels.pan.param 'face.jaw_open': face has no 'jaw_open'"):
        param_getter(m.channels[1], CharacterParams(), m.source)
    bad_index = ChannelMap("f", 0, "left_hand.curls[7]", (0, 1))
    with pytest.raises(UserError, match=r"channels\.f\.param.*index 7"):
        param_getter(bad_index, CharacterParams())


def test_bad_toml_and_missing_file_are_one_line_errors(tmp_path):
    (tmp_path / "bad.toml").write_text("[channels.jaw\nchannel = 0\n")
    with pytest.raises(UserError, match=r"bad\.toml is not valid TOML"):
        load_mapping(tmp_path / "bad.toml")
    with pytest.raises(UserError, match="not found"):
        load_mapping(tmp_path / "none.toml")


def test_range_inversion_and_limits():
    jaw, pan = parse_mapping(base_doc()).channels
    assert jaw.travel(0.0) == pytest.approx(0.2) and jaw.travel(1.0) == pytest.approx(0.8)
    assert jaw.travel(5.0) == pytest.approx(0.8) and jaw.travel(-5.0) == pytest.approx(0.2)  # never past limits
    assert pan.travel(-0.5) == pytest.approx(1.0) and pan.travel(0.5) == pytest.approx(0.0)  # inverted


def test_slew_limiter_never_moves_faster_than_the_limit():
    m = parse_mapping(base_doc())
    lim = SlewLimiter(m.channels)
    assert lim.travel == [0.2, 0.5]  # starts at the safe pose
    t, prev = 0.0, lim.step([0.2, 0.5], 0.0)
    for k in range(200):
        dt = 0.005 + 0.03 * (k % 3)
        t += dt
        out = lim.step([0.8 if k < 100 else 0.2, 0.0 if k % 7 else 1.0], t)
        assert abs(out[0] - prev[0]) <= 2.0 * dt + 1e-9  # jaw: slew 2/s
        prev = out
    assert out[1] in (0.0, 1.0)  # pan has no slew limit: it jumps


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    return build_host_tools(tmp_path_factory.getbasetemp() / "firmware-build")


@pytest.fixture
def rig(tools, tmp_path):
    """The example puppet mapping on the simulator, with a calibration action that writes a file."""
    marker = tmp_path / "calibrated.txt"
    m = load_mapping(PUPPET)
    m.actions["calibrate_neutral"] = ["{python}", "-c", f"open({str(marker)!r}, 'w').write('neutral')"]
    m.heartbeat_timeout_s = 0.4
    with Simulator(tools["mcu_sim"], tmp_path / "ttyMCU", channels=6) as sim:
        out = FirmwareOutput.open(sim.uri, m)
        try:
            yield sim, out, marker
        finally:
            out.close()


def drive(out: FirmwareOutput, params, seconds: float, hz: float = 50.0, log: list | None = None) -> list[float]:
    """Update at `hz` for `seconds`; `log` collects (update time, Q0.16 targets) of every update."""
    travel: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.monotonic()
        travel = out.update(params, now=now)
        if log is not None:
            log.append((now, tuple(q16(t) for t in travel)))
        time.sleep(1 / hz)
    return travel


def tracked(mouth: float = 0.8, yaw: float = 0.0) -> CharacterParams:
    return CharacterParams(face=FaceParams(present=1.0, mouth_open=mouth, yaw=yaw), idle=0.0)


def drive_until(out: FirmwareOutput, params, cond, timeout: float = 5.0, hz: float = 50.0) -> bool:
    """Update at `hz` until `cond()` holds (True) or `timeout` passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out.update(params)
        if cond():
            return True
        time.sleep(1 / hz)
    return False


def test_watchdog_moves_the_actuators_to_the_safe_pose_when_heartbeats_stop(rig):
    sim, out, _ = rig
    jaw_open = q16(out.mapping.channels[0].limits[1])
    safe = [q16(t) for t in out.mapping.safe_pose]

    def last() -> list:
        e = sim.last_targets()
        return e["targets"] if e else []

    assert drive_until(out, tracked(0.8), lambda: out.link.alive and last()[:1] == [jaw_open])
    sim.command("hb off")  # the MCU keeps reading and applying, but says nothing
    t0 = time.monotonic()
    assert drive_until(out, tracked(0.8), lambda: not out.link.alive and last() == safe)
    assert time.monotonic() - t0 >= out.mapping.heartbeat_timeout_s  # not before the timeout
    assert out.link.stats.watchdog_trips >= 1
    assert sim.last_targets()["safe"] == 0  # sent by the host's watchdog, not the MCU's own
    sim.command("hb on")
    assert drive_until(out, tracked(0.8), lambda: out.link.alive and last()[:1] == [jaw_open])


def test_lost_tracking_goes_to_the_safe_pose_within_slew_limits(rig):
    sim, out, _ = rig
    assert wait_until(lambda: out.link.alive)
    sent: list = []
    drive(out, tracked(0.8, yaw=-0.6), 0.8, log=sent)  # yaw -0.6 inverted: head pan to its upper limit
    start = len(sim.targets)
    lost = CharacterParams(face=FaceParams(mouth_open=0.8, yaw=-0.6), idle=1.0)
    drive(out, lost, 1.0, log=sent)
    frames = [e for e in sim.targets[start:] if not e["safe"]]
    pan = out.mapping.channels[3]
    assert frames[-1]["targets"][3] == q16(pan.safe) and frames[-1]["targets"][0] == q16(out.mapping.channels[0].safe)
    # Every update moved each channel at most slew * dt (2 q16 steps of rounding) ...
    for (t0, a), (t1, b) in itertools.pairwise(sent):
        for c in out.mapping.channels:
            step = abs(b[c.channel] - a[c.channel]) / 65535
            assert step <= c.slew * (t1 - t0) + 2 / 65535, (c.name, step, t1 - t0)
    # ... and the firmware applied exactly those updates (some superseded, none altered).
    produced = {targets for _, targets in sent}
    assert all(tuple(e["targets"]) in produced for e in frames)
    assert len(frames) >= 10


def test_buttons_run_the_same_actions_as_the_cli(rig, tmp_path):
    sim, out, marker = rig
    assert wait_until(lambda: out.link.alive)
    drive(out, tracked(0.8), 0.3)
    sim.command("button 0 1")  # toggle_pause
    assert wait_until(lambda: out.actions.paused, 2.0)
    led = sim.wait_for("led", 3.0, lambda e: e["mode"] == Led.BLINK and e["rgb"] == [255, 160, 0])  # amber
    assert led["index"] == 0
    jaw_safe = q16(out.mapping.channels[0].safe)
    assert drive_until(out, tracked(0.8), lambda: sim.last_targets()["targets"][0] == jaw_safe)  # paused: parked
    sim.command("button 0 1")
    assert wait_until(lambda: not out.actions.paused, 2.0)
    sim.command("button 1 1")  # calibrate_neutral: runs the configured command line
    assert wait_until(lambda: marker.exists() and marker.read_text() == "neutral", 10.0)
    sim.command("button 1 0")  # a release runs nothing
    assert out.stats.button_actions == 3 and out.stats.action_errors == 0
    # The CLI runs the very same Actions.run with the same mapping.
    cli_marker = tmp_path / "cli.txt"
    mapping = tmp_path / "m.toml"
    command = f"open({str(cli_marker)!r}, 'w')"
    head = PUPPET.read_text().split("[actions]")[0]
    mapping.write_text(head + f'[actions]\ncalibrate_neutral = ["{{python}}", "-c", "{command}"]\n')
    rc = subprocess.run([sys.executable, "-m", "firmware_bridge.run", "action", "calibrate_neutral", "--map",
                         str(mapping)], timeout=60, check=False).returncode  # fmt: skip
    assert rc == 0 and cli_marker.exists()


def test_params_tap_feeds_the_output_and_passes_everything_else_through(rig):
    sim, out, _ = rig

    class Animator:  # the renderer's Animator interface: update(msg, dt) -> CharacterParams, .stats
        stats = "animator stats"

        def update(self, msg, dt):
            return tracked(0.5)

    class Msg:
        capture_ns = 5_000_000_000

    tap = ParamsTap(Animator(), out, capture_ns=lambda msg: msg.capture_ns + 1_000)
    assert wait_until(lambda: out.link.alive)
    before = out.stats.updates
    assert tap.update(None, 0.033).face.mouth_open == 0.5
    assert tap.stats == "animator stats" and out.stats.updates == before + 1
    # On the MCU's clock: the same CLOCK_MONOTONIC here, so off by the time-sync error only (<= RTT / 2).
    assert wait_until(lambda: out.link.time.offset_us is not None)
    tap.update(Msg(), 0.033)
    event = sim.wait_for("targets", 3.0, lambda e: e["capture_us"] > 4_000_000 and e["capture_us"] < 6_000_000)
    assert abs(event["capture_us"] - 5_000_001) <= out.link.time.rtt_us / 2 + 1000  # NTP's error bound


def test_edge_stream_through_the_renderer_to_the_firmware(tools, tmp_path):
    """Real edge-format messages over ZeroMQ -> renderer.run -> bridge -> C firmware: a head turned
    20 degrees moves the pan channel, and each ACTUATORS frame carries a captured frame's timestamp."""
    import json
    import socket
    import threading

    import numpy as np
    import zmq

    from latentcast.protocol import FaceBlock, LatentMessage, TrackingStatus, encode_latents

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    captures: list[int] = []
    done = threading.Event()

    def publish() -> None:
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        pub.bind(f"tcp://127.0.0.1:{port}")
        for seq in range(900):  # until the renderer is done (at most 30 s)
            if done.is_set():
                break
            now = time.monotonic_ns()
            captures.append(now)
            face = FaceBlock(present=True, pose=np.array([20.0, 0.0, 0.0], np.float32))
            pub.send(encode_latents(LatentMessage("edge0", seq, now, now, tracking=TrackingStatus.OK, face=face)))
            time.sleep(1 / 30)
        pub.close(linger=0)
        ctx.term()

    with Simulator(tools["mcu_sim"], tmp_path / "ttyMCU") as sim:
        sender = threading.Thread(target=publish, daemon=True)
        sender.start()
        summary = tmp_path / "summary.json"
        cmd = [sys.executable, "-m", "renderer.run", "--endpoint", f"tcp://127.0.0.1:{port}", "--out",
               str(tmp_path / "frames"), "--frames", "40", "--start-on-message", "--size", "160x90", "--summary",
               str(summary), "--serial", sim.uri, "--serial-map", str(PUPPET)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        done.set()
        sender.join(timeout=10)
        assert proc.returncode == 0, proc.stderr[-2000:]
        fw = json.loads(summary.read_text())["firmware"]
        assert fw["output"]["tracked"] > 20
        pan = load_mapping(PUPPET).channels[3]
        want = q16(pan.travel(np.radians(20.0)))
        frames = [e for e in sim.targets if not e["safe"]]
        # slewed (nearly) all the way there; the renderer's smoothing is still converging by a few steps
        assert abs(frames[-1]["targets"][3] - want) <= 200 < abs(want - q16(pan.safe)), (frames[-1], want)
        # Tracked frames carry a captured frame's time, on the MCU's clock (here the same CLOCK_MONOTONIC,
        # up to the time-sync error, which a busy machine stretches): inside the publishing window, and
        # before the moment the firmware applied them. (The exact conversion: test_firmware_link.)
        synced = [e for e in frames if e["capture_us"]]
        lo, hi = captures[0] // 1000 - 50_000, captures[-1] // 1000 + 50_000
        assert len(synced) >= 20
        assert all(lo <= e["capture_us"] <= hi and e["capture_us"] <= e["t_us"] + 50_000 for e in synced)
        assert len({e["capture_us"] for e in synced}) >= 15  # one per captured frame, not a constant
        assert fw["alive"] and fw["link"]["connects"] == 1
    # A mistyped parameter stops renderer.run at start with the key named, no traceback.
    bad_map = tmp_path / "bad.toml"
    bad_map.write_text(PUPPET.read_text().replace('param = "face.mouth_open"', 'param = "face.jaw_open"'))
    bad = subprocess.run([*cmd[:-4], "--serial", "serial:///dev/none", "--serial-map", str(bad_map)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "channels.jaw.param 'face.jaw_open': face has no 'jaw_open'" in bad.stderr
    from renderer.run import attach_serial

    with pytest.raises(UserError, match="--serial needs --serial-map"):
        attach_serial(None, "serial:///dev/ttyACM0", None)


def test_cli_monitor_and_check(tools, tmp_path):
    with Simulator(tools["mcu_sim"], tmp_path / "ttyMCU") as sim:
        sim.command("button 1 2")  # a long press: shown, runs nothing
        proc = subprocess.run([sys.executable, "-m", "firmware_bridge.run", "monitor", "--serial", sim.uri,
                               "--duration", "1.2", "--require-alive"], capture_output=True, text=True, timeout=60,
                              check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "link up" in proc.stdout and "lc-mcu-sim: heartbeats" in proc.stdout
        # pose: by hand, through the same limits (jaw asks 0.95, its limits stop it at 0.70) and slew
        proc = subprocess.run([sys.executable, "-m", "firmware_bridge.run", "pose", "jaw=0.95", "head_pan=0.3",
                               "--serial", sim.uri, "--map", str(PUPPET), "--hold", "0.6"], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "jaw=0.700" in proc.stdout and "head_pan=0.300" in proc.stdout
        assert wait_until(lambda: any(e["targets"][0] == q16(0.7) and e["targets"][3] == q16(0.3)
                                      for e in list(sim.targets)))  # fmt: skip
    bad = tmp_path / "bad.toml"
    bad.write_text('[channels.jaw]\nchannel = 0\nparam = "face.mouth_open"\nrange = [0, 1]\nsafe = 2\n')
    proc = subprocess.run([sys.executable, "-m", "firmware_bridge.run", "check", str(bad)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 2 and "channels.jaw.safe" in proc.stderr and "Traceback" not in proc.stderr
