"""What the landmark models' INT8 copies do beyond onnxruntime's defaults, found by per-layer sensitivity.

Measured on held-out real crops (docs/EXPORT.md, "INT8 that meets parity"): with every layer in
INT8 the face mesh moved its landmarks by 3.9 % of the inter-ocular distance (median) and the
blendshapes read from them by 0.077. Two things cause almost all of it:
- per-tensor activation scales on tensors whose channels differ 25x in range (the face mesh's
  residual stream: max 30, median channel max 1.2), so most channels get a few int8 steps;
  `equalize_channels` rescales every channel group to an even range first, an exact rewrite
  (PRelu, MaxPool, zero channel padding and depthwise convolutions commute with a positive
  per-channel scale; the producing convolution divides by it, the consuming one multiplies);
- the layers at the highest resolution (and, for the face, the last 2x2 blocks before the heads):
  quantizing one of them alone moved the landmarks as much as ten middle blocks together.
  `nodes_at_sides` names them so they stay float ("QDQ only where it pays").
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

PASS_THROUGH = {"PRelu", "MaxPool", "Add", "Pad"}  # ops that commute with a positive per-channel scale


def _attr(node, name: str, default: int = 1) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _is_depthwise(node, weight: np.ndarray) -> bool:
    group = _attr(node, "group")
    return group > 1 and weight.shape[0] == group and weight.shape[1] == 1


def channel_groups(model) -> list[list[str]]:
    """Sets of activation tensors (NCHW) that must share one per-channel scale, and may be rescaled.

    Tensors are joined across the ops in PASS_THROUGH and depthwise convolutions; a group is kept only
    when every tensor in it is made and read by convolutions with constant weights or those ops (a
    graph input or output, a reshape or a grouped convolution anywhere in it rules it out). Channel
    padding is allowed only at the end of the channel axis, so tensor i's scale is the group's first
    C_i entries.
    """
    from onnx import numpy_helper

    graph = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    blocked = {v.name for v in [*graph.input, *graph.output]}
    tensors: set[str] = set()
    for node in graph.node:
        data = [i for i in node.input if i and i not in init]
        if node.op_type == "Conv" and node.input[1] in init:
            weight = init[node.input[1]]
            if _attr(node, "group") > 1 and not _is_depthwise(node, weight):
                blocked.update([*data, *node.output])
                continue
            tensors.update([*data, *node.output])
            if _is_depthwise(node, weight):
                parent[find(node.input[0])] = find(node.output[0])
            continue
        if node.op_type == "Pad":
            pads = init.get(node.input[1]) if len(node.input) > 1 else None
            rank = len(pads) // 2 if pads is not None else 0
            end_of_channels = pads is not None and all(v == 0 for i, v in enumerate(pads) if i != rank + 1)
            if not end_of_channels or (len(node.input) > 2 and node.input[2]):
                blocked.update([*data, *node.output])
                continue
            data = [node.input[0]]
        elif node.op_type == "PRelu":
            data = [node.input[0]]
        elif node.op_type not in PASS_THROUGH:
            blocked.update([*data, *node.output])
            continue
        tensors.update([*data, *node.output])
        for name in data:
            parent[find(name)] = find(node.output[0])
    bad = {find(name) for name in blocked}
    groups: dict[str, list[str]] = {}
    for name in sorted(tensors):
        root = find(name)
        if root not in bad:
            groups.setdefault(root, []).append(name)
    return list(groups.values())


def channel_ranges(model, crops: np.ndarray, input_name: str, tensors: Iterable[str]) -> dict[str, np.ndarray]:
    """Per-channel max |value| of each NCHW tensor over `crops` (one onnxruntime call a crop)."""
    from export.int8_recipe import probe_session

    names = list(tensors)
    session = probe_session(model, names)
    found = {n: np.zeros(0) for n in names}
    for crop in crops.astype(np.float32):
        for name, value in zip(names, session.run(names, {input_name: crop[None]}), strict=True):
            amax = np.abs(value).max(axis=(0, 2, 3)).astype(np.float64)
            found[name] = amax if found[name].size == 0 else np.maximum(found[name], amax)
    return found


def channel_scales(groups: list[list[str]], ranges: dict[str, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """Per tensor, the scale its channels are divided by: each channel's range relative to its tensor's
    widest (worst case over the group's tensors), to the power `alpha`, normalised to geometric mean 1."""
    scales = {}
    for group in groups:
        width = max(len(ranges[name]) for name in group)
        relative = np.zeros(width)
        for name in group:
            amax = ranges[name]
            relative[: len(amax)] = np.maximum(relative[: len(amax)], amax / max(float(amax.max()), 1e-12))
        relative = np.maximum(relative, 1e-3)  # a channel that never fires keeps a bounded scale
        scale = (relative / np.exp(np.log(relative).mean())) ** alpha
        scales.update({name: scale for name in group})
    return scales


def equalize_channels(model, crops: np.ndarray, input_name: str, alpha: float = 1.0):
    """A copy of `model` (an ONNX ModelProto) computing the same function with every channel group's
    ranges evened out (`channel_groups`, measured on `crops`); returns (model, number of groups)."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    groups = channel_groups(out)
    scales = channel_scales(groups, channel_ranges(out, crops, input_name, [t for g in groups for t in g]), alpha)
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}

    def replace(node, index: int, value: np.ndarray) -> None:  # a new initializer: weights may be shared
        name = f"{node.name}/equalized_{index}"
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        node.input[index] = name

    for node in graph.node:
        if node.op_type != "Conv" or (node.input[0] not in scales and node.output[0] not in scales):
            continue
        weight = init[node.input[1]].astype(np.float64)
        bias = init[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else None
        scale_in, scale_out = scales.get(node.input[0]), scales.get(node.output[0])
        if _is_depthwise(node, weight):  # channel c in, channel c out: only the bias moves with the scale
            if bias is not None:
                replace(node, 2, bias / scale_out[: len(bias)])
            continue
        if scale_in is not None:
            weight = weight * scale_in[None, : weight.shape[1], None, None]
        if scale_out is not None:
            weight = weight / scale_out[: weight.shape[0], None, None, None]
            bias = bias / scale_out[: len(bias)] if bias is not None else None
        replace(node, 1, weight)
        if bias is not None:
            replace(node, 2, bias)
    used = {i for node in graph.node for i in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(out)
    return out, len(groups)


def nodes_at_sides(model, sides: Iterable[int]) -> list[str]:
    """Names of the nodes whose (first) output is a 4-D map with a spatial side in `sides` (e.g. 128: the
    face mesh's first stage), from onnx shape inference; a side that no node has is an error."""
    import onnx

    wanted = set(sides)
    if not wanted:
        return []
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    found, seen = [], set()
    for node in inferred.graph.node:
        shape = shapes.get(node.output[0], [])
        if len(shape) == 4 and shape[2] == shape[3] and shape[2] in wanted:
            found.append(node.name)
            seen.add(shape[2])
    if seen != wanted:
        raise RuntimeError(f"no layer works at side(s) {sorted(wanted - seen)}: the graph is not the expected one")
    return found


def save(model, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path
