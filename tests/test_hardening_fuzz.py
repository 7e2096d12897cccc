"""Issue 11, item 10: a bounded mutation fuzz of the decoder and the renderer path behind it.

Each run mutates 10,000 encoded messages (bit flips, special float32 patterns written over float
fields, truncation, trailing bytes, rewritten counts and flags) plus messages holding the extreme
*valid* values of every documented range. Every one goes through `decode_latents`; every one that
decodes goes through the renderer's `Animator` (with a bundle's real ONNX decoders), as the
renderer would animate it. Contract: decoding raises nothing but `ProtocolError`, the Animator
raises nothing, and every `CharacterParams` it returns is finite. The drawing and the VMC bundle
cost milliseconds each, so they run on every 25th decoded message and every 4th extreme-value
message (several hundred per run), and their outputs (the OSC floats) must be finite too.
Seeded: a failure names the seed and the message.
"""

from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest
import renderer_support as support
from helpers import osc_floats as _osc_floats

from latentcast.protocol import (
    FaceBlock,
    HandBlock,
    Handedness,
    LatentMessage,
    ProtocolError,
    TrackingStatus,
    decode_latents,
    encode_latents,
)
from renderer.animate import Animator
from renderer.character import CharacterRenderer
from renderer.decode import BundleDecoders
from renderer.vmc import VMCConfig, VMCSender

MESSAGES = 10_000
SEED = 11
SPECIAL_F32 = [struct.pack("<f", v) for v in (math.nan, math.inf, -math.inf, 3e38, -3e38, 1e-45, -0.0, 180.0, 2.0)]


def _valid_message(rng: np.random.Generator, model_id: bytes, n_face: int, n_hand: int, extreme: bool) -> LatentMessage:
    """A message the edge could send; with `extreme`, every value at or near the edge of its valid range."""

    def probs(k: int) -> np.ndarray:
        if extreme:
            return rng.choice([-0.001, 0.0, 1.0, 1.001], size=k).astype(np.float32)
        return rng.dirichlet(np.ones(k)).astype(np.float32)

    def code(c: int) -> np.ndarray:
        return (rng.choice([-1000.0, 1000.0, 0.0], size=c) if extreme else rng.normal(size=c)).astype(np.float32)

    pose = rng.choice([-180.0, 180.0, 0.0], size=3) if extreme else rng.uniform(-60, 60, size=3)
    wrists = [rng.choice([-1.0, 2.0, 0.5], size=2) if extreme else rng.uniform(0, 1, size=2) for _ in range(2)]
    now = time.monotonic_ns()
    hands = []
    for side, w in zip((Handedness.LEFT, Handedness.RIGHT), wrists, strict=True):
        wrist = np.array([*w, 0.0], np.float32)
        hands.append(HandBlock(bool(rng.random() < 0.8), side, probs(n_hand), code(support.CODE_DIM), wrist))
    face = FaceBlock(bool(rng.random() < 0.9), probs(n_face), code(support.CODE_DIM), pose.astype(np.float32))
    status = TrackingStatus(int(rng.choice([0, 0, 0, 1, 2])))
    return LatentMessage("fuzz", int(rng.integers(0, 2**40)), now - 3_000_000, now, model_id, status, face, hands)


def _mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(raw)
    kind = int(rng.integers(6))
    if kind == 0:  # flip 1-4 bits anywhere
        for _ in range(int(rng.integers(1, 5))):
            i = int(rng.integers(len(data)))
            data[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # a special float32 over an aligned-or-not 4-byte window past the header
        i = int(rng.integers(40, max(41, len(data) - 4)))
        data[i : i + 4] = SPECIAL_F32[int(rng.integers(len(SPECIAL_F32)))]
    elif kind == 2:  # truncate
        data = data[: int(rng.integers(len(data)))]
    elif kind == 3:  # trailing garbage
        data += bytes(rng.integers(0, 256, size=int(rng.integers(1, 9)), dtype=np.uint8))
    elif kind == 4:  # random bytes over a header field (version, tracking, source length, timestamps, counts)
        i = int(rng.integers(4, min(len(data), 60)))
        data[i] = int(rng.integers(256))
    else:  # several special floats at once
        for _ in range(int(rng.integers(2, 6))):
            i = int(rng.integers(40, max(41, len(data) - 4)))
            data[i : i + 4] = SPECIAL_F32[int(rng.integers(len(SPECIAL_F32)))]
    return bytes(data)


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> BundleDecoders:
    return BundleDecoders.from_bundle(support.make_bundle(tmp_path_factory.mktemp("fuzz") / "latentcast-bundle-fuzz"))


@pytest.mark.slow
def test_mutated_and_extreme_messages_never_crash_or_leak_non_finite_values(decoders):
    rng = np.random.default_rng(SEED)
    animator = Animator(decoders)
    drawer = CharacterRenderer(160, 90)
    vmc = VMCSender(VMCConfig(port=9))  # only `build` is used: the OSC bytes are checked, not sent
    n_face, n_hand = len(decoders.face.classes), len(decoders.hand.classes)
    counts = {"decoded": 0, "rejected": 0, "drawn": 0, "extreme": 0}
    start = time.monotonic()
    try:
        for i in range(MESSAGES):
            extreme = i % 10 == 0
            msg = _valid_message(rng, decoders.model_id, n_face, n_hand, extreme)
            raw = encode_latents(msg)
            if not extreme:
                raw = _mutate(raw, rng)
            try:
                decoded = decode_latents(raw)
            except ProtocolError:
                counts["rejected"] += 1
                decoded = None
            if decoded is None:
                continue  # the renderer never sees it (the subscriber counts it)
            counts["decoded"] += 1
            counts["extreme"] += int(extreme)
            params = animator.update(decoded, float(rng.choice([0.0, 1 / 144, 1 / 30, 0.25])))
            vector = params.to_vector()
            assert np.isfinite(vector).all(), (SEED, i, raw.hex())
            assert all(math.isfinite(v) for v in params.face.blendshapes.values()), (SEED, i)
            if (extreme and i % 40 == 0) or counts["decoded"] % 25 == 0:
                drawer.render(params)
                assert all(math.isfinite(v) for v in _osc_floats(vmc.build(params, float(i)))), (SEED, i)
                counts["drawn"] += 1
    finally:
        vmc.close()
    elapsed = time.monotonic() - start
    # The run really exercised both sides of the decoder and the output stages.
    assert counts["rejected"] > 3000 and counts["decoded"] > 3000 and counts["extreme"] == MESSAGES // 10, counts
    assert counts["drawn"] >= 350, counts
    assert animator.stats.decoded_face > 1000 and animator.stats.decoded_hands > 1000, animator.stats
    print(f"fuzz: {MESSAGES} messages in {elapsed:.1f} s: {counts}")
