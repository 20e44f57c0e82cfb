"""minansor vs stock MetaSchedule at equal trials, task by task.

    python experiments/compare_metaschedule.py --suite quick --budgets 64,200
    python experiments/compare_metaschedule.py --tasks gemm-512x512x512,yolo-conv-52x52-128-128-3x3 --budgets 200
    python experiments/compare_metaschedule.py --model yolov4-tiny --budgets 200
    python experiments/compare_metaschedule.py --target cuda --suite gpu --budgets 64 --set build_workers=16

Runs the two tuners one after the other for every task and budget (never in parallel: run
nothing else on the machine meanwhile), then writes experiments/results/compare-<suite>-<budget>.md
(the table), compare-<suite>-<budget>.png (tuning curves) and .json; <suite> is "custom"
with --tasks, a seed other than 0 adds -seed<S> to every name (results and records), and a layout
rewrite other than the default (--set layout_rewrite=off: neither tuner packs weights) adds
-rewrite-<value>, and a target other than this machine's CPU (--target cuda: its GPU) adds
-<target>. The files are rewritten after every task, and a task already in the .json is kept, not re-run: a
killed run goes on where it stopped (--fresh starts over). A task is compared from nothing: the
records of an unfinished one are deleted first, since MetaSchedule would seed its search with
them. --again minansor tunes minansor again on the finished tasks and keeps MetaSchedule's runs
(their search does not depend on ours): a change to the search is then tried in a third of the
time; --again remeasure only re-measures both kept best programs. With several --seeds, every seed is run in turn and compare-<suite>-<budget>-seeds.md puts
each task's ratios side by side, with a 95 % interval of the geometric mean: one seed is not enough
to call a winner (the search's own spread over seeds is often above 10 %).

With --model (a built-in name, an .onnx or a .pt2 file) the whole network is tuned by each
tuner with the budget as its total trials (minansor's task scheduler vs MetaSchedule's
`tune_relax`), and the end-to-end latencies are compared: compare-model-<name>-<budget>.md.
minansor resumes from its records; a finished MetaSchedule run is kept (it cannot resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys

from tqdm import tqdm

from minansor.cli import format_table
from minansor.compare.network import compare_network
from minansor.compare.report import (geometric_mean_ratio, markdown, network_markdown, plot_curves, seeds_markdown,
                                     table_rows)
from minansor.compare.results import Comparison
from minansor.compare.task import compare_task, remeasure_comparison
from minansor.config import SearchConfig
from minansor.errors import NoValidProgram, UserError
from minansor.network.models import load_model
from minansor.tasks.targets import resolve_target
from minansor.tasks.workloads import MEMORY_BOUND, YOLO_LAYERS, make_task
from minansor.validation import with_overrides

SUITES = {
    "full": ["gemm-512x512x512", "gemm-1024x1024x1024"] + [n for n in YOLO_LAYERS if n.startswith("yolo-conv")],
    "quick": ["gemm-512x512x512", "yolo-conv-104x104-64-64-3x3", "yolo-conv-52x52-128-128-3x3",
              "yolo-conv-26x26-256-256-3x3", "yolo-conv-13x13-512-256-1x1"],
    # Two YOLOv4-tiny layers and a GEMM: the GPU rules checked on a real GPU in a few minutes.
    "gpu": ["yolo-conv-52x52-128-128-3x3", "yolo-conv-26x26-256-256-3x3", "gemm-1024x1024x1024"],
    # Three YOLOv4-tiny layers in int8 and in bf16: the AMX tiles against a tuner without them.
    "amx": [f"{precision}-{layer}" for precision in ("qconv", "bconv")
            for layer in ("104x104-64-64-3x3", "26x26-384-256-3x3", "13x13-256-512-3x3")],
    # Memory-bound operators (pools, transposes, quantize, concat, resize, softmax, depthwise):
    # reported in GB/s against the memory bandwidth.
    "memory": list(MEMORY_BOUND),
}
# The same tasks with the convs in NHWC, the layout networks run in (SearchConfig.data_layout).
SUITES.update({f"{name}-nhwc": [t + "-nhwc" if t.startswith("yolo-conv") else t for t in tasks]
               for name, tasks in list(SUITES.items()) if any(t.startswith("yolo-conv") for t in tasks)})
AGAIN = {"minansor": "tune minansor again from nothing against the MetaSchedule runs kept in the work dir (to try "
                        "a change to the search)",
         "remeasure": "re-measure both kept best programs side by side (to apply a change to the measurement)"}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine(target: str = "cpu") -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    described = f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if target != "cpu":
        described = f"target {target} ({gpu_name()}), host {described}"
    return described


def gpu_name() -> str:
    """The first GPU nvidia-smi lists, with its driver, or why there is none."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "no GPU found by nvidia-smi"


def target_suffix(target: str) -> str:
    """Results and records on a target other than this machine's CPU get their own names."""
    return "" if target == "cpu" else "-" + re.sub(r"[^A-Za-z0-9_.]+", "-", target).strip("-")


def seed_suffix(seed: int) -> str:
    """Results and records of seed 0 keep their plain names; other seeds get their own."""
    return f"-seed{seed}" if seed else ""


def rewrite_suffix(config: SearchConfig) -> str:
    """Results and records with the layout rewrite other than the default get their own names."""
    return "" if config.layout_rewrite == SearchConfig.layout_rewrite else f"-rewrite-{config.layout_rewrite}"


def previous_results(path: str) -> dict[str, Comparison]:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {r.task: r for r in map(Comparison.from_dict, json.load(f))}


def compare_model(args, config, command: str, seed: int) -> None:
    network = load_model(args.model, seed)
    for budget in [int(b) for b in args.budgets.split(",")]:
        work_dir = os.path.join(args.work_dir, "model", network.name, f"{budget}{seed_suffix(seed)}")
        result = compare_network(network, budget, config, work_dir, seed)
        stem = os.path.join(args.results, f"compare-model-{network.name}-{budget}{seed_suffix(seed)}")
        with open(stem + ".md", "w") as f:
            f.write(network_markdown(result, command, machine()))
        with open(stem + ".json", "w") as f:
            json.dump(dataclasses.asdict(result), f, indent=1)
        print(network_markdown(result, command, machine()))


def compare_suite(names: list[str], budget: int, seed: int, config: SearchConfig, args, stem: str,
                  command: str, target) -> list[Comparison]:
    """Every task at one budget and seed; results rewritten after each task, finished tasks kept.
    With --again, the finished tasks are done again instead (see AGAIN); the tasks still to do
    are listed in a file beside the results until the pass is over, so a killed pass goes on
    where it stopped."""
    done = {} if args.fresh else previous_results(stem + ".json")
    pending_path = stem + ".again-pending.json"
    if args.again and not os.path.exists(pending_path):
        with open(pending_path, "w") as f:
            json.dump([n for n in names if n in done], f)
    if args.again:
        with open(pending_path) as f:
            todo = json.load(f)
    else:
        todo = [n for n in names if n not in done]
    for name in tqdm(todo, desc=f"{budget} trials, seed {seed}", unit="task"):
        task, work_dir = make_task(name, target), os.path.join(args.work_dir, f"{budget}{seed_suffix(seed)}", name)
        if args.again == "remeasure":
            done[name] = remeasure_comparison(task, config, work_dir, done[name])
        else:  # a task missing from the results did not finish: it starts over, both tuners from nothing
            done[name] = compare_task(task, budget, config, work_dir, seed, progress=False, fresh=True,
                                      metaschedule=done[name].metaschedule if args.again else None)
        results = [done[n] for n in names if n in done]
        with open(stem + ".md", "w") as f:
            f.write(markdown(results, f"minansor vs MetaSchedule, {budget} trials per task", command,
                             machine(args.target)))
        with open(stem + ".json", "w") as f:
            json.dump([dataclasses.asdict(r) for r in results], f, indent=1)
        plot_curves(results, stem + ".png")
        if args.again:
            with open(pending_path, "w") as f:
                json.dump(todo[todo.index(name) + 1:], f)
    if args.again:
        os.remove(pending_path)
    results = [done[n] for n in names if n in done]
    headers, rows = table_rows(results)
    print(format_table(headers, rows))
    print(f"geometric mean ratio (minansor / MetaSchedule) at {budget} trials, seed {seed}: "
          f"{geometric_mean_ratio(results):.3f}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=SUITES, default="quick", help="task list (default quick)")
    parser.add_argument("--tasks", help="comma-separated workloads instead of a suite")
    parser.add_argument("--model", help="compare on a whole network instead (built-in name, .onnx or .pt2)")
    parser.add_argument("--budgets", default="64,200", help="comma-separated trial budgets (default 64,200)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, each run in turn (default 0)")
    parser.add_argument("--work-dir", default="work_dirs/compare", help="records of both tuners")
    parser.add_argument("--target", default="cpu", help="where the tasks run: a preset (cpu, cuda: this machine's "
                        "GPU) or a JSON target dict (default cpu)")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a SearchConfig field")
    parser.add_argument("--fresh", action="store_true", help="re-run tasks already in the results file")
    parser.add_argument("--again", choices=AGAIN, help="do the tasks already in the results again: " + "; ".join(
        f"{key}: {text}" for key, text in AGAIN.items()))
    parser.add_argument("--results", default=RESULTS, help="where tables and plots go (default experiments/results)")
    args = parser.parse_args(argv)
    names = args.tasks.split(",") if args.tasks else SUITES[args.suite]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if args.model and args.target != "cpu":
        parser.error("--model compares on this machine's CPU only; --target is for --tasks and --suite")
    if args.fresh and args.again:
        parser.error("--fresh starts both tuners over; --again keeps their runs: choose one")
    config = with_overrides(SearchConfig(), args.set or [])
    args.work_dir += rewrite_suffix(config) + target_suffix(args.target)
    os.makedirs(args.results, exist_ok=True)
    command = "python experiments/compare_metaschedule.py " + " ".join(argv or sys.argv[1:])
    try:
        run(args, names, seeds, config, command)
    except UserError as err:  # a target that is not here, a malformed one
        print(f"compare_metaschedule: {err}", file=sys.stderr)
        return 2
    except NoValidProgram as err:  # the results of the tasks before it are written; its records are kept
        print(f"compare_metaschedule: {err}", file=sys.stderr)
        return 1
    return 0


def run(args, names: list[str], seeds: list[int], config: SearchConfig, command: str) -> None:
    if args.model:
        for seed in seeds:
            compare_model(args, config, command, seed)
        return
    target = resolve_target(args.target)
    for budget in [int(b) for b in args.budgets.split(",")]:
        base = os.path.join(args.results, f"compare-{'custom' if args.tasks else args.suite}{rewrite_suffix(config)}"
                                          f"{target_suffix(args.target)}-{budget}")
        by_seed = {seed: compare_suite(names, budget, seed, config, args, base + seed_suffix(seed), command, target)
                   for seed in seeds}
        if len(seeds) > 1:
            text = seeds_markdown(by_seed, f"minansor vs MetaSchedule, {budget} trials per task, seeds {args.seeds}",
                                  command, machine(args.target))
            with open(base + "-seeds.md", "w") as f:
                f.write(text)
            print(text)


if __name__ == "__main__":
    sys.exit(main())
