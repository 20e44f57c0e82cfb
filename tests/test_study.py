"""The study reproduction end to end at toy scale: a 64-px model trained for one epoch, one
budget, both precisions; then a larger budget continues from the records. And which model a
checkpoint and a work dir hold (YOLOX-s runs the same steps)."""

import pytest
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))

from minansor.records import RecordStore  # noqa: E402
from reproduce_study import choose_model, main  # noqa: E402
from yolo.data import make_synthetic_voc  # noqa: E402
from yolo.model import build_model  # noqa: E402
from yolo.train import TrainConfig, save_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow  # end-to-end runs: make test-fast leaves them out


def test_study_table_at_toy_scale_resumes_between_budgets(tmp_path, capsys):
    data, work, report = str(tmp_path / "voc"), str(tmp_path / "work"), str(tmp_path / "study")
    make_synthetic_voc(data, images=10, seed=0, min_size=64, max_size=96)
    common = ["--data", data, "--work-dir", work, "--report", report, "--input-size", "64", "--epochs", "1",
              "--calibration", "2", "--repeats", "1", "--no-progress", "--set", "number=1", "--set", "repeat=1",
              "--set", "min_repeat_ms=1"]
    assert main(common + ["--budgets", "2", "--rounds", "2", "--precisions", "fp32,int8,bf16"]) == 0
    with open(report + ".json") as f:
        saved = json.load(f)
    rows = saved["rows"]
    keys = {(r["precision"], r["runtime"], r["trials"]) for r in rows}
    # OpenVINO's default precision is the CPU's: a row of its own where it is not fp32 (bf16 on AMX)
    default = {k for k in keys if k[1] == "OpenVINO default"}
    assert len(default) <= 1 and all(precision != "fp32" for precision, _, _ in default)
    assert keys - default == {("fp32", "PyTorch eager", 0), ("fp32", "onnxruntime", 0), ("int8", "onnxruntime", 0),
                              ("fp32", "OpenVINO", 0), ("int8", "OpenVINO", 0),
                              ("fp32", "TVM untuned", 0), ("int8", "TVM untuned", 0), ("bf16", "TVM untuned", 0),
                              ("fp32", "TVM + minansor", 2), ("int8", "TVM + minansor", 2),
                              ("bf16", "TVM + minansor", 2)}
    assert all(r["check"] in ("ok", "-") for r in rows)
    # the untuned builds are checked on test images instead of a mAP pass through their naive loops
    untuned = [r for r in rows if r["runtime"] == "TVM untuned"]
    assert untuned and all(math.isnan(r["map_all_point"]) and r["check"] == "ok" for r in untuned)
    assert all(0.0 <= r["map_all_point"] <= 1.0 for r in rows if r not in untuned)
    # every runtime of a precision computes the same detections, so the same mAP as its baseline
    baseline = {("fp32", "PyTorch eager"), ("int8", "onnxruntime")}
    for precision in ("fp32", "int8"):
        reference = next(r["map_all_point"] for r in rows if (r["precision"], r["runtime"]) in baseline
                         and r["precision"] == precision)
        assert all(abs(r["map_all_point"] - reference) <= 0.05 for r in rows
                   if r["precision"] == precision and r not in untuned)
    # the winner in one line above the table, and where the run's time went, stage by stage
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.startswith("winner: ")]) == 1
    stages = out.split("where the time went:")[1]
    for stage in ("data and model", "int8 export", "baselines", "fp32: untuned build", "int8: tuning to 2 trials",
                  "re-timing", "total"):
        assert stage in stages
    assert set(saved["stage_s"]) >= {"data and model", "fp32: tuning to 2 trials", "re-timing"}
    text = open(report + ".md").read()
    assert "**winner: " in text and "## Where the run's time went" in text and "x fastest engine" in text
    assert os.path.getsize(report + ".png") > 0 and "| fp32 | TVM untuned |" in text
    # the tuned rows stand beside PyTorch and onnxruntime, and each task beside the measured peak
    assert "x PyTorch | x onnxruntime |" in text and "x OpenVINO | x OpenVINO default |" in text
    assert saved["peak_gflops"] > 0 and saved["int8_peak_gops"] > 0 and saved["bf16_peak_gflops"] > 0
    tuned = next(r for r in rows if r["runtime"] == "TVM + minansor" and r["precision"] == "fp32")
    assert tuned["tasks"] and all(t["best_ms"] > 0 for t in tuned["tasks"])
    assert "### fp32, 2 trials" in text and "% of peak" in text
    # memory-bound tasks (pools, concatenations, pads) also in GB/s, against a copy of as many bytes
    assert "| GB/s | % of copy |" in text and saved["bandwidth_gbs"] > 0 and saved["copy_gbs"]
    assert all(len(RecordStore(os.path.join(work, precision)).load()) == 2 for precision in ("fp32", "int8", "bf16"))
    # the baselines and the kept tuned libraries are timed again and keep their best; untuned TVM is timed once
    retimed = {(r["precision"], r["runtime"], r["trials"]) for r in rows if r["rounds_ms"]}
    assert retimed == keys - {("fp32", "TVM untuned", 0), ("int8", "TVM untuned", 0), ("bf16", "TVM untuned", 0)}
    assert all(len(r["rounds_ms"]) == 2 and r["latency_ms"] == min(r["rounds_ms"]) for r in rows if r["rounds_ms"])
    assert "| best of 2 |" in text and "| once |" in text
    # a larger budget measures only its own row, continuing from the 2 recorded trials
    assert main(common + ["--budgets", "2,4", "--precisions", "fp32", "--rounds", "0"]) == 0
    out = capsys.readouterr().out
    assert "fp32: tuning up to 4 trials" in out and "timing the untuned" not in out and "training" not in out
    assert len(RecordStore(os.path.join(work, "fp32")).load()) == 4  # budgets are cumulative


def _args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"model": None, "checkpoint": None, "work_dir": None, "report": None,
                                 "budgets": [2, 20], **given})


def test_the_model_names_the_work_dir_and_the_report(tmp_path):
    """YOLOv4-tiny keeps the names of the studies already run; another model's carry its name."""
    first, yolox = _args(), _args(model="yolox-s")
    assert choose_model(first) is None and choose_model(yolox) is None
    assert (first.model, first.work_dir, os.path.basename(first.report)) == ("yolov4-tiny", "work_dirs/study",
                                                                             "study-2-20")
    assert (yolox.work_dir, os.path.basename(yolox.report)) == ("work_dirs/study-yolox-s", "study-yolox-s-2-20")
    # a checkpoint decides the model when --model is not given
    path = str(tmp_path / "yolox.pt")
    model = build_model("yolox-s", 3)
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, TrainConfig(model="yolox-s", input_size=64),
                    ("a", "b", "c"))
    args = _args(checkpoint=path, work_dir=str(tmp_path / "new"))
    loaded, size = choose_model(args)
    assert args.model == loaded.architecture == "yolox-s" and size == 64


def test_another_models_checkpoint_or_work_dir_is_refused_in_one_line(tmp_path, capsys):
    path = str(tmp_path / "yolox.pt")
    model = build_model("yolox-s", 3)
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, TrainConfig(model="yolox-s", input_size=64),
                    ("a", "b", "c"))
    work = tmp_path / "work"
    assert main(["--checkpoint", path, "--model", "yolov4-tiny", "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a yolox-s, not a yolov4-tiny" in err
    assert not work.exists()
    # a work dir from before YOLOX-s joined does not say which model it holds: YOLOv4-tiny
    (work / "fp32").mkdir(parents=True)
    assert main(["--checkpoint", path, "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a yolov4-tiny study: choose another --work-dir for yolox-s" in err
