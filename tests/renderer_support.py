"""Test support for the renderer: a real bundle whose decoders are small, exactly known ONNX graphs.

Training a model takes minutes, so tests build decoders whose behaviour is known instead: the
gesture decoder maps a one-hot y to a *typical real hand shape* of that class in the shared
baron105 CSV (so retargeting sees real hands), the expression decoder maps y to a handful of
blendshape patterns (neutral, smile, mouth open, eyes closed); z adds a small linear offset.
They are written with onnx.helper, packed in the real bundle layout with a real manifest, and run
by the renderer through onnxruntime exactly like exported models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from latentcast.features import FEATURE_SPEC_VERSION

FACE_CLASSES = ["neutral", "smile", "mouth_open", "eyes_closed"]
FACE_PATTERNS = {
    "smile": {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4},
    "mouth_open": {"jawOpen": 0.6, "browInnerUp": 0.5, "browOuterUpLeft": 0.5, "browOuterUpRight": 0.5},
    "eyes_closed": {"eyeBlinkLeft": 0.8, "eyeBlinkRight": 0.8},
}
CODE_DIM = 3


def _linear_decoder(path: Path, class_rows: np.ndarray, z_rows: np.ndarray) -> None:
    """features = clip(y @ class_rows + z @ z_rows, -1, 1) as an ONNX graph with the contract's names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, d = class_rows.shape
    c = z_rows.shape[0]
    inits = [
        numpy_helper.from_array(class_rows.astype(np.float32), "W_y"),
        numpy_helper.from_array(z_rows.astype(np.float32), "W_z"),
        numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("MatMul", ["y", "W_y"], ["a"]),
        helper.make_node("MatMul", ["z", "W_z"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Clip", ["s", "lo", "hi"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes,
        "decoder",
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", c]),
        ],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", d])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def hand_class_shapes() -> tuple[list[str], np.ndarray]:
    """baron105's classes and one typical real row per class (MediaPipe hands from the shared CSV).

    Typical = the row whose finger curls are closest to the class's median curls (a coordinate-wise
    median would average left and right hands into no hand at all).
    """
    from aae.hand_data import load_hand_set
    from renderer.retarget import finger_curls

    data = load_hand_set("baron105")
    shapes = []
    for k in range(len(data.classes)):
        rows = data.x[data.y == k]
        curls = finger_curls(rows)
        shapes.append(rows[np.argmin(np.linalg.norm(curls - np.median(curls, axis=0), axis=1))])
    return list(data.classes), np.stack(shapes)


def face_class_features() -> np.ndarray:
    from latentcast.features import FACE_FEATURE_DIM, FEATURE_BLENDSHAPES

    rows = np.zeros((len(FACE_CLASSES), FACE_FEATURE_DIM), np.float32)
    rows[:, : len(FEATURE_BLENDSHAPES)] = -1.0  # every blendshape score 0
    for k, name in enumerate(FACE_CLASSES):
        for shape, score in FACE_PATTERNS.get(name, {}).items():
            rows[k, FEATURE_BLENDSHAPES.index(shape)] = 2.0 * score - 1.0
    return rows


def make_bundle(root: Path, seed: int = 0, open_set: dict[str, dict] | None = None) -> Path:
    """Write a verified-format bundle with gesture and expression decoders under `root`; returns it.

    `open_set` maps a model name to the "open_set" block its model card gets (none by default).
    """
    from latentcast import bundle as reader

    rng = np.random.default_rng(seed)
    hand_classes, hand_rows = hand_class_shapes()
    face_rows = face_class_features()
    parts = {
        "gesture": (hand_classes, hand_rows, 0.02 * rng.standard_normal((CODE_DIM, hand_rows.shape[1]))),
        "expression": (FACE_CLASSES, face_rows, 0.05 * rng.standard_normal((CODE_DIM, face_rows.shape[1]))),
    }
    models = {}
    for name, (classes, rows, z_rows) in parts.items():
        folder = root / "models" / name
        _linear_decoder(folder / "decoder.onnx", rows, z_rows)
        card = {
            "name": name,
            "classes": classes,
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "input_dim": int(rows.shape[1]),
            "code_dim": CODE_DIM,
            "n_classes": len(classes),
            "data": {"test": "renderer_support"},
        }
        if open_set and name in open_set:
            card["open_set"] = open_set[name]
        (folder / "model_card.json").write_text(json.dumps(card))
        models[name] = {"classes": classes}
    manifest = {
        "format": reader.FORMAT,
        "format_version": reader.FORMAT_VERSION,
        "version": f"test-{seed}",
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "models": models,
        "files": reader.file_entries(root),
    }
    (root / reader.MANIFEST).write_text(json.dumps(manifest, indent=2))
    return root


def synthetic_message(
    seq: int,
    model_id: bytes,
    hand_class: int,
    face_class: int,
    tracked: bool = True,
    n_hand_classes: int = 11,
    n_face_classes: int = len(FACE_CLASSES),
):
    """A latent message as the edge would publish it: one right hand, one face, one-hot y, zero z."""
    import time

    from latentcast.protocol import FaceBlock, HandBlock, Handedness, LatentMessage, TrackingStatus

    now = time.monotonic_ns()
    y_hand = np.eye(n_hand_classes, dtype=np.float32)[hand_class]
    y_face = np.eye(n_face_classes, dtype=np.float32)[face_class]
    z = np.zeros(CODE_DIM, np.float32)
    face = FaceBlock(tracked, y_face, z, np.array([10.0 * np.sin(seq / 10), 0.0, 0.0], np.float32))
    hand = HandBlock(tracked, Handedness.RIGHT, y_hand, z, np.array([0.3, 0.5, 0.0], np.float32))
    status = TrackingStatus.OK if tracked else TrackingStatus.NO_SUBJECT
    return LatentMessage("test-edge", seq, now - 2_000_000, now, model_id, status, face, [hand] if tracked else [])


def publish_stream(
    endpoint: str,
    bundle: str,
    frames: int,
    period_s: float = 1 / 30,
    preview_endpoint: str = "",
    bad_every: int = 0,
    curve_secret: str = "",
) -> None:
    """Run in a child process: publish `frames` messages cycling hand and face classes.

    With `bad_every`, every bad_every-th send is replaced by a truncated message and the next one
    by a message claiming protocol version 0 (an older edge), to check the renderer rejects them.
    With `curve_secret` (a .key_secret file) the latent socket is a CurveZMQ server.
    """
    import struct
    import time

    import cv2

    from edge.publisher import CurveServerKeys, Publisher
    from latentcast.protocol import PreviewMessage, encode_latents, encode_preview, model_id_from_manifest

    model_id = model_id_from_manifest((Path(bundle) / "manifest.json").read_bytes())
    pub = Publisher(endpoint, curve=CurveServerKeys.from_files(curve_secret) if curve_secret else None)
    preview = Publisher(preview_endpoint) if preview_endpoint else None
    time.sleep(0.5)  # let subscribers connect (PUB drops messages sent before they join)
    for seq in range(frames):
        hand_class, face_class = (seq // 15) % 11, (seq // 20) % len(FACE_CLASSES)
        raw = encode_latents(synthetic_message(seq, model_id, hand_class, face_class))
        if bad_every and seq % bad_every == 0:
            raw = raw[:-3]
        elif bad_every and seq % bad_every == 1:
            raw = raw[:4] + struct.pack("<H", 0) + raw[6:]
        pub.send(raw)
        if preview is not None:
            image = np.full((180, 320, 3), (seq * 7) % 255, np.uint8)
            _, jpeg = cv2.imencode(".jpg", image)
            preview.send(encode_preview(PreviewMessage("test-edge", seq, time.monotonic_ns(), jpeg.tobytes())))
        time.sleep(period_s)
    pub.close()
    if preview is not None:
        preview.close()
