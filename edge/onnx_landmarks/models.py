"""onnxruntime sessions for the converted landmark models, sized for a small device.

Why these choices:
- Providers TensorRT, CUDA, CPU in that order, keeping those this onnxruntime build has (the names
  and order are `latentcast.inference`'s, shared with the encoders). A provider asked for but missing
  is dropped with one logged line (the loop must still start on a CPU box).
  Where `export.tensorrt` built an engine beside the ONNX file and `tensorrt` imports (Jetson),
  the native TensorRT runner is used instead.
- Threads are set, never left to onnxruntime's default (one per core, spinning): on a 2-core
  device the face and hand models run at the same time, so each session gets
  `intra_op_threads` (default 1) and no spin-waiting, which would steal the other's core.
- A model exported with a fixed batch of 1 gets a symbolic batch dimension at load time (the
  converted graphs reshape per sample, checked on the hand landmark model), so both hands go
  through one call.
- On the CPU provider, PRelu is rewritten into an identical, faster form (`_prelu_for_cpu`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentcast.errors import UserError
from latentcast.inference import PREFERRED_PROVIDERS as _PREFERRED
from latentcast.inference import PROVIDER_ALIASES as _ALIASES
from latentcast.inference import session_options
from latentcast.landmark_models import LANDMARK_MODEL_BY_NAME

log = logging.getLogger(__name__)

_warned: set[str] = set()


def choose_providers(wanted: Sequence[str] | None) -> list[str]:
    """Wanted providers (short names allowed) that exist here, else the preferred ones; CPU always last."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    names = [_ALIASES.get(p.lower(), p) for p in wanted] if wanted else list(_PREFERRED)
    chosen = []
    for name in names:
        if name in have:
            chosen.append(name)
        elif wanted and name not in _warned:
            _warned.add(name)
            log.warning("onnxruntime provider %s is not available here: falling back to %s", name, _fallback(have))
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _fallback(have: set[str]) -> str:
    return next((p for p in _PREFERRED if p in have), "CPUExecutionProvider")


def _have_onnx() -> bool:
    """The graph edits need the `onnx` package (requirements/device.txt has it); without it, one log line."""
    import importlib.util

    if importlib.util.find_spec("onnx") is not None:
        return True
    if "onnx" not in _warned:
        _warned.add("onnx")
        log.warning(
            "the onnx package is not installed: landmark models load unedited (slower on CPU); pip install onnx"
        )
    return False


def _dynamic_batch(model) -> None:
    """A symbolic batch dimension when the input batch is fixed to 1 (both hands in one call)."""
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    if first.dim_param or first.dim_value != 1:
        return
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]  # stale fixed shapes; onnxruntime infers them again


def _prelu_for_cpu(model) -> int:
    """PRelu(x, a) with a per-channel slope -> x + DWConv(1 - a)(Relu(DWConv(-1)(x))): the same function.

    onnxruntime's CPU PRelu kernel broadcasts its slope element by element and leaves the NCHWc
    blocked layout the convolutions run in: it took 55 % of the face landmark model's time (69
    PRelu nodes). Written as two 1x1 depthwise convolutions (the Relu and the Add fuse into them)
    everything stays in that layout: the face landmark model runs about 2x faster and the palm
    detector 1.3x (measured on the 2-core machine; outputs equal to 2e-4). TensorRT and CUDA run
    PRelu natively, so only the CPU path is rewritten. Returns how many nodes were rewritten.
    """
    import onnx
    from onnx import helper, numpy_helper

    shapes = onnx.shape_inference.infer_shapes(model)
    ranks = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(shapes.graph.value_info) + list(shapes.graph.input)
    }
    inits = {init.name: init for init in model.graph.initializer}
    nodes, rewritten = [], 0
    for node in model.graph.node:
        shape = ranks.get(node.input[0]) if node.op_type == "PRelu" else None
        slope = numpy_helper.to_array(inits[node.input[1]]) if shape and node.input[1] in inits else None
        channels = shape[1] if shape and len(shape) == 4 else 0
        if slope is None or not channels or slope.size != channels or slope.shape[-2:] != (1, 1):
            nodes.append(node)  # not a per-channel slope on NCHW: left as it is
            continue
        name, out = node.name or node.output[0], node.output[0]
        negate = numpy_helper.from_array(np.full((channels, 1, 1, 1), -1.0, np.float32), f"{name}__w_neg")
        scale = numpy_helper.from_array((1.0 - slope.reshape(-1)).reshape(channels, 1, 1, 1).astype(np.float32),
                                        f"{name}__w_one_minus_a")  # fmt: skip
        model.graph.initializer.extend([negate, scale])
        conv = dict(group=channels, kernel_shape=[1, 1])
        nodes += [
            helper.make_node("Conv", [node.input[0], negate.name], [f"{out}__neg"], name=f"{name}__neg", **conv),
            helper.make_node("Relu", [f"{out}__neg"], [f"{out}__relu"], name=f"{name}__relu"),
            helper.make_node("Conv", [f"{out}__relu", scale.name], [f"{out}__low"], name=f"{name}__scale", **conv),
            helper.make_node("Add", [node.input[0], f"{out}__low"], [out], name=f"{name}__add"),
        ]
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        used = {name for node in model.graph.node for name in node.input}
        keep = [init for init in model.graph.initializer if init.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        onnx.checker.check_model(model)
    return rewritten


@dataclass
class ModelSession:
    """One landmark model: run(array) -> list of outputs in the graph's order."""

    path: Path
    session: object
    input_name: str
    input_shape: tuple

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]


class TensorRTModel:
    """A native TensorRT engine built by `export.tensorrt` beside the ONNX file (Jetson): `run` like ModelSession.

    Needs `tensorrt` (JetPack) and cupy for device buffers. Outputs come back in the ONNX graph's
    output order, which the post-processing relies on. Not exercised on the development machines
    (no GPU there); without tensorrt the onnxruntime session is used instead.
    """

    def __init__(self, engine_path: Path, onnx_path: Path) -> None:
        import tensorrt as trt

        onnx = None
        if _have_onnx():
            import onnx

        try:
            import cupy as cp
        except ImportError as exc:
            raise ImportError("the native TensorRT landmark runner needs cupy for device buffers") from exc
        self._cp, self.path, self.engine_path = cp, onnx_path, engine_path
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {engine_path}: rebuild it with `python -m export.tensorrt`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        # the ONNX graph's output order (TensorRT keeps it too, but the file says so for certain)
        order = [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output] if onnx else []
        self.input_name = inputs[0]
        self.outputs = sorted((n for n in names if n not in inputs), key=lambda n: order.index(n) if n in order else 0)
        self.stream = cp.cuda.Stream(non_blocking=True)

    @property
    def provider(self) -> str:
        return f"native TensorRT ({self.engine_path.name})"

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        cp = self._cp
        x = cp.asarray(np.ascontiguousarray(batch, np.float32))
        self.context.set_input_shape(self.input_name, tuple(x.shape))
        self.context.set_tensor_address(self.input_name, x.data.ptr)
        outputs = []
        for name in self.outputs:
            out = cp.empty(tuple(self.context.get_tensor_shape(name)), dtype=cp.float32)
            self.context.set_tensor_address(name, out.data.ptr)
            outputs.append(out)
        self.context.execute_async_v3(self.stream.ptr)
        self.stream.synchronize()
        return [cp.asnumpy(out) for out in outputs]


def _native_engine(path: Path, providers: Sequence[str] | None):
    """The TensorRT engine beside `path` when one was built, TensorRT is wanted and it imports, else None."""
    engine = path.with_suffix(".engine")  # <name>.onnx -> <name>.engine, <name>.int8.onnx -> <name>.int8.engine
    wanted = not providers or any(p.lower() in ("tensorrt", "tensorrtexecutionprovider") for p in providers)
    if not (engine.is_file() and wanted):
        return None
    try:
        runner = TensorRTModel(engine, path)
    except ImportError as exc:
        if "tensorrt" not in _warned:
            _warned.add("tensorrt")
            log.warning("landmark engines found but native TensorRT is unavailable (%s): using onnxruntime", exc)
        return None
    log.info("landmark model %s: %s", path.name, runner.provider)
    return runner


def open_model(
    path: str | Path, threads: int = 1, providers: Sequence[str] | None = None, dynamic_batch: bool = False
) -> ModelSession | TensorRTModel:
    """A runner for one converted landmark model: a native TensorRT engine where one was built and TensorRT
    imports, else an onnxruntime session (clear error when the file is missing or not ONNX)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise UserError(f"landmark model {path} does not exist: convert them with `python -m export.landmark_models`")
    native = _native_engine(path, providers)
    if native is not None:
        return native
    options = session_options(threads)
    options.log_severity_level = 3  # errors only: the converted graphs make onnxruntime chatty
    chosen = choose_providers(providers)
    source: str | bytes = str(path)
    cpu_only = chosen[0] == "CPUExecutionProvider"
    try:
        if (dynamic_batch or cpu_only) and _have_onnx():
            import onnx

            model = onnx.load(str(path))
            if dynamic_batch:
                _dynamic_batch(model)
            if cpu_only:
                _prelu_for_cpu(model)
            source = model.SerializeToString()
        session = ort.InferenceSession(source, sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise UserError(f"onnxruntime cannot load landmark model {path} ({exc}): convert it again") from exc
    first = session.get_inputs()[0]
    return ModelSession(path, session, first.name, tuple(first.shape))


def input_size(name: str) -> int:
    """The square input side of an image model (latentcast.landmark_models, the one table)."""
    return LANDMARK_MODEL_BY_NAME[name].side


def input_tensor(pixels: np.ndarray, name: str) -> np.ndarray:
    """uint8 pixels -> float32 in the value range the model was trained on ([0, 1] or [-1, 1])."""
    low, high = LANDMARK_MODEL_BY_NAME[name].input_range
    return pixels.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)
