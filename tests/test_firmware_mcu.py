"""The reference firmware's state machine (lc_link.c), driven byte by byte over its pty.

The test opens the simulator's tty like a host would, but writes hand-made frames, so the MCU side's
de-duplication, watchdog, resync and refusal rules are checked directly (the host side is
test_firmware_link.py).
"""

from __future__ import annotations

import os
import time
import tty

import pytest

from firmware_bridge.protocol import (
    Ack,
    Actuators,
    Config,
    Deframer,
    Heartbeat,
    Hello,
    Led,
    MsgType,
    TimeReply,
    TimeRequest,
    encode_frame,
    q16,
)
from firmware_bridge.sim import Simulator, build_host_tools


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    return build_host_tools(tmp_path_factory.getbasetemp() / "firmware-build")


class Host:
    """A bare host end: raw tty, our own deframer."""

    def __init__(self, path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.deframer = Deframer()
        self.frames: list = []

    def send(self, message, seq: int) -> None:
        os.write(self.fd, encode_frame(message, seq))

    def read(self, seconds: float) -> list:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.frames += self.deframer.feed(os.read(self.fd, 4096))
            except BlockingIOError:
                time.sleep(0.005)
        return self.frames

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def rig(tools, tmp_path):
    with Simulator(tools["mcu_sim"], tmp_path / "ttyMCU", channels=4) as sim:
        host = Host(sim.link)
        yield sim, host
        host.close()


def test_hello_is_answered_with_capabilities_and_heartbeats_flow(rig):
    _, host = rig
    host.send(Hello(Hello.ROLE_HOST, name="test"), 1)
    frames = host.read(0.35)
    hellos = [f.message for f in frames if isinstance(f.message, Hello)]
    assert hellos and hellos[-1].role == Hello.ROLE_MCU and hellos[-1].channels == 4
    beats = [f.message for f in frames if isinstance(f.message, Heartbeat)]
    assert len(beats) >= 3 and beats[-1].state == Heartbeat.SAFE  # not configured yet
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # one counter, +1 per frame


def test_reliable_duplicates_are_acked_but_applied_once_and_bad_requests_refused(rig):
    sim, host = rig
    cfg = Config(300, (q16(0.5),) * 4)
    host.send(cfg, 5)
    host.send(cfg, 5)  # a retry: our first ACK was "lost"
    host.send(Led(7, Led.ON, 1, 2, 3, 0), 6)  # the simulator has 2 LEDs
    host.send(Ack(0, 0, 0), 8)  # an ACK for nothing: ignored
    acks = [f.message for f in host.read(0.3) if isinstance(f.message, Ack)]
    assert acks.count(Ack(MsgType.CONFIG, 5, Ack.OK)) == 2
    assert Ack(MsgType.LED, 6, Ack.BAD_PAYLOAD) in acks
    assert sim.wait_for("config", 1.0)["watchdog_ms"] == 300
    assert sim.stats()["duplicates"] == 1
    with pytest.raises(TimeoutError):
        sim.wait_for("config", 0.3)  # applied once only


def test_a_restarted_host_is_not_taken_for_a_duplicate(rig):
    sim, host = rig
    host.send(Config(300, (q16(0.5),) * 4), 1)
    assert sim.wait_for("config", 1.0)["watchdog_ms"] == 300
    host.send(Hello(Hello.ROLE_HOST, name="again"), 0)  # a new host process: its seq starts over
    host.send(Config(400, (q16(0.5),) * 4), 1)
    assert sim.wait_for("config", 1.0)["watchdog_ms"] == 400


def test_mcu_watchdog_parks_the_actuators_when_the_host_goes_silent(rig):
    sim, host = rig
    safe = (q16(0.1), q16(0.2), q16(0.3), q16(0.4))
    host.send(Config(200, safe), 1)
    host.send(Actuators(123, (q16(0.9),) * 6), 2)  # 6 targets for a 4-channel MCU: the first 4 apply
    applied = sim.wait_for("targets", 1.0, lambda e: not e["safe"])
    assert applied["targets"] == [q16(0.9)] * 4 and applied["capture_us"] == 123
    parked = sim.wait_for("targets", 2.0, lambda e: e["safe"])  # the host says nothing more
    assert parked["targets"] == list(safe)
    assert 200_000 <= parked["t_us"] - applied["t_us"] < 1_000_000  # the CONFIG's 200 ms, on the MCU's clock
    beats = [f.message for f in host.read(0.25) if isinstance(f.message, Heartbeat)]
    assert beats[-1].state == Heartbeat.SAFE
    host.send(Actuators(124, (q16(0.5),) * 4), 3)  # the host is back: driving again
    assert sim.wait_for("targets", 1.0, lambda e: not e["safe"])["capture_us"] == 124


def test_mcu_resyncs_after_garbage_and_counts_it(rig):
    sim, host = rig
    os.write(host.fd, b"\x13\x37" * 200 + b"\x00")  # overflow, then a delimiter
    os.write(host.fd, encode_frame(TimeRequest(42), 1)[:-3] + b"\x00")  # cut frame
    bad = bytearray(encode_frame(TimeRequest(43), 2))
    bad[3] ^= 0xFF
    os.write(host.fd, bytes(bad))
    host.send(TimeRequest(44), 3)
    replies = [f.message for f in host.read(0.3) if isinstance(f.message, TimeReply)]
    assert [r.t1_us for r in replies] == [44]
    stats = sim.stats()
    assert stats["rx_errors"] == 3 and stats["rx_frames"] == 1
    beats = [f.message for f in host.read(0.25) if isinstance(f.message, Heartbeat)]
    assert beats[-1].rx_errors == 3  # and reports it to the host


def test_sanitized_firmware_survives_a_stream_of_mutated_frames(tmp_path):
    """The MCU state machine built with ASan/UBSan, fed 2000 damaged host frames of every type: it must
    neither crash nor stop answering (a sanitizer report aborts it with a non-zero status)."""
    import random
    import subprocess

    from test_firmware_codec import random_message

    from firmware_bridge.sim import FIRMWARE_DIR

    exe = tmp_path / "mcu_sim_asan"
    names = ("host/mcu_sim.c", "lc_link.c", "lc_cobs.c", "lc_crc16.c", "lc_messages.c")
    cmd = ["gcc", "-std=c99", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-o", str(exe), *(str(FIRMWARE_DIR / n) for n in names)]  # fmt: skip
    build = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if build.returncode != 0:
        pytest.skip(f"this gcc cannot build with sanitizers: {build.stderr.strip()[:200]}")
    rng = random.Random(7)
    sim = Simulator(exe, tmp_path / "ttyMCU", channels=32)
    host = Host(sim.link)
    try:
        for i in range(2000):
            wire = bytearray(encode_frame(random_message(rng), i & 0xFFFF))
            if rng.random() < 0.7:
                at = rng.randrange(len(wire) - 1)
                wire[at] = rng.randrange(256)
            data = bytes(wire)
            while data:  # the tty is non-blocking: when the MCU falls behind, drain its replies and retry
                try:
                    data = data[os.write(host.fd, data) :]
                except BlockingIOError:
                    host.read(0.01)
            if i % 200 == 0:
                host.read(0.01)  # keep the MCU's replies flowing
        host.send(TimeRequest(777), 1)
        assert wait_for_reply(host, 777)
        stats = sim.stats()
        assert stats["rx_frames"] > 500 and stats["rx_errors"] > 500
    finally:
        host.close()
        sim.close()
    assert sim.proc.returncode == 0


def wait_for_reply(host: Host, t1: int, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(isinstance(f.message, TimeReply) and f.message.t1_us == t1 for f in host.read(0.05)):
            return True
    return False
