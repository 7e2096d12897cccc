"""The wire format: golden vectors, exact round trips, and every kind of bad input rejected."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from latentcast.protocol import (
    NO_MODEL,
    PROTOCOL_VERSION,
    Decision,
    FaceBlock,
    HandBlock,
    Handedness,
    LatentMessage,
    PreviewMessage,
    ProtocolError,
    ProtocolVersionError,
    TrackingStatus,
    decode,
    decode_latents,
    decode_preview,
    encode_latents,
    encode_preview,
    model_id_from_manifest,
)

DATA = Path(__file__).parent / "data"


def golden(name: str) -> bytes:
    return bytes.fromhex((DATA / name).read_text().strip())


def sample_message(k_face=4, c_face=3, k_hand=5, c_hand=2, seed=0) -> LatentMessage:
    rng = np.random.default_rng(seed)
    return LatentMessage(
        source_id="cam-ünïcode",
        seq=2**40 + 7,
        capture_ns=123_456_789_012,
        publish_ns=123_456_999_999,
        model_id=model_id_from_manifest(b'{"files": {}}'),
        tracking=TrackingStatus.OK,
        face=FaceBlock(True, rng.random(k_face), rng.normal(size=c_face), rng.normal(size=3)),
        hands=[
            HandBlock(True, Handedness.LEFT, rng.random(k_hand), rng.normal(size=c_hand), rng.random(3)),
            HandBlock(False, Handedness.RIGHT),
        ],
    )


def assert_same(a: LatentMessage, b: LatentMessage) -> None:
    assert (a.source_id, a.seq, a.capture_ns, a.publish_ns, a.model_id, a.tracking) == (
        b.source_id,
        b.seq,
        b.capture_ns,
        b.publish_ns,
        b.model_id,
        b.tracking,
    )
    blocks_a = [(a.face.present, 0, a.face.y, a.face.z, a.face.pose)]
    blocks_a += [(h.present, h.handedness, h.y, h.z, h.wrist) for h in a.hands]
    blocks_b = [(b.face.present, 0, b.face.y, b.face.z, b.face.pose)]
    blocks_b += [(h.present, h.handedness, h.y, h.z, h.wrist) for h in b.hands]
    assert len(blocks_a) == len(blocks_b)
    for block_a, block_b in zip(blocks_a, blocks_b, strict=True):
        assert block_a[:2] == block_b[:2]
        for x, y in zip(block_a[2:], block_b[2:], strict=True):
            np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


@pytest.mark.parametrize("version", [1, 2])
def test_golden_latents_vector_decodes_to_the_documented_values(version):
    """v2 is what the edge writes; v1 (the previous version) is still decoded, with no decision and no gaze."""
    msg = decode_latents(golden(f"protocol_v{version}_latents.hex"))
    expected = json.loads((DATA / f"protocol_v{version}_latents.json").read_text())
    assert msg.source_id == expected["source_id"] and msg.seq == expected["seq"]
    assert msg.capture_ns == expected["capture_ns"] and msg.publish_ns == expected["publish_ns"]
    assert msg.model_id.hex() == expected["model_id"] and int(msg.tracking) == expected["tracking"]
    assert msg.face.present == expected["face"]["present"]
    for key in ("y", "z", "pose"):
        assert getattr(msg.face, key).tolist() == expected["face"][key]
    assert len(msg.hands) == len(expected["hands"])
    for hand, want in zip(msg.hands, expected["hands"], strict=True):
        assert hand.present == want["present"] and int(hand.handedness) == want["handedness"]
        for key in ("y", "z", "wrist"):
            assert getattr(hand, key).tolist() == want[key]
        _assert_decision(hand.decision, want.get("decision"))
    _assert_decision(msg.face.decision, expected["face"].get("decision"))
    if version == 1:
        assert msg.face.gaze is None and all(h.decision is None for h in msg.hands)
    else:
        assert msg.face.gaze.tolist() == expected["face"]["gaze"]


def _assert_decision(got: Decision | None, want: dict | None) -> None:
    if want is None:
        assert got is None
    else:
        assert (got.label, got.confidence, got.unknown) == (want["label"], want["confidence"], want["unknown"])


@pytest.mark.parametrize("version", [1, 2])
def test_golden_latents_vector_is_what_the_encoder_writes(version):
    raw = golden(f"protocol_v{version}_latents.hex")
    assert encode_latents(decode_latents(raw), version=version) == raw


def test_the_writer_writes_the_current_version_and_v1_upgrades_without_decisions():
    v1 = golden("protocol_v1_latents.hex")
    upgraded = encode_latents(decode_latents(v1))
    assert struct.unpack_from("<H", upgraded, 4)[0] == PROTOCOL_VERSION == 2
    back = decode_latents(upgraded)
    assert back.face.decision is None and back.face.gaze is None and all(h.decision is None for h in back.hands)


def test_decision_and_gaze_round_trip_exactly():
    msg = sample_message()
    msg.face.decision = Decision(3, 0.6180339, False)
    msg.face.gaze = np.array([0.1, -0.2, 0.3, -0.4], np.float32)
    msg.hands[0].decision = Decision(-1, 0.25, True)
    back = decode_latents(encode_latents(msg))
    assert back.face.decision == Decision(3, float(np.float32(0.6180339)), False)
    np.testing.assert_array_equal(back.face.gaze, msg.face.gaze)
    assert back.hands[0].decision == Decision(-1, 0.25, True) and back.hands[1].decision is None


def test_a_label_outside_the_classes_or_bad_flags_are_rejected():
    msg = sample_message(k_hand=5)
    msg.hands[0].decision = Decision(5, 0.9, False)  # classes are 0..4
    with pytest.raises(ProtocolError, match="label 5"):
        decode_latents(encode_latents(msg))
    msg.hands[0].decision = Decision(1, 0.9, False)
    raw = bytearray(encode_latents(msg))
    face_flags = 4 + 2 + 1 + 1 + 8 + 8 + 8 + 8 + len(msg.source_id.encode()) + 18 + 2
    assert raw[face_flags] == 0  # sample_message's face has no decision and no gaze
    raw[face_flags] = 0x80
    with pytest.raises(ProtocolError, match="flags"):
        decode_latents(bytes(raw))


def test_golden_preview_vector_decodes():
    msg = decode(golden("protocol_v1_preview.hex"))
    assert isinstance(msg, PreviewMessage)
    assert (msg.source_id, msg.seq, msg.capture_ns, msg.jpeg) == ("edge0", 42, 1_000_000_000, b"\xff\xd8\xff\xd9")


@pytest.mark.parametrize("sizes", [(4, 3, 5, 2), (0, 0, 0, 0), (52, 16, 11, 8)])
def test_round_trip_is_exact(sizes):
    msg = sample_message(*sizes)
    assert_same(decode_latents(encode_latents(msg)), msg)


def test_landmarks_only_message_has_empty_latents_and_no_model():
    msg = LatentMessage("edge0", 1, 10, 20, face=FaceBlock(True, pose=np.array([1.0, 2.0, 3.0])))
    back = decode_latents(encode_latents(msg))
    assert back.model_id == NO_MODEL and back.face.y.size == 0 and back.face.z.size == 0
    assert back.face.pose.tolist() == [1.0, 2.0, 3.0] and back.hands == []


def test_preview_round_trip():
    msg = PreviewMessage("edge0", 9, 99, bytes(range(256)) * 10)
    back = decode_preview(encode_preview(msg))
    assert back == msg


def test_every_truncation_is_rejected():
    raw = encode_latents(sample_message())
    for cut in range(len(raw)):
        with pytest.raises(ProtocolError):
            decode_latents(raw[:cut])


def test_trailing_bytes_rejected():
    with pytest.raises(ProtocolError, match="trailing"):
        decode_latents(encode_latents(sample_message()) + b"\x00")


def test_other_version_raises_the_version_error():
    raw = bytearray(encode_latents(sample_message()))
    struct.pack_into("<H", raw, 4, PROTOCOL_VERSION + 1)
    with pytest.raises(ProtocolVersionError):
        decode_latents(bytes(raw))


@pytest.mark.parametrize(
    ("offset", "value", "what"),
    [(0, b"XXXX", "topic"), (6, b"\x07", "tracking"), (40, b"\xff", "source id")],
)
def test_bad_fields_rejected(offset, value, what):
    raw = bytearray(encode_latents(sample_message()))
    raw[offset : offset + len(value)] = value
    with pytest.raises(ProtocolError):
        decode_latents(bytes(raw))


def test_bad_present_flag_and_handedness_rejected():
    raw = encode_latents(LatentMessage("s", 0, 0, 0, hands=[HandBlock(True, Handedness.LEFT)]))
    hand_at = len(raw) - 25  # v2 hand block: 18-byte header + 7-byte decision, no floats
    for offset, value in ((hand_at, 2), (hand_at + 1, 3)):
        bad = bytearray(raw)
        bad[offset] = value
        with pytest.raises(ProtocolError):
            decode_latents(bytes(bad))


def test_random_garbage_only_ever_raises_protocol_error():
    rng = np.random.default_rng(1)
    valid = encode_latents(sample_message())
    rejected = 0
    for _ in range(500):
        raw = bytearray(valid)
        for i in rng.integers(0, len(raw), size=3):
            raw[i] = rng.integers(0, 256)
        # Any exception other than ProtocolError fails the test; flips inside float data decode fine.
        with contextlib.suppress(ProtocolError):
            decode_latents(bytes(raw))
            continue
        rejected += 1
    assert rejected > 50


def test_model_id_is_eight_bytes_and_content_addressed():
    a, b = model_id_from_manifest(b"one"), model_id_from_manifest(b"two")
    assert len(a) == 8 and a != b and a == model_id_from_manifest(b"one")
