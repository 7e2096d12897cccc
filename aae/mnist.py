"""MNIST data and the reference experiments' CLI (conan7882/adversarial-autoencoders, aae_mnist.py).

    python -m aae.mnist --train_semisupervised --maxepoch 5 --save_path runs/mnist
    python -m aae.mnist --train --dist_type gmm --label --save_path runs/gmm_label
    python -m aae.mnist --viz --save_path runs/gmm_label          # latest epoch; --load N for epoch N

    python -m aae.mnist --train_semisupervised --recipe strong --nlabels 100 --resume --save_path runs/s100

Every reference flag keeps its meaning and default; `--load` defaults to the latest checkpoint
(the reference's 99 was the last epoch of its 100-epoch runs). Added: --data_dir, --save_path,
--nlabels, --seed, --device, --threads, subset sizes for quick runs, a held-out validation split
(--n_valid) that chooses the reported epoch, named recipes (--recipe), a scalable lr schedule
(--lr_decay), the VAT extension (--vatw, --vat_eps) and exact resumption (--resume). This file
only parses arguments and wires the library (`aae.model`, `aae.train`, `aae.evaluate`,
`aae.plots`) together.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from aae import evaluate, plots
from aae.model import AAEConfig, build_model, load_checkpoint, read_checkpoint, save_checkpoint
from aae.priors import PRIORS
from aae.train import TrainConfig, Trainer
from latentcast.assets import resolve
from latentcast.errors import UserError, run_cli

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
CHECKPOINT_PATTERN = re.compile(r"^aae-epoch-(\d+)\.pt$")
TRAINER_STATE = "trainer-state.pt"
LABELS_FOR_LABEL_VARIANT = 10000  # the reference's --train --label uses 10000 labelled images


# --- data ---------------------------------------------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzip): magic, dims, then unsigned bytes."""
    with gzip.open(path, "rb") as stream:
        data = stream.read()
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)


def load_mnist(split: str, data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 784] float32 in [-1, 1], labels [N] int64) for split "train" or "test".

    Files come from `latentcast.assets.resolve` (checksum-verified): `data_dir` if given, else the
    mirror / cache / download chain.
    """
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"--data_dir {data_dir} is not a directory: give the folder holding the four MNIST .gz files")
    prefix = {"train": "train", "test": "t10k"}[split]
    images = _read_idx(resolve(f"data/mnist/{prefix}-images-idx3-ubyte.gz", data_dir))
    labels = _read_idx(resolve(f"data/mnist/{prefix}-labels-idx1-ubyte.gz", data_dir))
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0 * 2.0 - 1.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def keep_labels(labels: torch.Tensor, n_labelled: int, seed: int = 0) -> torch.Tensor:
    """Copy of `labels` with all but `n_labelled` rows set to -1, balanced over classes (as the paper)."""
    generator = torch.Generator().manual_seed(seed)
    out = torch.full_like(labels, -1)
    if n_labelled <= 0:
        return out
    if n_labelled >= len(labels):
        return labels.clone()
    classes = labels.unique()
    per_class, extra = divmod(n_labelled, len(classes))
    for i, c in enumerate(classes):
        rows = (labels == c).nonzero().squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=generator)][: per_class + (1 if i < extra else 0)]
        out[rows] = c
    return out


# --- recipes ------------------------------------------------------------------------------------
# Named presets of the semi-supervised run; docs/AAE.md ("Recipes") gives the source of every value.
# `--nlabels` is never part of a recipe: the label count is the experiment's axis.
_SHARED = {"ncode": 10, "lr": 2e-4, "maxepoch": 250, "lr_decay": "0.6,0.8", "dropout": 1.0, "noise": False}
RECIPES: dict[str, dict[str, object]] = {
    # conan7882/adversarial-autoencoders README (semi-supervised section) and helper/trainer.py:
    # ncode 10, lr 2e-4 (its usage line), batch 128, 250 epochs, lr /10 at epochs 150 and 200,
    # classification phase every 10th step (`global_step % 10 == 0`), loss weights 1/6/6/1/6/6.
    "reference": {**_SHARED, "bsize": 128, "cls_every": 10, "vatw": 0.0},
    # Makhzani et al. 2015 (arXiv 1511.05644), Fig. 8: the three phases with the classification phase
    # on a labelled mini-batch every step. The paper's appendix (optimiser, momentum, per-phase rates,
    # schedule, batch, noise) could not be read here, so none of its values is set: optimiser,
    # rate, schedule and weights are the reference's, batch 100 is assumed (docs/AAE.md "Recipes").
    "paper": {**_SHARED, "bsize": 100, "cls_every": 1, "vatw": 0.0},
    # Extension beyond the paper: "paper" plus virtual adversarial training on the unlabelled batch
    # in the classification phase (aae/vat.py). Never reported as a paper figure.
    "strong": {**_SHARED, "bsize": 100, "cls_every": 1, "vatw": 1.0, "vat_eps": 4.0},
}


# --- CLI ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aae.mnist", description=__doc__.splitlines()[0])
    mode = p.add_argument_group("what to run (the reference's flags)")
    mode.add_argument("--train", action="store_true", help="train the model of Fig 1 and 3 in the paper")
    mode.add_argument("--train_supervised", action="store_true", help="train the model of Fig 6 in the paper")
    mode.add_argument("--train_semisupervised", action="store_true", help="train the model of Fig 8 in the paper")
    mode.add_argument("--label", action="store_true", help="incorporate label info (Fig 3 in the paper)")
    mode.add_argument("--generate", action="store_true", help="sample images from a trained model")
    mode.add_argument("--viz", action="store_true", help="visualise a trained model when ncode=2")
    mode.add_argument("--supervise", action="store_true", help="sample from the supervised model (Fig 6)")
    mode.add_argument("--load", type=int, default=None, help="epoch id to restore (default: the latest)")
    model = p.add_argument_group("model and training (reference defaults)")
    model.add_argument("--ncode", type=int, default=2, help="dimension of the code z")
    model.add_argument("--dist_type", default="gaussian", help=f"prior on z: {' or '.join(PRIORS)}")
    model.add_argument("--noise", action="store_true", help="add Gaussian noise (std 0.6) to the encoder input")
    model.add_argument("--lr", type=float, default=2e-4, help="initial learning rate")
    model.add_argument("--dropout", type=float, default=1.0, help="keep probability for dropout")
    model.add_argument("--bsize", type=int, default=128, help="batch size")
    model.add_argument("--maxepoch", type=int, default=100, help="number of epochs")
    model.add_argument("--encw", type=float, default=1.0, help="weight of the autoencoder loss")
    model.add_argument("--genw", type=float, default=6.0, help="weight of the z generator loss")
    model.add_argument("--disw", type=float, default=6.0, help="weight of the z discriminator loss")
    model.add_argument("--clsw", type=float, default=1.0, help="weight of the semi-supervised loss")
    model.add_argument("--ygenw", type=float, default=6.0, help="weight of the y generator loss")
    model.add_argument("--ydisw", type=float, default=6.0, help="weight of the y discriminator loss")
    extra = p.add_argument_group("latentcast additions")
    extra.add_argument("--data_dir", default=None, help="folder with the MNIST .gz files (default: asset resolver)")
    extra.add_argument("--save_path", default="runs/mnist", help="output folder (checkpoints, figures, metrics)")
    extra.add_argument("--nlabels", type=int, default=1000, help="labelled images for --train_semisupervised")
    extra.add_argument("--cls_every", type=int, default=1, help="semi-supervised: classification step every N steps")
    extra.add_argument("--seed", type=int, default=0, help="random seed (runs on CPU repeat exactly)")
    extra.add_argument("--device", default="cpu", help="cpu or cuda")
    extra.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    extra.add_argument("--max_train", type=int, default=0, help="use only the first N training images (0: all)")
    extra.add_argument("--max_test", type=int, default=0, help="use only the first N test images (0: all)")
    extra.add_argument(
        "--n_valid",
        type=int,
        default=None,
        help="training images held out for choices made on validation: Parzen sigma (--train, default 10000)"
        " and the reported epoch (--train_semisupervised, default 5000); never labelled, never trained on",
    )
    extra.add_argument("--parzen_samples", type=int, default=10000, help="--train: samples for the Parzen estimate")
    extra.add_argument("--plot_every", type=int, default=10, help="write figures every N epochs (and at the end)")
    extra.add_argument("--no_progress", action="store_true", help="no tqdm bar (for logs)")
    recipe = p.add_argument_group("recipes and long runs (docs/AAE.md, 'Recipes')")
    recipe.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=None,
        help="--train_semisupervised preset: sets the flags of docs/AAE.md's table; flags given explicitly win",
    )
    recipe.add_argument(
        "--lr_decay",
        default="",
        help="lr /10 at these fractions of --maxepoch, e.g. 0.6,0.8; 'none'; default: the reference's"
        " absolute epochs (semi-supervised 150, 200; others 101, 301)",
    )
    recipe.add_argument("--vatw", type=float, default=0.0, help="weight of the VAT term (extension; 0: off)")
    recipe.add_argument("--vat_eps", type=float, default=4.0, help="L2 norm of the VAT perturbation ([-1, 1] units)")
    recipe.add_argument("--resume", action="store_true", help="continue the run in --save_path after its last epoch")
    recipe.add_argument(
        "--keep_checkpoints",
        choices=("last", "all"),
        default="last",
        help="last: only the last and the validation-selected epochs' weights; all: every epoch",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the CLI; a `--recipe` supplies the defaults of the flags it names (explicit flags win)."""
    parser = build_parser()
    known, _ = parser.parse_known_args(argv)
    if known.recipe is not None:
        parser.set_defaults(**RECIPES[known.recipe])
    return parser.parse_args(argv)


def validate(args: argparse.Namespace) -> str:
    """Check flag combinations; return the mode. Raises UserError with the fix."""
    modes = [m for m in ("train", "train_supervised", "train_semisupervised", "generate", "viz") if getattr(args, m)]
    if len(modes) != 1:
        raise UserError(
            "give exactly one of --train, --train_supervised, --train_semisupervised, --generate, --viz"
            + (f" (got {', '.join('--' + m for m in modes)})" if modes else "")
        )
    if args.dist_type not in PRIORS:
        raise UserError(f"unknown --dist_type {args.dist_type!r}: use one of {', '.join(PRIORS)}")
    if args.dist_type == "gmm" and args.ncode % 2:
        raise UserError(f"--dist_type gmm needs an even --ncode (pairs of 2-D components), got {args.ncode}")
    if args.viz and args.ncode != 2:
        raise UserError(f"--viz draws the 2-D code space: it needs --ncode 2, got {args.ncode}")
    if args.device not in ("cpu", "cuda"):
        raise UserError(f"unknown --device {args.device!r}: use cpu or cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but torch sees no CUDA GPU: use --device cpu or install a CUDA build of torch")
    if args.recipe is not None and modes[0] != "train_semisupervised":
        raise UserError(f"--recipe {args.recipe} is a --train_semisupervised preset: add --train_semisupervised")
    if args.n_valid is None:
        args.n_valid = 5000 if modes[0] == "train_semisupervised" else 10000
    if args.lr_decay not in ("", "none"):
        try:
            fractions = [float(f) for f in args.lr_decay.split(",")]
        except ValueError:
            fractions = []
        if not fractions or not all(0.0 < f <= 1.0 for f in fractions):
            raise UserError(
                f"--lr_decay wants fractions of --maxepoch in (0, 1] like 0.6,0.8 or 'none', got {args.lr_decay!r}"
            )
    if args.vatw < 0 or args.vat_eps <= 0:
        raise UserError(f"--vatw must be >= 0 and --vat_eps > 0, got {args.vatw} and {args.vat_eps}")
    if not 0.0 < args.dropout <= 1.0:
        raise UserError(f"--dropout is a keep probability in (0, 1], got {args.dropout}")
    for name in ("ncode", "bsize", "maxepoch", "cls_every"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name} must be positive, got {getattr(args, name)}")
    return modes[0]


def available_epochs(save_path: Path) -> list[int]:
    if not save_path.is_dir():
        return []
    found = (CHECKPOINT_PATTERN.match(p.name) for p in save_path.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def checkpoint_path(save_path: Path, epoch: int | None) -> Path:
    """Path of epoch `epoch`'s checkpoint (latest when None); one-line error listing what exists."""
    epochs = available_epochs(save_path)
    if not epochs:
        raise UserError(f"no checkpoints (aae-epoch-N.pt) in {save_path}: train first or give the right --save_path")
    if epoch is None:
        epoch = epochs[-1]
    if epoch not in epochs:
        shown = ", ".join(map(str, epochs)) if len(epochs) <= 20 else f"{epochs[0]}..{epochs[-1]}"
        raise UserError(f"--load {epoch}: no such epoch in {save_path}; available epochs: {shown}")
    return save_path / f"aae-epoch-{epoch}.pt"


def _subset(x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (x[:n], y[:n]) if n > 0 else (x, y)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def split_train_valid(n: int, n_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training rows, validation rows) of the MNIST training file: the last `n_valid` rows validate.

    A fixed split, the same for every seed (the usual 50k/10k or 55k/5k MNIST split): labelled rows
    are drawn from the training rows only, so validation images are never labelled training data,
    and the test file is never touched for selection. At most half the rows validate (tiny subsets).
    """
    n_valid = min(max(n_valid, 0), n // 2)
    rows = torch.arange(n)
    return rows[: n - n_valid], rows[n - n_valid :]


def lr_milestones(args: argparse.Namespace, variant: str) -> tuple[int, ...]:
    """Epochs (1-based) at which the rate drops x10: `--lr_decay` fractions of `--maxepoch`, else the
    reference's absolute epochs (semi-supervised 150 and 200 of its 250; the others 101 and 301)."""
    if args.lr_decay == "none":
        return ()
    if not args.lr_decay:
        return (150, 200) if variant == "semisupervised" else (101, 301)
    # Never before the second epoch: a 1-2 epoch smoke run would otherwise train entirely at lr / 100.
    return tuple(max(2, round(float(f) * args.maxepoch)) for f in args.lr_decay.split(","))


# Arguments that may change between an interrupted run and its resumption (they do not change the maths).
RESUME_FREE_ARGS = {"threads", "no_progress", "device", "plot_every", "load", "resume", "data_dir", "save_path"}
RESUME_FREE_ARGS |= {"keep_checkpoints"}


def _resume_signature(args: argparse.Namespace) -> dict:
    return {k: v for k, v in sorted(vars(args).items()) if k not in RESUME_FREE_ARGS}


def train_main(args: argparse.Namespace, mode: str) -> dict:
    """Train one of the variants, evaluating, checkpointing and plotting as it goes."""
    from torch.utils.tensorboard import SummaryWriter

    save_path = Path(args.save_path)
    save_path.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    x_train, y_train = _subset(*load_mnist("train", args.data_dir), args.max_train)
    x_test, y_test = _subset(*load_mnist("test", args.data_dir), args.max_test)
    x_valid = y_valid = None
    variant = {"train": "label" if args.label else "unsupervised", "train_supervised": "supervised"}.get(
        mode, "semisupervised"
    )
    if variant != "supervised" and args.n_valid > 0:
        # Parzen sigma (unsupervised) and the reported epoch (semi-supervised) are chosen on these.
        train_rows, valid_rows = split_train_valid(len(x_train), args.n_valid)
        x_valid, y_valid = x_train[valid_rows], y_train[valid_rows]
        x_train, y_train = x_train[train_rows], y_train[train_rows]
    if variant == "supervised":
        labels = y_train.clone()
    elif variant == "semisupervised":
        labels = keep_labels(y_train, args.nlabels, args.seed)
    elif variant == "label":
        labels = keep_labels(y_train, LABELS_FOR_LABEL_VARIANT, args.seed)
    else:
        labels = torch.full_like(y_train, -1)

    torch.manual_seed(args.seed)
    cfg = AAEConfig(
        input_dim=x_train.shape[1],
        n_classes=N_CLASSES,
        code_dim=args.ncode,
        variant=variant,
        prior=args.dist_type,
        dropout_keep=args.dropout,
        noise=0.6 if args.noise else 0.0,
    )
    model = build_model(cfg).to(device)
    tcfg = TrainConfig(
        epochs=args.maxepoch,
        batch_size=args.bsize,
        lr=args.lr,
        encw=args.encw,
        genw=args.genw,
        disw=args.disw,
        clsw=args.clsw,
        ygenw=args.ygenw,
        ydisw=args.ydisw,
        cls_every=args.cls_every,
        lr_milestones=lr_milestones(args, variant),
        vatw=args.vatw,
        vat_eps=args.vat_eps,
        seed=args.seed,
        progress=not args.no_progress,
    )
    trainer = Trainer(model, tcfg)
    metrics_path = save_path / "metrics.json"
    history: list[dict] = []
    best: dict | None = None
    load = args.load
    if args.resume and load is None and (save_path / TRAINER_STATE).is_file():
        state = read_checkpoint(save_path / TRAINER_STATE)
        if state.get("signature") not in (None, _resume_signature(args)):
            raise UserError(
                f"--resume: {save_path} holds a run with other settings; use its flags or another --save_path"
            )
        load = int(state["epoch"])
    if load is not None:
        history, best = _resume(save_path, load, model, trainer)
        print(f"resumed after epoch {load} from {save_path}", flush=True)
    x_train, labels, x_test_dev = x_train.to(device), labels.to(device), x_test.to(device)
    x_valid_dev = x_valid.to(device) if x_valid is not None else None
    writer = SummaryWriter(str(save_path))
    metrics = {
        "experiment": mode,
        "variant": variant,
        "recipe": args.recipe,
        "args": vars(args),
        "config": asdict(cfg),
        "train_config": {k: v for k, v in asdict(tcfg).items() if k != "progress"},
        "n_train": len(x_train),
        "n_valid": 0 if x_valid is None else len(x_valid),
        "n_labelled": int((labels >= 0).sum()),
        "n_test": len(x_test),
        "machine": _machine(),
        "device": args.device,
    }
    started = time.perf_counter() - (history[-1]["wall_s"] if history else 0.0)

    def log_step(step: int, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            writer.add_scalar(f"train/{name}", value, step)

    while trainer.epoch < args.maxepoch:
        epoch = trainer.epoch  # 0-based id, as the reference's checkpoints
        tick = time.perf_counter()
        losses = trainer.train_epoch(x_train, labels, on_log=log_step)
        train_s = time.perf_counter() - tick
        with _rng_untouched(device):  # evaluation and figures must not shift the training RNG streams
            row = {"epoch": epoch, **losses, "train_s": round(train_s, 2)}
            row["test_recon"] = evaluate.reconstruction_error(model, x_test_dev, y_test)
            if cfg.has_classifier:
                if x_valid_dev is not None:
                    row["valid_error"] = evaluate.classification_error(model, x_valid_dev, y_valid)
                row["test_error"] = evaluate.classification_error(model, x_test_dev, y_test)
            elif x_valid_dev is not None:
                row["valid_recon"] = evaluate.reconstruction_error(model, x_valid_dev)
        row["wall_s"] = round(time.perf_counter() - started, 1)
        history.append(row)
        score = row.get("valid_error", row.get("valid_recon"))
        if score is not None and (best is None or score < best["score"]):
            best = {"epoch": epoch, "score": score}
        for name in ("test_recon", "test_error", "valid_error", "valid_recon"):
            if name in row:
                writer.add_scalar(f"test/{name}", row[name], epoch)
        writer.flush()
        _save_epoch(save_path, model, trainer, epoch, history, best, args)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "lr"))
        print(f"epoch {epoch}: {shown}", flush=True)
        last = trainer.epoch >= args.maxepoch
        with _rng_untouched(device):
            if last or (epoch + 1) % args.plot_every == 0:
                figures(model, x_test_dev, y_test, save_path, history)
            if last and x_valid is not None and not cfg.has_classifier:
                metrics.update(evaluate.parzen_evaluate(model, x_valid, x_test, args.parzen_samples, seed=args.seed))
                writer.add_scalar("test/parzen_log_likelihood", metrics["parzen_log_likelihood"], epoch)
        metrics.update({"history": history, "epochs_done": trainer.epoch, "wall_s": row["wall_s"]})
        metrics["final"] = {k: v for k, v in row.items() if k.startswith(("test_", "valid_"))}
        if "parzen_log_likelihood" in metrics:
            metrics["final"]["parzen_log_likelihood"] = metrics["parzen_log_likelihood"]
        if best is not None:
            chosen = history[[h["epoch"] for h in history].index(best["epoch"])]
            metrics["selected"] = {"epoch": best["epoch"], "on": "validation"}
            metrics["selected"] |= {k: v for k, v in chosen.items() if k.startswith(("test_", "valid_"))}
        _write_json(metrics_path, metrics)
    writer.close()
    print(f"wrote {save_path}: metrics.json, figures, checkpoints ({', '.join(_checkpoint_names(save_path))})")
    return metrics


@contextlib.contextmanager
def _rng_untouched(device: torch.device):
    """Run a block without changing the global torch RNG (CPU and, on a GPU, that device's)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _checkpoint_names(save_path: Path) -> list[str]:
    return [f"aae-epoch-{e}.pt" for e in available_epochs(save_path)] + [TRAINER_STATE]


def _save_epoch(save_path: Path, model, trainer: Trainer, epoch: int, history, best, args) -> None:
    """Weights of this epoch, then the resumable state (both written atomically), then prune.

    By default only the last and the validation-selected epochs' weights stay on disk
    (`--keep_checkpoints all` keeps every epoch, as the reference's every-10-epochs saver would).
    """
    save_checkpoint(save_path / f"aae-epoch-{epoch}.pt", model, epoch=epoch, history=history)
    save_checkpoint(
        save_path / TRAINER_STATE,
        model,
        epoch=epoch,
        trainer=trainer.state_dict(),
        history=history,
        best=best,
        signature=_resume_signature(args),
    )
    if args.keep_checkpoints == "all":
        return
    keep = {epoch} | ({best["epoch"]} if best is not None else set())
    for old in available_epochs(save_path):
        if old not in keep:
            (save_path / f"aae-epoch-{old}.pt").unlink(missing_ok=True)


def _resume(save_path: Path, epoch: int, model, trainer: Trainer) -> tuple[list[dict], dict | None]:
    """Restore epoch `epoch` (weights; optimiser and RNG state too when it is the latest run's state)."""
    state_file = save_path / TRAINER_STATE
    state = read_checkpoint(state_file) if state_file.is_file() else None
    if state is not None and state.get("epoch") == epoch:
        payload = state
    else:
        payload = read_checkpoint(checkpoint_path(save_path, epoch))
    if payload["config"] != asdict(model.cfg):
        raise UserError(f"--load {epoch}: that checkpoint's model differs from these flags; use the same flags")
    model.load_state_dict(payload["state_dict"])
    if state is not None and state.get("epoch") == epoch:
        trainer.load_state_dict(state["trainer"])
    else:
        trainer.epoch, trainer.global_step = epoch + 1, 0
        print(f"resuming from epoch {epoch} weights with fresh optimisers (no matching {TRAINER_STATE})")
    history = [h for h in payload.get("history", []) if h["epoch"] <= epoch]
    best = payload.get("best")
    return history, (best if best is not None and best["epoch"] <= epoch else None)


def figures(model, x_test: torch.Tensor, y_test: torch.Tensor, save_path: Path, history: list[dict]) -> None:
    """generate_im.png, latent.png, manifold image(s), curves.png."""
    plots.generate_grid(model, save_path / "generate_im.png", IMAGE_SHAPE)
    _, z = evaluate.encode_all(model, x_test)
    plots.latent_scatter(
        z, y_test, save_path / "latent.png", f"test-set codes z ({model.cfg.variant}, {model.cfg.prior})"
    )
    if model.cfg.code_dim == 2:
        plots.manifold_images(model, save_path, IMAGE_SHAPE)
    if history:
        plots.training_curves(history, save_path / "curves.png")


def _machine() -> str:
    import os
    import platform

    return (
        f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mode = validate(args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    save_path = Path(args.save_path)
    if mode.startswith("train"):
        train_main(args, mode)
        return 0
    model = load_checkpoint(checkpoint_path(save_path, args.load), map_location=args.device)
    if args.supervise and model.cfg.variant != "supervised":
        raise UserError(f"--supervise samples a supervised model, but {save_path} holds a {model.cfg.variant} one")
    if mode == "viz" and model.cfg.code_dim != 2:
        raise UserError(f"--viz needs a model with a 2-D code; {save_path} has ncode {model.cfg.code_dim}")
    if mode == "generate":
        print(f"wrote {plots.generate_grid(model, save_path / 'generate_im.png', IMAGE_SHAPE)}")
        return 0
    x_test, y_test = _subset(*load_mnist("test", args.data_dir), args.max_test)
    figures(model, x_test.to(args.device), y_test, save_path, [])
    print(f"wrote {save_path}/latent.png and manifold image(s)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
