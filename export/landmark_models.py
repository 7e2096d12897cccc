"""MediaPipe's landmark models as ONNX: unzip the two `.task` files, convert each TFLite model, check parity.

The edge's `onnx` landmark backend runs these five models itself (detection, landmarks, blendshapes)
so they can be quantized and compiled to TensorRT like the encoders. The TFLite -> ONNX step needs
tensorflow-cpu + tf2onnx, which live in their own venv (`.venv-convert`, made by scripts/setup.sh
from requirements/convert.txt) and run here as a subprocess (export/landmark_convert_worker.py):
TensorFlow never enters .venv, let alone the device.

    python -m export.landmark_models convert --out runs/landmarks     # convert + parity report
    ensure_landmark_onnx()  # {name: Path}, converted once per .task sha256 into the asset cache

Layout and I/O of every model: docs/EXPORT.md ("Landmark models").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.landmarks import FACE_MODEL_KEY, HAND_MODEL_KEY
from latentcast.assets import cache_dir as asset_cache_dir
from latentcast.assets import resolve, sha256_of
from latentcast.errors import UserError, run_cli

log = logging.getLogger(__name__)

OPSET = 17
CONVERT_PYTHON_ENV = "LATENTCAST_CONVERT_PYTHON"  # a python with requirements/convert.txt (default .venv-convert)
REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("landmark_convert_worker.py")
GEOMETRY = "geometry_pipeline_metadata_landmarks.binarypb"  # canonical face for the transformation matrix
REPORT = "landmark_models.json"
REVISION = 1  # bump when the conversion itself changes: the cache key includes it
TASK_KEYS = {"face": FACE_MODEL_KEY, "hand": HAND_MODEL_KEY}


@dataclass(frozen=True)
class LandmarkModel:
    """One TFLite model inside a `.task`: what it must look like and how its ONNX copy is shaped."""

    name: str  # member stem inside the .task and the ONNX file stem
    task: str  # "face" or "hand"
    input_shape: tuple[int, ...]  # without the batch axis
    input_range: tuple[float, float] | None  # pixel value range the model expects (None: not an image)
    dynamic_batch: bool = False  # True: ONNX batch axis "batch" (both hands in one call), else fixed 1

    @property
    def member(self) -> str:
        return f"{self.name}.tflite"

    @property
    def onnx_name(self) -> str:
        return f"{self.name}.onnx"


MODELS = (
    LandmarkModel("hand_detector", "hand", (192, 192, 3), (0.0, 1.0)),
    LandmarkModel("hand_landmarks_detector", "hand", (224, 224, 3), (0.0, 1.0), dynamic_batch=True),
    LandmarkModel("face_detector", "face", (128, 128, 3), (-1.0, 1.0)),
    LandmarkModel("face_landmarks_detector", "face", (256, 256, 3), (0.0, 1.0)),
    LandmarkModel("face_blendshapes", "face", (146, 2), None),
)
MODEL_BY_NAME = {m.name: m for m in MODELS}


def convert_python() -> Path:
    """The converter venv's interpreter; a clear error when scripts/setup.sh has not made it."""
    given = os.environ.get(CONVERT_PYTHON_ENV)
    python = Path(given) if given else REPO / ".venv-convert" / "bin" / "python"
    if not python.is_file():
        raise UserError(
            f"no landmark converter at {python}: run `bash scripts/setup.sh` (it creates .venv-convert "
            f"from requirements/convert.txt) or set {CONVERT_PYTHON_ENV}"
        )
    return python


def task_paths(face_task: str | Path | None = None, hand_task: str | Path | None = None) -> dict[str, Path]:
    """The two .task files, through the asset resolver unless given explicitly (checksum-verified there)."""
    given = {"face": face_task, "hand": hand_task}
    return {task: Path(given[task]) if given[task] else resolve(key) for task, key in TASK_KEYS.items()}


def extract(tasks: dict[str, Path], dest: Path) -> dict[str, Path]:
    """Unzip the expected members of each .task into `dest`; {member stem: path}. A missing member is a UserError."""
    out = {}
    wanted = {task: [m.member for m in MODELS if m.task == task] for task in TASK_KEYS}
    wanted["face"].append(GEOMETRY)
    for task, path in tasks.items():
        if not path.is_file():
            raise UserError(f"{path} does not exist: give the MediaPipe {task}_landmarker.task")
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise UserError(f"{path} is not a MediaPipe .task (not a zip): give {task}_landmarker.task") from None
        with archive:
            names = set(archive.namelist())
            for member in wanted[task]:
                if member not in names:
                    raise UserError(
                        f"{path} has no {member} (it has {', '.join(sorted(names))}): "
                        f"give the MediaPipe {task}_landmarker.task"
                    )
                target = dest / member
                target.write_bytes(archive.read(member))
                out[Path(member).stem if member != GEOMETRY else "geometry"] = target
    return out


def _worker(args: list[str]) -> None:
    """Run the converter worker; its one-line `ERROR:` becomes a UserError, anything else a RuntimeError."""
    proc = subprocess.run([str(convert_python()), "-I", str(WORKER), *args], capture_output=True, text=True)
    if proc.returncode == 0:
        return
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR: ")]
    if proc.returncode == 2 and errors:
        raise UserError(errors[-1].removeprefix("ERROR: "))
    raise RuntimeError(f"landmark converter failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def _set_batch(path: Path, model: LandmarkModel) -> None:
    """Batch axis of the graph's inputs and outputs: "batch" for dynamic_batch models, else 1.

    tf2onnx keeps TFLite's shape signature (face landmarks come out with an unnamed dynamic batch,
    the others with 1); TensorRT and the edge want one decided shape. Intermediate shapes are dropped
    so onnxruntime infers them again from the new input.
    """
    import onnx

    graph = onnx.load(str(path))
    for value in [*graph.graph.input, *graph.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) < 2:  # blendshapes: a [52] output has no batch axis
            continue
        dims[0].Clear()
        if model.dynamic_batch:
            dims[0].dim_param = "batch"
        else:
            dims[0].dim_value = 1
    del graph.graph.value_info[:]
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def io_summary(path: Path) -> dict:
    """Input and output names and shapes of an ONNX file (the edge's contract with the export)."""
    import onnx

    graph = onnx.load(str(path)).graph

    def shapes(values):
        return [
            {"name": v.name, "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]}
            for v in values
        ]

    return {"inputs": shapes(graph.input), "outputs": shapes(graph.output)}


def check_batch(path: Path, model: LandmarkModel, batch: int = 2) -> float:
    """For a dynamic-batch model: max abs difference between one batched call and per-sample calls."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, *model.input_shape), dtype=np.float32)
    together = session.run(None, {name: x})
    apart = [session.run(None, {name: x[i : i + 1]}) for i in range(batch)]
    if any(len(out) != batch for out in together):
        raise RuntimeError(f"{path.name}: a batch of {batch} gave outputs {[o.shape for o in together]}")
    return max(
        float(np.max(np.abs(together[k] - np.concatenate([a[k] for a in apart])))) for k in range(len(together))
    )


def convert(out_dir: str | Path, face_task: str | Path | None = None, hand_task: str | Path | None = None) -> dict:
    """Write the five ONNX models and the geometry metadata to `out_dir`; returns the report (also REPORT there)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = task_paths(face_task, hand_task)
    with tempfile.TemporaryDirectory() as scratch:
        members = extract(tasks, Path(scratch))
        job = {
            "opset": OPSET,
            "versions_out": str(Path(scratch) / "versions.json"),
            "models": [
                {
                    "name": m.name,
                    "tflite": str(members[m.name]),
                    "onnx": str(out / m.onnx_name),
                    "input_shape": list(m.input_shape),
                }
                for m in MODELS
            ],
        }
        (Path(scratch) / "job.json").write_text(json.dumps(job))
        _worker(["convert", "--job", str(Path(scratch) / "job.json")])
        versions = json.loads(Path(job["versions_out"]).read_text())
        shutil.copyfile(members["geometry"], out / GEOMETRY)
    models = {}
    for m in MODELS:
        _set_batch(out / m.onnx_name, m)
        entry = {
            "task": m.task,
            "file": m.onnx_name,
            "sha256": sha256_of(out / m.onnx_name),
            "input_range": list(m.input_range) if m.input_range else None,
            "batch": "dynamic" if m.dynamic_batch else 1,
            **io_summary(out / m.onnx_name),
        }
        if m.dynamic_batch:
            entry["batch2_vs_batch1_max_abs"] = check_batch(out / m.onnx_name, m)
        models[m.name] = entry
    report = {
        "revision": REVISION,
        "tasks": {task: {"file": path.name, "sha256": sha256_of(path)} for task, path in tasks.items()},
        "tools": versions,
        "geometry": {"file": GEOMETRY, "sha256": sha256_of(out / GEOMETRY)},
        "models": models,
    }
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def cache_key(tasks: dict[str, Path]) -> str:
    """Folder name in the cache: the .task files' sha256 and the conversion revision."""
    digest = hashlib.sha256(f"rev{REVISION}".encode())
    for task in sorted(tasks):
        digest.update(sha256_of(tasks[task]).encode())
    return digest.hexdigest()[:16]


def model_files(folder: Path) -> dict[str, Path]:
    """{model name: ONNX path, "geometry": .binarypb} of a converted folder."""
    return {**{m.name: folder / m.onnx_name for m in MODELS}, "geometry": folder / GEOMETRY}


def ensure_landmark_onnx(
    cache_dir: str | Path | None = None, face_task: str | Path | None = None, hand_task: str | Path | None = None
) -> dict[str, Path]:
    """The converted models, converting once per pair of .task files (default cache: <asset cache>/landmark_onnx)."""
    tasks = task_paths(face_task, hand_task)
    root = Path(cache_dir) if cache_dir else asset_cache_dir() / "landmark_onnx"
    folder = root / cache_key(tasks)
    files = model_files(folder)
    if (folder / REPORT).is_file() and all(p.is_file() for p in files.values()):
        return files
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=root))
    try:
        convert(staging, tasks["face"], tasks["hand"])
        try:
            staging.rename(folder)  # atomic: a half-converted folder is never seen under its final name
        except OSError:  # another process finished first
            if not (folder / REPORT).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("converted landmark models into %s", folder)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.landmark_models", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("convert", help="TFLite -> ONNX for the five landmark models")
    make.add_argument("--out", type=Path, required=True, help="folder for the ONNX files and landmark_models.json")
    make.add_argument("--face_task", type=Path, help="face_landmarker.task (default: the asset resolver)")
    make.add_argument("--hand_task", type=Path, help="hand_landmarker.task (default: the asset resolver)")
    args = parser.parse_args(argv)
    report = convert(args.out, args.face_task, args.hand_task)
    for name, entry in report["models"].items():
        shapes = ", ".join(f"{io['name']} {io['shape']}" for io in entry["inputs"])
        batched = entry.get("batch2_vs_batch1_max_abs")
        extra = f", batch 2 vs 1 max abs {batched:.1e}" if batched is not None else ""
        print(f"{name}: {shapes}{extra}")
    print(f"wrote {args.out}/ ({len(report['models'])} ONNX models, {GEOMETRY}, {REPORT})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
