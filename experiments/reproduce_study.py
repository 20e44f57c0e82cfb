"""Reproduce the study's speedup table: YOLOv4-tiny (or YOLOX-s) FPS and mAP before and after tuning.

    python experiments/reproduce_study.py                                   # short form (make demo), ~10 min
    python experiments/reproduce_study.py --checkpoint runs/yolo416/last.pt --budgets 200,2000,10000
    python experiments/reproduce_study.py --model yolox-s                   # the study's second network

The study (YOLOv4-tiny 416x416 on a Jetson Nano, TVM + Ansor) reports 13.5 FPS before tuning,
then 74.9 / 134.5 / 175.5 FPS after 200 / 2000 / 10000 trials (5.55x / 9.96x / 13x) with mAP
83.8 -> 83.6 / 83.5 / 83.3 %. This script measures the same table on the target at hand:

1. data: a synthetic VOC-layout set (--data; generated when absent, or a real VOC2007 directory);
2. model: --checkpoint (its own architecture; --model, if given, must agree), or a short training
   run of --model (default yolov4-tiny) at 416x416 into WORK_DIR/train (resumes): --epochs 1 by
   default, as long as a speed table needs (latency does not depend on the weights), so its mAP
   shows that the rows compute the same detections, not the network's accuracy;
3. int8: PT2E quantization calibrated on --calibration training images, QDQ ONNX export;
4. baselines: PyTorch eager (fp32), onnxruntime (fp32, int8), OpenVINO (its default precision:
   bf16 on a CPU with AMX or AVX-512 BF16; fp32 forced; int8), TVM untuned (fp32, int8 with
   integer convolutions);
5. tuning: minansor over the whole network for each cumulative budget in --budgets, each
   precision in its own record directory (WORK_DIR/fp32, WORK_DIR/int8): a larger budget
   continues from the records of the smaller one, never from zero;
6. every row: latency (median of --repeats runs, batch 1), FPS, speedup over untuned TVM of the
   same precision, and VOC mAP@0.5 on the test split computed with that very runtime or build;
   every TVM build is checked against PyTorch / onnxruntime on a random input. The untuned builds
   (naive loops, seconds per image) are timed once and checked on --check-images test images
   instead of a full mAP pass (--untuned-map runs it);
7. re-timing: the baselines and every tuned library (kept as WORK_DIR/<precision>/<model>-<precision>-<budget>.so)
   are timed again in --rounds interleaved rounds, the TVM ones each in a fresh process, and every
   row keeps the best of its rounds. One timing is not enough on a shared VM: the same library
   has measured 20.6 ms in one process and 35.9 ms in the next (experiments/network_timing.py), and
   interleaving gives every runtime the same chance at the machine's quiet moments.

The winner (the fastest row) is named in one line above the table, and every TVM row stands beside
the fastest engine present here (x fastest engine). Each stage's wall time is printed at the end
and kept in the report with the date and the machine.

Rows already measured are kept in WORK_DIR/study.json, so a killed run goes on where it stopped
(--fresh starts the table over; records are never thrown away). A work dir holds one model's study
(WORK_DIR/model.txt; the default is work_dirs/study for YOLOv4-tiny, work_dirs/study-<model> for
the others). Writes the table to experiments/results/study-<budgets>.md (YOLOX-s:
study-yolox-s-<budgets>.md) with a plot of FPS against trials (.png) and the raw rows (.json). The
study measured YOLOv4-tiny only: its figures stand beside that model's rows alone. Run nothing
else on the machine meanwhile: the latencies are the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.ablate_network import commit_of_this_checkout  # noqa: E402
from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.cli import format_table  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.measure.peak import (amx_peak_gops, fp32_peak_gflops, int8_peak_gops, memory_bandwidth_gbs,  # noqa: E402
                                   memory_bandwidths_gbs)
from minansor.plots import pyplot, save  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from minansor.tasks.targets import resolve_target  # noqa: E402
from minansor.tir.amx import has_amx  # noqa: E402
from minansor.tir.vnni import has_vnni  # noqa: E402
from minansor.validation import with_overrides  # noqa: E402

#: The study's FPS by trials (0: untuned) per model; it measured YOLOv4-tiny only.
STUDY_FPS = {"yolov4-tiny": {0: 13.5, 200: 74.9, 2000: 134.5, 10000: 175.5}}
STUDY_SUMMARY = {"yolov4-tiny": "The study: 13.5 FPS untuned; 74.9 / 134.5 / 175.5 FPS after 200 / 2000 / 10000 "
                                "trials; mAP 83.8 / 83.6 / 83.5 / 83.3 %."}
#: The model whose work dir and report keep the names they had before YOLOX-s joined.
FIRST_MODEL = "yolov4-tiny"
PRECISIONS = ("fp32", "int8", "bf16")  # bf16: the fp32 network's convolutions on bf16 operands (network/bf16.py)


@dataclass
class Row:
    precision: str  # fp32 | int8
    runtime: str  # PyTorch eager | onnxruntime | OpenVINO ... | TVM untuned | TVM + minansor
    trials: int  # 0 for the baselines
    latency_ms: float
    map_all_point: float
    map_11_point: float
    check: str = "-"  # TVM builds: "ok" or what differs from the reference
    tuning_s: float = 0.0  # wall time of all tuning that led to this row (cumulative over budgets)
    tasks: list[dict] = field(default_factory=list)  # TVM + minansor: per task, its best program's latency
    rounds_ms: list[float] = field(default_factory=list)  # re-timings of the last run; latency_ms is their best

    @property
    def key(self) -> str:
        return f"{self.precision}/{self.runtime}/{self.trials}"

    @property
    def fps(self) -> float:
        return 1e3 / self.latency_ms


class StageClock:
    """Wall time of each stage of one run, in the order the stages ran: a newcomer's first
    question is where the minutes went. A stage entered twice (tuning at two budgets) adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def lines(self) -> list[str]:
        total = time.perf_counter() - self.started
        width = max(map(len, self.seconds), default=0)
        return ([f"  {name:<{width}}  {minutes(s)}" for name, s in self.seconds.items()]
                + [f"  {'total':<{width}}  {minutes(total)}"])


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


# ------------------------------------------------------------------ the steps


def choose_model(args) -> tuple[object, int] | None:
    """Settle args.model, args.work_dir and args.report; returns (model, input size) of
    --checkpoint, if given. A checkpoint of another architecture than --model, or a work dir that
    holds another model's study, is a ValueError."""
    from yolo.model import load_checkpoint

    checkpoint = None
    if args.checkpoint:
        try:
            model, size, _ = load_checkpoint(args.checkpoint)
        except (OSError, KeyError, RuntimeError) as err:
            raise ValueError(f"cannot read {args.checkpoint}: {str(err).splitlines()[0]}") from None
        if args.model and args.model != model.architecture:
            raise ValueError(f"{args.checkpoint} holds a {model.architecture}, not a {args.model}: pass a "
                             f"{args.model} checkpoint, or leave out --model")
        args.model, checkpoint = model.architecture, (model, size)
    args.model = args.model or FIRST_MODEL
    named = "" if args.model == FIRST_MODEL else f"-{args.model}"
    args.work_dir = args.work_dir or f"work_dirs/study{named}"
    args.report = args.report or os.path.join(RESULTS, f"study{named}-" + "-".join(map(str, args.budgets)))
    held = work_dir_model(args.work_dir)
    if held not in (None, args.model):
        raise ValueError(f"{args.work_dir} holds a {held} study: choose another --work-dir for {args.model}")
    return checkpoint


def work_dir_model(work_dir: str) -> str | None:
    """The model whose study a work dir holds (None: a new one). Work dirs from before YOLOX-s
    joined do not say: they hold YOLOv4-tiny's."""
    path = os.path.join(work_dir, "model.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    used = any(os.path.exists(os.path.join(work_dir, entry)) for entry in ("study.json", "train", "models", "fp32",
                                                                             "int8"))
    return FIRST_MODEL if used else None


def prepare_model(args, checkpoint: tuple[object, int] | None):
    """The model: the checkpoint given, or one of args.model trained here at 416x416."""
    import torch

    from yolo.data import VOCDataset, make_synthetic_voc
    from yolo.model import DISPLAY_NAMES, load_checkpoint
    from yolo.train import TrainConfig, train

    if not os.path.isdir(os.path.join(args.data, "ImageSets")):
        print(f"generating a synthetic VOC-layout set of {args.images} images in {args.data}")
        make_synthetic_voc(args.data, images=args.images, seed=args.seed)
    if checkpoint:
        model, size = checkpoint
        if size != args.input_size:
            print(f"note: {args.checkpoint} was trained at {size}x{size}; measuring at {args.input_size}x"
                  f"{args.input_size}")
        return model
    config = TrainConfig(model=args.model, input_size=args.input_size, unfrozen_epochs=args.epochs, unfrozen_lr=2e-3,
                         seed=args.seed)
    out = os.path.join(args.work_dir, "train")
    last = os.path.join(out, "last.pt")
    if not os.path.exists(last) or torch.load(last, weights_only=False)["epoch"] + 1 < config.epochs:
        print(f"training {DISPLAY_NAMES[args.model]} for {args.epochs} epochs at {args.input_size}x{args.input_size} "
              f"into {out} (pass --checkpoint to use a trained one)")
        train(VOCDataset(args.data, "train"), config, out, progress=not args.no_progress)
    return load_checkpoint(last)[0]


def export_models(model, args) -> dict[str, str]:
    """fp32 and int8 ONNX files in WORK_DIR/models (kept: the int8 calibration is part of the result)."""
    from yolo.data import VOCDataset
    from yolo.quantize import calibration_inputs, export_fp32_and_int8

    folder, prefix = os.path.join(args.work_dir, "models"), f"{args.model}-"
    paths = {p: os.path.join(folder, f"{prefix}{p}.onnx") for p in ("fp32", "int8")}
    if all(os.path.exists(path) for path in paths.values()):
        return paths
    print(f"quantizing to int8 with {args.calibration} calibration images")
    calibration = calibration_inputs(VOCDataset(args.data, "train"), args.calibration, args.input_size,
                                     np.random.default_rng(args.seed))
    return export_fp32_and_int8(model, calibration, folder, args.input_size, prefix)


def measured_map(forward, args) -> tuple[float, float]:
    from yolo.data import VOCDataset
    from yolo.evaluate import evaluate

    all_point, eleven_point = evaluate(forward, VOCDataset(args.data, args.split), args.input_size,
                                       args.num_classes,
                                       progress=not args.no_progress)
    return all_point.map, eleven_point.map


def baseline_runtimes(model, paths: dict[str, str]) -> list[tuple[str, str, Callable]]:
    """(precision, runtime, forward) of the runtimes a user would otherwise run: PyTorch eager,
    and onnxruntime and OpenVINO (its default precision, fp32 forced, int8) on the ONNX exports."""
    from minansor.network.engines import onnx_engines
    from yolo.evaluate import torch_forward

    runtimes = [("fp32", "PyTorch eager", torch_forward(model))]
    for model_precision in ("fp32", "int8"):
        runtimes += [(engine.precision, engine.name, lambda batch, forward=engine.forward: forward([batch]))
                     for engine in onnx_engines(paths[model_precision], quantized=model_precision == "int8")]
    return runtimes


def shown(precision: str, runtime: str, args) -> bool:
    """Whether a row belongs in this run's table: its precision was asked for, or it is OpenVINO
    left to its default precision (bf16 on some CPUs), the fastest engine there and so the bar."""
    return precision in args.precisions or runtime == "OpenVINO default"


def study_input(args) -> np.ndarray:
    return np.random.default_rng(args.seed).random((1, 3, args.input_size, args.input_size), dtype=np.float32)


def split_images(args, count: int) -> list[np.ndarray]:
    """The first `count` images of the --split, as the network sees them (letterboxed, NCHW)."""
    from yolo.data import VOCDataset, letterbox
    from yolo.detect import to_input

    dataset = VOCDataset(args.data, args.split)
    return [to_input(letterbox(dataset[i].image, np.zeros((0, 4), np.float32), args.input_size)[0])
            for i in range(min(count, len(dataset)))]


def baseline_rows(runtimes: list[tuple[str, str, Callable]], args, done: set[str]):
    """PyTorch eager, onnxruntime and OpenVINO, timed on one input the way the TVM rows are."""
    from minansor.network.run import median_time

    x = study_input(args)
    for precision, runtime, forward in runtimes:
        if f"{precision}/{runtime}/0" in done or not shown(precision, runtime, args):
            continue
        latency_s, _ = median_time(lambda: forward(x), args.repeats, warmup=3)
        yield Row(precision, runtime, 0, latency_s * 1e3, *measured_map(forward, args))


def library_path(args, precision: str, budget: int) -> str:
    """Where the tuned library of one row is kept for re-timing."""
    return os.path.join(args.work_dir, precision, f"{args.model}-{precision}-{budget}.so")


def tvm_rows(precision: str, network, args, config: SearchConfig, rows: list[Row], clock: StageClock):
    """Untuned TVM, then TVM + minansor at every budget, continuing one record directory."""
    from minansor.network.graph import optimize_for
    from minansor.measure.local import export_library
    from minansor.network.run import build, check_against_reference, run_library, vm_forward
    from minansor.network.tuning import tune_network

    done = {r.key for r in rows}
    inputs = [spec.random(np.random.default_rng(args.seed)) for spec in network.inputs]
    if f"{precision}/TVM untuned/0" not in done:
        print(f"{precision}: timing the untuned build")
        with clock.stage(f"{precision}: untuned build, timing and check"):
            library = os.path.join(args.work_dir, precision, f"{args.model}-{precision}-untuned.so")
            os.makedirs(os.path.dirname(library), exist_ok=True)
            export_library(build(optimize_for(network.mod, config, precision=network.precision))[0], library)
            timing = run_library(library, inputs, 1, resolve_target("cpu"))  # once: naive loops, seconds a run
            checks = [check_against_reference(network, timing.outputs, inputs, config)]
            if args.untuned_map:
                maps = measured_map(vm_forward(library), args)
            else:  # the same detections as the reference, shown by its outputs on real images
                forward, maps = vm_forward(library), (math.nan, math.nan)
                checks += [check_against_reference(network, forward(image), [image], config)
                           for image in split_images(args, args.check_images)]
        failed = next((c.detail for c in checks if not c.ok), None)
        yield Row(precision, "TVM untuned", 0, timing.median_s * 1e3, *maps, failed or "ok")
    for budget in args.budgets:
        if f"{precision}/TVM + minansor/{budget}" in done:
            continue
        before = [r.tuning_s for r in rows if r.precision == precision and 0 < r.trials < budget]
        print(f"{precision}: tuning up to {budget} trials")
        started = time.perf_counter()
        result = tune_network(network, config, os.path.join(args.work_dir, precision), budget, args.seed,
                              progress=not args.no_progress, repeats=args.repeats, measure_untuned=False,
                              compare_engines=False)  # the baselines have rows of their own
        tuning_s = max(before, default=0.0) + result.tuning.wall_s
        shutil.copyfile(result.library, library_path(args, precision, budget))
        check = result.tuned_check
        tasks = [{"task": r.task.name, "weight": r.task.weight, "flops": r.task.flops, "bytes": r.task.bytes,
                  "best_ms": r.best_ms} for r in result.tuning.results]
        maps = measured_map(vm_forward(result.library), args)
        clock.add(f"{precision}: tuning to {budget} trials", result.tuning.wall_s)
        clock.add(f"{precision}: tuned build, check, timing and mAP", time.perf_counter() - started - result.tuning.wall_s)
        yield Row(precision, "TVM + minansor", budget, result.tuned.median_s * 1e3, *maps,
                  "ok" if check.ok else check.detail, tuning_s, tasks)
        print(f"  {budget} trials: {result.tuned.median_s * 1e3:.1f} ms "
              f"({time.perf_counter() - started:.0f} s including the build and mAP)")


def retime(rows: list[Row], runtimes: list[tuple[str, str, Callable]], args) -> None:
    """Time the baselines and every tuned row whose library is kept again, in `args.rounds`
    interleaved rounds (each TVM library in a fresh process, as `network.run_library` does), and
    set each row's latency to the best of its rounds. Rows that cannot be timed again (the untuned
    builds, tuned rows without a kept library) keep their one timing."""
    from tqdm import tqdm

    from minansor.network.run import median_time, run_library
    from minansor.tasks.targets import resolve_target

    x, target = study_input(args), resolve_target("cpu")
    timers: dict[str, Callable[[], float]] = {}
    for precision, runtime, forward in runtimes:
        timers[f"{precision}/{runtime}/0"] = (
            lambda forward=forward: median_time(lambda: forward(x), args.repeats, warmup=3)[0])
    for r in rows:
        path = library_path(args, r.precision, r.trials)
        if r.runtime == "TVM + minansor" and os.path.exists(path):
            timers[r.key] = lambda path=path: run_library(path, [x], args.repeats, target).median_s
    by_key = {r.key: r for r in rows if r.key in timers}
    for r in by_key.values():
        r.rounds_ms = []
    for _ in tqdm(range(args.rounds), desc=f"re-timing {len(by_key)} rows", disable=args.no_progress):
        for key, r in by_key.items():
            r.rounds_ms.append(timers[key]() * 1e3)
    for r in by_key.values():
        r.latency_ms = min(r.rounds_ms)


# ------------------------------------------------------------------ the report


def table(rows: list[Row], model: str = FIRST_MODEL) -> tuple[list[str], list[list]]:
    """One row per runtime and budget; TVM rows with their speedup over untuned TVM (and the
    study's, for the model it measured) and their latency ratio to PyTorch eager and onnxruntime
    of the same precision (above 1: faster); int8 rows also against onnxruntime fp32 and against
    our fp32 build at the same budget; every TVM row against OpenVINO of its precision (fp32
    forced, int8, or its default where that is the row's precision: bf16) and against OpenVINO's
    default (bf16 where the CPU has it); every TVM row also against the fastest engine of any
    precision here (x fastest engine: the bar a user would otherwise set)."""
    baselines = {(r.precision, r.runtime, r.trials): r for r in rows}
    fastest = fastest_engine(rows)
    openvino_default = next((r.precision for r in rows if r.runtime == "OpenVINO default"), "fp32")
    study_fps = STUDY_FPS.get(model)
    headers = ["precision", "runtime", "trials", "latency ms", "FPS", "speedup", "study speedup", "x PyTorch",
               "x onnxruntime", "x onnxruntime fp32", "x TVM fp32", "x OpenVINO", "x OpenVINO default", "x fastest engine", "timed",
               "mAP@0.5", "mAP@0.5 (11-pt)", "check",
               "tuning s"]
    if study_fps is None:
        headers.remove("study speedup")
    body = []
    for r in sorted(rows, key=lambda r: (r.precision != "fp32", r.runtime.startswith("TVM"), r.trials, r.runtime)):
        def over(runtime: str, precision: str = r.precision, trials: int = 0) -> str:
            base = baselines.get((precision, runtime, trials))
            return f"{base.latency_ms / r.latency_ms:.2f}" if base and r.runtime.startswith("TVM") else ""

        study = ([f"{study_fps[r.trials] / study_fps[0]:.2f}x" if r.runtime.startswith("TVM") and r.trials in study_fps
                  else ""] if study_fps else [])
        speedup = over("TVM untuned")
        int8 = r.precision == "int8"
        body.append([r.precision, r.runtime, r.trials or "", f"{r.latency_ms:.1f}", f"{r.fps:.1f}",
                     f"{speedup}x" if speedup else "-", *study, over("PyTorch eager"), over("onnxruntime"),
                     over("onnxruntime", "fp32") if int8 else "",
                     over("TVM + minansor" if r.trials else "TVM untuned", "fp32", r.trials) if int8 else "",
                     over("OpenVINO" if (r.precision, "OpenVINO", 0) in baselines else "OpenVINO default"),
                     over("OpenVINO default", openvino_default),
                     f"{fastest.latency_ms / r.latency_ms:.2f}" if fastest and r.runtime.startswith("TVM") else "",
                     f"best of {len(r.rounds_ms)}" if r.rounds_ms else "once",
                     *("-" if math.isnan(m) else f"{m:.3f}" for m in (r.map_all_point, r.map_11_point)), r.check,
                     f"{r.tuning_s:.0f}" if r.tuning_s else ""])
    return headers, body


def fastest_engine(rows: list[Row]) -> Row | None:
    """The fastest row that is not ours (PyTorch, onnxruntime, OpenVINO; any precision)."""
    return min((r for r in rows if not r.runtime.startswith("TVM")), key=lambda r: r.latency_ms, default=None)


def winner_line(rows: list[Row]) -> str:
    """Which row wins, in one line: the fastest row, and minansor's best against the fastest engine."""
    def name(r: Row) -> str:
        return f"{r.runtime} {r.precision}" + (f" at {r.trials} trials" if r.trials else "") + f" ({r.latency_ms:.1f} ms)"

    fastest, ours = fastest_engine(rows), min((r for r in rows if r.runtime == "TVM + minansor"),
                                              key=lambda r: r.latency_ms, default=None)
    if fastest is None or ours is None:
        return f"winner: {name(min(rows, key=lambda r: r.latency_ms))}" if rows else "winner: no rows"
    if ours.latency_ms < fastest.latency_ms:
        return (f"winner: {name(ours)}, {fastest.latency_ms / ours.latency_ms:.2f}x the fastest engine here, "
                f"{name(fastest)}")
    return (f"winner: {name(fastest)}; minansor's best, {name(ours)}, runs at "
            f"{fastest.latency_ms / ours.latency_ms:.2f}x its speed")


def measure_peaks() -> dict:
    """This machine's peak per precision, of the instruction the CPU really has: fp32 FMAs; int8
    AMX tiles (tdpbusd) where the CPU has AMX, else VNNI dot products (vpdpbusd), else the fp32
    peak; bf16 AMX tiles (tdpbf16ps), else the fp32 peak. `instructions` names which."""
    fp32, cpu = fp32_peak_gflops(), resolve_target("cpu")
    peaks, instructions = {"fp32": fp32}, {"fp32": "fp32 FMA"}
    if has_amx(cpu):
        peaks["int8"], instructions["int8"] = amx_peak_gops(cpu, "int8"), "AMX tdpbusd"
        peaks["bf16"], instructions["bf16"] = amx_peak_gops(cpu, "bf16"), "AMX tdpbf16ps"
    else:
        peaks["int8"], instructions["int8"] = ((int8_peak_gops(), "VNNI vpdpbusd") if has_vnni(cpu)
                                               else (fp32, "fp32 FMA (no VNNI)"))
        peaks["bf16"], instructions["bf16"] = fp32, "fp32 FMA (no AMX)"
    return {**peaks, "instructions": instructions, "bandwidth": memory_bandwidth_gbs(cpu)}


def memory_bound(task: dict, peaks: dict) -> bool:
    """Left of the roofline's ridge: fewer operations per byte than the fp32 peak has per byte of
    main memory's bandwidth (rows saved before bytes were recorded count as compute-bound)."""
    return task.get("bytes", 0) > 0 and task["flops"] / task["bytes"] < peaks["fp32"] / peaks["bandwidth"]


def measure_copies(rows: list[Row], peaks: dict) -> dict[int, float]:
    """GB/s of a STREAM copy of as many bytes as each memory-bound task's arguments hold, timed
    like the task (its arrays stay in whatever cache they fit): the yardstick of such a task."""
    sizes = sorted({t["bytes"] for r in rows for t in r.tasks or [] if memory_bound(t, peaks)})
    if not sizes:
        return {}
    megabytes = [size / 2 / (1 << 20) for size in sizes]  # two arrays of half the bytes each
    return dict(zip(sizes, memory_bandwidths_gbs(resolve_target("cpu"), "copy", megabytes)))


def task_table(row: Row, peaks: dict, copies: dict[int, float]) -> tuple[list[str], list[list]]:
    """Per task of one tuned row: its best program's GFLOPS (GOPS for int8) and share of the peak
    of its precision; for a memory-bound task also GB/s and share of a copy of as many bytes."""
    headers = ["task", "calls", "MFLOP", "best ms", "GFLOPS", "% of peak", "GB/s", "% of copy"]
    body = []
    for t in sorted(row.tasks, key=lambda t: -t["best_ms"] * t["weight"]):
        seconds = t["best_ms"] * 1e-3 if 0 < t["best_ms"] < float("inf") else math.inf
        gflops = t["flops"] / seconds / 1e9
        bandwidth = ([f"{t['bytes'] / seconds / 1e9:.1f}", f"{100 * t['bytes'] / seconds / 1e9 / copies[t['bytes']]:.0f}"]
                     if memory_bound(t, peaks) and t["bytes"] in copies else ["-", "-"])
        body.append([t["task"], t["weight"], f"{t['flops'] / 1e6:.1f}", f"{t['best_ms']:.4f}", f"{gflops:.1f}",
                     f"{100 * gflops / peaks[row.precision]:.0f}", *bandwidth])
    return headers, body


def model_note(args) -> str:
    """What the mAP column can say, given where the model came from."""
    if args.checkpoint:
        return f", of the model in {args.checkpoint}"
    return (f", of a {args.model} trained here for {args.epochs} epochs, as long as a speed table needs: equal "
            "columns show that the rows compute the same detections, not the network's accuracy (pass --checkpoint "
            "for that)")


def plot(rows: list[Row], path: str, name: str) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for precision, color in (("fp32", "tab:blue"), ("int8", "tab:orange"), ("bf16", "tab:green")):
        tvm = sorted((r for r in rows if r.precision == precision and r.runtime.startswith("TVM")),
                     key=lambda r: r.trials)
        if tvm:
            ax.plot([r.trials for r in tvm], [r.fps for r in tvm], "o-", color=color, label=f"TVM {precision}")
        for r in rows:
            if r.precision == precision and not r.runtime.startswith("TVM"):
                style = ":" if r.runtime == "onnxruntime" else "-." if r.runtime.startswith("OpenVINO") else "--"
                ax.axhline(r.fps, color=color, linestyle=style, linewidth=1, label=f"{r.runtime} {precision}")
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlim(left=0)
    ax.set_xlabel("tuning trials (cumulative)")
    ax.set_ylabel("frames per second (batch 1)")
    ax.set_title(f"{name}: FPS against minansor tuning trials")
    ax.legend(fontsize=8)
    save(fig, path)


def write_report(rows: list[Row], args, stem: str, peaks: dict, copies: dict[int, float], clock: StageClock) -> None:
    from yolo.model import DISPLAY_NAMES

    name = f"{DISPLAY_NAMES[args.model]} {args.input_size}x{args.input_size}"
    headers, body = table(rows, args.model)
    beside = ("the study's (Jetson Nano, Ansor) is beside it" if args.model in STUDY_FPS
              else "the study measured YOLOv4-tiny only, so none of its figures stands beside these")
    lines = [f"# {name}: the study's speedup table, measured here ({', '.join(map(str, args.budgets))} trials)",
             "", f"Machine: {machine()}. Command: `python experiments/reproduce_study.py {' '.join(args.argv)}` "
                 f"(commit {commit_of_this_checkout()}, {time.strftime('%Y-%m-%d')})", "",
             f"**{winner_line(rows)}.**", "",
             f"Speedup is over untuned TVM of the same precision; {beside}. "
             "x PyTorch and x onnxruntime: the baseline's latency over the row's, same precision, same run (above 1: "
             "TVM is faster); int8 rows also over onnxruntime fp32 and over our fp32 build at the same trials (x TVM fp32); "
             "x OpenVINO: over OpenVINO of the same precision (fp32 forced, int8), x OpenVINO default: over OpenVINO "
             "left to its default precision (bf16 where the CPU has AMX or AVX-512 BF16), the fastest engine on such a CPU. "
             "timed: best of the re-timing rounds at the end of the run (the baselines and kept tuned "
             "libraries, interleaved, each TVM library in a fresh process), or once, when the row was made. "
             "x fastest engine: over the fastest engine of any precision in the table, the one a user would otherwise "
             f"run here. mAP is VOC mAP@0.5 on the {args.split} split of `{args.data}`, computed with each row's own "
             f"runtime{model_note(args)}.", ""]
    if not args.untuned_map:
        lines += [f"Untuned TVM (naive loops, seconds per image): timed once; no mAP pass, its outputs are checked "
                  f"against the reference (PyTorch fp32, onnxruntime int8) on {args.check_images} test images and a "
                  "random input instead (check); `--untuned-map` measures its mAP.", ""]
    lines += markdown_table(headers, body)
    lines += ["", STUDY_SUMMARY[args.model], ""] if args.model in STUDY_SUMMARY else [""]
    tuned = [r for r in rows if r.tasks]
    if tuned:
        lines += ["## Tasks of the tuned network, against this machine's peak", "",
                  f"Peaks measured in this run on every core (`minansor/measure/peak.py`): fp32 {peaks['fp32']:.0f} GFLOPS by an "
                  f"FMA-bound kernel, int8 {peaks['int8']:.0f} GOPS by a kernel of {peaks['instructions']['int8']}, "
                  f"bf16 {peaks['bf16']:.0f} GFLOPS by {peaks['instructions']['bf16']} "
                  "(AMX tiles where the CPU has them, else VNNI dot products, else the fp32 peak): no program does more "
                  "multiply-adds per second. "
                  "Best program of each task, as the tuner measured it, heaviest first (calls x best ms); int8 rows "
                  "in GOPS, against the int8 peak. Memory-bound tasks (fewer operations per byte than the fp32 peak "
                  f"has per byte of the {peaks['bandwidth']:.0f} GB/s main memory gives a STREAM triad, same run) "
                  "also in GB/s (each argument's bytes once) and % of a STREAM copy of as many bytes, timed like "
                  "the task in this run.", ""]
        for r in tuned:
            lines += ([f"### {r.precision}, {r.trials} trials", ""]
                      + markdown_table(*task_table(r, peaks, copies)) + [""])
    lines += ["## Where the run's time went", "",
              f"Wall time of each stage of this run ({time.strftime('%Y-%m-%d')}, {machine()}); a stage whose rows "
              "an earlier run had measured (WORK_DIR/study.json) took no time here.", "", "```", *clock.lines(), "```", ""]
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"model": args.model, "peak_gflops": peaks["fp32"], "int8_peak_gops": peaks["int8"],
                   "bandwidth_gbs": peaks["bandwidth"], "copy_gbs": {str(k): v for k, v in copies.items()},
                   "bf16_peak_gflops": peaks["bf16"], "peak_instructions": peaks["instructions"],
                   "commit": commit_of_this_checkout(), "date": time.strftime("%Y-%m-%d"), "machine": machine(),
                   "stage_s": clock.seconds, "rows": [dataclasses.asdict(r) for r in rows]}, f, indent=1)
    plot(rows, stem + ".png", name)


def main(argv: list[str] | None = None) -> int:
    from yolo.model import ARCHITECTURES

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=ARCHITECTURES,
                        help=f"the network (default: the checkpoint's, else {FIRST_MODEL})")
    parser.add_argument("--budgets", default="200", help="cumulative trial budgets, e.g. 200,2000,10000 (default 200)")
    parser.add_argument("--precisions", default="fp32,int8",
                        help="some of fp32, int8, bf16 (fp32 convolutions on bf16 operands), comma-separated "
                             "(default fp32,int8)")
    parser.add_argument("--checkpoint", help="a yolo.train checkpoint (default: train one for --epochs here)")
    parser.add_argument("--input-size", type=int, default=416, help="network input side (default 416, the study's)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="training epochs without --checkpoint (default 1: enough for a speed table; the "
                             "accuracy columns need a trained --checkpoint, or some 20 epochs and more)")
    parser.add_argument("--data", default="data/synthetic-voc", help="VOC-layout set (default data/synthetic-voc)")
    parser.add_argument("--images", type=int, default=300, help="size of a generated synthetic set (default 300)")
    parser.add_argument("--split", default="test", help="image set for mAP (default test)")
    parser.add_argument("--calibration", type=int, default=32, help="int8 calibration images (default 32)")
    parser.add_argument("--check-images", type=int, default=2,
                        help="test images on which the untuned builds' outputs are checked against the reference "
                             "(default 2)")
    parser.add_argument("--untuned-map", action="store_true",
                        help="also measure the untuned builds' mAP (their naive loops take seconds per image)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per latency; the median (default 5; every row also keeps the best of its --rounds)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved re-timing rounds of the baselines and tuned libraries at the end; each row "
                             "keeps its best (default 3; 0: keep the one timing taken when the row was made)")
    parser.add_argument("--work-dir", help="records, models, state of one model's study (default work_dirs/study; "
                                           "work_dirs/study-<model> for a model other than yolov4-tiny)")
    parser.add_argument("--report", help="report path without extension (default experiments/results/study-<budgets>; "
                                         "study-<model>-<budgets> for a model other than yolov4-tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="measure every row again (records are kept)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a SearchConfig field")
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        args.budgets = sorted({int(b) for b in args.budgets.split(",") if b})
        args.precisions = [p for p in args.precisions.split(",") if p]
        if not args.budgets or min(args.budgets) < 1 or set(args.precisions) - set(PRECISIONS) or args.rounds < 0:
            raise ValueError
    except ValueError:
        print(f"reproduce_study: error: --budgets takes positive integers, --precisions some of {', '.join(PRECISIONS)}, "
              "--rounds a count", file=sys.stderr)
        return 2
    try:
        checkpoint = choose_model(args)
    except ValueError as err:
        print(f"reproduce_study: error: {err}", file=sys.stderr)
        return 2
    config = with_overrides(SearchConfig(), args.set)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(os.path.join(args.work_dir, "model.txt"), "w", encoding="utf-8") as f:
        f.write(args.model + "\n")
    stem = args.report
    state_path = os.path.join(args.work_dir, "study.json")
    rows: list[Row] = []
    if os.path.exists(state_path) and not args.fresh:
        with open(state_path, encoding="utf-8") as f:
            rows = [Row(**r) for r in json.load(f)]
    done = {r.key for r in rows}

    def save() -> None:
        with open(state_path, "w", encoding="utf-8") as f:
            json.dump([dataclasses.asdict(r) for r in rows], f, indent=1)

    def keep(row: Row) -> None:
        rows.append(row)
        save()

    from minansor.network.models import from_onnx, from_torch

    clock = StageClock()
    with clock.stage("data and model"):
        model = prepare_model(args, checkpoint)
    args.num_classes = model.num_classes
    with clock.stage("int8 export"):
        paths = export_models(model, args)
    with clock.stage("baselines: latency and mAP"):
        runtimes = baseline_runtimes(model, paths)
        for row in baseline_rows(runtimes, args, done):
            keep(row)

    def fp32_network():
        return from_torch(model, [np.zeros((1, 3, args.input_size, args.input_size), np.float32)], f"{args.model}-fp32")

    networks = {"fp32": fp32_network, "int8": lambda: from_onnx(paths["int8"]),
                "bf16": lambda: dataclasses.replace(fp32_network(), name=f"{args.model}-bf16", precision="bf16")}
    for precision in args.precisions:
        for row in tvm_rows(precision, networks[precision](), args, config, rows, clock):
            keep(row)
    wanted = [r for r in rows if shown(r.precision, r.runtime, args) and (r.trials == 0 or r.trials in args.budgets)]
    if args.rounds:
        with clock.stage("re-timing"):
            retime(wanted, runtimes, args)
        save()
    headers, body = table(wanted)
    print(winner_line(wanted))
    print(format_table(headers, body))
    with clock.stage("peaks and bandwidth"):
        peaks = measure_peaks()
        copies = measure_copies(wanted, peaks)
    for row in wanted:
        if row.tasks:
            print(f"\n{row.precision}, {row.trials} trials, per task ({row.precision} peak {peaks[row.precision]:.0f} "
                  f"{'GOPS' if row.precision == 'int8' else 'GFLOPS'}, {peaks['instructions'][row.precision]}):")
            print(format_table(*task_table(row, peaks, copies)))
    write_report(wanted, args, stem, peaks, copies, clock)
    print(f"report: {stem}.md, {stem}.png, {stem}.json")
    print("\nwhere the time went:\n" + "\n".join(clock.lines()))
    return 0 if all(r.check in ("ok", "-") for r in wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
