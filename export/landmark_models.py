"""MediaPipe's landmark models as ONNX: unzip the two `.task` files, convert each TFLite model, check parity.

The edge's `onnx` landmark backend runs these five models itself (detection, landmarks, blendshapes)
so they can be quantized and compiled to TensorRT like the encoders. The TFLite -> ONNX step needs
tensorflow-cpu + tf2onnx, which live in their own venv (`.venv-convert`, made by scripts/setup.sh
from requirements/convert.txt) and run here as a subprocess (export/landmark_convert_worker.py):
TensorFlow never enters .venv, let alone the device.

    python -m export.landmark_models convert --out runs/landmarks   # TFLite -> ONNX, shapes checked
    python -m export.landmark_models export --out runs/landmarks    # + INT8, parity on real crops (JSON)
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.landmarks import FACE_MODEL_KEY, HAND_MODEL_KEY
from latentcast.assets import cache_dir as asset_cache_dir
from latentcast.assets import resolve, sha256_of
from latentcast.errors import UserError, run_cli
from latentcast.landmark_models import GEOMETRY_FILE, LANDMARK_MODELS, LandmarkModel

log = logging.getLogger(__name__)

OPSET = 17
CONVERT_PYTHON_ENV = "LATENTCAST_CONVERT_PYTHON"  # a python with requirements/convert.txt (default .venv-convert)
REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("landmark_convert_worker.py")
REPORT = "landmark_models.json"
REVISION = 1  # bump when the conversion itself changes: the cache key includes it
TASK_KEYS = {"face": FACE_MODEL_KEY, "hand": HAND_MODEL_KEY}


@dataclass(frozen=True)
class ExportedModel(LandmarkModel):
    """latentcast's model contract plus how the export quantizes it."""

    int8_method: str | None = "minmax"  # calibration method of its INT8 copy; None: shipped FP32 only
    int8_percentile: float = 99.999  # for int8_method "percentile"
    fp32_only_why: str = ""  # why there is no INT8 copy (reported and written to the manifest)
    int8_equalize: float | None = None  # channel equalization strength before quantizing (export.landmark_int8)
    int8_float_sides: tuple[int, ...] = ()  # feature-map sides whose layers stay float (besides the heads)


# INT8 choices, measured on held-out real crops (docs/EXPORT.md, "Landmark models"). Detection runs in a
# background worker off the per-frame path, so INT8 would buy little there, and it moved the best
# anchor's score by up to 0.6: FP32. The blendshape model missed the 0.02 MAE goal in INT8 (0.027) and
# costs 2 ms: FP32. The two landmark models: per-layer sensitivity (export.landmark_int8) put almost all
# of the error in the per-tensor scales of unevenly ranged channels (equalized first, face) and in the
# highest-resolution stage (hand 112 and 56, face 128) and the face's 2x2 blocks: those stay float.
_DETECTOR_FP32 = "detection runs off the per-frame path; INT8 moved the best anchor's score by up to 0.6"
INT8_CHOICES = {
    "hand_detector": {"int8_method": None, "fp32_only_why": _DETECTOR_FP32},
    "hand_landmarks_detector": {"int8_method": "percentile", "int8_percentile": 99.99, "int8_float_sides": (112, 56)},
    "face_detector": {"int8_method": None, "fp32_only_why": _DETECTOR_FP32},
    "face_landmarks_detector": {
        "int8_method": "percentile",
        "int8_percentile": 99.99,
        "int8_equalize": 1.0,
        "int8_float_sides": (128, 2),
    },
    "face_blendshapes": {
        "int8_method": None,
        "fp32_only_why": "INT8 missed the 0.02 blendshape MAE goal (0.027, worst 0.46); 2 ms in FP32",
    },
}
MODELS = tuple(ExportedModel(**asdict(m), **INT8_CHOICES[m.name]) for m in LANDMARK_MODELS)
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
    wanted["face"].append(GEOMETRY_FILE)
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
                out[Path(member).stem if member != GEOMETRY_FILE else "geometry"] = target
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
        shutil.copyfile(members["geometry"], out / GEOMETRY_FILE)
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
        "geometry": {"file": GEOMETRY_FILE, "sha256": sha256_of(out / GEOMETRY_FILE)},
        "models": models,
    }
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def tflite_outputs(inputs: dict[str, np.ndarray], tasks: dict[str, Path]) -> dict[str, dict[str, np.ndarray]]:
    """{model: {output name: [N, ...]}}: the TFLite originals (from the .task files) on `inputs`, one call a sample."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        members = extract(tasks, folder)
        runs = []
        for name, x in inputs.items():
            given, made = folder / f"{name}.in.npz", folder / f"{name}.out.npz"
            np.savez(given, x=x)
            runs.append({"tflite": str(members[name]), "inputs": str(given), "out": str(made)})
        (folder / "runs.json").write_text(json.dumps({"runs": runs}))
        _worker(["run", "--job", str(folder / "runs.json")])
        return {name: dict(np.load(folder / f"{name}.out.npz")) for name in inputs}


def onnx_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """{output name: [N, ...]} of an ONNX model on `x`, one batch-1 call a sample (as TFLite is run)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    runs = [session.run(None, {name: sample[None]}) for sample in x.astype(np.float32)]
    return {out: np.stack([r[i] for r in runs]) for i, out in enumerate(names)}


def differences(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per output: max and mean abs difference, and the reference's own scale (max abs), matched by name."""
    if set(reference) != set(candidate):
        raise RuntimeError(f"outputs differ: reference {sorted(reference)}, candidate {sorted(candidate)}")
    out = {}
    for key, ref in reference.items():
        ref2, got2 = ref.reshape(len(ref), -1), candidate[key].reshape(len(ref), -1)
        diff = np.abs(ref2.astype(np.float64) - got2)
        out[key] = {
            "max_abs": float(diff.max()),
            "mean_abs": float(diff.mean()),
            "ref_max_abs": float(np.abs(ref2).max()),
        }
    return out


def parity(files: dict[str, Path], inputs: dict[str, np.ndarray], tasks: dict[str, Path] | None = None) -> dict:
    """ONNX vs the TFLite original of every model in `inputs`, on those (real) inputs."""
    reference = tflite_outputs(inputs, tasks or task_paths())
    report = {}
    for name, x in inputs.items():
        outputs = differences(reference[name], onnx_outputs(files[name], x))
        report[name] = {"inputs": len(x), "max_abs": max(o["max_abs"] for o in outputs.values()), "outputs": outputs}
    return report


HEAD_PASS_THROUGH = {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Sigmoid", "Concat", "Flatten"}


def head_nodes(path: Path) -> list[str]:
    """The Conv/Gemm layers that make each output, through reshapes, concats and sigmoids: kept float in INT8."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    found, seen, stack = [], set(), [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            found.append(node.name)
        elif node.op_type in HEAD_PASS_THROUGH:
            stack.extend(node.input)
    return found


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def task_agreement(name: str, fp32: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict:
    """What the edge reads from each model, compared: landmark error as % of the crop side, flag agreement,
    the detectors' best anchor and its score (raw max abs differences of logits say little on their own)."""
    model = MODEL_BY_NAME[name]
    if name.endswith("_landmarks_detector"):
        points = "Identity"
        presence = "Identity_1"
        side = model.input_shape[0]
        a = fp32[points].reshape(len(fp32[points]), -1, 3)[..., :2]
        b = other[points].reshape(len(other[points]), -1, 3)[..., :2]
        flag_a, flag_b = fp32[presence].reshape(-1), other[presence].reshape(-1)
        if name == "face_landmarks_detector":  # a logit there; the hand model's is already a probability
            flag_a, flag_b = _sigmoid(flag_a), _sigmoid(flag_b)
        # the units: hand size (wrist to middle-finger MCP), inter-ocular (outer eye corners) distance
        i, j = (0, 9) if name == "hand_landmarks_detector" else (33, 263)
        scale = np.linalg.norm(a[:, i] - a[:, j], axis=-1)[:, None]
        error = np.linalg.norm(a - b, axis=-1) / scale * 100
        out = {
            "landmark_median_error_pct": float(np.median(error)),
            "landmark_p95_error_pct": float(np.percentile(error, 95)),
            "landmark_mean_error_pct_of_crop": float(np.linalg.norm(a - b, axis=-1).mean() / side * 100),
            "presence_agreement": float(np.mean((flag_a > 0.5) == (flag_b > 0.5))),
            "presence_max_abs": float(np.abs(flag_a - flag_b).max()),
        }
        if name == "hand_landmarks_detector":
            out["handedness_agreement"] = float(np.mean((fp32["Identity_2"] > 0.5) == (other["Identity_2"] > 0.5)))
        return out
    if name.endswith("_detector"):
        boxes, scores = ("Identity", "Identity_1") if name == "hand_detector" else ("regressors", "classificators")
        sa, sb = fp32[scores].reshape(len(fp32[scores]), -1), other[scores].reshape(len(other[scores]), -1)
        best_a, best_b = sa.argmax(1), sb.argmax(1)
        rows = np.arange(len(sa))
        ra = fp32[boxes].reshape(len(sa), sa.shape[1], -1)[rows, best_a]
        rb = other[boxes].reshape(len(sa), sa.shape[1], -1)[rows, best_a]
        return {
            "best_anchor_agreement": float(np.mean(best_a == best_b)),
            "best_score_max_abs": float(np.abs(_sigmoid(sa[rows, best_a]) - _sigmoid(sb[rows, best_a])).max()),
            "best_box_mean_abs_px": float(np.abs(ra - rb).mean()),
        }
    scores_a, scores_b = next(iter(fp32.values())), next(iter(other.values()))
    return {"blendshape_mae": float(np.abs(scores_a - scores_b).mean())}


def quantize(files: dict[str, Path], calibration: dict[str, np.ndarray], out_dir: Path) -> dict[str, Path]:
    """Symmetric QDQ INT8 copies (export.quantize) of the models that have an int8_method, calibrated on real
    crops: channels equalized first where the model says so, its heads and `int8_float_sides` kept float."""
    import onnx

    from export.int8_recipe import PLAIN_RECIPE
    from export.landmark_int8 import equalize_channels, nodes_at_sides
    from export.quantize import quantize_encoder

    made = {}
    for model in MODELS:
        if model.int8_method is None or model.name not in calibration:
            continue
        fp32 = files[model.name]
        input_name = io_summary(fp32)["inputs"][0]["name"]
        graph = onnx.load(str(fp32))
        keep_float = head_nodes(fp32) + nodes_at_sides(graph, model.int8_float_sides)
        with tempfile.TemporaryDirectory() as scratch:
            source = fp32
            if model.int8_equalize is not None:  # the same function, with even channel ranges (exact rewrite)
                graph, _ = equalize_channels(graph, calibration[model.name], input_name, model.int8_equalize)
                source = Path(scratch) / fp32.name
                onnx.save(graph, str(source))
            made[model.name] = quantize_encoder(
                source,
                Path(out_dir) / model.int8_name,
                calibration[model.name],
                model.int8_method,
                per_channel=True,
                percentile=model.int8_percentile,
                input_name=input_name,
                float_heads=False,
                float_nodes=keep_float,
                recipe=PLAIN_RECIPE,  # the encoders' recipe is for MLPs; these conv nets have export.landmark_int8
            )
    return made


def int8_parity(files: dict[str, Path], int8: dict[str, Path], inputs: dict[str, np.ndarray]) -> dict:
    """INT8 against FP32 on held-out real inputs: raw differences per output and what the edge reads."""
    from export.quantize import qdq_summary

    report = {}
    for name, path in int8.items():
        x = inputs[name]
        ref, got = onnx_outputs(files[name], x), onnx_outputs(path, x)
        report[name] = {
            "method": MODEL_BY_NAME[name].int8_method,
            "equalize": MODEL_BY_NAME[name].int8_equalize,
            "float_sides": list(MODEL_BY_NAME[name].int8_float_sides),
            "inputs": len(x),
            "qdq": qdq_summary(path),
            "task": task_agreement(name, ref, got),
            "outputs": differences(ref, got),
        }
    return report


def cache_key(tasks: dict[str, Path]) -> str:
    """Folder name in the cache: the .task files' sha256 and the conversion revision."""
    digest = hashlib.sha256(f"rev{REVISION}".encode())
    for task in sorted(tasks):
        digest.update(sha256_of(tasks[task]).encode())
    return digest.hexdigest()[:16]


def model_files(folder: Path) -> dict[str, Path]:
    """{model name: ONNX path, "geometry": .binarypb} of a converted folder."""
    return {**{m.name: folder / m.onnx_name for m in MODELS}, "geometry": folder / GEOMETRY_FILE}


def _cached(folder: Path, make) -> Path:
    """`folder`, made once by `make(staging)`: built beside it and renamed into place (atomic, race-safe)."""
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".making-", dir=folder.parent))
    try:
        make(staging)
        try:
            staging.rename(folder)  # a half-made folder is never seen under its final name
        except OSError:  # another process finished first
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("made %s", folder)
    return folder


def _cache_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir else asset_cache_dir() / "landmark_onnx"


def ensure_landmark_onnx(
    cache_dir: str | Path | None = None, face_task: str | Path | None = None, hand_task: str | Path | None = None
) -> dict[str, Path]:
    """The converted models, converting once per pair of .task files (default cache: <asset cache>/landmark_onnx)."""
    tasks = task_paths(face_task, hand_task)
    folder = _cached(_cache_root(cache_dir) / cache_key(tasks), lambda d: convert(d, tasks["face"], tasks["hand"]))
    return model_files(folder)


PARITY = "landmark_parity.json"
DEFAULT_CLIP_FRAMES = 48  # frames of the shared clip in the crop set (plus every hand and face photo)
CROP_JITTER = 2  # moved copies of each calibration crop (calibration.landmark_crops.jittered_roi)
DEFAULT_PARITY_INPUTS = 8  # real inputs per model for the TFLite parity check


def export_landmarks(
    out_dir: str | Path,
    int8: bool = True,
    clip_frames: int = DEFAULT_CLIP_FRAMES,
    parity_inputs: int = DEFAULT_PARITY_INPUTS,
    videos: Sequence[Path] = (),
) -> dict:
    """FP32 ONNX (+ INT8) of every landmark model and the geometry file in `out_dir`, with their parity.

    The FP32 files come from the conversion cache (`ensure_landmark_onnx`). Real crops
    (calibration.landmark_crops, plus frames of the user's own `videos`, with their mirror images and
    CROP_JITTER moved copies of each crop) are split by source image (`LandmarkCrops.split`): even ones
    calibrate INT8, odd ones (never jittered) measure it. FP32 is checked against TFLite on `parity_inputs`.
    Writes landmark_models.json and landmark_parity.json beside the models; returns the parity report.
    """
    from calibration.landmark_crops import build_crops

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cached = ensure_landmark_onnx()
    for path in cached.values():
        shutil.copyfile(path, out / path.name)
    files = model_files(out)
    crops = build_crops(clip_frames, videos=videos, jitter=CROP_JITTER, mirror=True)
    report = {
        "crops": {name: len(x) for name, x in crops.inputs.items()},
        "sources": crops.sources,
        "fp32_vs_tflite": parity(files, crops.take(parity_inputs).inputs),
    }
    if int8:
        calibrate, held_out = crops.split()
        made = quantize(files, calibrate, out)
        report["int8_vs_fp32"] = int8_parity(files, made, held_out)
        report["fp32_only"] = {m.name: m.fp32_only_why for m in MODELS if m.int8_method is None}
    (out / PARITY).write_text(json.dumps(report, indent=2) + "\n")
    # last: a folder with landmark_models.json is complete (the edge's cache lookup keys on that file)
    shutil.copyfile(cached["geometry"].with_name(REPORT), out / REPORT)
    return report


def shipped_files(int8: bool = True) -> list[str]:
    """File names `ensure_landmark_export` makes (and a bundle's landmarks/ folder holds beside the .task files)."""
    names = [m.onnx_name for m in MODELS] + [m.int8_name for m in MODELS if int8 and m.int8_method]
    return sorted([*names, GEOMETRY_FILE, REPORT, PARITY])


def ensure_landmark_export(
    int8: bool = True, videos: Sequence[Path] = (), cache_dir: str | Path | None = None
) -> Path:
    """`export_landmarks` with the default settings, done once per .task pair and videos (what a bundle ships)."""
    recordings = [sha256_of(Path(v)) for v in videos]
    settings = repr((MODELS, DEFAULT_CLIP_FRAMES, CROP_JITTER, DEFAULT_PARITY_INPUTS, int8, recordings)).encode()
    key = f"{cache_key(task_paths())}-export-{hashlib.sha256(settings).hexdigest()[:8]}"  # a changed choice re-exports
    return _cached(_cache_root(cache_dir) / key, lambda d: export_landmarks(d, int8, videos=videos))


def summary_lines(report: dict) -> list[str]:
    """One line per model: FP32 vs TFLite, and INT8 vs FP32 where there is one."""
    lines = []
    for name, entry in report["fp32_vs_tflite"].items():
        line = f"{name}: ONNX vs TFLite max abs {entry['max_abs']:.1e} on {entry['inputs']} real inputs"
        q = report.get("int8_vs_fp32", {}).get(name)
        if q:
            task = ", ".join(f"{k} {v:.3g}" for k, v in q["task"].items())
            line += f"; INT8 ({q['method']}) vs FP32 on {q['inputs']} held-out: {task}"
        elif name in report.get("fp32_only", {}):
            line += f"; FP32 only ({report['fp32_only'][name]})"
        lines.append(line)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.landmark_models", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("convert", help="TFLite -> ONNX for the five landmark models")
    make.add_argument("--out", type=Path, required=True, help="folder for the ONNX files and landmark_models.json")
    make.add_argument("--face_task", type=Path, help="face_landmarker.task (default: the asset resolver)")
    make.add_argument("--hand_task", type=Path, help="hand_landmarker.task (default: the asset resolver)")
    full = sub.add_parser("export", help="FP32 + INT8 from the conversion cache, parity on real crops (JSON)")
    full.add_argument("--out", type=Path, required=True, help="folder for the models and landmark_parity.json")
    full.add_argument("--no_int8", action="store_true", help="FP32 only")
    full.add_argument("--clip_frames", type=int, default=DEFAULT_CLIP_FRAMES, help="clip frames in the crop set")
    full.add_argument("--parity_inputs", type=int, default=DEFAULT_PARITY_INPUTS, help="real inputs per model")
    full.add_argument("--video", type=Path, action="append", default=[], help="your own recording (repeatable)")
    args = parser.parse_args(argv)
    if args.action == "export":
        report = export_landmarks(args.out, not args.no_int8, args.clip_frames, args.parity_inputs, args.video)
        print("\n".join(summary_lines(report)))
        print(f"wrote {args.out}/ and {args.out / PARITY}")
        return 0
    report = convert(args.out, args.face_task, args.hand_task)
    for name, entry in report["models"].items():
        shapes = ", ".join(f"{io['name']} {io['shape']}" for io in entry["inputs"])
        batched = entry.get("batch2_vs_batch1_max_abs")
        extra = f", batch 2 vs 1 max abs {batched:.1e}" if batched is not None else ""
        print(f"{name}: {shapes}{extra}")
    print(f"wrote {args.out}/ ({len(report['models'])} ONNX models, {GEOMETRY_FILE}, {REPORT})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
