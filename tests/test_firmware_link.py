"""The host link over real pseudo-terminals: resync, flood, unplug/replug, a stalled port, retries.

Two kinds of far end, both real ttys: a bare `os.openpty()` pair whose master the test writes and
reads byte by byte (for hand-made corruption), and the C reference firmware running as `mcu_sim`
on its own pty (for protocol behaviour). Nothing about the port is mocked.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import tty

import pytest
from polling import wait_until

from firmware_bridge.link import LinkConfig, SerialLink, parse_serial_uri
from firmware_bridge.protocol import Ack, Actuators, Config, Deframer, Heartbeat, Led, encode_frame, q16
from firmware_bridge.sim import Simulator, build_host_tools
from latentcast.errors import UserError


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    return build_host_tools(tmp_path_factory.getbasetemp() / "firmware-build")


@pytest.fixture
def sim(tools, tmp_path):
    with Simulator(tools["mcu_sim"], tmp_path / "ttyMCU") as s:
        yield s


@pytest.fixture
def raw_pty():
    """(master fd, URI of the slave): the test plays the MCU by hand."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo or line editing before pyserial configures it
    yield master, f"serial://{os.ttyname(slave)}"
    os.close(master)
    os.close(slave)


def hb(n: int, seq: int) -> bytes:
    return encode_frame(Heartbeat(n, Heartbeat.OK, 0), seq)


def test_uri_parsing_names_the_fix():
    assert parse_serial_uri("serial:///dev/ttyTHS1?baud=1000000") == ("/dev/ttyTHS1", 1_000_000)
    assert parse_serial_uri("serial:///dev/ttyACM0") == ("/dev/ttyACM0", 1_000_000)
    for bad, word in [("/dev/ttyACM0", "serial:///dev/ttyACM0"), ("serial:///dev/x?baud=fast", "whole number"),
                      ("serial:///dev/x?parity=E", "parity"), ("tcp://host:1", "serial://")]:  # fmt: skip
        with pytest.raises(UserError, match=word):
            parse_serial_uri(bad)


def test_resync_after_garbage_corruption_partial_and_split_frames(raw_pty):
    master, uri = raw_pty
    with SerialLink(LinkConfig(uri, heartbeat_timeout_s=5.0)) as link:
        assert wait_until(lambda: link.connected)
        rng = random.Random(0)
        good = [hb(i, i) for i in range(8)]
        os.write(master, bytes(rng.randrange(1, 256) for _ in range(300)) + b"\x00")  # garbage, overflow
        os.write(master, good[0])
        bad = bytearray(good[1])
        bad[5] ^= 0x40  # one flipped bit inside the frame
        os.write(master, bytes(bad))
        os.write(master, good[2][:7])  # a partial frame: the sender died mid-frame ...
        os.write(master, b"\x00" + good[3])  # ... the next sender starts with a delimiter
        for b in good[4]:  # a frame split into single bytes across many reads
            os.write(master, bytes([b]))
            time.sleep(0.001)
        os.write(master, b"junk\x01\x02" + b"\x00" + good[5] + good[6][:4])  # garbage between frames, split
        time.sleep(0.05)
        os.write(master, good[6][4:] + good[7])
        assert wait_until(lambda: link.stats.heartbeats == 6), link.stats
        s = link.deframer.stats
        # garbage run (overflow), flipped bit (COBS or CRC), partial (COBS or CRC), "junk.." (COBS)
        assert s.overflows == 1
        assert s.cobs_errors + s.crc_errors + s.length_errors == 3, s
        assert s.frames == 6 and s.errors == 4
        assert link.connected  # bad bytes are counted, never a reason to reconnect


def test_reliable_command_is_retried_until_acked_and_duplicates_are_acked_again(raw_pty):
    master, uri = raw_pty
    os.set_blocking(master, False)
    with SerialLink(LinkConfig(uri, heartbeat_timeout_s=5.0, retry_s=0.03)) as link:
        assert wait_until(lambda: link.connected)
        pending = link.send_reliable(Led(0, Led.ON, 1, 2, 3, 0))
        seen: list = []
        d = Deframer()

        def read_leds() -> bool:
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                return False
            seen.extend(f for f in d.feed(data) if f.message == pending.message)
            return len(seen) >= 3

        assert wait_until(read_leds, 2.0)  # no ACK: sent again and again, same seq
        assert {f.seq for f in seen} == {pending.seq} and not pending.done
        os.write(master, encode_frame(Ack(Led.TYPE, pending.seq, Ack.OK), 1))
        assert pending.wait(1.0)
        assert link.stats.retries >= 2 and link.stats.reliable_failed == 0
        # A button the MCU re-sends (its ACK was lost) triggers the callback once, but is acked twice.
        presses: list = []
        link.on_button.append(presses.append)
        from firmware_bridge.protocol import Button

        frame = encode_frame(Button(1, Button.PRESS, 10), 77)
        os.write(master, frame + frame)
        assert wait_until(lambda: link.stats.acks_sent == 2)
        assert len(presses) == 1 and link.stats.duplicates == 1


def test_unacked_command_gives_up_and_is_counted(raw_pty):
    _, uri = raw_pty
    with SerialLink(LinkConfig(uri, retry_s=0.01, max_tries=3)) as link:
        assert wait_until(lambda: link.connected)
        p = link.send_reliable(Config(100, (0,)))
        assert not p.wait(2.0) and p.done and p.status == -1
        assert link.stats.reliable_failed >= 1


def test_stalled_port_never_blocks_the_caller_and_keeps_latest_value():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        # The MCU stopped reading: fill the tty's buffer completely before the link writes anything.
        os.set_blocking(slave, False)
        filled, refused = 0, 0
        while refused < 3:  # the kernel moves bytes between its tty buffers a moment later: refill until it stays full
            try:
                filled += os.write(slave, b"\x01" * 4096)
                refused = 0
            except BlockingIOError:
                refused += 1
                time.sleep(0.02)
        assert filled > 0
        with SerialLink(LinkConfig(f"serial://{os.ttyname(slave)}", heartbeat_timeout_s=60.0,
                                   write_timeout_s=0.02)) as link:  # fmt: skip
            assert wait_until(lambda: link.connected)
            took: list[float] = []
            n = 0
            start = time.perf_counter()
            while time.perf_counter() - start < (1.0 if link.stats.write_stalls else 5.0):
                t0 = time.perf_counter()
                link.set_targets((n % 65536, 1, 2, 3, 4, 5), n)
                took.append(time.perf_counter() - t0)
                n += 1
                if n % 50 == 0:
                    time.sleep(0.001)
            assert link.stats.write_stalls > 0, "the port never stalled: the test did not test anything"
            assert link.stats.actuator_superseded > 0  # replaced in the slot, never queued
            assert link.stats.actuator_sent < link.stats.actuator_updates / 10
            # Blocking on the port would cost >= write_timeout (20 ms) a call; a slot write costs microseconds
            # (the machine may still preempt a few calls, so the tail is checked loosely).
            took.sort()
            assert n > 1000, f"only {n} set_targets calls in a second on a stalled port"
            assert took[n // 2] < 0.0005 and took[int(n * 0.99)] < 0.005, (took[n // 2], took[int(n * 0.99)], took[-1])
            # The MCU reads again: the link resumes and the newest value is what arrives last.
            last = (n - 1) % 65536
            os.set_blocking(master, False)
            d = Deframer()
            got: list[Actuators] = []

            def drain() -> bool:
                with contextlib.suppress(BlockingIOError):
                    got.extend(f.message for f in d.feed(os.read(master, 65536)) if isinstance(f.message, Actuators))
                return bool(got) and got[-1].targets[0] == last

            assert wait_until(drain, 3.0), got[-3:]
            assert d.stats.frames > 0  # the filler bytes and cut frames were dropped, counted, and resynced
    finally:
        os.close(master)
        os.close(slave)


def test_flood_from_the_mcu(sim):
    with SerialLink(LinkConfig(sim.uri)) as link:
        assert wait_until(lambda: link.alive)
        before = link.stats.frames_in
        sim.command("flood 5000")  # 190 kB of IMU frames back to back, as fast as the host reads
        sim.wait_for("flooded", 10.0)
        assert wait_until(lambda: link.imu is not None and link.imu.gyro_mrad_s[0] == 4999, 5.0)
        stats = sim.stats()
        assert stats["tx_dropped_bytes"] == 0
        assert link.stats.frames_in - before >= 5000
        assert link.deframer.stats.errors == 0
        assert wait_until(lambda: link.alive, 1.0)  # heartbeats resume after the flood
        assert link.configure(Config(200, (q16(0.5),) * 6)).wait(2.0)  # and it still answers


def test_unplug_and_replug(sim):
    with SerialLink(LinkConfig(sim.uri, reconnect_min_s=0.02, reconnect_max_s=0.2)) as link:
        assert wait_until(lambda: link.alive)
        link.configure(Config(300, (q16(0.25),) * 6)).wait(2.0)
        sim.wait_for("config", 2.0)
        sim.command("unplug 400")
        sim.wait_for("unplugged", 2.0)
        assert wait_until(lambda: not link.connected, 2.0)
        assert not os.path.exists(sim.link)
        assert wait_until(lambda: link.stats.open_failures > 0, 2.0)  # the port is gone: backoff retries
        sim.wait_for("ready", 3.0)
        assert wait_until(lambda: link.alive, 3.0)
        assert link.stats.connects == 2 and link.stats.disconnects == 1
        event = sim.wait_for("config", 2.0)  # the configuration is sent again after every reconnect
        assert event["safe"] == [q16(0.25)] * 6
        link.set_targets((1000,) * 6, 42)
        assert sim.wait_for("targets", 2.0, lambda e: e["targets"] == [1000] * 6)


def test_time_sync_estimates_offset_and_round_trip(tools, tmp_path):
    offset = 5_000_000  # this simulated MCU's clock runs 5 s ahead of the host's
    with Simulator(tools["mcu_sim"], tmp_path / "ttyMCU", clock_offset_us=offset) as sim, SerialLink(
        LinkConfig(sim.uri, time_sync_period_s=0.05)
    ) as link:
        assert wait_until(lambda: len(link.time.rtts_us) >= 5, 3.0)
        assert 0 < link.time.rtt_us < 100_000
        assert abs(link.time.offset_us - offset) <= link.time.rtt_us / 2 + 50  # NTP's bound
        # Actuator capture times go out on the MCU's clock: host time + offset.
        host_us = time.monotonic_ns() // 1000
        link.set_targets((7,) * 6, host_us)
        event = sim.wait_for("targets", 2.0, lambda e: e["targets"] == [7] * 6)
        assert abs(event["capture_us"] - (host_us + offset)) <= link.time.rtt_us + 50
        assert event["t_us"] >= event["capture_us"] - 1000  # applied after it was captured, on one clock


def test_mcu_reboot_behind_an_open_port_gets_configured_again(raw_pty):
    master, uri = raw_pty
    os.set_blocking(master, False)
    from firmware_bridge.protocol import Hello

    d = Deframer()

    def configs() -> list:
        out = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out += [f for f in d.feed(os.read(master, 65536)) if isinstance(f.message, Config)]
        return out

    mcu = Hello(Hello.ROLE_MCU, 1, 0, 0, 0, 100, 1, "mcu")
    with SerialLink(LinkConfig(uri, heartbeat_timeout_s=5.0, max_tries=1000)) as link:
        assert wait_until(lambda: link.connected)
        os.write(master, encode_frame(mcu, 0))  # answers the host's HELLO
        assert wait_until(lambda: link.mcu is not None)
        pending = link.configure(Config(250, (q16(0.1),)))
        sent: list = []
        assert wait_until(lambda: bool(sent.extend(configs()) or sent), 2.0)
        os.write(master, encode_frame(Ack(Config.TYPE, sent[0].seq, Ack.OK), 1))
        assert pending.wait(2.0)
        configs()
        assert link.stats.mcu_reboots == 0
        from firmware_bridge.protocol import Button

        presses: list = []
        link.on_button.append(presses.append)
        os.write(master, encode_frame(Button(0, Button.PRESS, 1), 3))
        assert wait_until(lambda: len(presses) == 1)
        os.write(master, encode_frame(Hello(Hello.ROLE_MCU, 1, 0, 0, 0, 100, 1, "rebooted"), 0))  # unasked
        again: list = []
        assert wait_until(lambda: bool(again.extend(configs()) or again), 2.0)
        assert again[0].message == pending.message and again[0].seq != sent[0].seq
        assert link.stats.mcu_reboots == 1 and link.mcu.name == "rebooted"
        # The rebooted MCU counts its seq from 0 again: seq 3 is a new press, not a duplicate.
        os.write(master, encode_frame(Button(0, Button.PRESS, 2), 3))
        assert wait_until(lambda: len(presses) == 2) and link.stats.duplicates == 0


def test_handshake_and_safety_config_are_never_abandoned(raw_pty):
    master, uri = raw_pty
    os.set_blocking(master, False)
    with SerialLink(LinkConfig(uri, heartbeat_timeout_s=5.0, retry_s=0.01, max_tries=2, essential_retry_s=0.1)) as link:
        assert wait_until(lambda: link.connected)
        first = link.configure(Config(250, (q16(0.1),)))
        led = link.send_reliable(Led(0, Led.ON, 0, 0, 0, 0))
        assert first.wait(1.0) is False and led.wait(1.0) is False  # nobody answers
        d = Deframer()
        seen: list = []

        def read() -> bool:
            with contextlib.suppress(BlockingIOError):
                seen.extend(f for f in d.feed(os.read(master, 65536)))
            return len({f.seq for f in seen if isinstance(f.message, Config)}) >= 2

        read()
        seen.clear()  # from here on: what is still being sent after both gave up
        assert wait_until(read, 2.0)  # CONFIG keeps coming (new seq each round), the LED gave up
        assert not [f for f in seen if isinstance(f.message, Led)]
        assert len({f.seq for f in seen if isinstance(f.message, Config)}) >= 2
