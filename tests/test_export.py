"""ONNX export parity with PyTorch and the symmetric INT8 QDQ graph TensorRT needs, on real hand features."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from _export_fixtures import gesture_model_dir

from calibration.sets import hand_set, hand_split
from export import onnx as onnx_export
from export.int8_recipe import (
    EQUALIZE_GRID,
    PLAIN_RECIPE,
    Int8Recipe,
    center_relu_ranges,
    equalize_alpha,
    equalize_relu_chains,
    input_layers,
    int8_error,
)
from export.quantize import (
    METHODS,
    nonzero_zero_points,
    output_heads,
    qdq_summary,
    quantize_encoder,
    zero_points,
)
from latentcast.errors import UserError
from latentcast.inference import DecoderSession, EncoderSession


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model_dir = gesture_model_dir(root / "gesture")
    calib = hand_set(rows=256)
    report = onnx_export.export_model(model_dir, root / "onnx", features=calib.features)
    _, held_out = hand_split()
    return {
        "root": root,
        "model_dir": model_dir,
        "onnx": root / "onnx",
        "report": report,
        "calib": calib,
        "test": held_out,
    }


def test_onnx_matches_pytorch_on_real_rows(exported):
    report = exported["report"]
    assert report["rows"] == len(exported["calib"].features) == 512  # 256 rows of each person
    for key in ("encoder_y_max_abs", "encoder_z_max_abs", "decoder_max_abs", "batch1_y_max_abs"):
        assert report[key] < onnx_export.PARITY_TOLERANCE, (key, report[key])


def test_onnx_contract_names_opset_and_dynamic_batch(exported):
    encoder = onnx.load(str(exported["onnx"] / "encoder.onnx"))
    assert [i.name for i in encoder.graph.input] == ["features"]
    assert [o.name for o in encoder.graph.output] == ["y", "z"]
    assert encoder.opset_import[0].version == onnx_export.OPSET
    assert encoder.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    decoder = onnx.load(str(exported["onnx"] / "decoder.onnx"))
    assert [i.name for i in decoder.graph.input] == ["y", "z"]
    assert [o.name for o in decoder.graph.output] == ["features"]
    assert not list(exported["onnx"].glob("*.data")), "weights must live inside the .onnx file"


def test_sessions_run_any_batch_and_reject_wrong_width(exported):
    encoder = EncoderSession(exported["onnx"] / "encoder.onnx")
    decoder = DecoderSession(exported["onnx"] / "decoder.onnx")
    x = exported["test"].x
    model, _ = onnx_export.load_model(exported["model_dir"])
    with torch.no_grad():
        y_ref = model.encode(torch.from_numpy(x[:4]))[0].numpy()
    for batch in (1, 3, 4):
        y, z = encoder(x[:batch])
        assert y.shape == (batch, encoder.n_classes) and z.shape == (batch, encoder.code_dim)
        np.testing.assert_allclose(y, y_ref[:batch], atol=1e-5)
        assert decoder(y, z).shape == (batch, 42)
    single_y, _ = encoder(x[0])  # a bare [D] row is a batch of one
    assert single_y.shape == (1, encoder.n_classes)
    with pytest.raises(UserError, match="expects"):
        encoder(np.zeros((1, 41), np.float32))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_qdq_is_symmetric_and_agrees_with_fp32(exported, method, per_channel):
    fp32 = exported["onnx"] / "encoder.onnx"
    out = exported["root"] / f"encoder.{method}.{per_channel}.onnx"
    int8 = quantize_encoder(fp32, out, exported["calib"].features, method, per_channel)
    points = zero_points(int8)
    assert len(points) == 2, "expected Q/DQ on the weight and the input activation of the one INT8 Gemm"
    assert all(np.all(v == 0) for v in points.values()), "TensorRT explicit quantization needs zero points of 0"
    assert {str(v.dtype) for v in points.values()} == {"int8"}
    assert qdq_summary(int8)["quantize"] == 1  # the activation; the weight is stored as int8
    heads = set(output_heads(fp32))  # the y and z heads stay float: they decide the label
    assert len(heads) == 2
    graph = onnx.load(str(int8)).graph
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    gemms = {n.name: n.input[1] in dequantized for n in graph.node if n.op_type == "Gemm"}  # INT8 weights?
    first = set(input_layers(graph, "features"))  # the input layer stays float too (Int8Recipe)
    assert heads <= gemms.keys() and not any(gemms[h] for h in heads | first) and len(first) == 1
    assert sum(gemms.values()) == len(gemms) - 3  # every other Gemm runs in INT8
    held_out = exported["test"].x
    y32, _ = EncoderSession(fp32)(held_out)
    y8, _ = EncoderSession(int8)(held_out)
    agreement = np.mean(y32.argmax(1) == y8.argmax(1))
    assert agreement >= 0.97, f"{method}: INT8 picks the FP32 class on only {agreement:.1%} of held-out rows"


def test_calibration_methods_pick_different_ranges(exported, tmp_path):
    """Percentile must really differ from minmax (a cut below the maximum). Uncentred: a centred ReLU
    output has half its values at -c, so a percentile of |x| is c there, the minmax range."""
    scales = {}
    for method in METHODS:
        features = exported["calib"].features
        path = quantize_encoder(
            exported["onnx"] / "encoder.onnx",
            tmp_path / "q.onnx",
            features,
            method,
            percentile=90.0,
            recipe=Int8Recipe(center_relu=False),
        )
        model = onnx.load(str(path))
        init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        scales[method] = {  # activation scales: one number per tensor (weight scales are per channel)
            n.input[1]: float(init[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"
        }
    assert scales["minmax"] and scales["minmax"].keys() == scales["percentile"].keys()
    for method in ("percentile",):
        assert any(scales[method][k] < scales["minmax"][k] * 0.999 for k in scales["minmax"]), method
        assert all(scales[method][k] <= scales["minmax"][k] * 1.001 for k in scales["minmax"]), method


def test_activation_qdq_only_feeds_int8_layers(exported, tmp_path):
    """No Q/DQ between a Gemm and its ReLU, none on the way into the float heads: only INT8 layers' inputs."""
    int8 = quantize_encoder(exported["onnx"] / "encoder.onnx", tmp_path / "q.onnx", exported["calib"].features)
    graph = onnx.load(str(int8)).graph
    producer = {out: n for n in graph.node for out in n.output}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    quantized = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert quantized, "the INT8 copy must quantize something"
    for q in quantized:
        for dq in users[q.output[0]]:
            for user in users[dq.output[0]]:
                assert user.op_type == "Gemm" and producer[user.input[1]].op_type == "DequantizeLinear", q.input[0]
    plain = quantize_encoder(
        exported["onnx"] / "encoder.onnx", tmp_path / "p.onnx", exported["calib"].features, recipe=PLAIN_RECIPE
    )
    assert qdq_summary(plain)["quantize"] > qdq_summary(int8)["quantize"]  # the check above can fail


@pytest.mark.parametrize("heads_float", [True, False])
def test_equalization_keeps_the_float_function_bit_for_bit(exported, heads_float):
    path = exported["onnx"] / "encoder.onnx"
    fp32 = onnx.load(str(path))
    rows = exported["test"].x
    keep = output_heads(path) if heads_float else []  # float heads: only the chain into the INT8 Gemm is touched
    equalized = equalize_relu_chains(fp32, exported["calib"].features, "features", 0.75, keep)
    assert equalized is not None
    before = {t.name: onnx.numpy_helper.to_array(t) for t in fp32.graph.initializer}
    after = {t.name: onnx.numpy_helper.to_array(t) for t in equalized.graph.initializer}
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    # first Gemm's weight and bias, the second's weight (and without float heads its bias and the heads' weights)
    assert len(changed) == (3 if heads_float else 6), changed
    ratio = after[changed[0]] / np.where(before[changed[0]] == 0, 1, before[changed[0]])
    assert np.all(np.log2(np.abs(ratio[before[changed[0]] != 0])) % 1 == 0)  # powers of two only
    for a, b in zip(_run_all(fp32, rows), _run_all(equalized, rows), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int8_error(fp32, equalized, rows, "features") == 0.0


def _run_all(model, rows):
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"features": rows})


def test_centring_keeps_the_float_function_and_uses_the_sign_bit(exported, tmp_path):
    path = exported["onnx"] / "encoder.onnx"
    fp32, calib, rows = onnx.load(str(path)), exported["calib"].features, exported["test"].x
    keep = output_heads(path) + input_layers(fp32.graph, "features")
    centred = center_relu_ranges(fp32, calib, "features", keep)
    assert centred is not None and [n.op_type for n in centred.graph.node].count("Clip") == 1
    for a, b in zip(_run_all(fp32, rows), _run_all(centred, rows), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)  # the shift is folded into biases: float rounding only
    clip = next(n for n in centred.graph.node if n.op_type == "Clip")
    (hidden,) = _run_outputs(centred, calib, [clip.output[0]])
    assert np.isclose(hidden.min(), -hidden.max(), rtol=1e-4)  # [-c, c]: both halves of the int8 range
    # INT8 copies without equalization, so that centring is the only difference between them
    made = {
        name: quantize_encoder(path, tmp_path / f"{name}.onnx", calib, recipe=Int8Recipe(equalize=False, center_relu=c))
        for name, c in (("uncentred", False), ("centred", True))
    }
    steps = {name: _activation_scales(p) for name, p in made.items()}
    assert len(steps["centred"]) == 1 and np.isclose(steps["centred"][0], steps["uncentred"][0] / 2, rtol=1e-3)
    errors = {name: int8_error(fp32, onnx.load(str(p)), rows, "features") for name, p in made.items()}
    assert errors["centred"] < 0.9 * errors["uncentred"], errors  # without `refold_centre` it was 2x worse


def _activation_scales(path) -> list[float]:
    model = onnx.load(str(path))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return [float(init[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"]


def _run_outputs(model, rows, names):
    from export.int8_recipe import _run

    return _run(model, rows, "features", names)


def test_recipe_moves_int8_closer_to_fp32_on_held_out_rows(exported, tmp_path):
    """Input layer float, Q/DQ at INT8 inputs only and equalization: closer to FP32 than onnxruntime's defaults."""
    fp32_path = exported["onnx"] / "encoder.onnx"
    calib, rows = exported["calib"].features, exported["test"].x
    recipe = quantize_encoder(fp32_path, tmp_path / "r.onnx", calib)
    plain = quantize_encoder(fp32_path, tmp_path / "p.onnx", calib, recipe=PLAIN_RECIPE)
    assert equalize_alpha(recipe) in EQUALIZE_GRID and equalize_alpha(plain) is None
    fp32 = onnx.load(str(fp32_path))
    errors = {name: int8_error(fp32, onnx.load(str(p)), rows, "features") for name, p in (("r", recipe), ("p", plain))}
    assert errors["r"] < 0.8 * errors["p"], errors


def test_zero_point_check_catches_an_asymmetric_graph(exported, tmp_path):
    int8 = quantize_encoder(
        exported["onnx"] / "encoder.onnx", tmp_path / "int8.onnx", exported["calib"].features, "minmax"
    )
    model = onnx.load(str(int8))
    name = next(iter(zero_points(int8)))
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.CopyFrom(onnx.numpy_helper.from_array(np.ones_like(onnx.numpy_helper.to_array(tensor)), name))
    onnx.save(model, str(tmp_path / "asymmetric.onnx"))
    assert nonzero_zero_points(tmp_path / "asymmetric.onnx") == [name]


def test_export_cli_reports_parity_and_missing_model(exported, tmp_path, capsys):
    from latentcast.errors import run_cli

    assert run_cli(onnx_export.main, [str(exported["model_dir"]), "--out", str(tmp_path / "cli")]) == 0
    assert "encoder_y_max_abs" in capsys.readouterr().out
    assert (tmp_path / "cli" / "model_card.json").is_file()
    assert run_cli(onnx_export.main, [str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "has no checkpoint" in capsys.readouterr().err


def test_only_semisupervised_models_export(tmp_path):
    from aae import model as aae_model

    cfg = aae_model.AAEConfig(
        input_dim=42, n_classes=3, code_dim=2, variant="unsupervised", hidden_dim=8, disc_hidden_dim=8
    )
    aae_model.save_checkpoint(tmp_path / "model.pt", aae_model.build_model(cfg))
    with pytest.raises(UserError, match="unsupervised AAE"):
        onnx_export.load_model(tmp_path)


def test_missing_provider_is_a_user_error():
    import onnxruntime

    from latentcast.inference import available_providers

    assert available_providers()[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: nothing missing to report")
    with pytest.raises(UserError, match="has no CUDAExecutionProvider"):
        available_providers(["cuda"])


def test_tensorrt_provider_options_cache_outside_the_bundle(tmp_path, monkeypatch):
    """Options only (no TensorRT EP here): INT8 for Q/DQ graphs, engine cache in the user cache."""
    from latentcast.inference import provider_options

    monkeypatch.setenv("LATENTCAST_CACHE", str(tmp_path / "cache"))
    trt, cpu = provider_options(["TensorrtExecutionProvider", "CPUExecutionProvider"], has_qdq=True)
    assert trt["trt_int8_enable"] and trt["trt_fp16_enable"] and cpu == {}
    assert trt["trt_engine_cache_path"] == str(tmp_path / "cache" / "tensorrt")
    assert not provider_options(["TensorrtExecutionProvider"], has_qdq=False)[0]["trt_int8_enable"]
