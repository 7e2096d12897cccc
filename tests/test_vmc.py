"""VMC output checked by a real OSC server socket (python-osc's server on 127.0.0.1)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from latentcast.errors import UserError
from renderer.params import CharacterParams, FaceParams, HandParams
from renderer.vmc import VMCConfig, VMCSender, head_euler_unity, quaternion_from_euler

FINGER_BONES = {f"{side}{finger}{seg}" for side in ("Left", "Right")
                for finger in ("Thumb", "Index", "Middle", "Ring", "Little")
                for seg in ("Proximal", "Intermediate", "Distal")}  # fmt: skip


@pytest.fixture
def osc_server():
    received: list[tuple[str, tuple]] = []
    got = threading.Event()
    dispatcher = Dispatcher()

    def collect(address, *args):
        received.append((address, args))
        if address == "/VMC/Ext/Blend/Apply":
            got.set()

    dispatcher.set_default_handler(collect)
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received, got
    server.shutdown()
    server.server_close()


def test_one_frame_bundle_reaches_a_real_osc_server(osc_server):
    port, received, got = osc_server
    params = CharacterParams(
        face=FaceParams(
            present=1,
            yaw=math.radians(20),
            blink_left=0.9,
            mouth_open=0.4,
            smile=0.7,
            brow_right=-0.5,
            blendshapes={"cheekPuff": 0.3, "eyeBlinkLeft": 0.5},
        ),
        right_hand=HandParams(present=1, curls=(0.2, 1.0, 1.0, 1.0, 1.0), gesture="closed_fist"),
    )
    sender = VMCSender(VMCConfig("127.0.0.1", port))
    bundle = sender.build(params, t=1.5)
    assert bundle.dgram.startswith(b"#bundle\x00")  # one OSC bundle per frame: applied atomically
    assert sender.send(params, t=1.5)
    assert got.wait(5.0), "no /VMC/Ext/Blend/Apply arrived"
    sender.close()
    addresses = [a for a, _ in received]
    values = {args[0]: args[1] for a, args in received if a == "/VMC/Ext/Blend/Val"}
    bones = {args[0]: args[1:] for a, args in received if a == "/VMC/Ext/Bone/Pos"}
    ok = next(args for a, args in received if a == "/VMC/Ext/OK")
    assert ok == (1, 3, 0, 1)  # loaded, calibrated, normal mode, tracking
    assert next(args for a, args in received if a == "/VMC/Ext/T")[0] == pytest.approx(1.5)
    assert next(args for a, args in received if a == "/VMC/Ext/Root/Pos")[0] == "root"
    # Every Blend/Val comes before the single Apply.
    assert addresses.count("/VMC/Ext/Blend/Apply") == 1
    assert max(i for i, a in enumerate(addresses) if a == "/VMC/Ext/Blend/Val") < addresses.index(
        "/VMC/Ext/Blend/Apply"
    )
    # VRM presets and PerfectSync (Unity ARKit spelling) both present and consistent.
    assert values["Blink_L"] == pytest.approx(0.9) and values["EyeBlinkLeft"] == pytest.approx(0.9)
    assert values["Blink_R"] == 0.0
    assert values["A"] == pytest.approx(0.4) and values["JawOpen"] == pytest.approx(0.4)
    assert values["Joy"] == pytest.approx(0.7) and values["MouthSmileLeft"] == pytest.approx(0.7)
    assert values["BrowDownRight"] == pytest.approx(0.5) and values["BrowDownLeft"] == 0.0
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert values["CheekPuff"] == pytest.approx(0.3)  # decoded scores pass through in PascalCase ...
    assert values["EyeBlinkLeft"] == pytest.approx(0.9)  # ... but the smoothed controls win where both exist
    # Bones: head, neck and 30 finger bones, unit quaternions; a curled finger is rotated, a straight one less.
    assert {"Head", "Neck"} | FINGER_BONES <= set(bones)
    for name, values in bones.items():
        assert math.isclose(float(np.linalg.norm(values[3:])), 1.0, rel_tol=1e-5), name
    curled = bones["RightIndexIntermediate"][3:]
    straight = bones["LeftIndexIntermediate"][3:]
    assert abs(curled[3]) < 0.8 and straight == pytest.approx((0.0, 0.0, 0.0, 1.0))
    # Head turned to the user's left (yaw +20 deg): the avatar turns to its left, -Y in Unity.
    head_q = bones["Head"][3:]
    assert head_q[1] < 0 and abs(head_q[0]) < 1e-6 and abs(head_q[2]) < 1e-6


def test_idle_frames_report_tracking_lost(osc_server):
    port, received, got = osc_server
    sender = VMCSender(VMCConfig("127.0.0.1", port, perfect_sync=False))
    sender.send(CharacterParams(idle=1.0), t=0.0)
    assert got.wait(5.0)
    sender.close()
    assert next(args for a, args in received if a == "/VMC/Ext/OK")[3] == 0
    names = {args[0] for a, args in received if a == "/VMC/Ext/Blend/Val"}
    assert "Blink_L" in names and "EyeBlinkLeft" not in names


def test_quaternions_match_unity_euler_order():
    # Unity applies Z, then X, then Y: q = qy * qx * qz.
    def axis(i, deg):
        h = math.radians(deg) / 2
        v = [0.0, 0.0, 0.0]
        v[i] = math.sin(h)
        return np.array([*v, math.cos(h)])

    def mul(a, b):
        x1, y1, z1, w1 = a
        x2, y2, z2, w2 = b
        return np.array([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                         w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2])  # fmt: skip

    expected = mul(mul(axis(1, 40), axis(0, 30)), axis(2, 50))
    np.testing.assert_allclose(quaternion_from_euler(30, 40, 50), expected, atol=1e-12)
    assert head_euler_unity(0.0, math.radians(10), 0.0) == pytest.approx((-10.0, 0.0, 0.0))  # look up: -X


def test_vmc_target_parsing():
    assert VMCConfig.parse("192.168.1.5:39540").port == 39540
    assert VMCConfig.parse("studio-pc").port == 39539
    assert VMCConfig.parse(":40000").host == "127.0.0.1"
    with pytest.raises(UserError, match="HOST:PORT"):
        VMCConfig.parse("host:abc")
    with pytest.raises(UserError, match="out of range"):
        VMCConfig.parse("host:70000")
