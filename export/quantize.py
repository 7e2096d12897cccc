"""INT8 quantization of an exported encoder: symmetric QDQ, calibrated on real features, that TensorRT accepts.

TensorRT's explicit quantization reads Q/DQ nodes straight from the ONNX graph and requires them
symmetric (every zero point 0, signed int8 for weights and activations); its implicit IInt8
calibrators are deprecated since 10.1. onnxruntime's `quantize_static` writes exactly that with
`QuantFormat.QDQ`, `QInt8` and `ActivationSymmetric`/`WeightSymmetric`. Weights get one scale per
output channel by default (TensorRT supports that axis; it kept INT8 closer to FP32 on the other
recorder's hands in benchmarks/encoder_bench.py). The same file runs in onnxruntime on the CPU.

    python -m export.quantize encoder.onnx --calib runs/calib/gesture.npz --method minmax

What stays float, and how the rest is made to agree with FP32 (docs/EXPORT.md, "INT8 that agrees"):
the output heads, i.e. the layers whose result is a graph output directly or through the softmax
(`output_heads`: tiny, hidden x K and hidden x C, and they decide the label), and what the recipe of
export.int8_recipe adds (`Int8Recipe`: input layer float, Q/DQ only at INT8 layers' inputs, channels
equalized, ReLU outputs centred). Entropy calibration was dropped: on real rows it clipped the long activation tails and
agreed with FP32 on only 94-97 % of rows, against 99+ % for MinMax (docs/RESULTS.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calibration.sets import load_set, make_reader
from export.int8_recipe import (
    ENCODER_RECIPE,
    EQUALIZE_GRID,
    EQUALIZE_KEY,
    Int8Recipe,
    center_relu_ranges,
    equalize_alpha,
    equalize_relu_chains,
    input_layers,
    int8_error,
    model_props,
    refold_centre,
    strip_unweighted_qdq,
)
from latentcast.errors import UserError, run_cli

METHODS = ("minmax", "percentile")
DROPPED_METHODS = {"entropy": "it agreed with FP32 on 94-97 % of real rows against 99+ % for minmax (docs/RESULTS.md)"}
KEEP_FLOAT_OPS = {"Softmax"}


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if name.lower() in DROPPED_METHODS:
        raise UserError(f"{name} calibration was dropped: {DROPPED_METHODS[name.lower()]}; use minmax or percentile")
    if name.lower() not in table:
        raise UserError(f"unknown calibration method {name!r}: choose one of {', '.join(METHODS)}")
    return table[name.lower()]


def calibrator_options(method: str, percentile: float = 99.999) -> dict:
    """Calibrator settings per method (percentile: a 2048-bin histogram, cut at `percentile`)."""
    return {
        "minmax": {"symmetric": True},
        "percentile": {"symmetric": True, "num_bins": 2048, "percentile": percentile},
    }[method]


def output_heads(path: str | Path) -> list[str]:
    """Names of the nodes that make a graph output, directly or through an op kept float (the softmax)."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    heads = []
    for output in graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type in KEEP_FLOAT_OPS and node.input:
            node = producer.get(node.input[0])
        if node is not None and node.name not in heads:
            heads.append(node.name)
    return heads


def quantize_encoder(
    fp32_path: str | Path,
    int8_path: str | Path,
    features: np.ndarray,
    method: str = "minmax",
    per_channel: bool = True,
    percentile: float = 99.999,
    input_name: str = "features",
    float_heads: bool = True,
    float_nodes: Sequence[str] = (),
    recipe: Int8Recipe = ENCODER_RECIPE,
) -> Path:
    """Write a symmetric-QDQ INT8 copy of `fp32_path`, calibrated on `features` [N, D]; checks the zero points.

    `input_name` and any input shape serve other single-input models too (the landmark models' image crops).

    `float_heads` keeps the output heads (`output_heads`) in float: they are tiny and decide the label.
    `float_nodes` names more nodes to keep float (a caller that knows its graph's heads, e.g. the landmark models).
    `recipe` (`Int8Recipe`): the input layer float, Q/DQ only where they feed an INT8 layer, ReLU outputs
    centred, and with `equalize` every strength of `EQUALIZE_GRID` is tried and the INT8 copy closest to
    FP32 on `features` (`int8_error`) kept, its strength recorded in the model's metadata (`EQUALIZE_KEY`).
    Ranges are computed here with onnxruntime's own calibrator (so the method's settings are ours, see
    `calibrator_options`) and handed to `quantize_static` as its calibration cache.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration_method = _method(method)
    int8_path = Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        keep_float = (output_heads(prepared) if float_heads else []) + list(float_nodes)
        fp32 = onnx.load(str(prepared))
        if recipe.float_input_layer:
            keep_float += input_layers(fp32.graph, input_name)
        equalize = recipe.equalize
        best: tuple[float, float | None, onnx.ModelProto] | None = None
        for alpha in EQUALIZE_GRID if equalize else (None,):
            candidate = fp32 if alpha is None else equalize_relu_chains(fp32, features, input_name, alpha, keep_float)
            if candidate is None:  # no chain to equalize: the other strengths would give the same graph
                continue
            if recipe.center_relu:
                candidate = center_relu_ranges(candidate, features, input_name, keep_float) or candidate
            source = Path(scratch) / f"source.{alpha}.onnx"
            onnx.save(candidate, str(source))
            quantized = _quantize_static(
                source,
                Path(scratch) / f"int8.{alpha}.onnx",
                features,
                method,
                calibration_method,
                per_channel,
                percentile,
                input_name,
                keep_float,
                scratch,
            )
            if recipe.center_relu:
                quantized = refold_centre(quantized, candidate)
            if recipe.weighted_inputs_only:
                quantized = strip_unweighted_qdq(quantized)
            error = int8_error(fp32, quantized, features, input_name) if equalize else 0.0
            if best is None or error < best[0]:
                best = (error, alpha, quantized)
        assert best is not None
        _, alpha, model = best
        if equalize:
            onnx.helper.set_model_props(model, {**model_props(model), EQUALIZE_KEY: str(alpha)})
        onnx.save(model, str(int8_path))
    bad = nonzero_zero_points(int8_path)
    if bad:
        raise RuntimeError(f"{int8_path} is not symmetric, TensorRT would reject it: nonzero zero points {bad}")
    return int8_path


def _quantize_static(
    source: Path,
    out: Path,
    features: np.ndarray,
    method: str,
    calibration_method,
    per_channel: bool,
    percentile: float,
    input_name: str,
    keep_float: list[str],
    scratch: str,
):
    """onnxruntime's calibrator + `quantize_static` with our symmetric settings; returns the loaded INT8 model."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    # Bias stays float (TensorRT fuses it itself and takes only int8 Q/DQ); the softmax output stays float so
    # the class probabilities keep their resolution (int8 would round them to 1/127).
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    op_types = sorted(_op_types(source) - KEEP_FLOAT_OPS)
    calibrator = create_calibrator(
        source,
        op_types,
        augmented_model_path=str(Path(scratch) / "augmented.onnx"),
        calibrate_method=calibration_method,
        extra_options=calibrator_options(method.lower(), percentile),
    )
    calibrator.collect_data(make_reader(features, input_name))
    ranges = Path(scratch) / "ranges.json"
    save_tensors_data(calibrator.compute_data(), ranges)
    quantize_static(
        str(source),
        str(out),
        None,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        calibrate_method=calibration_method,
        extra_options=extra,
        op_types_to_quantize=op_types,
        nodes_to_exclude=keep_float,
        calibration_cache_path=ranges,
    )
    return onnx.load(str(out))


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def zero_points(path: str | Path) -> dict[str, np.ndarray]:
    """Every QuantizeLinear/DequantizeLinear zero point in the graph, by initializer name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: t for t in model.graph.initializer}
    found: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) >= 3:
            name = node.input[2]
            if name not in init:
                raise UserError(f"{path}: zero point {name} is not a constant: TensorRT needs constant Q/DQ parameters")
            found[name] = numpy_helper.to_array(init[name])
    return found


def nonzero_zero_points(path: str | Path) -> list[str]:
    """Names of zero points that are not all 0 (empty list: the graph is symmetric)."""
    return [name for name, value in zero_points(path).items() if np.any(value != 0)]


def qdq_summary(path: str | Path) -> dict:
    """How many Q/DQ pairs, and of which integer type: for reports and the model card."""
    import onnx

    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    types = {str(v.dtype) for v in zero_points(path).values()}
    return {
        "quantize": ops.count("QuantizeLinear"),
        "dequantize": ops.count("DequantizeLinear"),
        "types": sorted(types),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.quantize", description=__doc__.splitlines()[0])
    parser.add_argument("encoder", type=Path, help="FP32 encoder.onnx")
    parser.add_argument("--calib", type=Path, required=True, help="calibration set (.npz + .json, calibration.sets)")
    parser.add_argument("--method", choices=(*METHODS, *DROPPED_METHODS), default="minmax")
    parser.add_argument("--per_tensor", action="store_true", help="one weight scale per layer (default: per channel)")
    parser.add_argument("--out", type=Path, help="INT8 file (default: encoder.int8.onnx beside the input)")
    args = parser.parse_args(argv)
    if not args.encoder.is_file():
        raise UserError(f"{args.encoder} does not exist: export it first with python -m export.onnx")
    out = args.out or args.encoder.with_name(args.encoder.stem + ".int8.onnx")
    calib = load_set(args.calib)
    quantize_encoder(args.encoder, out, calib.features, args.method, not args.per_tensor)
    print(
        f"wrote {out}: {qdq_summary(out)}, all zero points 0, calibrated on {len(calib.features)} rows "
        f"({args.method}), equalization strength {equalize_alpha(out)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
