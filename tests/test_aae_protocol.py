"""The MNIST protocol: recipes parse as documented, resume is exact, validation is held out, VAT's norm."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from aae import mnist, vat
from aae.model import load_checkpoint, read_checkpoint
from aae.train import Trainer

DOCS = Path(__file__).resolve().parents[1] / "docs" / "AAE.md"
TINY = ["--max_train", "640", "--max_test", "100", "--threads", "1", "--no_progress", "--seed", "2"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def documented_recipes() -> dict[str, dict[str, str]]:
    """Each `| `name` | ... | `--flag value ...` |` row of docs/AAE.md's recipe table, as {flag: text}."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        match = re.match(r"^\| `(reference|paper|strong)` \|.*\| `(--[^`]+)` \|", line)
        if match:
            tokens = match.group(2).split()
            rows[match.group(1)] = dict(zip(tokens[::2], tokens[1::2], strict=True))
    return rows


def test_every_recipe_is_documented_and_sets_what_the_docs_say() -> None:
    docs = documented_recipes()
    assert set(docs) == set(mnist.RECIPES) == {"reference", "paper", "strong"}
    for name, flags in docs.items():
        args = mnist.parse_args(["--train_semisupervised", "--recipe", name])
        assert set(flags) == {f"--{k}" for k in mnist.RECIPES[name]}, name
        for flag, text in flags.items():
            value = getattr(args, flag[2:])
            expected = type(value)(text == "True") if isinstance(value, bool) else type(value)(text)
            assert value == expected, (name, flag, value, text)


def test_recipe_values_against_their_sources() -> None:
    ref = mnist.parse_args(["--train_semisupervised", "--recipe", "reference"])
    # conan7882 README + trainer.py: ncode 10, batch 128, 250 epochs, /10 at 150 and 200, cls every 10th step
    assert (ref.ncode, ref.bsize, ref.maxepoch, ref.cls_every, ref.lr) == (10, 128, 250, 10, 2e-4)
    assert mnist.lr_milestones(ref, "semisupervised") == (150, 200)
    short = mnist.parse_args(["--train_semisupervised", "--recipe", "reference", "--maxepoch", "25"])
    assert mnist.lr_milestones(short, "semisupervised") == (15, 20), "the schedule scales with the run length"
    paper = mnist.parse_args(["--train_semisupervised", "--recipe", "paper"])
    assert paper.cls_every == 1 and paper.vatw == 0.0, "paper figures never include the VAT extension"
    strong = mnist.parse_args(["--train_semisupervised", "--recipe", "strong", "--cls_every", "3"])
    assert strong.vatw > 0 and strong.cls_every == 3, "an explicit flag wins over the recipe"
    plain = mnist.parse_args(["--train_semisupervised"])
    assert (plain.ncode, plain.cls_every, plain.vatw, plain.maxepoch) == (2, 1, 0.0, 100), "no recipe: old defaults"


def test_paper_recipe_tiny_run_completes_with_the_documented_values(mnist_files, tmp_path) -> None:
    """The brief's smoke command: the documented `paper` values reach the model and the trainer."""
    argv = ["--train_semisupervised", "--recipe", "paper", "--max_train", "512", "--max_test", "256"]
    argv += ["--maxepoch", "1", "--threads", "1", "--no_progress", "--save_path", str(tmp_path)]
    assert mnist.main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["recipe"] == "paper" and metrics["epochs_done"] == 1 and len(metrics["history"]) == 1
    documented = documented_recipes()["paper"]
    cfg, tcfg = metrics["config"], metrics["train_config"]
    # what each documented flag becomes inside the run (not only in argparse)
    used = {
        "--ncode": cfg["code_dim"],
        "--lr": tcfg["lr"],
        "--bsize": tcfg["batch_size"],
        "--lr_decay": metrics["args"]["lr_decay"],
        "--cls_every": tcfg["cls_every"],
        "--dropout": cfg["dropout_keep"],
        "--noise": cfg["noise"] > 0,
        "--vatw": tcfg["vatw"],
    }
    assert set(used) | {"--maxepoch"} == set(documented), "a new recipe flag needs its check here"
    for flag, text in documented.items():
        if flag == "--maxepoch":  # overridden to 1 in this run on purpose
            assert mnist.parse_args(["--train_semisupervised", "--recipe", "paper"]).maxepoch == int(text)
            continue
        expected = text == "True" if text in ("True", "False") else type(used[flag])(text)
        assert used[flag] == expected, (flag, used[flag], text)
    assert tcfg["epochs"] == 1
    assert metrics["history"][0]["lr"] == tcfg["lr"], "a 1-epoch run trains at the full rate: no cut in epoch 1"
    assert 0.0 <= metrics["final"]["test_error"] <= 1.0


def test_fractional_schedule_never_cuts_the_first_epoch() -> None:
    def milestones(maxepoch: int) -> tuple[int, ...]:
        args = mnist.parse_args(["--train_semisupervised", "--recipe", "paper", "--maxepoch", str(maxepoch)])
        return mnist.lr_milestones(args, "semisupervised")

    assert milestones(1) == (2, 2) and milestones(2) == (2, 2) and milestones(3) == (2, 2)
    assert milestones(10) == (6, 8) and milestones(250) == (150, 200)


def test_recipe_needs_semisupervised_mode(capsys) -> None:
    from latentcast.errors import run_cli

    assert run_cli(mnist.main, ["--train", "--recipe", "strong"]) == 2
    assert "--train_semisupervised" in capsys.readouterr().err


def test_validation_split_never_overlaps_labelled_rows_or_the_test_set(mnist_files) -> None:
    x, y = mnist.load_mnist("train")
    x_test, _ = mnist.load_mnist("test")
    train_rows, valid_rows = mnist.split_train_valid(len(x), 5000)
    assert len(valid_rows) == 5000 and len(train_rows) == 55000
    assert not set(train_rows.tolist()) & set(valid_rows.tolist())
    for seed in range(3):
        labels = mnist.keep_labels(y[train_rows], 1000, seed)
        labelled = set(train_rows[labels >= 0].tolist())
        assert len(labelled) == 1000 and not labelled & set(valid_rows.tolist())

    def digests(images: torch.Tensor) -> set[str]:
        return {hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in images}

    assert not digests(x[valid_rows]) & digests(x_test), "no validation image is also a test image"


def test_run_reports_final_and_validation_selected_epochs(mnist_files, tmp_path) -> None:
    argv = ["--train_semisupervised", "--recipe", "paper", "--maxepoch", "3", "--nlabels", "100"]
    assert mnist.main([*argv, "--save_path", str(tmp_path), "--n_valid", "200", *TINY]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_valid"] == 200 and metrics["n_train"] == 440 and metrics["n_labelled"] == 100
    history = metrics["history"]
    best = min(history, key=lambda h: (h["valid_error"], h["epoch"]))
    assert metrics["selected"]["on"] == "validation" and metrics["selected"]["epoch"] == best["epoch"]
    assert metrics["selected"]["test_error"] == best["test_error"]
    assert metrics["final"]["test_error"] == history[-1]["test_error"]
    kept = {p.name for p in tmp_path.glob("aae-epoch-*.pt")}
    assert kept == {f"aae-epoch-{e}.pt" for e in {2, best["epoch"]}}, "only last + selected weights stay"

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import aae_mnist_report as report

    record = report.record_from_run(tmp_path)
    assert (record["recipe"], record["labels"], record["seed"], record["epochs"]) == ("paper", 100, 2, 3)
    assert record["test_error_final"] == metrics["final"]["test_error"]
    assert record["test_error_selected"] == metrics["selected"]["test_error"]
    assert isinstance(record["wall_s"], float) and record["machine"] and record["status"] == "complete"
    results = tmp_path / "results.json"
    other = {**record, "seed": 3, "test_error_final": record["test_error_final"] + 0.02}
    runs = report.upsert([record, other], results)
    assert len(report.upsert([record], results)) == 2 == len(runs), "same run recorded twice stays one record"
    row = report.table(runs).splitlines()[-1]
    mean = 100 * (2 * record["test_error_final"] + 0.02) / 2
    assert row.startswith("| paper | 100 | 3 / 3 | 2, 3 |") and f"{mean:.2f} +- 1.41 %" in row


class Interrupt(Exception):
    pass


def test_resume_after_an_interrupted_epoch_gives_the_same_weights(mnist_files, tmp_path, monkeypatch) -> None:
    argv = ["--train_semisupervised", "--recipe", "strong", "--maxepoch", "3", "--nlabels", "50", "--bsize", "64"]
    argv += ["--n_valid", "64", "--resume", "--plot_every", "1", *TINY]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert mnist.main([*argv, "--save_path", str(straight)]) == 0

    real_step = Trainer.step

    def step_then_die(self, *a, **k):
        if self.epoch == 2 and self.global_step % 9 == 4:  # a few steps into the third epoch
            raise Interrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(Trainer, "step", step_then_die)
    with pytest.raises(Interrupt):
        mnist.main([*argv, "--save_path", str(broken)])
    assert read_checkpoint(broken / "trainer-state.pt")["epoch"] == 1
    monkeypatch.setattr(Trainer, "step", real_step)
    torch.manual_seed(12345)  # a different process state must not matter: everything comes from the checkpoint
    assert mnist.main([*argv, "--save_path", str(broken)]) == 0
    a, b = (
        load_checkpoint(straight / "aae-epoch-2.pt").state_dict(),
        load_checkpoint(broken / "aae-epoch-2.pt").state_dict(),
    )
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    sa, sb = read_checkpoint(straight / "trainer-state.pt"), read_checkpoint(broken / "trainer-state.pt")
    for name, opt in sa["trainer"]["optimizers"].items():
        for key, moments in opt["state"].items():
            other = sb["trainer"]["optimizers"][name]["state"][key]
            assert torch.equal(moments["exp_avg"], other["exp_avg"]), name
    drop = ("wall_s", "train_s")
    assert [{k: v for k, v in h.items() if k not in drop} for h in sa["history"]] == [
        {k: v for k, v in h.items() if k not in drop} for h in sb["history"]
    ]


def test_resume_refuses_other_settings(mnist_files, tmp_path, capsys) -> None:
    from latentcast.errors import run_cli

    argv = ["--train_semisupervised", "--maxepoch", "1", "--nlabels", "50", "--n_valid", "64", "--resume", *TINY]
    assert mnist.main([*argv, "--save_path", str(tmp_path)]) == 0
    assert run_cli(mnist.main, [*argv, "--save_path", str(tmp_path), "--lr", "1e-3"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_vat_perturbation_has_the_configured_norm_and_is_adversarial() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.Tanh(), torch.nn.Linear(32, 5))
    x = torch.randn(16, 20)
    generator = torch.Generator().manual_seed(1)
    for eps in (0.5, 4.0):
        r = vat.adversarial_perturbation(net, x, eps, generator=generator)
        assert r.shape == x.shape
        assert torch.allclose(r.norm(dim=1), torch.full((16,), eps), rtol=1e-5)
    assert all(p.grad is None for p in net.parameters()), "finding the direction must not touch weight gradients"
    r = vat.adversarial_perturbation(net, x, 0.5, power_iterations=3, generator=generator)
    random_dir = 0.5 * vat.l2_normalize(torch.randn(x.shape, generator=generator))
    with torch.no_grad():
        clean = net(x)
        assert vat._kl(clean, net(x + r)) > vat._kl(clean, net(x + random_dir))
    loss = vat.vat_loss(net, x, 0.5, generator=generator)
    loss.backward()
    assert loss > 0 and any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine: --device cuda not exercised")
def test_cuda_run_and_resume_end_to_end(mnist_files, tmp_path) -> None:
    argv = ["--train_semisupervised", "--recipe", "strong", "--maxepoch", "2", "--nlabels", "50", "--n_valid", "64"]
    argv += ["--device", "cuda", "--resume", "--save_path", str(tmp_path), *TINY]
    assert mnist.main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["device"] == "cuda" and metrics["epochs_done"] == 2
    assert mnist.main(argv) == 0, "resuming a finished run is a no-op"
    model = load_checkpoint(tmp_path / "aae-epoch-1.pt")
    assert model.cfg.code_dim == 10
