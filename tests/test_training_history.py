"""experiments/training_history.py: a run's history page, with chance measured on the untrained network."""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))

from training_history import main, read_history  # noqa: E402
from yolo.data import VOCDataset, make_synthetic_voc  # noqa: E402
from yolo.evaluate import evaluate, torch_forward  # noqa: E402
from yolo.model import build_model, load_checkpoint  # noqa: E402
from yolo.train import TrainConfig, train  # noqa: E402


def test_a_resumed_epoch_keeps_its_later_record(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"epoch": 0, "loss": 3.0}\n{"epoch": 1, "loss": 2.0}\n{"epoch": 1, "loss": 1.5}\n\n')
    assert [(r["epoch"], r["loss"]) for r in read_history(str(path))] == [(0, 3.0), (1, 1.5)]


def test_the_page_holds_the_history_and_the_measured_mAPs(tmp_path, capsys):
    data, run, report = str(tmp_path / "voc"), str(tmp_path / "run"), str(tmp_path / "page")
    make_synthetic_voc(data, images=10, seed=0, min_size=96, max_size=160)
    config = TrainConfig(input_size=96, unfrozen_epochs=2, unfrozen_batch=4, seed=3)
    train(VOCDataset(data, "train"), config, run, VOCDataset(data, "val"), progress=False)
    assert main(["--run", run, "--data", data, "--report", report]) == 0
    assert "wrote" in capsys.readouterr().out

    with open(report + ".json") as f:
        page = json.load(f)
    assert [r["epoch"] for r in page["history"]] == [0, 1] and "val_map" in page["history"][-1]
    assert page["config"]["seed"] == 3 and page["command"].endswith(f"--report {report}")
    assert page["training_command"] == (f"python -m yolo.train --data {data} --out {run} --input-size 96 "
                                        "--unfrozen-epochs 2 --unfrozen-batch 4 --seed 3")
    model, size, _ = load_checkpoint(os.path.join(run, "last.pt"))
    test = VOCDataset(data, "test")
    assert page["trained_map"]["test"] == evaluate(torch_forward(model), test, size, model.num_classes, False)[0].map
    torch.manual_seed(3)  # the run's own initial weights, not another draw
    untrained = build_model("yolov4-tiny", model.num_classes)
    assert page["untrained_map"]["test"] == evaluate(torch_forward(untrained), test, size, model.num_classes,
                                                     False)[0].map
    text = open(report + ".md").read()
    assert "| 2 |" in text and f"{page['trained_map']['val']:.3f}" in text
    assert os.path.getsize(report + ".png") > 0


def test_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip().startswith("training_history: error:")
