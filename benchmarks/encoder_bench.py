"""INT8 vs FP32 encoders in onnxruntime: class agreement, latent RMSE and single-sample latency, side by side.

    python benchmarks/encoder_bench.py                                  # the demo's models (runs/models/)
    python benchmarks/encoder_bench.py --gesture runs/models/gesture
    python benchmarks/encoder_bench.py --gesture G --expression E --methods minmax percentile --iters 3000 \
        --out runs/bench/encoder

Without --gesture/--expression it benchmarks the models the demo ships (`scripts/demo.py` trains
them into runs/models/ with the default CLIs). The INT8 file is the one the bundle ships: symmetric
QDQ, per-channel weights, `export.int8_recipe.ENCODER_RECIPE` (output heads and input layer float,
Q/DQ only at INT8 layers' inputs, channels equalized, ReLU outputs centred). For comparison:
`--int8_heads` and `--int8_input_layer` quantize those layers too, `--all_qdq` keeps every Q/DQ
onnxruntime writes, `--no_equalize` and `--no_center` skip those steps, `--one_person_calib`
calibrates on baron105 alone.

For each model: export FP32 ONNX, quantize it (symmetric QDQ, each calibration method) on the
calibration rows, then score on held-out real features the calibration never saw:
- gesture: baron105's test split (aae.gestures' split, same seed) and kinivi's evaluation half (another
  person; `hand_data.kinivi_halves`: the other half calibrates, with baron105's training part);
- expression: every face photo in the mirror (the INT8 calibration uses recipe rows, see calibration.sets).
Agreement = share of rows where INT8 picks the FP32 class (goal >= 99.5 %); logit RMSE = RMS of the
centred log-probability difference (smooth, where agreement counts a few borderline rows); decision
agreement = share of rows where the product's open-set decision (the model card's rule with the FP32 decoder,
float32, `edge.labels.PartJudge`: a class or unknown) is the same; latent RMSE = RMS of
z_int8 - z_fp32; latency = one sample per call, 1 intra-op thread, FP32 and INT8 calls interleaved
so both see the same machine load. Prints a table, writes encoder_bench.json and encoder_bench.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from calibration import sets as calib_sets
from export import onnx as onnx_export
from export.int8_recipe import ENCODER_RECIPE, Int8Recipe, equalize_alpha
from export.quantize import METHODS, qdq_summary, quantize_encoder
from latentcast.errors import UserError, run_cli
from latentcast.inference import DecoderSession, EncoderSession

AGREEMENT_GOAL = 0.995
DEMO_MODELS = Path("runs/models")  # where scripts/demo.py trains the models it ships


def held_out_sets(
    name: str, card: dict, other_person: bool = True
) -> tuple[calib_sets.CalibrationSet, dict[str, np.ndarray]]:
    """(calibration rows, {test set name: real held-out rows}) for a model; `other_person` False calibrates
    a hand model on baron105 alone (for comparison)."""
    from aae import face_data, hand_data

    if card.get("feature") == "hand" or name == "gesture":
        seed = int(card.get("data", {}).get("split_seed", 0))
        _, test = calib_sets.hand_split("baron105", seed)
        _, kinivi_eval = hand_data.kinivi_halves(list(card.get("classes") or test.classes))
        return calib_sets.hand_set("baron105", seed=seed, other_person=other_person), {
            "baron105_test": test.x,
            "kinivi_eval": kinivi_eval.x,  # the fit half calibrates (calibration.sets.hand_set), this half scores
        }
    photos = np.asarray([face.features() for _, face in face_data.load_faces()], np.float32)
    return calib_sets.face_set(seed=1), {"face_photos": photos}


def agreement(fp32: EncoderSession, int8: EncoderSession, x: np.ndarray, judge=None) -> dict:
    y32, z32 = fp32(x)
    y8, z8 = int8(x)
    decisions = {}
    if judge is not None:  # the decision the edge publishes, FP32 encoder vs INT8 encoder
        d32, d8 = judge(x, y32, z32).label, judge(x, y8, z8).label
        decisions = {
            "decision_agreement": float(np.mean(d32 == d8)),
            "fp32_unknown_rate": float(np.mean(d32 == -1)),
            "int8_unknown_rate": float(np.mean(d8 == -1)),
        }
    differ = y32.argmax(1) != y8.argmax(1)
    logits32, logits8 = (np.log(np.clip(y, 1e-30, None)) for y in (y32, y8))  # logits up to a per-row constant
    dlogit = (logits8 - logits8.mean(1, keepdims=True)) - (logits32 - logits32.mean(1, keepdims=True))
    top2 = np.sort(y32, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]  # FP32's lead of its first class over its second: small = ambiguous row
    return {
        "rows": len(x),
        "class_agreement": float(np.mean(~differ)),
        "disagreements": int(differ.sum()),
        "disagreement_fp32_margin_max": float(margin[differ].max()) if differ.any() else None,
        "fp32_margin_median": float(np.median(margin)),
        "z_rmse": float(np.sqrt(np.mean((z32 - z8) ** 2))),
        "logit_rmse": float(np.sqrt(np.mean(dlogit**2))),  # smooth: how far INT8 moves every row, not only flips
        "z_std_fp32": float(z32.std()),
        "y_max_abs": float(np.abs(y32 - y8).max()),
        **decisions,
    }


def latency(sessions: dict[str, EncoderSession], rows: np.ndarray, iters: int, warmup: int = 200) -> dict:
    """Per-call microseconds of each session on single rows, calls interleaved; median, p99 and all samples."""
    times = {name: np.empty(iters) for name in sessions}
    singles = [np.ascontiguousarray(rows[i : i + 1]) for i in range(len(rows))]
    for i in range(warmup):
        for session in sessions.values():
            session(singles[i % len(singles)])
    for i in range(iters):
        row = singles[i % len(singles)]
        for name, session in sessions.items():
            start = time.perf_counter_ns()
            session(row)
            times[name][i] = (time.perf_counter_ns() - start) / 1e3
    return {
        name: {"median_us": float(np.median(t)), "p99_us": float(np.percentile(t, 99)), "samples": t}
        for name, t in times.items()
    }


def _without_samples(timings: dict) -> tuple[dict, dict]:
    """Split `latency()`'s result into (summary per session, raw samples per session)."""
    summary = {k: {m: v for m, v in t.items() if m != "samples"} for k, t in timings.items()}
    return summary, {k: t["samples"] for k, t in timings.items()}


def _judge(card: dict, decoder: Path):
    """The product's open-set decision for this model (None when its card has no rule)."""
    from edge.labels import PartJudge
    from latentcast import open_set

    rule = open_set.rule_from_block(card.get("open_set"), need_recon=True)
    return PartJudge(rule, DecoderSession(decoder, threads=1, providers=["cpu"])) if rule is not None else None


def bench_model(
    name: str,
    model_dir: Path,
    methods: Sequence[str],
    iters: int,
    work: Path,
    per_channel: bool = True,
    float_heads: bool = True,
    recipe: Int8Recipe = ENCODER_RECIPE,
    other_person: bool = True,
) -> dict:
    _, card = onnx_export.load_model(model_dir)
    calib, tests = held_out_sets(name, card, other_person)
    parity = onnx_export.export_model(model_dir, work / name, features=calib.features)
    fp32_path = work / name / onnx_export.ENCODER_FILE
    fp32 = EncoderSession(fp32_path, threads=1, providers=["cpu"])
    judge = _judge(card, work / name / onnx_export.DECODER_FILE)
    result = {
        "classes": card.get("classes"),
        "test_accuracy_in_card": card.get("metrics", {}).get("test_accuracy"),
        "per_channel": per_channel,
        "float_heads": float_heads,
        "recipe": asdict(recipe),
        "open_set": None if judge is None else {k: card["open_set"][k] for k in ("temperature", "min_confidence")},
        "calibration": calib.provenance,
        "onnx_parity": parity,
        "methods": {},
    }
    sessions = {"fp32": fp32}
    for method in methods:
        int8_path = quantize_encoder(
            fp32_path,
            work / name / f"encoder.{method}.onnx",
            calib.features,
            method,
            per_channel,
            float_heads=float_heads,
            recipe=recipe,
        )
        int8 = EncoderSession(int8_path, threads=1, providers=["cpu"])
        sessions[method] = int8
        result["methods"][method] = {
            "qdq": qdq_summary(int8_path),
            "equalize_alpha": equalize_alpha(int8_path),
            "tests": {test: agreement(fp32, int8, x, judge) for test, x in tests.items()},
        }
    first_test = next(iter(tests.values()))
    timings = latency(sessions, first_test, iters)
    result["latency_rows_from"] = next(iter(tests))
    result["latency"], result["_samples"] = _without_samples(timings)
    return result


def bench_reference_mlp(methods: Sequence[str], iters: int, work: Path) -> dict:
    """Latency only, for scale: BRIEF section 5's MLP 1434 -> 1000 -> 1000 -> 16 (random weights, uniform rows)."""
    import torch

    from aae import model as aae_model

    torch.manual_seed(0)
    cfg = aae_model.AAEConfig(input_dim=1434, n_classes=4, code_dim=16, hidden_dim=1000, disc_hidden_dim=8)
    model = aae_model.SemiSupervisedAAE(cfg).eval()
    fp32_path = onnx_export.export_encoder(model, work / "reference" / "encoder.onnx")
    rows = np.random.default_rng(0).uniform(-1, 1, size=(512, 1434)).astype(np.float32)
    sessions = {"fp32": EncoderSession(fp32_path, threads=1, providers=["cpu"])}
    for method in methods:
        path = quantize_encoder(fp32_path, work / "reference" / f"encoder.{method}.onnx", rows[:256], method)
        sessions[method] = EncoderSession(path, threads=1, providers=["cpu"])
    timings = latency(sessions, rows[256:], iters)
    print("\nreference MLP 1434-1000-1000-16 (BRIEF section 5 scale; random weights, latency only):")
    for name, t in timings.items():
        print(f"  {name:<12} median {t['median_us']:8.1f} us   p99 {t['p99_us']:8.1f} us")
    summary, samples = _without_samples(timings)
    return {"latency": summary, "_samples": samples}


def print_table(name: str, result: dict) -> None:
    lat = result["latency"]
    print(f"\n{name}: ONNX FP32 vs PyTorch max abs {result['onnx_parity']['encoder_y_max_abs']:.1e} (y)")
    head = f"{'encoder':<12} {'test set':<14} {'rows':>6} {'agree':>8} {'decision':>9} {'z RMSE':>8} {'logit':>7}"
    print(f"  {head} {'median us':>10} {'p99 us':>8}")
    fp32 = f"{lat['fp32']['median_us']:>10.1f} {lat['fp32']['p99_us']:>8.1f}"
    print(f"  {'fp32':<12} {'':<14} {'':>6} {'':>8} {'':>9} {'':>8} {'':>7} {fp32}")
    for method, entry in result["methods"].items():
        for i, (test, scores) in enumerate(entry["tests"].items()):
            timing = f"{lat[method]['median_us']:>10.1f} {lat[method]['p99_us']:>8.1f}" if i == 0 else ""
            goal = " " if scores["class_agreement"] >= AGREEMENT_GOAL else "*"
            decision = f"{scores['decision_agreement']:.2%}" if "decision_agreement" in scores else "-"
            print(
                f"  {'int8 ' + method if i == 0 else '':<12} {test:<14} {scores['rows']:>6} "
                f"{scores['class_agreement']:>7.2%}{goal} {decision:>9} {scores['z_rmse']:>8.4f} "
                f"{scores['logit_rmse']:>7.4f} {timing}"
            )
    alphas = ", ".join(f"{m} {e.get('equalize_alpha')}" for m, e in result["methods"].items())
    print(f"  (* = class agreement below the {AGREEMENT_GOAL:.1%} goal; equalization strength: {alphas})")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items(), strict=True):
        for label, samples in result["_samples"].items():
            ordered = np.sort(samples)
            ax.plot(ordered, np.linspace(0, 1, len(ordered)), label=label)
        ax.set_xscale("log")
        ax.set_xlabel("single-sample latency (us, log)")
        ax.set_ylabel("share of calls")
        ax.set_title(f"{name} encoder, onnxruntime CPU, 1 thread")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/encoder_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--gesture", type=Path, help="gesture model folder (model.pt + model_card.json)")
    parser.add_argument("--expression", type=Path, help="expression model folder")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--iters", type=int, default=2000, help="timed single-sample calls per encoder")
    parser.add_argument("--per_tensor", action="store_true", help="one weight scale per layer (default: per channel)")
    parser.add_argument("--int8_heads", action="store_true", help="quantize the output heads too (default: float)")
    parser.add_argument("--int8_input_layer", action="store_true", help="quantize the input layer (default: float)")
    parser.add_argument(
        "--all_qdq", action="store_true", help="keep every Q/DQ onnxruntime writes (default: inputs of INT8 layers)"
    )
    parser.add_argument("--no_equalize", action="store_true", help="skip the channel equalization (default: on)")
    parser.add_argument("--no_center", action="store_true", help="quantize ReLU outputs uncentred (default: centred)")
    parser.add_argument(
        "--one_person_calib", action="store_true", help="calibrate hand models on baron105 only (default: + kinivi fit)"
    )
    parser.add_argument("--reference_mlp", action="store_true", help="also time BRIEF's 1434-1000-1000-16 MLP")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/encoder"))
    args = parser.parse_args(argv)
    models = {n: p for n in ("gesture", "expression") if (p := getattr(args, n)) is not None}
    if not models:  # the models the demo ships
        models = {n: DEMO_MODELS / n for n in ("gesture", "expression") if (DEMO_MODELS / n / "model.pt").is_file()}
        if not models:
            raise UserError(
                f"no models in {DEMO_MODELS}/ (the demo's): run python scripts/demo.py once, or give --gesture "
                "and/or --expression model folders (python -m aae.gestures --out DIR)"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, model_dir in models.items():
            results[name] = bench_model(
                name,
                model_dir,
                args.methods,
                args.iters,
                Path(scratch),
                not args.per_tensor,
                not args.int8_heads,
                Int8Recipe(not args.int8_input_layer, not args.all_qdq, not args.no_equalize, not args.no_center),
                not args.one_person_calib,
            )
            print_table(name, results[name])
        if args.reference_mlp:
            results["reference_mlp"] = bench_reference_mlp(args.methods, args.iters, Path(scratch))
    plot(results, args.out / "encoder_bench.png")
    import onnxruntime

    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "onnxruntime": onnxruntime.__version__,
        "iters": args.iters,
        "agreement_goal": AGREEMENT_GOAL,
        "models": {n: {k: v for k, v in r.items() if k != "_samples"} for n, r in results.items()},
    }
    (args.out / "encoder_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out / 'encoder_bench.json'} and {args.out / 'encoder_bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
