"""Every documented error of the protocol encoder is a ValueError naming the problem (never a struct.error
or an IndexError), at exactly the documented limit; and the decoder's limits from both sides.

Written against the public API only (docs/PROTOCOL.md): no byte offsets, so a layout bump keeps it valid.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest

from latentcast import protocol
from latentcast.protocol import (
    MODEL_ID_SIZE,
    NO_MODEL,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Decision,
    FaceBlock,
    HandBlock,
    Handedness,
    LatentMessage,
    PreviewMessage,
    ProtocolError,
    ProtocolValueError,
    TrackingStatus,
    decode,
    decode_latents,
    decode_preview,
    encode_latents,
    encode_preview,
)


def message(source_id: str = "edge0", **kw) -> LatentMessage:
    base = dict(
        source_id=source_id,
        seq=3,
        capture_ns=10,
        publish_ns=20,
        model_id=bytes(range(MODEL_ID_SIZE)),
        tracking=TrackingStatus.OK,
        face=FaceBlock(True, np.array([0.25, 0.75]), np.array([0.5]), np.array([1.0, -2.0, 3.0])),
        hands=[HandBlock(True, Handedness.RIGHT, np.array([1.0, 0.0]), np.array([0.1, 0.2]), np.array([0.5, 0.5, 0]))],
    )
    base.update(kw)
    return LatentMessage(**base)


# 255 bytes is the limit of the one-byte length field: ASCII, 2-byte and 4-byte UTF-8 all count bytes, not characters.
@pytest.mark.parametrize(
    ("source", "size"), [("a" * 255, 255), ("é" * 127 + "a", 255), ("😀" * 63 + "abc", 255), ("", 0)]
)
def test_a_source_id_of_exactly_255_utf8_bytes_round_trips(source, size):
    assert len(source.encode()) == size
    assert decode_latents(encode_latents(message(source))).source_id == source
    preview = decode_preview(encode_preview(PreviewMessage(source, 1, 2, b"\xff\xd8jpeg")))
    assert preview.source_id == source and preview.jpeg == b"\xff\xd8jpeg"


@pytest.mark.parametrize("source", ["a" * 256, "é" * 128, "😀" * 64, "a" * 4000])
def test_a_source_id_over_255_utf8_bytes_is_a_value_error_not_a_struct_error(source):
    size = len(source.encode())
    for encode in (lambda: encode_latents(message(source)), lambda: encode_preview(PreviewMessage(source, 1, 2, b""))):
        with pytest.raises(ValueError, match=f"at most 255 UTF-8 bytes, got {size}") as info:
            encode()
        assert not isinstance(info.value, struct.error)


@pytest.mark.parametrize("size", [0, MODEL_ID_SIZE - 1, MODEL_ID_SIZE + 1, 32])
def test_a_model_id_of_the_wrong_size_is_a_value_error(size):
    with pytest.raises(ValueError, match=f"model_id must be {MODEL_ID_SIZE} bytes, got {size}"):
        encode_latents(message(model_id=bytes(size)))


def test_255_hand_blocks_are_written_256_are_a_value_error():
    hands = [HandBlock(False, Handedness.LEFT)] * 255
    back = decode_latents(encode_latents(message(hands=hands)))
    assert len(back.hands) == 255 and not any(h.present for h in back.hands)
    with pytest.raises(ValueError, match="at most 255 hand blocks"):
        encode_latents(message(hands=[*hands, HandBlock()]))


@pytest.mark.parametrize("version", [0, 3, max(SUPPORTED_VERSIONS) + 1, -1])
def test_writing_an_unsupported_version_is_a_value_error(version):
    with pytest.raises(ValueError, match=f"can write protocol versions .*not {version}"):
        encode_latents(message(), version=version)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_supported_version_is_written_and_read_back(version):
    back = decode_latents(encode_latents(message(), version=version))
    np.testing.assert_array_equal(back.face.y, np.float32([0.25, 0.75]))
    np.testing.assert_array_equal(back.hands[0].z, np.float32([0.1, 0.2]))
    assert back.hands[0].handedness == Handedness.RIGHT and back.tracking == TrackingStatus.OK
    assert encode_latents(message()) == encode_latents(message(), version=PROTOCOL_VERSION)


@pytest.mark.parametrize(
    ("field", "value", "n"),
    [("pose", np.zeros(2), 3), ("pose", np.zeros(4), 3), ("wrist", np.zeros(2), 3), ("gaze", np.zeros(3), 4)],
)
def test_a_fixed_size_vector_of_the_wrong_length_is_a_value_error(field, value, n):
    msg = message()
    target = msg.hands[0] if field == "wrist" else msg.face
    setattr(target, field, value)
    with pytest.raises(ValueError, match=f"expected {n} values, got {value.size}"):
        encode_latents(msg)


def test_present_flags_handedness_tracking_and_empty_blocks_survive_the_round_trip():
    for tracking in TrackingStatus:
        hands = [HandBlock(False, side) for side in Handedness]
        msg = message(tracking=tracking, face=FaceBlock(False), hands=hands)
        back = decode_latents(encode_latents(msg))
        assert back.tracking == tracking and not back.face.present
        assert [h.handedness for h in back.hands] == list(Handedness)
        assert back.face.y.size == 0 and back.face.z.size == 0 and back.model_id == msg.model_id
    assert decode_latents(encode_latents(message(model_id=NO_MODEL))).model_id == NO_MODEL


def test_a_truthy_present_value_is_written_as_one():
    msg = message()
    msg.face.present = 5  # any truthy value means present; the wire carries 0 or 1 only
    assert decode_latents(encode_latents(msg)).face.present is True


@pytest.mark.parametrize("label", [-1, 0, 1])
def test_decision_labels_from_unknown_to_the_last_class_are_valid(label):
    msg = message()
    msg.hands[0].decision = Decision(label, 0.5, label == -1)
    back = decode_latents(encode_latents(msg)).hands[0].decision
    assert (back.label, back.unknown) == (label, label == -1) and back.confidence == pytest.approx(0.5)


@pytest.mark.parametrize("label", [-2, 2])
def test_decision_labels_outside_the_classes_are_rejected_by_the_reader(label):
    msg = message()
    msg.hands[0].decision = Decision(label, 0.5, False)
    with pytest.raises(ProtocolError, match=f"label {label} is not a class index"):
        decode_latents(encode_latents(msg))


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda m: setattr(m, "capture_ns", -1), "capture_ns -1"),
        (lambda m: setattr(m, "publish_ns", 2**62 + 1), "publish_ns"),
        (lambda m: setattr(m.face, "pose", np.array([0.0, 180.01, 0.0])), "face pose"),
        (lambda m: setattr(m.hands[0], "wrist", np.array([2.01, 0.5, 0.0])), "hand 0 wrist"),
        (lambda m: setattr(m.hands[0], "wrist", np.array([0.5, -1.01, 0.0])), "hand 0 wrist"),
        (lambda m: setattr(m.hands[0], "wrist", np.array([0.5, 0.5, 1000.5])), "hand 0 reserved"),
        (lambda m: setattr(m.face, "y", np.array([1.0011])), "face y"),
        (lambda m: setattr(m.face, "z", np.array([-1000.5])), "face z"),
        (lambda m: setattr(m.face, "gaze", np.array([0.0, 1.571, 0.0, 0.0])), "face gaze"),
        (lambda m: setattr(m.hands[0], "decision", Decision(0, 1.0011, False)), "hand 0 confidence"),
        (lambda m: setattr(m.face, "decision", Decision(0, -0.0011, False)), "face confidence"),
        (lambda m: setattr(m.hands[0], "y", np.array([np.nan, 0.5])), "hand 0 y"),
    ],
)
def test_values_just_past_each_documented_range_are_rejected(edit, what):
    msg = message()
    edit(msg)
    with pytest.raises(ProtocolValueError, match=what):
        decode_latents(encode_latents(msg))


def test_values_exactly_at_each_documented_range_are_accepted():
    msg = message(capture_ns=0, publish_ns=2**62)
    msg.face.pose = np.array([180.0, -180.0, 0.0])
    msg.face.y = np.array([-protocol.PROBABILITY_SLACK, 1.0 + protocol.PROBABILITY_SLACK])
    msg.face.z = np.array([-protocol.CODE_LIMIT, protocol.CODE_LIMIT])
    msg.face.gaze = np.array([1.5708, -1.5708, 0.0, 0.0])
    msg.hands[0].wrist = np.array([-1.0, 2.0, protocol.CODE_LIMIT])
    msg.hands[0].decision = Decision(0, 1.0, False)
    back = decode_latents(encode_latents(msg))
    assert back.capture_ns == 0 and back.publish_ns == 2**62
    np.testing.assert_array_equal(back.hands[0].wrist, np.float32([-1.0, 2.0, 1000.0]))


def test_dispatch_by_topic_and_foreign_topics_are_protocol_errors():
    assert isinstance(decode(encode_latents(message())), LatentMessage)
    assert isinstance(decode(encode_preview(PreviewMessage("p", 1, 2, b"x"))), PreviewMessage)
    with pytest.raises(ProtocolError, match="unknown topic"):
        decode(b"XXXX" + encode_latents(message())[4:])
    with pytest.raises(ProtocolError, match="unknown topic"):
        decode_preview(encode_latents(message()))
    with pytest.raises(ProtocolError, match="trailing bytes"):
        decode_preview(encode_preview(PreviewMessage("p", 1, 2, b"x")) + b"\0")


def test_every_error_names_the_problem_exactly():
    good = encode_latents(message())
    with pytest.raises(ValueError, match=r"^at most 255 hand blocks$"):
        encode_latents(message(hands=[HandBlock()] * 256))
    with pytest.raises(
        ProtocolError, match=rf"^truncated message: need \d+ bytes at offset \d+, have {len(good) - 1}$"
    ):
        decode_latents(good[:-1])
    with pytest.raises(ProtocolError, match=r"^3 trailing bytes after the message$"):
        decode_latents(good + b"abc")
    head = protocol._HEADER.size  # the source id follows the fixed header (docs/PROTOCOL.md)
    bad_utf8 = good[:head] + b"\xff" + good[head + 1 :]
    with pytest.raises(ProtocolError, match=r"^source id is not UTF-8: "):
        decode_latents(bad_utf8)
    with pytest.raises(
        protocol.ProtocolVersionError,
        match=rf"^protocol version 9, this reader speaks {re.escape(str(SUPPORTED_VERSIONS))}$",
    ):
        decode_latents(good[:4] + (9).to_bytes(2, "little") + good[6:])
    msg = message()
    msg.face.pose = np.array([0.0, 200.0, 0.0])
    with pytest.raises(
        ProtocolValueError, match=r"^face pose value .*200\.0.* outside the valid range \[-180\.0, 180\.0\]$"
    ):
        decode_latents(encode_latents(msg))
    msg = message(publish_ns=-5)
    with pytest.raises(ProtocolValueError, match=r"^publish_ns -5 outside the valid range \[0, 2\*\*62\]$"):
        decode_latents(encode_latents(msg))
    msg = message()
    msg.face.gaze = np.array([0.0, 0.0, 2.0, 0.0])
    with pytest.raises(ProtocolValueError, match=r"^face gaze value .*2\.0.* outside"):
        decode_latents(encode_latents(msg))
    msg = message()
    msg.hands[0].wrist = np.array([0.5, 3.0, 0.0])
    with pytest.raises(
        ProtocolValueError, match=r"^hand 0 wrist value .*3\.0.* outside the valid range \[-1\.0, 2\.0\]$"
    ):
        decode_latents(encode_latents(msg))
