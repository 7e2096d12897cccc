"""Reproduce the paper's MNIST experiments and time the project's trainer against a plain loop.

    python benchmarks/aae_mnist.py --epochs 1 --out runs/bench_aae_mnist           # quick look
    python benchmarks/aae_mnist.py --epochs 100 --threads 2 --out runs/bench_full   # the real thing (hours on CPU)
    python benchmarks/aae_mnist.py --sweep --recipe strong --labels 100 1000 --seeds 3 --device cuda --out runs/sweep

`--sweep` runs a recipe (docs/AAE.md) for every label count and seed (seed = label draw and
initialisation), each resumable (`--resume`: run the same command again after an interruption),
records every run into docs/results/mnist_semisupervised.json, prints mean +- std of the final
and the validation-selected test error, and rewrites the docs/RESULTS.md table and curves.

Runs (each through the same CLI users run, into OUT/<name>/ with its own figures and metrics.json):
semi-supervised with 100 and 1000 labels; unsupervised with a Gaussian and with a GMM prior (ncode 2).
Then times a semi-supervised training epoch of `aae.train.Trainer` against a hand-written PyTorch
loop of the same model, phases and optimisers (interleaved, best of `--repeats`), and reports the
ratio (goal: <= 1.0, the trainer adds nothing). Prints the figures and writes OUT/results.json and
OUT/results.png (test error against the published numbers).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aae_mnist_report as report  # the sibling script: results file, table, curves

from aae import mnist
from aae.model import AAEConfig, build_model, discriminator_loss, generator_loss, reconstruction_loss
from aae.priors import sample_categorical
from aae.train import TrainConfig, Trainer
from latentcast.errors import run_cli

PUBLISHED = {
    "semi_100": {"paper_test_error": 0.019},
    "semi_1000": {"paper_test_error": 0.016, "reference_test_error_1280_labels": 0.029},
    "unsup_gaussian": {"paper_parzen_ll_nats": 340.0},
    "unsup_gmm": {},
}


def experiments(args: argparse.Namespace) -> dict[str, list[str]]:
    common = ["--maxepoch", str(args.epochs), "--seed", str(args.seed), "--threads", str(args.threads)]
    common += ["--max_train", str(args.max_train), "--parzen_samples", str(args.parzen_samples), "--no_progress"]
    return {
        "semi_100": ["--train_semisupervised", "--nlabels", "100", *common],
        "semi_1000": ["--train_semisupervised", "--nlabels", "1000", *common],
        "unsup_gaussian": ["--train", "--dist_type", "gaussian", "--ncode", "2", *common],
        "unsup_gmm": ["--train", "--dist_type", "gmm", "--ncode", "2", *common],
    }


def plain_loop_epoch(
    model, x: torch.Tensor, labels: torch.Tensor, batch_size: int, steps: int, seed: int, cls_every: int = 1
) -> None:
    """The semi-supervised AAE step written out by hand: same phases, optimisers and batches as Trainer."""
    torch.manual_seed(seed)
    device = x.device
    gen = torch.Generator(device=device).manual_seed(seed)
    enc = model.encoder

    def adam(*mods):
        return torch.optim.Adam([p for m in mods for p in m.parameters()], lr=2e-4, betas=(0.5, 0.999))

    opt_ae, opt_zd = adam(model.encoder, model.decoder), adam(model.z_discriminator)
    opt_zg = adam(enc.trunk, enc.z_mean, enc.z_std)
    opt_yd, opt_yg, opt_cls = adam(model.y_discriminator), adam(enc.trunk, enc.y_logits), adam(enc.trunk, enc.y_logits)
    known = labels >= 0
    x_lab, y_lab = x[known], labels[known]
    order = torch.randperm(len(x), generator=gen, device=device)
    lab_order = torch.randperm(len(x_lab), generator=gen, device=device)
    model.train()

    def run(opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(steps):
        xb = x[order[i * batch_size : (i + 1) * batch_size]]
        n = len(xb)
        logits, z = model.sample_z(xb)
        run(opt_ae, reconstruction_loss(xb, model.decode(torch.softmax(logits, -1), z)))
        with torch.no_grad():
            logits, z_fake = model.sample_z(xb)
            y_fake = torch.softmax(logits, -1)
        z_real = torch.randn(n, z.shape[1], generator=gen, device=device)
        run(opt_zd, 6.0 * discriminator_loss(model.z_discriminator(z_real), model.z_discriminator(z_fake)))
        _, z_fake = model.sample_z(xb)
        run(opt_zg, 6.0 * generator_loss(model.z_discriminator(z_fake)))
        y_real = sample_categorical(n, y_fake.shape[1], gen, device)
        run(opt_yd, 6.0 * discriminator_loss(model.y_discriminator(y_real), model.y_discriminator(y_fake)))
        logits, _ = model.sample_z(xb)
        run(opt_yg, 6.0 * generator_loss(model.y_discriminator(torch.softmax(logits, -1))))
        if i % cls_every == 0:
            j = (i // cls_every * batch_size) % max(1, len(x_lab) - batch_size)
            index = lab_order[j : j + batch_size]
            logits, _, _ = model.encoder_outputs(x_lab[index])
            run(opt_cls, F.cross_entropy(logits, y_lab[index]))


def time_trainer_vs_plain(args: argparse.Namespace) -> dict:
    """Seconds per semi-supervised step for Trainer.train_epoch and the plain loop, same model and data."""
    device = torch.device(args.device)
    x, y = mnist.load_mnist("train")
    steps = args.timing_steps
    x, y = x[: steps * 128].to(device), y[: steps * 128]
    labels = mnist.keep_labels(y, 1000, args.seed).to(device)
    cfg = AAEConfig(input_dim=784, n_classes=10, code_dim=2)
    results: dict[str, list[float]] = {"trainer": [], "plain": []}

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / steps

    for _ in range(args.repeats):
        torch.manual_seed(args.seed)
        trainer = Trainer(build_model(cfg).to(device), TrainConfig(seed=args.seed, progress=True))
        results["trainer"].append(timed(lambda t=trainer: t.train_epoch(x, labels)))
        torch.manual_seed(args.seed)
        model = build_model(cfg).to(device)
        results["plain"].append(timed(lambda m=model: plain_loop_epoch(m, x, labels, 128, steps, args.seed)))
    trainer_s, plain_s = min(results["trainer"]), min(results["plain"])
    steps_per_epoch = 60000 // 128
    return {
        "device": str(device),
        "steps_timed": steps,
        "repeats": args.repeats,
        "trainer_s_per_step": trainer_s,
        "plain_s_per_step": plain_s,
        "ratio_trainer_over_plain": trainer_s / plain_s,
        "trainer_s_per_full_epoch_estimate": trainer_s * steps_per_epoch,
        "all_samples_s_per_step": results,
    }


def plot_results(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [n for n in ("semi_100", "semi_1000") if n in results["runs"]]
    ours = [100 * results["runs"][n]["final"].get("test_error", float("nan")) for n in names]
    paper = [100 * PUBLISHED[n]["paper_test_error"] for n in names]
    pos = range(len(names))
    ax1.bar([p - 0.2 for p in pos], ours, width=0.4, label=f"this run ({results['epochs']} epochs)")
    ax1.bar([p + 0.2 for p in pos], paper, width=0.4, label="paper")
    ax1.set_xticks(list(pos), names)
    ax1.set_ylabel("test error %")
    ax1.legend(fontsize=8)
    for name in names:
        history = results["runs"][name]["history"]
        ax2.plot([h["epoch"] for h in history], [100 * h["test_error"] for h in history], marker=".", label=name)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test error %")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_sweep(args: argparse.Namespace) -> int:
    """Each (labels, seed) of `--recipe` into OUT/<recipe>-<labels>-s<seed>, resumable; records + summary."""
    out = Path(args.out)
    records = []
    for labels in args.labels:
        for seed in range(args.seeds):
            run_dir = out / f"{args.recipe}-{labels}-s{seed}"
            argv = ["--train_semisupervised", "--recipe", args.recipe, "--nlabels", str(labels), "--seed", str(seed)]
            argv += ["--threads", str(args.threads), "--device", args.device, "--no_progress", "--resume"]
            argv += ["--save_path", str(run_dir)] + (
                ["--maxepoch", str(args.sweep_epochs)] if args.sweep_epochs else []
            )
            argv += ["--max_train", str(args.max_train)] if args.max_train else []
            mnist.main(argv)
            records.append(report.record_from_run(run_dir))
            runs = report.upsert([records[-1]], Path(args.results))
    for labels in args.labels:
        rs = [r for r in records if r["labels"] == labels]
        print(
            f"{args.recipe}, {labels} labels, {len(rs)} seeds, {rs[0]['epochs']} epochs: test error final "
            f"{report._mean_std([r['test_error_final'] for r in rs])}, validation-selected "
            f"{report._mean_std([r['test_error_selected'] for r in rs])}"
        )
    if not args.max_train:  # tiny smoke sweeps do not touch the docs
        report.write_table(runs)
        report.plot_curves(runs)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs per experiment")
    p.add_argument("--out", default="runs/bench_aae_mnist", help="output folder")
    p.add_argument("--only", nargs="*", default=None, help="subset of: semi_100 semi_1000 unsup_gaussian unsup_gmm")
    p.add_argument("--max_train", type=int, default=0, help="training images per run (0: all 60000)")
    p.add_argument("--parzen_samples", type=int, default=10000, help="samples for the Parzen estimate")
    p.add_argument("--timing_steps", type=int, default=40, help="training steps timed per repeat")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing repeats (best is kept)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip_timing", action="store_true")
    p.add_argument("--timing_only", action="store_true", help="only time the trainer against the plain loop")
    p.add_argument("--device", default="cpu", help="cpu or cuda (runs and timing)")
    sweep = p.add_argument_group("--sweep: one recipe over label counts and seeds, recorded as results")
    sweep.add_argument("--sweep", action="store_true", help="run --recipe for every --labels and seed")
    sweep.add_argument("--recipe", choices=sorted(mnist.RECIPES), default="strong")
    sweep.add_argument("--labels", type=int, nargs="+", default=[100, 1000], help="label counts")
    sweep.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (label draw and initialisation)")
    sweep.add_argument("--results", default=str(report.RESULTS), help="results JSON the sweep records into")
    sweep.add_argument("--sweep_epochs", type=int, default=0, help="override the recipe's --maxepoch (0: keep)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.sweep:
        return run_sweep(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "epochs": args.epochs,
        "max_train": args.max_train,
        "machine": f"{platform.machine()} torch {torch.__version__}, {args.threads} threads",
        "published": PUBLISHED,
        "runs": {},
    }
    for name, argv_run in experiments(args).items():
        if args.timing_only or (args.only and name not in args.only):
            continue
        start = time.perf_counter()
        mnist.main([*argv_run, "--save_path", str(out / name)])
        metrics = json.loads((out / name / "metrics.json").read_text())
        results["runs"][name] = {
            "final": metrics["final"],
            "history": metrics["history"],
            "n_labelled": metrics["n_labelled"],
            "wall_s": round(time.perf_counter() - start, 1),
        }
        print(f"{name}: {metrics['final']} ({results['runs'][name]['wall_s']} s)", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if not args.skip_timing:
        results["timing"] = time_trainer_vs_plain(args)
        t = results["timing"]
        print(
            f"trainer {1000 * t['trainer_s_per_step']:.1f} ms/step, plain loop {1000 * t['plain_s_per_step']:.1f} "
            f"ms/step, ratio {t['ratio_trainer_over_plain']:.3f} (goal <= 1)"
        )
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if any(n.startswith("semi") for n in results["runs"]):
        plot_results(results, out / "results.png")
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
