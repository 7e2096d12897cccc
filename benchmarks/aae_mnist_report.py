"""MNIST semi-supervised results as data: record runs into one JSON file, make the table and the plot.

    python benchmarks/aae_mnist_report.py --record runs/mnist15/strong-1000-s0   # add / update a run
    python benchmarks/aae_mnist_report.py --report                                # table + curves

One record per run (docs/results/mnist_semisupervised.json): recipe, labels, seed, epochs (epochs
actually run), epochs_planned, test_error_final (last epoch), test_error_selected (the epoch with
the lowest validation error; never chosen on test), wall_s, machine, and the per-epoch curve.
`--report` rewrites the block between the mnist-table markers of docs/RESULTS.md (mean +- std
over seeds, per recipe, labels and schedule) and docs/images/mnist_semisupervised_curves.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from latentcast.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "mnist_semisupervised.json"
TABLE_DOC = ROOT / "docs" / "RESULTS.md"
CURVES = ROOT / "docs" / "images" / "mnist_semisupervised_curves.png"
BEGIN, END = "<!-- mnist-table:begin (made by benchmarks/aae_mnist_report.py) -->", "<!-- mnist-table:end -->"
GOALS = {  # published test errors this project measures itself against
    ("reference", 1000): "reference repo 2.90 % (1280 labels)",
    ("paper", 1000): "paper 1.60 +- 0.08 %",
    ("paper", 100): "paper 1.90 +- 0.10 %",
    ("strong", 1000): "paper 1.60 % (extension)",
    ("strong", 100): "paper 1.90 % (extension)",
}


def record_from_run(run_dir: Path) -> dict:
    """One record from a run folder's metrics.json (written after every epoch, so partial runs work)."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist: give a folder written by `python -m aae.mnist --train_semisupervised`")
    m = json.loads(path.read_text())
    if m.get("variant") != "semisupervised" or "selected" not in m:
        raise UserError(f"{run_dir} is not a semi-supervised run with a validation split (no 'selected' epoch)")
    args, history = m["args"], m["history"]
    epochs, planned = int(m["epochs_done"]), int(args["maxepoch"])
    return {
        "recipe": m.get("recipe") or "custom",
        "labels": int(m["n_labelled"]),
        "seed": int(args["seed"]),
        "epochs": epochs,
        "epochs_planned": planned,
        "status": "complete" if epochs >= planned else f"stopped after {epochs} of {planned} epochs",
        "test_error_final": m["final"]["test_error"],
        "test_error_selected": m["selected"]["test_error"],
        "selected_epoch": m["selected"]["epoch"],
        "valid_error_selected": m["selected"]["valid_error"],
        "n_valid": m["n_valid"],
        "n_test": m["n_test"],
        "lr_milestones": m["train_config"]["lr_milestones"],
        "wall_s": m["wall_s"],
        "s_per_epoch": round(m["wall_s"] / max(epochs, 1), 1),
        "machine": m["machine"],
        "device": m.get("device", "cpu"),
        "run": run_dir.name,
        "curve": {
            "epoch": [h["epoch"] for h in history],
            "valid_error": [h["valid_error"] for h in history],
            "test_error": [h["test_error"] for h in history],
        },
    }


def _key(r: dict) -> tuple:
    return (r["recipe"], r["labels"], r["seed"], r["device"], r["run"])


def load(path: Path = RESULTS) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def upsert(records: list[dict], path: Path = RESULTS) -> list[dict]:
    """Add or replace (same recipe, labels, seed, device, run folder) records; atomic write."""
    runs = {_key(r): r for r in load(path)}
    runs.update({_key(r): r for r in records})
    ordered = sorted(runs.values(), key=lambda r: (r["recipe"], r["labels"], r["epochs_planned"], r["seed"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    doc = {"about": "MNIST semi-supervised AAE runs; one record per run. Errors are fractions.", "runs": ordered}
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return ordered


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.2f} % (1 run)"
    return f"{100 * statistics.mean(values):.2f} +- {100 * statistics.stdev(values):.2f} %"


def table(runs: list[dict]) -> str:
    """Markdown table: one row per (recipe, labels, planned epochs, device), mean +- std over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["recipe"], r["labels"], r["epochs_planned"], r["device"]), []).append(r)
    lines = [
        "| recipe | labels | epochs run / planned | seeds | test error, final epoch | test error, validation-selected"
        " epoch | s / epoch | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (recipe, labels, planned, device), rs in sorted(groups.items()):
        ran = sorted({r["epochs"] for r in rs})
        seeds = ", ".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
        lines.append(
            f"| {recipe} | {labels} | {'/'.join(map(str, ran))} / {planned} | {seeds} "
            f"| {_mean_std([r['test_error_final'] for r in rs])} | {_mean_std([r['test_error_selected'] for r in rs])} "
            f"| {statistics.mean(r['s_per_epoch'] for r in rs):.0f} ({device}) | {GOALS.get((recipe, labels), '')} |"
        )
    return "\n".join(lines)


def write_table(runs: list[dict], doc: Path = TABLE_DOC) -> None:
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise UserError(f"{doc} has no {BEGIN} ... {END} block: add the two markers where the table goes")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{table(runs)}\n{END}{tail}")


def plot_curves(runs: list[dict], path: Path = CURVES) -> Path:
    """Validation and test error per epoch for every recorded run (validation dashed)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        c = r["curve"]
        label = f"{r['recipe']} {r['labels']} labels, {r['epochs_planned']} ep, seed {r['seed']}"
        (line,) = ax.plot(c["epoch"], [100 * v for v in c["test_error"]], label=f"{label}: test")
        ax.plot(c["epoch"], [100 * v for v in c["valid_error"]], "--", color=line.get_color(), label=f"{label}: valid")
        ax.plot([r["selected_epoch"]], [100 * r["test_error_selected"]], "o", color=line.get_color())
        for m in r["lr_milestones"]:
            if m - 1 <= c["epoch"][-1]:
                ax.axvline(m - 1, color=line.get_color(), alpha=0.2)
    for goal in (1.6, 1.9, 2.9):
        ax.axhline(goal, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_yticks([1, 1.6, 1.9, 2.9, 5, 10, 20, 50])
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("epoch (vertical lines: lr / 10; dots: validation-selected epoch)")
    ax.set_ylabel("error % (log scale); dotted: goals 1.6 / 1.9 / 2.9 %")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", nargs="*", default=[], help="run folders to add to the results file")
    p.add_argument("--note", default="", help="free text stored with the records given to --record")
    p.add_argument("--report", action="store_true", help="rewrite the docs/RESULTS.md table and the curves plot")
    p.add_argument("--results", default=str(RESULTS), help="results JSON")
    args = p.parse_args(argv)
    path = Path(args.results)
    if args.record:
        records = [record_from_run(Path(d)) | ({"note": args.note} if args.note else {}) for d in args.record]
        runs = upsert(records, path)
        print(f"{path}: {len(runs)} runs")
    if args.report:
        runs = load(path)
        if not runs:
            raise UserError(f"{path} holds no runs: record some with --record RUN_DIR first")
        write_table(runs)
        print(table(runs))
        print(f"wrote {TABLE_DOC} (MNIST table) and {plot_curves(runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
