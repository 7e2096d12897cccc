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
