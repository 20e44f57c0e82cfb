"""Which layouts pay: activations NCHW or NHWC, weights as they are or packed in tile order.

    python experiments/layouts.py --budget 200
    python experiments/layouts.py --tasks yolo-conv-26x26-128-128-3x3 --budget 64 --variants "NCHW off,NHWC always"

Tunes every task once per variant, from nothing, with the same seed and budget, one after the
other (run nothing else meanwhile), and puts the best latencies side by side with their GFLOPS
and share of this machine's fp32 peak (an FMA-bound kernel timed in the same run, peak.py). A
variant is a data layout (the task's `-nhwc` form) and a `SearchConfig.layout_rewrite` value:
`off` (weights read as stored), `always` (packed in tile order, a derived step of every tiled
sketch) or `optional` (sketches with and without it, the search chooses). The geometric mean
of each variant's latency over the tasks, relative to the first variant, is the summary.

Writes experiments/results/layouts-<budget>.{md,json,png}; a finished (task, variant) is kept in
the .json and not tuned again, so a killed run goes on where it stopped (--fresh starts over).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.cli import format_table  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.measure.peak import fp32_peak_gflops  # noqa: E402
from minansor.plots import pyplot, save  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from minansor.tasks.workloads import YOLO_LAYERS, make_task  # noqa: E402
from minansor.tune import tune_task  # noqa: E402
from minansor.validation import with_overrides  # noqa: E402

TASKS = [name for name in YOLO_LAYERS if name.startswith("yolo-conv")]
VARIANTS = "NCHW off,NCHW always,NHWC off,NHWC always,NHWC optional"


def task_name(name: str, layout: str) -> str:
    return name + "-nhwc" if layout == "NHWC" else name


def run(args) -> dict:
    path = os.path.join(args.results, f"layouts-{args.budget}.json")
    done = {} if args.fresh or not os.path.exists(path) else json.load(open(path))["runs"]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    base = with_overrides(SearchConfig(), args.set or [])
    for name in args.tasks.split(","):
        for variant in variants:
            key = f"{name} | {variant}"
            if key in done:
                continue
            layout, rewrite = variant.split()
            task = make_task(task_name(name, layout))
            config = dataclasses.replace(base, layout_rewrite=rewrite)
            work_dir = os.path.join(args.work_dir, str(args.budget), variant.replace(" ", "-"), name)
            shutil.rmtree(work_dir, ignore_errors=True)  # an unfinished run starts over
            result = tune_task(task, config, work_dir, args.budget, args.seed, progress=not args.no_progress)
            done[key] = {"task": name, "variant": variant, "flops": task.flops, "best_ms": result.best_ms,
                         "check": bool(result.check and result.check.ok), "wall_s": result.wall_s}
            print(f"{key}: {result.best_ms:.4f} ms ({result.gflops:.1f} GFLOPS)", flush=True)
            write(args, done, variants, None)
    return done


def table(runs: dict, tasks: list[str], variants: list[str], peak: float | None) -> tuple[list[str], list[list]]:
    headers = ["task"] + [f"{v} ms (GFLOPS{', % peak' if peak else ''})" for v in variants]
    body = []
    for name in tasks:
        cells = []
        for variant in variants:
            r = runs.get(f"{name} | {variant}")
            if r is None or not math.isfinite(r["best_ms"]):
                cells.append("-")
                continue
            gflops = r["flops"] / (r["best_ms"] * 1e-3) / 1e9
            share = f", {100 * gflops / peak:.0f} %" if peak else ""
            cells.append(f"{r['best_ms']:.3f} ({gflops:.0f}{share})" + ("" if r["check"] else " CHECK FAILED"))
        body.append([name] + cells)
    return headers, body


def geomeans(runs: dict, tasks: list[str], variants: list[str]) -> dict[str, float]:
    """Each variant's latency relative to the first one's, geometric mean over the tasks both finished."""
    out = {}
    for variant in variants:
        ratios = [runs[f"{t} | {variant}"]["best_ms"] / runs[f"{t} | {variants[0]}"]["best_ms"] for t in tasks
                  if f"{t} | {variant}" in runs and f"{t} | {variants[0]}" in runs]
        out[variant] = float(np.exp(np.mean(np.log(ratios)))) if ratios else math.nan
    return out


def write(args, runs: dict, variants: list[str], peak: float | None) -> None:
    tasks = list(dict.fromkeys(r["task"] for r in runs.values()))
    stem = os.path.join(args.results, f"layouts-{args.budget}")
    headers, body = table(runs, tasks, variants, peak)
    means = geomeans(runs, tasks, variants)
    lines = [f"# Data layout and weight layout, {args.budget} trials per task", "",
             f"Command: `python experiments/layouts.py {' '.join(args.argv)}`", "", f"Machine: {machine()}", "",
             (f"fp32 peak (FMA-bound kernel, this run): {peak:.0f} GFLOPS" if peak else ""), "",
             *markdown_table(headers, body)]
    lines += ["", f"Geometric mean of the best latency relative to {variants[0]} (below 1: faster): "
              + ", ".join(f"{v} **{m:.3f}**" for v, m in means.items()), "",
              "Best latencies as the tuner measured them (median of its repeats), seed "
              f"{args.seed}; every best program checked against the untuned program.", ""]
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"peak_gflops": peak, "runs": runs}, f, indent=1)
    if peak:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(tasks) * len(variants) / 2), 4.2))
        width = 0.8 / len(variants)
        for i, variant in enumerate(variants):
            shares = [100 * runs[f"{t} | {variant}"]["flops"] / (runs[f"{t} | {variant}"]["best_ms"] * 1e-3) / 1e9 / peak
                      if f"{t} | {variant}" in runs else 0.0 for t in tasks]
            ax.bar(np.arange(len(tasks)) + i * width, shares, width, label=variant)
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2)
        ax.set_xticklabels([t.replace("yolo-conv-", "") for t in tasks], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("% of fp32 peak")
        ax.set_title(f"best program after {args.budget} trials, by layout")
        ax.legend(fontsize=7)
        save(fig, stem + ".png")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated NCHW workload names "
                                                               "(default: every YOLOv4-tiny conv layer)")
    parser.add_argument("--variants", default=VARIANTS, help=f"comma-separated 'LAYOUT REWRITE' (default {VARIANTS})")
    parser.add_argument("--budget", type=int, default=200, help="trials per task and variant (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="work_dirs/layouts", help="records (default work_dirs/layouts)")
    parser.add_argument("--results", default=RESULTS, help="where tables and plots go (default experiments/results)")
    parser.add_argument("--fresh", action="store_true", help="tune every (task, variant) again")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a SearchConfig field")
    args = parser.parse_args(argv)
    args.argv = argv
    for variant in args.variants.split(","):
        parts = variant.split()
        if len(parts) != 2 or parts[0] not in ("NCHW", "NHWC") or parts[1] not in ("off", "always", "optional"):
            parser.error(f"a variant is 'NCHW|NHWC off|always|optional', got {variant!r}")
    os.makedirs(args.results, exist_ok=True)
    runs = run(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    peak = fp32_peak_gflops()
    write(args, runs, variants, peak)
    tasks = list(dict.fromkeys(r["task"] for r in runs.values()))
    print(format_table(*table(runs, tasks, variants, peak)))
    print("geometric mean relative to " + variants[0] + ": "
          + ", ".join(f"{v} {m:.3f}" for v, m in geomeans(runs, tasks, variants).items()))
    return 0 if all(r["check"] for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
