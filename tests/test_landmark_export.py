"""Landmark model export: the real MediaPipe .task files converted by the real converter venv (tf2onnx).

Needs `.venv-convert` (scripts/setup.sh makes it) and the asset mirror; converted once per session
into the asset cache (keyed by the .task sha256), so the suite pays the ~10 s conversion once.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from export import landmark_models as lm
from latentcast.errors import UserError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted() -> dict[str, Path]:
    return lm.ensure_landmark_onnx()


def test_every_model_converted_with_its_input_shape(converted):
    import onnxruntime as ort

    assert converted["geometry"].stat().st_size > 1000
    for model in lm.MODELS:
        session = ort.InferenceSession(str(converted[model.name]), providers=["CPUExecutionProvider"])
        (given,) = session.get_inputs()
        batch = "batch" if model.dynamic_batch else 1
        assert given.shape == [batch, *model.input_shape], model.name


def test_hand_landmarks_take_both_hands_in_one_call(converted):
    model = lm.MODEL_BY_NAME["hand_landmarks_detector"]
    assert lm.check_batch(converted[model.name], model) < 1e-5


def test_cache_converts_once(converted):
    again = lm.ensure_landmark_onnx()
    assert again == converted
    assert all(p.stat().st_mtime == converted[name].stat().st_mtime for name, p in again.items())


def _task_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "hand_landmarker.task"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _members(task: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(task) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_task_missing_a_model_is_one_clear_line(tmp_path):
    hand = _members(lm.task_paths()["hand"])
    del hand["hand_detector.tflite"]
    with pytest.raises(UserError, match=r"has no hand_detector\.tflite .*give the MediaPipe hand_landmarker\.task"):
        lm.convert(tmp_path / "out", hand_task=_task_with(tmp_path, hand))


def test_task_with_a_wrong_input_shape_is_one_clear_line(tmp_path):
    """A real but wrong model: the face detector (128x128) packed where the palm detector (192x192) belongs."""
    tasks = lm.task_paths()
    hand = _members(tasks["hand"])
    hand["hand_detector.tflite"] = _members(tasks["face"])["face_detector.tflite"]
    with pytest.raises(UserError, match=r"^hand_detector: input shape \[1, 128, 128, 3\], expected \[1, 192, 192, 3\]"):
        lm.convert(tmp_path / "out", hand_task=_task_with(tmp_path, hand))


def test_not_a_zip_is_one_clear_line(tmp_path):
    bad = tmp_path / "face_landmarker.task"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UserError, match=r"not a MediaPipe \.task"):
        lm.convert(tmp_path / "out", face_task=bad)


def test_missing_converter_venv_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(lm.CONVERT_PYTHON_ENV, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(UserError, match=r"run `bash scripts/setup\.sh`"):
        lm.convert_python()



@pytest.fixture(scope="module")
def crops():
    from calibration.landmark_crops import build_crops

    return build_crops(clip_count=6, jitter=1, mirror=True)


def test_crops_are_real_and_in_each_models_range(crops):
    for model in lm.MODELS:
        x = crops.inputs[model.name]
        assert x.shape[1:] == model.input_shape and x.dtype == np.float32, model.name
        if model.input_range:
            low, high = model.input_range
            assert x.min() >= low and x.max() <= high and x.std() > 0.05, model.name
    assert len(crops.inputs["hand_landmarks_detector"]) >= 6  # hands found by MediaPipe in the clip and photos
    assert crops.inputs["face_detector"].min() < -0.9  # the face detector's -1..1 range, not 0..1
    assert any("hand_landmarker_test_video.mp4" in s.get("asset", "") for s in crops.sources)


def test_parity_of_every_model_against_tflite_on_real_inputs(converted, crops):
    report = lm.parity(converted, crops.take(3).inputs)
    assert set(report) == {m.name for m in lm.MODELS}
    for name, entry in report.items():
        for output, figures in entry["outputs"].items():
            # float32 round-off only: 1e-4 of the output's own scale (measured: 4e-6 to 7e-6)
            assert figures["max_abs"] <= 1e-4 * max(1.0, figures["ref_max_abs"]), (name, output, figures)


def test_crops_split_by_source_image(crops):
    calibrate, held_out = crops.split()
    for name in crops.inputs:
        origin, moved = crops.origin[name], crops.jittered[name]
        assert len(calibrate[name]) == np.sum(origin % 2 == 0) and len(held_out[name]) > 0, name
        assert len(held_out[name]) == np.sum((origin % 2 == 1) & ~moved), name  # never a jittered crop
    assert crops.jittered["hand_landmarks_detector"].sum() > 0  # jitter=1: a moved copy of each hand crop
    assert len(crops.take(4).inputs["face_landmarks_detector"]) == 4


def test_int8_copies_are_symmetric_and_agree_with_fp32(converted, crops, tmp_path):
    from export.quantize import nonzero_zero_points

    calibrate, held_out = crops.split()
    made = lm.quantize(converted, calibrate, tmp_path)
    assert set(made) == {m.name for m in lm.MODELS if m.int8_method}
    report = lm.int8_parity(converted, made, held_out)
    for name, path in made.items():
        assert nonzero_zero_points(path) == [], name
        assert report[name]["qdq"]["quantize"] > 10, name
        task = report[name]["task"]
        assert task["presence_agreement"] == 1.0, (name, task)
        # hand size / inter-ocular distance; 3.8-4 % before equalization and float first stages
        assert task["landmark_median_error_pct"] < 2.0, (name, task)
    assert report["hand_landmarks_detector"]["task"]["handedness_agreement"] == 1.0


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Two real gesture bundles: with the landmark ONNX models (the default) and without them."""
    pytest.importorskip("torch")
    from _export_fixtures import gesture_model_dir

    from export import bundle as bundle_writer

    root = tmp_path_factory.mktemp("landmark_bundle")
    model = gesture_model_dir(root / "gesture")
    with_onnx, _ = bundle_writer.build(root / "out", {"gesture": model}, version="with", calib_rows=64)
    without, _ = bundle_writer.build(
        root / "out", {"gesture": model}, version="without", calib_rows=64, landmark_onnx=False
    )
    return {"with": with_onnx, "without": without}


def test_bundle_carries_the_landmark_models_under_its_manifest(bundles, converted, crops):
    from latentcast import bundle as bundle_reader

    bundle = bundle_reader.open_bundle(bundles["with"])
    assert bundle.has_landmark_onnx
    listed = set(bundle.manifest["files"])
    for model in lm.MODELS:
        fp32 = bundle.landmark_onnx(model.name)
        assert fp32.relative_to(bundle.root).as_posix() in listed
        assert fp32.read_bytes() == converted[model.name].read_bytes()
        int8 = bundle.landmark_onnx(model.name, int8=True)
        entry = bundle.manifest[bundle_reader.LANDMARK_ONNX]["models"][model.name]
        if model.int8_method:
            assert int8.name == model.int8_name and int8.relative_to(bundle.root).as_posix() in listed
            assert entry["int8_vs_fp32"]["presence_agreement"] == 1.0
        else:
            assert int8 == fp32 and entry["fp32_only"] == model.fp32_only_why
        assert entry["onnx_vs_tflite_max_abs"] < 1e-2
    assert bundle.landmark_geometry().read_bytes() == converted["geometry"].read_bytes()
    assert "[landmark_onnx]" in bundle.config_path.read_text()
    # the shipped INT8 hand model runs on a real crop, both hands in one call
    x = crops.inputs["hand_landmarks_detector"][:2]
    points = lm.onnx_outputs(bundle.landmark_onnx("hand_landmarks_detector", int8=True), x)["Identity"]
    assert points.shape == (2, 1, 63) and np.isfinite(points).all()


def test_bundle_with_a_tampered_landmark_model_is_refused(bundles, tmp_path):
    import shutil

    from latentcast import bundle as bundle_reader

    copy = Path(shutil.copytree(bundles["with"], tmp_path / bundles["with"].name))
    target = copy / "landmarks" / "hand_landmarks_detector.int8.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(bundle_reader.BundleError, match=r"landmarks/hand_landmarks_detector\.int8\.onnx was modified"):
        bundle_reader.open_bundle(copy)


def test_bundle_without_landmark_models_still_runs_the_mediapipe_backend(bundles):
    from calibration.landmark_crops import read_rgb
    from edge.landmarks import HandTracker, LandmarkerConfig
    from latentcast import bundle as bundle_reader

    bundle = bundle_reader.open_bundle(bundles["without"])
    assert not bundle.has_landmark_onnx
    assert not any(name.endswith(".onnx") for name in bundle.manifest["files"] if name.startswith("landmarks/"))
    with pytest.raises(bundle_reader.BundleError, match="use the mediapipe landmark backend"):
        bundle.landmark_onnx("hand_landmarks_detector")
    config = LandmarkerConfig(mode="image", color_order="rgb", hand_model=str(bundle.landmark_model("hand")))
    with HandTracker(config) as tracker:
        hands = tracker.detect(read_rgb("data/images/hands/hand_thumb_up.jpg"))
    assert sum(h.present for h in hands) >= 1


def _trt_missing() -> str | None:
    from export.tensorrt import tensorrt_missing

    return tensorrt_missing()


def test_tensorrt_specs_and_trtexec_lines_for_the_landmark_models(bundles):
    from export import tensorrt as trt_export

    specs = [s for s in trt_export.specs_for(bundles["with"], None, "auto", 4) if "landmarks" in s.onnx_path.parts]
    built = {(s.onnx_path.name, s.precision) for s in specs}
    expected = {(m.onnx_name, "fp16") for m in lm.MODELS} | {(m.int8_name, "int8") for m in lm.MODELS if m.int8_method}
    assert built == expected
    by_name = {(s.onnx_path.name, s.precision): s for s in specs}
    hands = by_name[("hand_landmarks_detector.int8.onnx", "int8")]
    line = trt_export.trtexec_command(hands)
    assert "--minShapes=input_1:1x224x224x3" in line and "--maxShapes=input_1:2x224x224x3" in line
    assert "--int8" in line and hands.engine_path.name == "hand_landmarks_detector.int8.engine"
    palm = trt_export.trtexec_command(by_name[("hand_detector.onnx", "fp16")])
    assert "Shapes" not in palm and "--fp16" in palm and "--int8" not in palm  # fixed 1x192x192x3: no profile


@pytest.mark.skipif(_trt_missing() is None, reason="TensorRT is installed: the real build test runs instead")
def test_tensorrt_cli_without_tensorrt_lists_landmark_engines_and_builds_none(bundles, tmp_path, capsys):
    from export import tensorrt as trt_export
    from latentcast.errors import run_cli

    assert run_cli(trt_export.main, [str(bundles["with"]), "--out", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.count("landmarks/hand_landmarks_detector.int8.engine") == 1
    assert not list(tmp_path.rglob("*.engine")), "no engine may appear without TensorRT"


@pytest.mark.skipif(_trt_missing() is not None, reason=f"needs TensorRT and an NVIDIA GPU: {_trt_missing()}")
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_builds_the_hand_landmark_engine_with_a_batch_1_to_2_profile(bundles, tmp_path, precision):
    import tensorrt as trt

    from export import tensorrt as trt_export
    from latentcast import bundle as bundle_reader

    bundle = bundle_reader.open_bundle(bundles["with"])
    source = bundle.landmark_onnx("hand_landmarks_detector", int8=precision == "int8")
    spec = trt_export.image_model_spec(source, tmp_path / f"hands.{precision}.engine", precision, tmp_path / "cache")
    report = trt_export.build_engine(spec)
    assert report["bytes"] > 0 and report["profile"]["max"] == 2
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(spec.engine_path.read_bytes())
    low, _, high = engine.get_tensor_profile_shape("input_1", 0)
    assert tuple(low) == (1, 224, 224, 3) and tuple(high) == (2, 224, 224, 3)


def test_channel_equalization_is_the_same_function_with_even_ranges(converted, crops):
    import onnx
    import onnxruntime as ort

    from export.landmark_int8 import channel_groups, channel_ranges, equalize_channels

    path = converted["face_landmarks_detector"]
    x = crops.inputs["face_landmarks_detector"]
    fp32 = onnx.load(str(path))
    name = fp32.graph.input[0].name
    equalized, groups = equalize_channels(fp32, x[:4], name, alpha=1.0)
    assert groups >= 30  # every block's inner chain and the residual stream of each stage

    def outputs(model):  # the face mesh takes a batch of 1
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return [session.run(None, {name: x[i : i + 1]})[k] for i in (4, 5) for k in range(2)]

    for a, b in zip(outputs(fp32), outputs(equalized), strict=True):
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(a).max())  # an exact rewrite: round-off only
    tensors = [t for group in channel_groups(fp32) for t in group]

    def narrow(model):  # share of channels whose range is under 1/8 of their tensor's: few int8 steps
        ranges = channel_ranges(model, x[4:6], name, tensors)
        return float(np.mean([np.mean(r < r.max() / 8) for r in ranges.values()]))

    assert narrow(equalized) < narrow(fp32) / 2  # measured 26 % -> 10 %


def test_float_sides_name_the_layers_at_that_resolution(converted):
    import onnx

    from export.landmark_int8 import nodes_at_sides

    graph = onnx.load(str(converted["face_landmarks_detector"]))
    first_conv = next(n.name for n in graph.graph.node if n.op_type == "Conv")
    at_128 = nodes_at_sides(graph, (128,))
    assert first_conv in at_128 and len(at_128) > 10
    assert not set(at_128) & set(lm.head_nodes(converted["face_landmarks_detector"]))
    with pytest.raises(RuntimeError, match="side"):
        nodes_at_sides(graph, (100,))


def test_a_users_own_recording_adds_calibration_crops(tmp_path):
    from calibration.landmark_crops import CLIP_KEY, build_crops
    from latentcast.assets import resolve

    base = build_crops(clip_count=2, face_photo_limit=2)
    more = build_crops(clip_count=2, face_photo_limit=2, videos=[resolve(CLIP_KEY)], video_frames_each=4)
    assert len(more.inputs["hand_landmarks_detector"]) > len(base.inputs["hand_landmarks_detector"])
    assert len(more.inputs["hand_detector"]) == len(base.inputs["hand_detector"]) + 4
    assert any(source.get("video") == str(resolve(CLIP_KEY)) for source in more.sources)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(UserError, match=r"broken\.mp4 is not a readable video"):
        build_crops(clip_count=1, face_photo_limit=1, videos=[broken])


def test_convert_cli_writes_every_model_and_its_report(tmp_path, capsys):
    import json

    from latentcast.errors import run_cli

    assert run_cli(lm.main, ["convert", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hand_landmarks_detector: input_1 ['batch', 224, 224, 3], batch 2 vs 1 max abs" in out
    report = json.loads((tmp_path / lm.REPORT).read_text())
    assert report["tools"]["tf2onnx"] == "1.17.0" and report["tools"]["opset"] == lm.OPSET
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [m.onnx_name for m in lm.MODELS] + [lm.GEOMETRY_FILE, lm.REPORT]
    )


def test_cli_with_a_missing_task_file_is_one_line(tmp_path, capsys):
    from latentcast.errors import run_cli

    missing = tmp_path / "face_landmarker.task"
    assert run_cli(lm.main, ["convert", "--out", str(tmp_path / "out"), "--face_task", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "face_landmarker.task does not exist" in err
