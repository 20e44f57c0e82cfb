"""A training run's history as a results page: loss and validation mAP per epoch against the untrained network.

    python experiments/training_history.py --run runs/yolox416

Reads RUN/history.jsonl and RUN/last.pt, both written by `python -m yolo.train`. Chance is measured,
not assumed: the same architecture, initialized as that run initialized it (its seed), evaluated on
the same split; the last checkpoint is evaluated on the validation and test splits. Writes
experiments/results/train-<model>-<input size>.{md,json,png} (or --report).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.plots import pyplot, save  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from yolo.data import VOCDataset  # noqa: E402
from yolo.evaluate import evaluate, torch_forward  # noqa: E402
from yolo.model import DISPLAY_NAMES, build_model, load_checkpoint  # noqa: E402
from yolo.train import TrainConfig  # noqa: E402

LOSS_PARTS = ("box", "object", "class")


def read_history(path: str) -> list[dict]:
    """One record per epoch; a run killed between its checkpoint and its history line and resumed keeps the later."""
    by_epoch = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                by_epoch[record["epoch"]] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def training_command(config: dict, run: str, data: str) -> str:
    """The yolo.train command that trains this run again: its settings that differ from the defaults."""
    defaults = dataclasses.asdict(TrainConfig())
    flags = [f"--{name.replace('_', '-')} {value}" for name, value in config.items() if defaults.get(name) != value]
    return " ".join(["python -m yolo.train --data", data, "--out", run, *flags])


def split_map(model: torch.nn.Module, data: str, split: str, input_size: int) -> float:
    return evaluate(torch_forward(model), VOCDataset(data, split), input_size, model.num_classes, progress=False)[0].map


def plot(history: list[dict], untrained: float, title: str, path: str) -> None:
    plt = pyplot()
    fig, loss_axis = plt.subplots(figsize=(7, 4))
    epochs = [r["epoch"] + 1 for r in history]
    loss_axis.plot(epochs, [r["loss"] for r in history], color="tab:gray", label="loss (last batch)")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss")
    map_axis = loss_axis.twinx()
    evaluated = [r for r in history if "val_map" in r]
    map_axis.plot([r["epoch"] + 1 for r in evaluated], [r["val_map"] for r in evaluated], "o-", color="tab:blue",
                  label="validation mAP@0.5")
    map_axis.axhline(untrained, color="tab:red", linestyle="--", label=f"untrained network ({untrained:.3f})")
    map_axis.set_ylabel("mAP@0.5")
    map_axis.set_ylim(0, 1)
    lines = loss_axis.get_legend_handles_labels()[0] + map_axis.get_legend_handles_labels()[0]
    map_axis.legend(lines, [line.get_label() for line in lines], loc="center right")
    loss_axis.set_title(title)
    save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a yolo.train output directory (history.jsonl, last.pt)")
    parser.add_argument("--data", default="data/synthetic-voc", help="the set it was trained on (default "
                                                                     "data/synthetic-voc)")
    parser.add_argument("--report", help="report path without extension (default "
                                         "experiments/results/train-<model>-<input size>)")
    args = parser.parse_args(argv)
    try:
        history = read_history(os.path.join(args.run, "history.jsonl"))
        state = torch.load(os.path.join(args.run, "last.pt"), map_location="cpu", weights_only=False)
        model, input_size, _ = load_checkpoint(os.path.join(args.run, "last.pt"))
    except (OSError, KeyError, ValueError) as err:
        print(f"training_history: error: {err}", file=sys.stderr)
        return 2
    config = state["config"]
    torch.manual_seed(config["seed"])  # as yolo.train seeds the network it then trains
    untrained = build_model(model.architecture, model.num_classes).eval()
    untrained_val = split_map(untrained, args.data, "val", input_size)
    untrained_test = split_map(untrained, args.data, "test", input_size)
    trained_val = split_map(model, args.data, "val", input_size)
    trained_test = split_map(model, args.data, "test", input_size)

    name = DISPLAY_NAMES.get(model.architecture, model.architecture)
    report = args.report or os.path.join(RESULTS, f"train-{model.architecture}-{input_size}")
    command = "python experiments/training_history.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = [[r["epoch"] + 1, f"{r['loss']:.2f}", *(f"{r[p]:.2f}" if p in r else "" for p in LOSS_PARTS),
             f"{r['lr']:.2e}", f"{r['val_map']:.3f}" if "val_map" in r else ""] for r in history]
    lines = [f"# {name}: training on `{args.data}` at {input_size}x{input_size}", "",
             f"Machine: {machine()}. Command: `{command}`", "",
             f"Run `{args.run}`, {len(history)} epochs, trained by `{training_command(config, args.run, args.data)}`; "
             "its settings (yolo.train's TrainConfig): " + ", ".join(f"{k}={v}" for k, v in config.items()) + ".", "",
             "mAP is VOC mAP@0.5 (all-point). The untrained network is the same architecture initialized with the "
             "run's seed, as yolo.train initializes it before its first step: what a network that learned nothing "
             "scores here.", "",
             *markdown_table(["split", "untrained", "trained (last checkpoint)"],
                             [["val", f"{untrained_val:.3f}", f"{trained_val:.3f}"],
                              ["test", f"{untrained_test:.3f}", f"{trained_test:.3f}"]]), "",
             "## Per epoch", "",
             "Loss of the epoch's last batch (the sum and its parts); validation mAP every 5 epochs and at the end.", "",
             *markdown_table(["epoch", "loss", *LOSS_PARTS, "lr", "val mAP@0.5"], rows), ""]
    os.makedirs(os.path.dirname(report) or ".", exist_ok=True)
    with open(report + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(report + ".json", "w", encoding="utf-8") as f:
        json.dump({"command": command, "machine": machine(), "model": model.architecture, "input_size": input_size,
                   "training_command": training_command(config, args.run, args.data), "config": config,
                   "untrained_map": {"val": untrained_val, "test": untrained_test},
                   "trained_map": {"val": trained_val, "test": trained_test}, "history": history}, f, indent=1)
    plot(history, untrained_val, f"{name} on {os.path.basename(os.path.normpath(args.data))}: training", report + ".png")
    print("\n".join(lines[:12]))
    print(f"wrote {report}.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
