"""Export an AAE's encoder and decoder to ONNX, check them, and report parity against PyTorch.

Contract (docs/EXPORT.md): `encoder.onnx` input `features` [N, D] -> outputs `y` [N, K] (class
probabilities), `z` [N, C] (deterministic code, the mean); `decoder.onnx` inputs `y`, `z` -> output
`features` [N, D]. Batch is dynamic, the opset fixed. The legacy (TorchScript) exporter is used on
purpose: it writes one self-contained file, where the dynamo exporter needs onnxscript and writes
the weights to a separate `.onnx.data` file.

    python -m export.onnx runs/gesture --out runs/gesture/onnx
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aae.landmark_aae import CHECKPOINT, MODEL_CARD
from latentcast.errors import UserError, run_cli
from latentcast.inference import DecoderSession, EncoderSession

OPSET = 17
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
PARITY_TOLERANCE = 1e-4  # FP32 ONNX vs PyTorch, max abs difference: anything larger is an export bug

log = logging.getLogger(__name__)


class _Encoder(torch.nn.Module):
    """encode() as a plain forward, so the exporter sees the deterministic eval path only."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, z = self.model.encode(features)
        return y, z


class _Decoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(y, z)


def dims(model: torch.nn.Module) -> tuple[int, int, int]:
    """(input_dim D, n_classes K, code_dim C) from the model's AAEConfig."""
    cfg = getattr(model, "cfg", None) or getattr(model, "config", None)
    if cfg is None:
        raise UserError("the model has no AAEConfig (.cfg): export a checkpoint written by aae.model.save_checkpoint")
    return int(cfg.input_dim), int(cfg.n_classes), int(cfg.code_dim)


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, model card or {}) from a model folder (model.pt + model_card.json) or a checkpoint file."""
    from aae import model as aae_model

    path = Path(path)
    checkpoint = path / CHECKPOINT if path.is_dir() else path
    if not checkpoint.is_file():
        raise UserError(f"{path} has no checkpoint: give a folder written by aae.gestures / aae.expressions or a .pt")
    model = aae_model.load_checkpoint(checkpoint)
    model.eval()
    if not model.cfg.has_classifier:
        raise UserError(f"{checkpoint} is a {model.cfg.variant} AAE: export needs a semi-supervised one (y and z)")
    card_path = checkpoint.parent / MODEL_CARD
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return model, card


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], opset: int):
    axes = {name: {0: "batch"} for name in inputs + outputs}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter": chosen on purpose, see docstring
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    check(path)
    return path


def export_encoder(model: torch.nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    d, _, _ = dims(model)
    return _export(_Encoder(model.eval()), (torch.zeros(1, d),), Path(path), ["features"], ["y", "z"], opset)


def export_decoder(model: torch.nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    _, k, c = dims(model)
    args = (torch.full((1, k), 1.0 / k), torch.zeros(1, c))
    return _export(_Decoder(model.eval()), args, Path(path), ["y", "z"], ["features"], opset)


def check(path: str | Path) -> None:
    """onnx.checker with full shape inference, and no external data: the file must stand alone."""
    import onnx

    path = Path(path)
    onnx.checker.check_model(str(path), full_check=True)
    sidecar = path.with_name(path.name + ".data")
    if sidecar.exists():
        raise UserError(f"{path} has external weights ({sidecar.name}): re-export with the legacy exporter")


@torch.no_grad()
def parity(model: torch.nn.Module, encoder_path: Path, decoder_path: Path, features: np.ndarray) -> dict:
    """Max abs difference ONNX (onnxruntime, CPU) vs PyTorch for y, z and the decoder, over `features`."""
    model.eval()
    x = np.asarray(features, dtype=np.float32)
    y_ref, z_ref = (t.numpy() for t in model.encode(torch.from_numpy(x)))
    x_ref = model.decode(torch.from_numpy(y_ref), torch.from_numpy(z_ref)).numpy()
    encoder = EncoderSession(encoder_path, providers=["cpu"])
    decoder = DecoderSession(decoder_path, providers=["cpu"])
    y, z = encoder(x)
    x_hat = decoder(y_ref, z_ref)
    single_y, _ = encoder(x[:1])  # batch 1 and batch N through the same dynamic-batch graph
    return {
        "rows": len(x),
        "encoder_y_max_abs": float(np.abs(y - y_ref).max()),
        "encoder_z_max_abs": float(np.abs(z - z_ref).max()),
        "decoder_max_abs": float(np.abs(x_hat - x_ref).max()),
        "batch1_y_max_abs": float(np.abs(single_y - y_ref[:1]).max()),
    }


def parity_ok(report: dict, tolerance: float = PARITY_TOLERANCE) -> bool:
    return all(v <= tolerance for k, v in report.items() if k.endswith("_max_abs"))


def export_model(model_path: str | Path, out_dir: str | Path, features: np.ndarray | None = None, opset: int = OPSET):
    """Encoder + decoder ONNX (+ the model card) into `out_dir`; returns the parity report.

    Parity is measured on `features` (real rows when the caller has them) or on uniform [-1, 1] rows.
    """
    model, card = load_model(model_path)
    out = Path(out_dir)
    encoder = export_encoder(model, out / ENCODER_FILE, opset)
    decoder = export_decoder(model, out / DECODER_FILE, opset)
    if card:
        source = Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent
        shutil.copyfile(source / MODEL_CARD, out / MODEL_CARD)
    if features is None:
        d, _, _ = dims(model)
        features = np.random.default_rng(0).uniform(-1, 1, size=(256, d)).astype(np.float32)
    report = {"opset": opset, **parity(model, encoder, decoder, features)}
    if not parity_ok(report):
        raise RuntimeError(f"ONNX export of {model_path} differs from PyTorch: {report}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.onnx", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder (model.pt + model_card.json) or checkpoint file")
    parser.add_argument("--out", type=Path, required=True, help="folder for encoder.onnx, decoder.onnx, model card")
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument("--features", type=Path, help="calibration set .npz (real rows) to measure parity on")
    args = parser.parse_args(argv)
    features = None
    if args.features is not None:
        from calibration.sets import load_set

        features = load_set(args.features).features
    report = export_model(args.model, args.out, features, args.opset)
    print(json.dumps(report, indent=2))
    print(
        f"wrote {args.out / ENCODER_FILE} and {args.out / DECODER_FILE} "
        f"(max abs diff vs PyTorch within {PARITY_TOLERANCE:g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
