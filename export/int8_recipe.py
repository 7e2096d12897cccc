"""What an INT8 copy does beyond onnxruntime's defaults to agree with FP32: the recipe, and its graph edits.

export.quantize applies `ENCODER_RECIPE` to the encoders (docs/EXPORT.md, "INT8 that agrees"):
- the input layer stays float (`input_layers`), as do the output heads (export.quantize.output_heads);
- Q/DQ sit only at the inputs of the layers that run in INT8 (`strip_unweighted_qdq`), TensorRT's
  recommended placement: a Gemm's output is not re-quantized before its ReLU, and the last hidden
  layer reaches the float heads in float;
- each Gemm -> ReLU -> Gemm chain is equalized first (`equalize_relu_chains`): an exact power-of-two
  rescaling of the hidden channels, so the one per-tensor activation scale fits every channel better,
  with the strength picked per model on the calibration rows (`EQUALIZE_GRID`, `int8_error`);
- those chains' ReLU outputs are centred before they are quantized (`center_relu_ranges`, then
  `refold_centre`): a non-negative tensor otherwise uses only half of the symmetric int8 range.
Each was measured on the demo's gesture model with benchmarks/encoder_bench.py (docs/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHTED_OPS = {"Gemm", "MatMul", "Conv"}
# Equalization strengths tried per model (None: no equalization); the one whose INT8 copy is closest to FP32
# on the calibration rows wins (`equalize_relu_chains`). 1 moves all of a channel's range into the next
# layer's weights, 0.5 splits it evenly between activation and weight (SmoothQuant's alpha).
EQUALIZE_GRID: tuple[float | None, ...] = (None, 0.5, 0.75, 1.0)
EQUALIZE_KEY = "latentcast.int8_equalize_alpha"  # model metadata: the strength the INT8 copy was made with


@dataclass(frozen=True)
class Int8Recipe:
    """What an INT8 copy does beyond onnxruntime's defaults to agree with FP32 (docs/EXPORT.md, "INT8 that
    agrees"); each measured on the demo's gesture model in benchmarks/encoder_bench.py.

    float_input_layer: the layers reading the graph input stay float (the input and its first weights are
    where int8 rounding moved the label most; 42 x 256 of the encoder's 42 x 256 + 256 x 256 products).
    weighted_inputs_only: Q/DQ only where they feed an INT8 layer (`strip_unweighted_qdq`).
    equalize: Gemm -> ReLU -> Gemm chains equalized, strength picked on the calibration rows (`EQUALIZE_GRID`).
    center_relu: those chains' hidden tensors centred before quantizing (`center_relu_ranges`).
    """

    float_input_layer: bool = True
    weighted_inputs_only: bool = True
    equalize: bool = True
    center_relu: bool = True


ENCODER_RECIPE = Int8Recipe()
# onnxruntime's placement as is: what the landmark models (conv nets) were measured with
PLAIN_RECIPE = Int8Recipe(False, False, False, False)


def input_layers(graph, input_name: str) -> list[str]:
    """Names of the weighted layers that read the graph input directly (the encoder's first Gemm)."""
    return [n.name for n in graph.node if n.op_type in WEIGHTED_OPS and input_name in n.input]


def model_props(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _consumers(graph) -> dict[str, list]:
    found: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _runs_int8(node, producer: dict) -> bool:
    """A weighted layer whose weight comes through a DequantizeLinear, i.e. one that runs in INT8."""
    weight = producer.get(node.input[1]) if len(node.input) > 1 else None
    return node.op_type in WEIGHTED_OPS and weight is not None and weight.op_type == "DequantizeLinear"


def strip_unweighted_qdq(model):
    """Drop every activation Q/DQ pair that does not feed an INT8 layer; returns the model (edited in place).

    Why: onnxruntime also quantizes a Gemm's output before its ReLU (with the pre-activation's wider,
    mostly negative range) and the last hidden layer on its way into the float heads. Neither makes
    any layer run in INT8, both add rounding; TensorRT recommends Q/DQ at the inputs of weighted layers.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    drop = []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        dqs = [n for n in consumers.get(q.output[0], []) if n.op_type == "DequantizeLinear"]
        users = [user for dq in dqs for user in consumers.get(dq.output[0], [])]
        if dqs and users and all(_runs_int8(user, producer) for user in users):
            continue
        if any(dq.output[0] in outputs for dq in dqs):  # a graph output keeps its name: leave that pair alone
            continue
        for dq in dqs:
            for user in consumers.get(dq.output[0], []):
                for i, name in enumerate(user.input):
                    if name == dq.output[0]:
                        user.input[i] = q.input[0]
            drop.append(dq)
        drop.append(q)
    for node in drop:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    return model


def probe_session(model, outputs: Sequence[str]):
    """An onnxruntime CPU session of `model` that can also return the intermediate tensors `outputs`."""
    import onnx
    import onnxruntime

    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    known = {o.name for o in edited.graph.output}
    edited.graph.output.extend(onnx.ValueInfoProto(name=n) for n in outputs if n not in known)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(edited.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run(model, features: np.ndarray, input_name: str, outputs: Sequence[str]) -> list[np.ndarray]:
    session = probe_session(model, outputs)
    return session.run(list(outputs), {input_name: np.ascontiguousarray(features, dtype=np.float32)})


def _relu_chains(graph, keep_float: Sequence[str]) -> list[tuple]:
    """(Gemm, Relu, [next Gemms]) where every Gemm has constant weights [out, in] (transB=1), bias and the
    default alpha/beta, and at least one next Gemm runs in INT8 (is not kept float)."""
    init = {t.name for t in graph.initializer}
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}

    def plain(node) -> bool:
        attrs = {a.name: onnx_attr(a) for a in node.attribute}
        return (
            node.op_type == "Gemm"
            and len(node.input) == 3
            and node.input[1] in init
            and node.input[2] in init
            and attrs.get("transB") == 1
            and not attrs.get("transA", 0)
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
        )

    chains = []
    for node in graph.node:
        after = consumers.get(node.output[0], [])
        if not plain(node) or len(after) != 1 or after[0].op_type != "Relu":
            continue
        relu = after[0]
        nxt = consumers.get(relu.output[0], [])
        int8_next = any(n.name not in keep_float for n in nxt)
        if nxt and all(plain(n) for n in nxt) and int8_next and relu.output[0] not in outputs:
            chains.append((node, relu, nxt))
    return chains


def onnx_attr(attribute):
    import onnx

    return onnx.helper.get_attribute_value(attribute)


def _chains_on_copy(model, features: np.ndarray, input_name: str, keep_float: Sequence[str]):
    """(copy of `model`, its Gemm -> ReLU -> Gemm chains (nodes of the copy), the copy's initializers by name,
    each chain's hidden tensor on `features`), or None when the model has no such chain: what the two
    chain rewrites below start from."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    chains = _relu_chains(out.graph, keep_float)
    if not chains:
        return None
    init = {t.name: t for t in out.graph.initializer}
    acts = _run(model, features, input_name, [relu.output[0] for _, relu, _ in chains])
    return out, chains, init, acts


def equalize_relu_chains(model, features: np.ndarray, input_name: str, alpha: float, keep_float: Sequence[str] = ()):
    """A copy of `model` with each Gemm -> ReLU -> Gemm chain's hidden channels rescaled; None if it has none.

    Channel j of the hidden tensor is divided by s_j = 2^round(log2((a_j / max a)^alpha / (w_j / max w)^(1 - alpha))),
    where a_j is the channel's largest activation on `features` and w_j the largest weight the next layer
    applies to it; the first Gemm's row j and bias j are divided by s_j, the next Gemms' column j multiplied
    by it. ReLU commutes with a positive scale and a power of two is exact in float, so the copy computes the
    same function bit for bit; a per-output-channel weight scale does not see the row scaling. What changes
    is the one per-tensor activation scale: it no longer has to span channels of very different ranges.
    """
    import onnx
    from onnx import numpy_helper

    found = _chains_on_copy(model, features, input_name, keep_float)
    if found is None:
        return None
    out, chains, init, acts = found
    for (gemm, _, nxt), hidden in zip(chains, acts, strict=True):
        a = np.abs(hidden).max(axis=0).astype(np.float64)
        weights = [numpy_helper.to_array(init[n.input[1]]).astype(np.float64) for n in nxt]
        w = np.max([np.abs(m).max(axis=0) for m in weights], axis=0)
        live = (a > 0) & (w > 0)  # a dead channel (never active, or unused) keeps scale 1
        ratio = np.ones_like(a)
        ratio[live] = (a[live] / a[live].max()) ** alpha / (w[live] / w[live].max()) ** (1 - alpha)
        s = np.exp2(np.round(np.log2(ratio)))
        first_w = numpy_helper.to_array(init[gemm.input[1]]) / s[:, None]
        first_b = numpy_helper.to_array(init[gemm.input[2]]) / s
        init[gemm.input[1]].CopyFrom(numpy_helper.from_array(first_w.astype(np.float32), gemm.input[1]))
        init[gemm.input[2]].CopyFrom(numpy_helper.from_array(first_b.astype(np.float32), gemm.input[2]))
        for node, matrix in zip(nxt, weights, strict=True):
            scaled = (matrix * s[None, :]).astype(np.float32)
            init[node.input[1]].CopyFrom(numpy_helper.from_array(scaled, node.input[1]))
    onnx.checker.check_model(out)
    return out


def int8_error(fp32, int8, features: np.ndarray, input_name: str) -> float:
    """How far an INT8 copy's outputs are from FP32's on `features`: per output, the RMS difference over the
    FP32 output's RMS, summed; a softmax output is compared as centred log-probabilities (its logits)."""
    names = [o.name for o in fp32.graph.output]
    producer = {out: node for node in fp32.graph.node for out in node.output}
    total = 0.0
    pairs = zip(_run(fp32, features, input_name, names), _run(int8, features, input_name, names), strict=True)
    for name, (a, b) in zip(names, pairs, strict=True):
        if name in producer and producer[name].op_type == "Softmax":
            a, b = (np.log(np.clip(v, 1e-30, None)) for v in (a, b))
            a, b = a - a.mean(axis=-1, keepdims=True), b - b.mean(axis=-1, keepdims=True)
        total += float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(a**2)) + 1e-12))
    return total


def equalize_alpha(path: str | Path) -> float | None:
    """The equalization strength an INT8 copy was made with (None: none, or not recorded)."""
    import onnx

    value = model_props(onnx.load(str(path))).get(EQUALIZE_KEY)
    return None if value in (None, "None") else float(value)


def center_relu_ranges(model, features: np.ndarray, input_name: str, keep_float: Sequence[str] = ()):
    """A copy of `model` where each Gemm -> ReLU -> Gemm chain's hidden tensor is centred before it is
    quantized; None if it has none.

    Why: a ReLU output is never negative, so a symmetric int8 scale spends its sign bit on nothing (0..127
    of -127..127). With c = half the tensor's largest value on `features`, ReLU(a) - c = Clip(a - c, min=-c)
    spans [-c, c]: the same symmetric int8 scale is twice as fine. The shift is folded into biases, so the
    float function is unchanged (up to float rounding): the first Gemm's bias loses c, the ReLU becomes a
    Clip at -c (TensorRT fuses Gemm + Clip as it fuses Gemm + ReLU), and each next Gemm's bias gains W @ c.
    """
    import onnx
    from onnx import numpy_helper

    found = _chains_on_copy(model, features, input_name, keep_float)
    if found is None:
        return None
    out, chains, init, acts = found
    graph = out.graph
    for (gemm, relu, nxt), hidden in zip(chains, acts, strict=True):
        c = np.float32(np.abs(hidden).max() / 2)
        bias = numpy_helper.to_array(init[gemm.input[2]]) - c
        init[gemm.input[2]].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), gemm.input[2]))
        for node in nxt:
            weight = numpy_helper.to_array(init[node.input[1]]).astype(np.float64)
            shifted = numpy_helper.to_array(init[node.input[2]]) + weight.sum(axis=1) * float(c)
            init[node.input[2]].CopyFrom(numpy_helper.from_array(shifted.astype(np.float32), node.input[2]))
        floor = f"{relu.output[0]}_center_floor"
        graph.initializer.append(numpy_helper.from_array(np.asarray(-c, np.float32), floor))
        clip = onnx.helper.make_node("Clip", [relu.input[0], floor], list(relu.output), name=f"{relu.name}_centered")
        index = list(graph.node).index(relu)
        graph.node.remove(relu)
        graph.node.insert(index, clip)
    onnx.checker.check_model(out)
    return out


def refold_centre(quantized, source):
    """After quantizing a `center_relu_ranges` graph: fold each centre into the next INT8 Gemms' biases with
    the weights those Gemms really use (their int8 values times scale) instead of the float ones.

    Why: the float fold adds W @ c, the INT8 Gemm subtracts W_int8 @ c; the difference (W_int8 - W) @ c
    would hit every row (most of a ReLU output is 0, i.e. -c after centring), where uncentred the
    weight rounding only meets the few active units. Returns `quantized`, edited in place.
    """
    from onnx import numpy_helper

    graph = quantized.graph
    init = {t.name: t for t in graph.initializer}
    src = {t.name: t for t in source.graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers = _consumers(graph)
    for clip in [n for n in graph.node if n.op_type == "Clip" and n.name.endswith("_centered")]:
        c = -float(numpy_helper.to_array(init[clip.input[1]]))
        for q in [n for n in consumers.get(clip.output[0], []) if n.op_type == "QuantizeLinear"]:
            for dq in consumers.get(q.output[0], []):
                for gemm in consumers.get(dq.output[0], []):
                    weight = producer[gemm.input[1]]  # DequantizeLinear(int8, scale, zero point 0)
                    ints = numpy_helper.to_array(init[weight.input[0]]).astype(np.float64)
                    scale = numpy_helper.to_array(init[weight.input[1]]).astype(np.float64)
                    used = ints * (scale[:, None] if scale.ndim else scale)
                    float_w = numpy_helper.to_array(src[weight.input[0].removesuffix("_quantized")]).astype(np.float64)
                    bias = numpy_helper.to_array(init[gemm.input[2]]) + (used - float_w).sum(axis=1) * c
                    init[gemm.input[2]].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), gemm.input[2]))
    return quantized
