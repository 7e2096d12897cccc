"""Build TensorRT engines (FP16, and INT8 from the QDQ graph) from a bundle's encoders, on the device.

TensorRT exists only where NVIDIA ships it (JetPack on a Jetson, NVIDIA's index on a workstation
with a GPU); where `import tensorrt` fails this command says so in one line and builds nothing. No
engine is ever faked. INT8 uses explicit quantization: the Q/DQ scales calibrated on the workstation
(export.quantize) are in the graph, so no calibrator runs here (IInt8 calibrators are deprecated
since TensorRT 10.1). Every build uses one optimisation profile for batch 1..4 (opt 1: the edge
encodes one face or up to four hands), a timing cache that makes rebuilds fast, and writes the
engine, a build log and the equivalent `trtexec` command.

    python -m export.tensorrt BUNDLE          # every model: encoder.engine (FP16), encoder.int8.engine (INT8)
                                              # + landmarks/<name>.engine (FP16), <name>.int8.engine (INT8 copies)
    python -m export.tensorrt encoder.int8.onnx --precision int8 --out engines/

Engines land beside the ONNX they come from (`models/<name>/encoder.int8.engine`), where the edge
loop looks for them; bundle verification ignores these device-built files (latentcast.bundle).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from latentcast.errors import UserError, run_cli
from latentcast.signing import write_engine_manifest

PRECISIONS = ("fp16", "int8")
INPUT_NAME = "features"
TIMING_CACHE = "tensorrt.timing.cache"  # latentcast.bundle.DEVICE_BUILT keeps it out of the manifest


@dataclass
class EngineSpec:
    """One engine to build: which ONNX, what precision, the batch range of its optimisation profile."""

    onnx_path: Path
    engine_path: Path
    precision: str = "fp16"
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4
    workspace_mib: int = 256
    timing_cache: Path | None = None
    input_name: str = INPUT_NAME
    sample_shape: tuple[int, ...] | None = None  # input shape after the batch axis; None: [D] read from the graph
    dynamic_batch: bool = True  # False: the graph's batch is fixed (1), no optimisation profile

    def input_dims(self) -> tuple[int, ...]:
        return self.sample_shape if self.sample_shape is not None else (input_width(self.onnx_path),)


def tensorrt_missing() -> str | None:
    """Why TensorRT cannot be used here (one line), or None when it can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return f"TensorRT is not installed here ({exc}): build engines on the Jetson (JetPack ships it)"
    return None


def input_width(onnx_path: Path) -> int:
    """D of the `features` input [batch, D], read from the ONNX graph."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    for tensor in graph.input:
        if tensor.name == INPUT_NAME:
            return tensor.type.tensor_type.shape.dim[1].dim_value
    raise UserError(f"{onnx_path} has no '{INPUT_NAME}' input: give an encoder exported by export.onnx")


def trtexec_command(spec: EngineSpec, width: int | None = None) -> str:
    """The trtexec line that builds the same engine (for people who prefer the CLI, or to compare)."""
    dims = (width,) if width is not None and spec.sample_shape is None else spec.input_dims()
    shape = lambda n: f"{spec.input_name}:{'x'.join(str(d) for d in (n, *dims))}"  # noqa: E731
    args = ["trtexec", f"--onnx={spec.onnx_path}", f"--saveEngine={spec.engine_path}"]
    if spec.dynamic_batch:
        args += [
            f"--minShapes={shape(spec.min_batch)}",
            f"--optShapes={shape(spec.opt_batch)}",
            f"--maxShapes={shape(spec.max_batch)}",
        ]
    args += [f"--memPoolSize=workspace:{spec.workspace_mib}M", "--fp16"]
    if spec.precision == "int8":
        args.append("--int8")  # with Q/DQ in the graph this means explicit quantization, no calibration
    if spec.timing_cache is not None:
        args.append(f"--timingCacheFile={spec.timing_cache}")
    return shlex.join(args)


def build_engine(spec: EngineSpec) -> dict:
    """Build and serialize one engine with the TensorRT Python API; returns what happened (also logged)."""
    import tensorrt as trt

    if spec.precision not in PRECISIONS:
        raise UserError(f"unknown precision {spec.precision!r}: choose {' or '.join(PRECISIONS)}")
    log_path = spec.engine_path.with_suffix(".build.log")
    spec.engine_path.parent.mkdir(parents=True, exist_ok=True)
    dims = spec.input_dims()

    class FileLogger(trt.ILogger):
        """TensorRT's messages to the build log (all of them) and warnings and errors to stderr."""

        def __init__(self, stream):
            trt.ILogger.__init__(self)
            self.stream = stream

        def log(self, severity, msg):
            self.stream.write(f"[{severity.name}] {msg}\n")
            if int(severity) <= int(trt.ILogger.Severity.WARNING):  # INTERNAL_ERROR=0 ... VERBOSE=4
                print(f"tensorrt {severity.name}: {msg}", file=sys.stderr)

    with open(log_path, "w") as log_stream:
        logger = FileLogger(log_stream)
        builder = trt.Builder(logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and int(trt.__version__.split(".")[0]) < 10:
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)  # TensorRT 8.x needs it spelt out
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(spec.onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise UserError(f"TensorRT cannot parse {spec.onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mib << 20)
        config.set_flag(trt.BuilderFlag.FP16)
        if spec.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        if spec.dynamic_batch:  # a fixed-shape graph (the landmark models but one) needs no profile
            profile = builder.create_optimization_profile()
            low, opt, high = ((n, *dims) for n in (spec.min_batch, spec.opt_batch, spec.max_batch))
            profile.set_shape(spec.input_name, low, opt, high)
            config.add_optimization_profile(profile)
        cache_bytes = spec.timing_cache.read_bytes() if spec.timing_cache and spec.timing_cache.is_file() else b""
        cache = config.create_timing_cache(cache_bytes)
        config.set_timing_cache(cache, ignore_mismatch=False)
        start = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        seconds = time.perf_counter() - start
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build {spec.engine_path.name}: see {log_path}")
        spec.engine_path.write_bytes(bytes(serialized))
        # The device-local manifest the edge checks before loading the engine (latentcast.signing.verify_engine).
        extra = {"precision": spec.precision, "tensorrt": trt.__version__}
        write_engine_manifest(spec.engine_path, spec.onnx_path, extra)
        if spec.timing_cache is not None:
            spec.timing_cache.parent.mkdir(parents=True, exist_ok=True)
            spec.timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {
        "engine": str(spec.engine_path),
        "onnx": str(spec.onnx_path),
        "precision": spec.precision,
        "profile": (
            {"min": spec.min_batch, "opt": spec.opt_batch, "max": spec.max_batch, "sample_shape": list(dims)}
            if spec.dynamic_batch
            else {"fixed_shape": [1, *dims]}
        ),
        "build_seconds": round(seconds, 2),
        "bytes": spec.engine_path.stat().st_size,
        "tensorrt": trt.__version__,
        "log": str(log_path),
        "trtexec": trtexec_command(spec),
    }


def _has_input(onnx_path: Path, name: str) -> bool:
    import onnx

    return any(t.name == name for t in onnx.load(str(onnx_path), load_external_data=False).graph.input)


def has_qdq(onnx_path: Path) -> bool:
    """True for a graph with Q/DQ nodes (an INT8 export): TensorRT builds it with explicit quantization."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(node.op_type == "QuantizeLinear" for node in graph.node)


def specs_for(
    source: Path, out: Path | None, precision: str, max_batch: int, landmarks: bool = True
) -> list[EngineSpec]:
    """Engines to build, each named like its ONNX with `.engine` (where the edge loop looks for it).

    One ONNX file: one engine, INT8 when the graph has Q/DQ nodes, else FP16 (or as `precision` says).
    A bundle: per model, `encoder.engine` (FP16, from encoder.onnx) and `encoder.int8.engine` (INT8, from
    encoder.int8.onnx), beside the ONNX unless `out` is given; then the landmark models (`landmark_specs`).
    """
    if source.is_file() and source.suffix == ".onnx":
        out = out or source.parent
        chosen = precision if precision != "auto" else ("int8" if has_qdq(source) else "fp16")
        cache = out / TIMING_CACHE
        if not _has_input(source, INPUT_NAME):  # not an encoder: a landmark model
            return [image_model_spec(source, out / f"{source.stem}.engine", chosen, cache)]
        return [EngineSpec(source, out / f"{source.stem}.engine", chosen, max_batch=max_batch, timing_cache=cache)]
    from latentcast.bundle import open_bundle

    bundle = open_bundle(source)
    cache = (out or bundle.root) / TIMING_CACHE
    specs = []
    for name in bundle.models:
        for each in PRECISIONS if precision == "auto" else (precision,):
            onnx_path = bundle.encoder(name, int8=each == "int8")
            engine = (out / name if out else onnx_path.parent) / onnx_path.with_suffix(".engine").name
            specs.append(EngineSpec(onnx_path, engine, each, max_batch=max_batch, timing_cache=cache))
    if bundle.has_landmark_onnx and landmarks:
        specs += landmark_specs(bundle, out, precision, cache)
    return specs


LANDMARK_MAX_BATCH = 2  # both hands in one call; every other landmark model is fixed at batch 1


def landmark_specs(bundle, out: Path | None, precision: str, cache: Path) -> list[EngineSpec]:
    """The bundle's landmark models: FP16 from each FP32 ONNX, INT8 from each INT8 QDQ copy (models shipped
    FP32 only get no INT8 engine: INT8 without Q/DQ would need TensorRT's deprecated implicit calibration)."""
    specs = []
    for name in bundle.manifest["landmark_onnx"]["models"]:
        for each in PRECISIONS if precision == "auto" else (precision,):
            onnx_path = bundle.landmark_onnx(name, int8=each == "int8")
            if each == "int8" and not onnx_path.name.endswith(".int8.onnx"):
                continue
            engine = (out / "landmarks" if out else onnx_path.parent) / onnx_path.with_suffix(".engine").name
            specs.append(image_model_spec(onnx_path, engine, each, cache))
    return specs


def image_model_spec(onnx_path: Path, engine: Path, precision: str, cache: Path | None) -> EngineSpec:
    """A spec for a one-input model of any shape (the landmark models): fixed shape, or a batch profile of
    1..LANDMARK_MAX_BATCH (opt: both hands) when the graph's batch axis is symbolic."""
    import onnx

    graph_input = onnx.load(str(onnx_path), load_external_data=False).graph.input[0]
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    dynamic = not dims[0]
    top = LANDMARK_MAX_BATCH if dynamic else 1
    return EngineSpec(
        onnx_path,
        engine,
        precision,
        min_batch=1,
        opt_batch=top,
        max_batch=top,
        timing_cache=cache,
        input_name=graph_input.name,
        sample_shape=tuple(dims[1:]),
        dynamic_batch=dynamic,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.tensorrt", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="bundle directory/.tar.gz, or one encoder or landmark .onnx")
    parser.add_argument("--out", type=Path, help="folder for engines, logs, timing cache (default: beside the ONNX)")
    parser.add_argument(
        "--precision",
        choices=[*PRECISIONS, "auto"],
        default="auto",
        help="auto: both for a bundle, by graph for a file",
    )
    parser.add_argument("--max_batch", type=int, default=4, help="largest batch of the optimisation profile")
    parser.add_argument("--no_landmarks", action="store_true", help="only the encoders, not the landmark models")
    args = parser.parse_args(argv)
    specs = specs_for(args.source, args.out, args.precision, args.max_batch, landmarks=not args.no_landmarks)
    missing = tensorrt_missing()
    if missing:
        for spec in specs:  # still useful: what to run where TensorRT exists
            print(f"equivalent: {trtexec_command(spec)}")
        raise UserError(missing)
    reports = []
    for spec in specs:
        report = build_engine(spec)
        reports.append(report)
        print(f"built {report['engine']} ({report['precision']}, {report['bytes']} bytes, {report['build_seconds']} s)")
        print(f"equivalent: {report['trtexec']}")
    summary = specs[0].timing_cache.parent / "engines.json"
    summary.write_text(json.dumps(reports, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
