"""The open-set decision on the edge (edge/labels.py): fitted on real rows, equal across torch, ONNX FP32
and ONNX INT8 in float32, published per part by the real edge loop, and drawn by the renderer as received."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.labels import PartJudge, PartLabels
from latentcast import open_set
from latentcast.hysteresis import UNKNOWN
from latentcast.inference import DecoderSession, EncoderSession

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def gesture(tmp_path_factory):
    """A small real gesture AAE with its open-set rule fitted on held-out REAL baron105 rows, exported FP32 + INT8."""
    from _export_fixtures import gesture_model_dir

    from aae import landmark_aae
    from calibration.sets import hand_split
    from export.onnx import export_model
    from export.quantize import quantize_encoder

    root = tmp_path_factory.mktemp("labels")
    model_dir = gesture_model_dir(root / "gesture")
    model, card = landmark_aae.load(model_dir)
    pool, test = hand_split()
    held = np.random.default_rng(0).permutation(len(pool))[800:1400]  # rows the fixture model never saw
    card["open_set"] = landmark_aae.fit_open_set(model, pool.x[held], pool.y[held], "baron105 rows held out")
    landmark_aae.save(model_dir, model, card)
    onnx_dir = root / "onnx"
    export_model(model_dir, onnx_dir, features=pool.x[:256])
    quantize_encoder(onnx_dir / "encoder.onnx", onnx_dir / "encoder.int8.onnx", pool.x[:512])
    return {"model": model, "card": card, "dir": model_dir, "onnx": onnx_dir, "test": test}


def fixed_rows(test) -> tuple[np.ndarray, np.ndarray]:
    """The same 200 held-out rows every run: every 5th of the baron105 test split."""
    return test.x[::5][:200], test.y[::5][:200]


def test_the_fitted_rule_is_inside_its_grid_and_rejects_about_its_share(gesture):
    block = gesture["card"]["open_set"]
    lo, hi = open_set.TEMPERATURE_GRID
    assert lo < block["temperature"] < hi and 1 / 11 < block["min_confidence"] < 1
    assert block["fit_unknown_rate"] <= 1 - block["keep"] + 1e-9


def test_float32_decision_is_equal_across_torch_onnx_fp32_and_onnx_int8(gesture):
    from aae import landmark_aae

    rule = open_set.OpenSetRule.from_dict(gesture["card"]["open_set"])
    x, _ = fixed_rows(gesture["test"])
    probs, err = landmark_aae.reconstruction_error(gesture["model"], x)  # torch
    torch_labels = rule.judge(probs, err).label
    decoder = DecoderSession(gesture["onnx"] / "decoder.onnx")
    judge = PartJudge(rule, decoder)
    verdicts = {}
    for name in ("encoder.onnx", "encoder.int8.onnx"):
        y, z = EncoderSession(gesture["onnx"] / name)(x)
        verdicts[name] = judge(x, y, z)
    fp32, int8 = verdicts["encoder.onnx"], verdicts["encoder.int8.onnx"]
    assert 0 < np.mean(torch_labels == UNKNOWN) < 0.5  # both verdicts occur on these rows
    np.testing.assert_array_equal(fp32.label, torch_labels)  # same float32 rule, same scores: every row
    # INT8 moves the scores a little, so rows ON a threshold may flip (the edge's hysteresis absorbs those);
    # every row clear of both thresholds by a small margin must get the same decision.
    clear = (np.abs(fp32.confidence - rule.min_confidence) > 0.05) & (np.abs(fp32.recon_ratio - 1.0) > 0.25)
    assert clear.mean() > 0.8
    np.testing.assert_array_equal(int8.label[clear], torch_labels[clear])
    assert np.mean(int8.label == torch_labels) >= 0.95


def test_the_distance_half_decides_the_same_across_torch_onnx_fp32_and_onnx_int8(gesture):
    """The gesture rule's distance half is measured on the input features: the same bits on every path."""
    from aae import landmark_aae
    from calibration.sets import hand_split

    pool, _ = hand_split()
    held = np.random.default_rng(0).permutation(len(pool))[800:1400]
    ref = np.setdiff1d(np.arange(len(pool)), held)
    gaussians = open_set.fit_gaussians(pool.x[ref], pool.y[ref], len(pool.classes), what="baron105 rows")
    probs, _ = landmark_aae.reconstruction_error(gesture["model"], pool.x[held])
    rule = open_set.fit_rule(
        probs, pool.y[held], None, recon=False, distance=gaussians.distance(pool.x[held]), gaussians=gaussians
    )
    x, _ = fixed_rows(gesture["test"])
    torch_probs, _ = landmark_aae.reconstruction_error(gesture["model"], x)
    torch_verdict = rule.judge(torch_probs, None, x)
    judge = PartJudge(rule, DecoderSession(gesture["onnx"] / "decoder.onnx"))
    for name in ("encoder.onnx", "encoder.int8.onnx"):
        y, z = EncoderSession(gesture["onnx"] / name)(x)
        verdict = judge(x, y, z)
        np.testing.assert_array_equal(verdict.distance_ratio, torch_verdict.distance_ratio)
        clear = np.abs(verdict.confidence - rule.min_confidence) > (0.0 if name == "encoder.onnx" else 0.05)
        assert clear.mean() > 0.8
        np.testing.assert_array_equal(verdict.label[clear], torch_verdict.label[clear])
    assert 0 < np.mean(torch_verdict.distance_ratio > 1.0) < 0.5  # the distance half decides some rows here


def test_a_real_gesture_change_switches_within_the_dwell_and_holds(gesture):
    """Real rows: 30 frames of one class, then 30 of another (both decided known by the rule)."""
    rule = open_set.OpenSetRule.from_dict(gesture["card"]["open_set"])
    judge = PartJudge(rule, DecoderSession(gesture["onnx"] / "decoder.onnx"))
    encoder = EncoderSession(gesture["onnx"] / "encoder.onnx")
    test = gesture["test"]
    y, z = encoder(test.x)
    verdict = judge(test.x, y, z)
    a, b = 2, 5  # closed_fist, then another class
    rows_a = np.flatnonzero((test.y == a) & (verdict.label == a))[:30]
    rows_b = np.flatnonzero((test.y == b) & (verdict.label == b))[:30]
    assert len(rows_a) == len(rows_b) == 30
    stream = np.concatenate([rows_a, rows_b])
    labels = PartLabels()
    out = [labels.decide("hand0", judge, verdict, int(row)).label for row in stream]
    k = labels.config.dwell_frames
    assert out[k - 1 : 30] == [a] * (31 - k)
    assert out[30 + k - 1 :] == [b] * (31 - k)


def test_the_edge_publishes_decisions_and_the_renderer_draws_them(gesture, tmp_path):
    """The real edge CLI on the hand clip with a bundle carrying the rule: every present hand has a decision."""
    from test_edge_loop import CLIP, run_edge

    from export import bundle as bundle_writer
    from latentcast.assets import resolve
    from renderer.animate import Animator
    from renderer.decode import BundleDecoders

    directory, _ = bundle_writer.build(tmp_path / "out", {"gesture": gesture["dir"]}, version="labels", calib_rows=128)
    card = json.loads((directory / "models" / "gesture" / "model_card.json").read_text())
    assert card["open_set"]["max_recon_error"] > 0
    messages, _ = run_edge(
        "--source", f"file://{resolve(CLIP)}", "--bundle", str(directory), "--fast", "--frames", "40", "--no-face"
    )
    present = [h for m in messages for h in m.hands if h.present]
    assert len(present) >= 20
    assert all(h.decision is not None for h in present)
    for hand in present:
        assert -1 <= hand.decision.label < 11 and 0.0 < hand.decision.confidence <= 1.0
    animator = Animator(BundleDecoders.from_bundle(directory))
    for msg in messages:
        params = animator.update(msg, 1 / 25)
        for block in msg.hands:
            if block.present and animator.blend.weights[1 + int(block.handedness == 2)] >= 0.5:
                side = params.right_hand if block.handedness == 2 else params.left_hand
                want = open_set.label_name(block.decision.label, card["classes"])
                assert side.gesture == want
    # the same messages from an older edge (protocol v1, no decision): the renderer falls back to the
    # confidence half of the card's rule, as docs/PROTOCOL.md "Versioning" says
    from latentcast.protocol import decode_latents, encode_latents

    old = Animator(BundleDecoders.from_bundle(directory))
    checked = 0
    for msg in messages:
        v1 = decode_latents(encode_latents(msg, version=1))
        assert all(h.decision is None for h in v1.hands)
        params = old.update(v1, 1 / 25)
        for block in v1.hands:
            if block.present and old.blend.weights[1 + int(block.handedness == 2)] >= 0.5:
                side = params.right_hand if block.handedness == 2 else params.left_hand
                assert side.gesture == open_set.confident_label(block.y, card["classes"], card["open_set"])[0]
                checked += 1
    assert checked >= 10
