"""Training and evaluation end to end on a tiny synthetic set (seconds, not a real run)."""

import json
import os
import re

from yolo.data import VOCDataset, make_synthetic_voc
from yolo.evaluate import evaluate, main as evaluate_main, torch_forward
from yolo.model import load_checkpoint
from yolo.train import TrainConfig, main as train_main, train


def test_train_resume_and_evaluate(tmp_path, capsys):
    data, out = str(tmp_path / "voc"), str(tmp_path / "run")
    make_synthetic_voc(data, images=10, seed=0, min_size=96, max_size=160)
    config = TrainConfig(input_size=128, frozen_epochs=1, unfrozen_epochs=1, frozen_batch=4, unfrozen_batch=4)
    train(VOCDataset(data, "train"), config, out, VOCDataset(data, "val"), progress=False)
    with open(os.path.join(out, "history.jsonl")) as f:
        history = [json.loads(line) for line in f]
    assert [h["epoch"] for h in history] == [0, 1] and 0.0 <= history[-1]["val_map"] <= 1.0
    # one more unfrozen epoch continues from the checkpoint instead of starting over
    longer = TrainConfig(**{**config.__dict__, "unfrozen_epochs": 2})
    train(VOCDataset(data, "train"), longer, out, progress=False)
    with open(os.path.join(out, "history.jsonl")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [0, 1, 2]
    model, size, classes = load_checkpoint(os.path.join(out, "last.pt"))
    assert classes == VOCDataset(data, "test").classes
    all_point, eleven = evaluate(torch_forward(model), VOCDataset(data, "test"), size, model.num_classes, False)
    assert 0.0 <= all_point.map <= 1.0 and 0.0 <= eleven.map <= 1.0
    # the command line evaluates the same checkpoint to the same mAP
    assert evaluate_main(["--data", data, "--checkpoint", os.path.join(out, "last.pt"), "--split", "test"]) == 0
    printed = re.search(r"mAP@0.5 on test \(\d+ images\): ([\d.]+) all-point", capsys.readouterr().out)
    assert printed and printed.group(1) == f"{all_point.map:.4f}"


def test_bad_paths_are_one_line_errors(tmp_path, capsys):
    assert train_main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert evaluate_main(["--data", str(tmp_path), "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("yolo.") for line in err)
