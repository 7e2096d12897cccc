"""The MCU link codec: golden vectors in the Python and the C codec, and the two byte-for-byte equal.

The C codec is compiled here with the host gcc (firmware/Makefile) and driven through `lc_tool`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
from pathlib import Path

import pytest

from firmware_bridge import cobs
from firmware_bridge.crc import CHECK_INPUT, CHECK_VALUE, crc16_ccitt_false
from firmware_bridge.protocol import (
    MAX_CHANNELS,
    MESSAGES,
    Actuators,
    Deframer,
    Hello,
    ProtocolError,
    decode_frame,
    encode_frame,
    encode_raw,
)
from firmware_bridge.sim import build_host_tools

VECTORS = json.loads((Path(__file__).parent / "data" / "firmware_v1_vectors.json").read_text())


@pytest.fixture(scope="module")
def lc_tool(tmp_path_factory):
    """The C codec as a line-oriented process (one per module: starting it is the slow part)."""
    tools = build_host_tools(tmp_path_factory.getbasetemp() / "firmware-build")
    proc = subprocess.Popen([str(tools["lc_tool"])], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(line: str) -> str:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    yield ask
    proc.stdin.close()
    proc.wait(timeout=5)


def flat(seq: int, message) -> str:
    """lc_tool's text form: type, seq, then each field (tuples as length + items, strings as hex)."""
    out = [str(message.TYPE), str(seq)]
    for f in dataclasses.fields(message):
        v = getattr(message, f.name)
        if isinstance(v, tuple):
            out += [str(len(v)), *map(str, v)]
        elif isinstance(v, str):
            out.append(v.encode("ascii").hex() or "-")
        else:
            out.append(str(v))
    return " ".join(out)


def message_from(vector: dict):
    cls = MESSAGES[vector["type_code"]]
    assert cls.__name__ == vector["type"]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in vector["fields"].items()})


def test_crc_is_ccitt_false_in_both_codecs(lc_tool):
    assert crc16_ccitt_false(CHECK_INPUT) == CHECK_VALUE == int(VECTORS["crc"]["check"], 16) == 0x29B1
    assert lc_tool("C " + CHECK_INPUT.hex()) == "29b1"
    data = bytes(range(256)) * 2
    assert lc_tool("C " + data.hex()) == f"{crc16_ccitt_false(data):04x}"


@pytest.mark.parametrize("case", VECTORS["cobs"], ids=lambda c: c["decoded"][:12] or "empty")
def test_cobs_vectors_in_both_codecs(case, lc_tool):
    raw, enc = bytes.fromhex(case["decoded"]), bytes.fromhex(case["encoded"])
    assert cobs.encode(raw) == enc
    assert cobs.decode(enc) == raw
    assert lc_tool("S " + raw.hex()) == enc.hex()
    assert lc_tool("U " + enc.hex()) == raw.hex()
    assert 0 not in enc


def test_cobs_rejects_malformed_blocks(lc_tool):
    for bad in (b"\x05\x11\x22", b"\x02\x00", b"\x00"):
        with pytest.raises(cobs.CobsError):
            cobs.decode(bad)
        assert lc_tool("U " + bad.hex()) == "ERR"


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_golden_frames_python(vector):
    msg = message_from(vector)
    assert encode_raw(msg, vector["seq"]).hex() == vector["raw"]
    assert encode_frame(msg, vector["seq"]).hex() == vector["wire"]
    frame = decode_frame(bytes.fromhex(vector["wire"]))
    assert (frame.seq, frame.message) == (vector["seq"], msg)


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_golden_frames_c(vector, lc_tool):
    msg = message_from(vector)
    assert lc_tool("E " + flat(vector["seq"], msg)) == vector["wire"]
    decoded = lc_tool("D " + vector["wire"])
    assert decoded == flat(vector["seq"], msg) + " " + vector["wire"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_frames_rejected_for_the_same_reason_in_both(vector, lc_tool):
    wire = bytes.fromhex(vector["wire"])
    d = Deframer()
    assert d.feed(wire) == []
    assert getattr(d.stats, vector["reason"]) == 1 and d.stats.errors == 1
    c_reason = {"cobs_errors": "cobs", "crc_errors": "crc", "length_errors": "length", "version_errors": "version",
                "unknown_types": "type"}[vector["reason"]]  # fmt: skip
    answer = lc_tool("D " + vector["wire"])
    assert answer.startswith("ERR") and f"{c_reason}=1" in answer, answer


def random_message(rng: random.Random):
    cls = rng.choice(list(MESSAGES.values()))
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in ("name", "text"):
            kw[f.name] = "".join(rng.choice("abcXYZ 019-_") for _ in range(rng.randint(0, 32)))
        elif f.name in ("targets", "safe_targets"):
            kw[f.name] = tuple(rng.randrange(65536) for _ in range(rng.randint(0, MAX_CHANNELS)))
        elif f.name == "quat":
            kw[f.name] = tuple(rng.randint(-32768, 32767) for _ in range(4))
        elif f.name in ("accel_mg", "gyro_mrad_s"):
            kw[f.name] = tuple(rng.randint(-32768, 32767) for _ in range(3))
        elif f.name.endswith("_us"):
            kw[f.name] = rng.randrange(2**64)
        elif f.name in ("uptime_ms", "mcu_ms"):
            kw[f.name] = rng.randrange(2**32)
        elif f.name in ("max_rate_hz", "firmware_version", "period_ms", "code", "watchdog_ms", "acked_seq",
                        "rx_errors"):  # fmt: skip
            kw[f.name] = rng.randrange(65536)
        else:
            kw[f.name] = rng.randrange(256)
    return cls(**kw)


def test_python_and_c_codecs_agree_byte_for_byte_on_random_messages(lc_tool):
    rng = random.Random(13)
    for _ in range(400):
        msg, seq = random_message(rng), rng.randrange(65536)
        wire = encode_frame(msg, seq)
        assert lc_tool("E " + flat(seq, msg)) == wire.hex(), msg
        assert lc_tool("D " + wire.hex()) == flat(seq, msg) + " " + wire.hex()
        assert decode_frame(wire).message == msg


def test_largest_actuator_frame_without_zero_bytes(lc_tool):
    # 32 channels and no zero byte anywhere: the whole raw frame is one COBS run.
    msg = Actuators(0x0101010101010101, tuple([0x0101] * MAX_CHANNELS))
    wire = encode_frame(msg, 0x0101)
    assert wire.count(0) == 1
    assert lc_tool("E " + flat(0x0101, msg)) == wire.hex()


def test_encoder_refuses_what_the_format_cannot_carry():
    with pytest.raises(ValueError, match="channels"):
        encode_frame(Actuators(0, (0,) * (MAX_CHANNELS + 1)), 0)
    with pytest.raises(ProtocolError, match="length"):
        Hello.unpack(bytes(9) + b"\x05ab")


def test_the_document_shows_the_same_vectors_and_a_mapping_that_loads():
    """docs/FIRMWARE.md is what firmware authors read: its tables must be the golden file's bytes."""
    from firmware_bridge.mapping import parse_mapping, tomllib

    doc = (Path(__file__).resolve().parents[1] / "docs" / "FIRMWARE.md").read_text()
    for vector in VECTORS["frames"] + VECTORS["invalid"]:
        assert f"| `{vector['name']}` |" in doc and f"`{vector['wire']}`" in doc, vector["name"]
    assert "0x29B1" in doc
    block = doc.split("## The host's mapping file")[1].split("```toml")[1].split("```")[0]
    assert parse_mapping(tomllib.loads(block), "FIRMWARE.md").channels[0].param == "face.mouth_open"


@pytest.fixture(scope="module")
def lc_tool_sanitized(tmp_path_factory):
    """The C codec built with AddressSanitizer and UBSan: a bad read or overflow aborts the process."""
    from firmware_bridge.sim import FIRMWARE_DIR

    exe = tmp_path_factory.getbasetemp() / "lc_tool_asan"
    names = ("host/lc_tool.c", "lc_cobs.c", "lc_crc16.c", "lc_messages.c")
    src = [FIRMWARE_DIR / n for n in names]
    cmd = ["gcc", "-std=c99", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-fno-omit-frame-pointer", "-o", str(exe), *map(str, src)]  # fmt: skip
    build = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if build.returncode != 0:
        pytest.skip(f"this gcc cannot build with sanitizers: {build.stderr.strip()[:200]}")
    return exe


def test_mutated_frames_never_crash_the_c_decoder_and_both_codecs_agree(lc_tool_sanitized):
    rng = random.Random(1313)
    lines, expected = [], []
    for _ in range(1500):
        msg, seq = random_message(rng), rng.randrange(65536)
        wire = bytearray(encode_frame(msg, seq)[:-1])
        for _ in range(rng.randint(1, 3)):
            kind, at = rng.randrange(4), rng.randrange(max(1, len(wire)))
            if not wire:
                wire += b"\x01"
            elif kind == 0:
                wire[at] ^= 1 << rng.randrange(8)  # flipped bit
            elif kind == 1:
                del wire[at:]  # cut
            elif kind == 2:
                wire[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))  # inserted junk
            else:
                wire[at] = rng.randrange(256)
        wire = bytes(wire) + b"\x00"
        d = Deframer()
        frames = d.feed(wire)
        if frames:
            f = frames[0]
            expected.append(flat(f.seq, f.message) + " " + encode_frame(f.message, f.seq).hex())
        else:
            s = d.stats
            expected.append(f"ERR cobs={s.cobs_errors} crc={s.crc_errors} length={s.length_errors} "
                            f"version={s.version_errors} type={s.unknown_types} overflow={s.overflows}")  # fmt: skip
        lines.append("D " + wire.hex())
    proc = subprocess.run([str(lc_tool_sanitized)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = proc.stdout.splitlines()
    assert len(answers) == len(lines)
    mismatches = [(line, want, got) for line, want, got in zip(lines, expected, answers, strict=True) if want != got]
    assert not mismatches, mismatches[:3]
    assert sum(a.startswith("ERR") for a in answers) > 1000  # the mutations really break frames
