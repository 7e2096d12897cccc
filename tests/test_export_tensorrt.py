"""TensorRT engines from the exported encoders. Building needs TensorRT and an NVIDIA GPU (a Jetson):
where `tensorrt` cannot be imported those tests skip with that reason, and nothing fakes an engine."""

from __future__ import annotations

import pytest
from _export_fixtures import gesture_model_dir

from calibration.sets import hand_set
from export import onnx as onnx_export
from export import tensorrt as trt_export
from export.quantize import quantize_encoder
from latentcast.errors import run_cli

MISSING = trt_export.tensorrt_missing()
needs_tensorrt = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    calib = hand_set(rows=256)
    onnx_export.export_model(gesture_model_dir(root / "gesture"), root / "onnx", features=calib.features)
    quantize_encoder(root / "onnx/encoder.onnx", root / "onnx/encoder.int8.onnx", calib.features, "minmax")
    return root / "onnx"


def test_trtexec_command_matches_the_python_build(encoders, tmp_path):
    spec = trt_export.EngineSpec(
        encoders / "encoder.int8.onnx", tmp_path / "e.engine", "int8", timing_cache=tmp_path / "t"
    )
    command = trt_export.trtexec_command(spec, trt_export.input_width(spec.onnx_path))
    assert "--minShapes=features:1x42" in command and "--maxShapes=features:4x42" in command
    assert "--int8" in command and "--fp16" in command and f"--timingCacheFile={tmp_path / 't'}" in command


@pytest.mark.skipif(MISSING is None, reason="TensorRT is installed: the real build tests run instead")
def test_cli_without_tensorrt_says_so_in_one_line(encoders, tmp_path, capsys):
    assert run_cli(trt_export.main, [str(encoders / "encoder.int8.onnx"), "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0 and "TensorRT is not installed here" in captured.err
    assert captured.out.count("equivalent: trtexec") == 1 and "--int8" in captured.out  # Q/DQ graph: INT8
    assert not list(tmp_path.glob("*.engine")), "no engine may appear without TensorRT"


@needs_tensorrt
@pytest.mark.parametrize("precision", trt_export.PRECISIONS)
def test_engine_builds_with_batch_1_to_4_profile(encoders, tmp_path, precision):
    import tensorrt as trt

    source = encoders / ("encoder.int8.onnx" if precision == "int8" else "encoder.onnx")
    spec = trt_export.EngineSpec(source, tmp_path / f"{precision}.engine", precision, timing_cache=tmp_path / "cache")
    report = trt_export.build_engine(spec)
    assert report["bytes"] > 0 and (tmp_path / "cache").stat().st_size > 0
    assert (tmp_path / f"{precision}.build.log").stat().st_size > 0
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(spec.engine_path.read_bytes())
    assert engine is not None
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert set(names) == {"features", "y", "z"}
    low, opt, high = engine.get_tensor_profile_shape("features", 0)
    assert (tuple(low), tuple(opt), tuple(high)) == ((1, 42), (1, 42), (4, 42))
