"""Build and verify the deploy bundle: ONNX (FP32 + INT8), landmark models, config, model cards, manifest.

    python -m export.bundle build --gesture runs/models/gesture --expression runs/models/expression \
        --out runs/bundles                        # -> runs/bundles/latentcast-bundle-<version>{/,.tar.gz}
    python -m export.bundle verify runs/bundles/latentcast-bundle-<version>.tar.gz

Per model: export encoder and decoder (parity vs PyTorch on the calibration rows), quantize the
encoder to symmetric QDQ INT8 calibrated on real features, record INT8/FP32 class agreement on those
rows. The manifest holds the sha256 of every file; `latentcast.bundle` (torch-free) verifies it on
the device. Layout and formats: docs/EXPORT.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import shutil
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calibration import sets as calib_sets
from edge.landmarks import FACE_MODEL_KEY, HAND_MODEL_KEY
from export import landmark_models
from export import onnx as onnx_export
from export.quantize import METHODS, qdq_summary, quantize_encoder
from latentcast import bundle as bundle_reader
from latentcast import open_set, signing
from latentcast.assets import resolve, sha256_of
from latentcast.errors import UserError, run_cli
from latentcast.features import FEATURE_SPEC_VERSION, check_feature_spec
from latentcast.inference import EncoderSession

# bundle path -> asset key: the very landmark models the edge's trackers load
LANDMARK_ASSETS = {
    bundle_reader.LANDMARK_FILES["face"]: FACE_MODEL_KEY,
    bundle_reader.LANDMARK_FILES["hand"]: HAND_MODEL_KEY,
}

log = logging.getLogger(__name__)


def tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    import latentcast

    return {
        "python": platform.python_version(),
        "latentcast": latentcast.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnx_opset": str(onnx_export.OPSET),
    }


def default_calibration(name: str, card: dict, rows: int) -> calib_sets.CalibrationSet:
    """Real rows for a model without an explicit --calib_*: the hand CSV training split for hand models,
    the face photos and the recipe built on them for face models."""
    if card.get("feature") == "hand" or name == "gesture":
        seed = int(card.get("data", {}).get("split_seed", 0))
        return calib_sets.hand_set("baron105", rows, seed)
    if card.get("feature") == "face" or name == "expression":
        return calib_sets.face_set(rows)
    raise UserError(
        f"no default calibration rows for the {name} model: build a set of real face features "
        f"(python -m calibration.sets ...) and pass --calib_{name} SET.npz"
    )


def class_agreement(fp32: Path, int8: Path, features: np.ndarray) -> dict:
    """Share of rows where INT8 and FP32 pick the same class, and the latent RMSE between them."""
    y32, z32 = EncoderSession(fp32, providers=["cpu"])(features)
    y8, z8 = EncoderSession(int8, providers=["cpu"])(features)
    return {
        "rows": len(features),
        "class_agreement": float(np.mean(y32.argmax(1) == y8.argmax(1))),
        "z_rmse": float(np.sqrt(np.mean((z32 - z8) ** 2))),
    }


def add_model(
    root: Path, name: str, model_dir: Path, calib: calib_sets.CalibrationSet, method: str, per_channel: bool = True
) -> dict:
    """models/<name>/: encoder (FP32, INT8), decoder, model card, calibration provenance; returns its manifest entry."""
    out = root / "models" / name
    parity = onnx_export.export_model(model_dir, out, features=calib.features)
    card_path = out / onnx_export.MODEL_CARD
    if not card_path.is_file():
        raise UserError(f"{model_dir} has no {onnx_export.MODEL_CARD}: train with python -m aae.gestures/expressions")
    card = json.loads(card_path.read_text())
    open_set_halves = _open_set_halves(name, card)
    int8 = quantize_encoder(
        out / onnx_export.ENCODER_FILE, out / "encoder.int8.onnx", calib.features, method, per_channel
    )
    provenance = {**calib.provenance, "method": method, "per_channel": per_channel}
    (out / "calibration.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return {
        "classes": card.get("classes"),
        "input_dim": card.get("input_dim"),
        "n_classes": card.get("n_classes"),
        "code_dim": card.get("code_dim"),
        "feature_spec_version": card.get("feature_spec_version"),
        "onnx_parity": parity,
        "open_set_halves": open_set_halves,
        "int8": {
            "method": method,
            "per_channel": per_channel,
            "qdq": qdq_summary(int8),
            "calibration_rows": len(calib.features),
            "on_calibration_rows": class_agreement(out / onnx_export.ENCODER_FILE, int8, calib.features),
        },
    }


def _open_set_halves(name: str, card: dict) -> list[str]:
    """The halves of the card's open-set rule the edge will apply; a malformed rule fails the build, not the edge."""
    try:
        rule = open_set.rule_from_block(card.get("open_set"), need_recon=True)
    except ValueError as exc:
        raise UserError(f"{name} model card: {exc}: retrain the model") from None
    if rule is None:
        return []
    halves = ["confidence"]
    halves += ["distance"] if rule.gaussians is not None else []
    halves += ["reconstruction"] if rule.max_recon_error is not None else []
    return halves


def add_landmark_onnx(root: Path, int8: bool = True, videos: Sequence[Path] = ()) -> dict:
    """landmarks/: the converted landmark models (FP32, INT8 where it pays, calibrated also on `videos`), the
    canonical face and the parity report, from export.landmark_models' cache; returns the manifest entry."""
    source = landmark_models.ensure_landmark_export(int8, videos)
    folder = root / "landmarks"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in source.iterdir() if p.is_file()):
        shutil.copyfile(path, folder / path.name)
    parity = json.loads((folder / landmark_models.PARITY).read_text())
    models = {}
    for model in landmark_models.MODELS:
        has_int8 = (folder / model.int8_name).is_file()
        entry = {
            "fp32": f"landmarks/{model.onnx_name}",
            "int8": f"landmarks/{model.int8_name}" if has_int8 else None,
            "onnx_vs_tflite_max_abs": parity["fp32_vs_tflite"][model.name]["max_abs"],
        }
        if has_int8:
            entry["int8_vs_fp32"] = parity["int8_vs_fp32"][model.name]["task"]
        else:
            entry["fp32_only"] = model.fp32_only_why if int8 else "bundle built without INT8 landmark models"
        models[model.name] = entry
    return {"models": models, "geometry": f"landmarks/{landmark_models.GEOMETRY_FILE}"}


def config_text(version: str, models: list[str], landmark_onnx: dict | None = None) -> str:
    """config.toml: which files the edge and renderer load, relative to the bundle root."""
    lines = [
        "# latentcast bundle: paths are relative to this file's folder.",
        "[bundle]",
        f'version = "{version}"',
        "",
        "[landmarks]",
        *(f'{part} = "{rel}"' for part, rel in bundle_reader.LANDMARK_FILES.items()),
    ]
    if landmark_onnx:
        lines += ["", "[landmark_onnx]", f'geometry = "{landmark_onnx["geometry"]}"']
        for name, entry in landmark_onnx["models"].items():
            lines.append(f'{name} = "{entry["fp32"]}"')
            if entry["int8"]:
                lines.append(f'{name}_int8 = "{entry["int8"]}"')
    for name in models:
        lines += [
            "",
            f"[models.{name}]",
            f'encoder = "models/{name}/encoder.onnx"',
            f'encoder_int8 = "models/{name}/encoder.int8.onnx"',
            f'decoder = "models/{name}/decoder.onnx"',
            f'card = "models/{name}/model_card.json"',
        ]
    return "\n".join(lines) + "\n"


def build(
    out_dir: str | Path,
    models: dict[str, Path],
    calibration: dict[str, calib_sets.CalibrationSet] | None = None,
    method: str = "minmax",
    version: str | None = None,
    calib_rows: int = calib_sets.DEFAULT_ROWS,
    per_channel: bool = True,
    sign_key: Path | None = None,
    landmark_onnx: bool = True,
    landmark_videos: Sequence[Path] = (),
) -> tuple[Path, Path]:
    """Write `<out>/latentcast-bundle-<version>/` and its `.tar.gz`; returns (directory, tarball).

    `landmark_onnx` adds the edge's own landmark models (export.landmark_models: converted once per
    .task, then cached); without them the bundle still runs the `mediapipe` landmark backend.
    `landmark_videos`: the user's own recordings, added to the landmark models' INT8 calibration crops.

    With `sign_key` (from `python -m export.sign keygen`) the manifest is signed (`signature.json`).
    """
    unknown = set(models) - set(bundle_reader.MODEL_NAMES)
    if not models or unknown:
        raise UserError(f"give models named {' and/or '.join(bundle_reader.MODEL_NAMES)} (got {sorted(models)})")
    if sign_key is not None:
        signing.load_secret(sign_key)  # a missing or wrong key fails now, not after the export
    version = version or dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d-%H%M%S")
    root = Path(out_dir) / f"latentcast-bundle-{version}"
    if root.exists():
        raise UserError(f"{root} already exists: pass another --version or remove it")
    spec = FEATURE_SPEC_VERSION
    calibration = calibration or {}
    entries = {}
    try:
        for name, model_dir in models.items():
            _, card = onnx_export.load_model(model_dir)
            check_feature_spec(card.get("feature_spec_version"), f"{name} model {model_dir}", "retrain it", spec)
            calib = calibration.get(name) or default_calibration(name, card, calib_rows)
            entries[name] = add_model(root, name, Path(model_dir), calib, method, per_channel)
        landmarks = {}
        for rel, key in LANDMARK_ASSETS.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resolve(key), root / rel)
            landmarks[rel] = {"asset": key, "sha256": sha256_of(root / rel)}
        onnx_landmarks = add_landmark_onnx(root, videos=landmark_videos) if landmark_onnx else None
        (root / "config.toml").write_text(config_text(version, sorted(entries), onnx_landmarks))
        manifest = {
            "format": bundle_reader.FORMAT,
            "format_version": bundle_reader.FORMAT_VERSION,
            "version": version,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "feature_spec_version": spec,
            "tools": tool_versions(),
            "models": entries,
            "landmarks": landmarks,
            **({bundle_reader.LANDMARK_ONNX: onnx_landmarks} if onnx_landmarks else {}),
            "files": bundle_reader.file_entries(root),
        }
        (root / bundle_reader.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if sign_key is not None:
            signing.sign_manifest(root, sign_key, bundle_reader.MANIFEST)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # never leave a half-built bundle that looks like a bundle
        raise
    tarball = root.with_name(root.name + ".tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname=root.name, filter=_plain_member)
    # What we ship must pass the device's own check (its trust list is the device's business, not the builder's).
    bundle_reader.open_bundle(root, trust=signing.TrustPolicy(allow_unsigned=True))
    return root, tarball


def _plain_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.bundle", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("build", help="export, quantize and pack trained models")
    make.add_argument("--gesture", type=Path, help="gesture model folder (model.pt + model_card.json)")
    make.add_argument("--expression", type=Path, help="expression model folder")
    make.add_argument("--calib_gesture", type=Path, help="calibration set .npz (default: baron105 training rows)")
    make.add_argument("--calib_expression", type=Path, help="calibration set .npz of real face features")
    make.add_argument("--method", choices=METHODS, default="minmax", help="INT8 calibration method")
    make.add_argument("--calib_rows", type=int, default=calib_sets.DEFAULT_ROWS)
    make.add_argument(
        "--per_tensor", action="store_true", help="one weight scale per layer (default: per output channel)"
    )
    make.add_argument("--version", help="bundle version (default: UTC date and time)")
    make.add_argument("--out", type=Path, required=True, help="folder for the bundle directory and tarball")
    make.add_argument("--sign", type=Path, metavar="KEY", help="sign with this NAME.ed25519 (python -m export.sign)")
    make.add_argument(
        "--no_landmark_onnx", action="store_true", help="leave out the ONNX landmark models (mediapipe backend only)"
    )
    make.add_argument(
        "--landmark_video", type=Path, action="append", default=[], help="your recording, for landmark INT8 crops"
    )
    check = sub.add_parser("verify", help="check every file of a bundle against its manifest")
    check.add_argument("bundle", type=Path, help="bundle directory or .tar.gz")
    args = parser.parse_args(argv)
    if args.action == "verify":
        return bundle_reader.main(["verify", str(args.bundle)])
    models = {name: path for name in bundle_reader.MODEL_NAMES if (path := getattr(args, name)) is not None}
    calibration = {
        name: calib_sets.load_set(path)
        for name in bundle_reader.MODEL_NAMES
        if (path := getattr(args, f"calib_{name}")) is not None
    }
    root, tarball = build(
        args.out,
        models,
        calibration,
        args.method,
        args.version,
        args.calib_rows,
        per_channel=not args.per_tensor,
        sign_key=args.sign,
        landmark_onnx=not args.no_landmark_onnx,
        landmark_videos=args.landmark_video,
    )
    manifest = json.loads((root / bundle_reader.MANIFEST).read_text())
    for name, entry in manifest["models"].items():
        agree = entry["int8"]["on_calibration_rows"]
        worst = max(v for k, v in entry["onnx_parity"].items() if k.endswith("_max_abs"))
        print(
            f"{name}: ONNX vs PyTorch max abs {worst:.2e}, "
            f"INT8 agrees with FP32 on {agree['class_agreement']:.2%} of {agree['rows']} calibration rows"
        )
    for name, entry in manifest.get(bundle_reader.LANDMARK_ONNX, {}).get("models", {}).items():
        int8 = entry.get("int8_vs_fp32")
        note = f"INT8 landmark median error {int8['landmark_median_error_pct']:.2f} %" if int8 else "FP32 only"
        print(f"landmarks/{name}: ONNX vs TFLite max abs {entry['onnx_vs_tflite_max_abs']:.1e}, {note}")
    print(f"wrote {root}/ ({len(manifest['files'])} files) and {tarball}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
