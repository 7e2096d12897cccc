"""onnxruntime sessions for the exported encoders and decoders, shared by the edge loop and the renderer.

torch-free on purpose: the Jetson and the renderer host run these, not the training code. The ONNX
contract (docs/EXPORT.md) is: `encoder.onnx` takes `features` [N, D] float32 and returns `y` [N, K]
(class probabilities) and `z` [N, C]; `decoder.onnx` takes `y` and `z` and returns `features` [N, D].
Providers are tried in the order TensorRT, CUDA, CPU, keeping those this onnxruntime build has.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentcast.errors import UserError

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def available_providers(wanted: Sequence[str] | None = None) -> list[str]:
    """The providers to use: `wanted` (short names like 'cpu' allowed) or the preferred ones, that this build has."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in wanted] if wanted else list(PREFERRED_PROVIDERS)
    missing = [n for n in names if n not in have]
    if wanted and missing:
        raise UserError(f"onnxruntime here has no {', '.join(missing)}: choose from {', '.join(sorted(have))}")
    return [n for n in names if n in have]


def provider_options(providers: list[str], has_qdq: bool = False) -> list[dict]:
    """TensorRT EP: FP16 allowed, INT8 switched on for Q/DQ graphs only (their scales come with the graph; an
    FP32 graph would need a calibration table), engines and timings cached in the user cache (never inside a
    bundle, whose files are verified), so only the first start on a device pays the build."""
    from latentcast.assets import cache_dir

    options = []
    for name in providers:
        if name == "TensorrtExecutionProvider":
            cache = cache_dir() / "tensorrt"
            cache.mkdir(parents=True, exist_ok=True)
            options.append(
                {
                    "trt_fp16_enable": True,
                    "trt_int8_enable": has_qdq,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache),
                }
            )
        else:
            options.append({})
    return options


def session_options(threads: int = 1):
    """The onnxruntime settings every session of the project uses: `threads` intra-op threads set
    deliberately (onnxruntime's default, one spinning thread per core, steals the other core from the
    concurrent face/hand workers on a 2-core device), sequential execution, all graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def make_session(path: str | os.PathLike[str], threads: int = 1, providers: Sequence[str] | None = None):
    """An onnxruntime InferenceSession with `threads` intra-op threads (1 keeps latency steady on small MLPs)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist: export one with `python -m export.onnx` or give a bundle")
    options = session_options(threads)
    chosen = available_providers(providers)
    has_qdq = b"DequantizeLinear" in path.read_bytes()  # an INT8 export (export.quantize); files are small
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=chosen, provider_options=provider_options(chosen, has_qdq)
        )
    except _ort_errors() as exc:
        # A file whose bytes match its manifest can still be no model (built from a broken export).
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"{path} is not a loadable ONNX model ({reason}): re-export it or rebuild the bundle") from None


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception classes (they derive from Exception only, so they need naming)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidProtobuf", "InvalidGraph", "NoModel", "NoSuchFile", "NotImplemented")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def _as_batch(array: np.ndarray, width: int | None, name: str) -> np.ndarray:
    batch = np.asarray(array, dtype=np.float32)
    if batch.ndim == 1:
        batch = batch[None, :]
    if batch.ndim != 2 or (width is not None and batch.shape[1] != width):
        raise UserError(f"{name} has shape {tuple(np.shape(array))}, the model expects [N, {width}]: check the model")
    return np.ascontiguousarray(batch)


class _ModelSession:
    """An onnxruntime session on one model file, with its inputs and outputs by name."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 1, providers: Sequence[str] | None = None):
        self.path = Path(path)
        self.session = make_session(self.path, threads, providers)
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self._outputs = {o.name: o for o in self.session.get_outputs()}

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()


class EncoderSession(_ModelSession):
    """features [N, D] (or [D]) -> (y [N, K] class probabilities, z [N, C] style code)."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 1, providers: Sequence[str] | None = None):
        super().__init__(path, threads, providers)
        inputs, outputs = self._inputs, self._outputs
        if "features" not in inputs or not {"y", "z"} <= set(outputs):
            raise UserError(f"{self.path} is not a latentcast encoder (needs input 'features', outputs 'y', 'z')")
        self.input_dim = _static(inputs["features"].shape[1])
        self.n_classes = _static(outputs["y"].shape[1])
        self.code_dim = _static(outputs["z"].shape[1])

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, z = self.session.run(["y", "z"], {"features": _as_batch(features, self.input_dim, "features")})
        return y, z


class DecoderSession(_ModelSession):
    """(y [N, K], z [N, C]) -> features [N, D]: how the renderer turns latents back into landmark features."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 1, providers: Sequence[str] | None = None):
        super().__init__(path, threads, providers)
        inputs, outputs = self._inputs, self._outputs
        if not {"y", "z"} <= set(inputs) or "features" not in outputs:
            raise UserError(f"{self.path} is not a latentcast decoder (needs inputs 'y', 'z', output 'features')")
        self.n_classes = _static(inputs["y"].shape[1])
        self.code_dim = _static(inputs["z"].shape[1])
        self.output_dim = _static(outputs["features"].shape[1])

    def __call__(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        feeds = {"y": _as_batch(y, self.n_classes, "y"), "z": _as_batch(z, self.code_dim, "z")}
        return self.session.run(["features"], feeds)[0]


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) else None
