"""A network in fp32 and int8 at one budget, against the engines a user would pick, with where its
time goes: convolutions or everything else, and each memory-bound task against memory speed.

    python experiments/network_bars.py --model yolox-s --trials 2000
    python experiments/network_bars.py --model yolov4-tiny --trials 2000 --precisions int8

1. tuning: `tune_network` of MODEL (fp32) and MODEL-int8 with the default SearchConfig, each into
   its own records (--work-dir/<precision>, or --records-of PRECISION=DIR to use an earlier run's
   records made under the same config and seed: nothing is tuned twice; a killed run resumes);
2. timing: both builds and every engine of both models (PyTorch, onnxruntime, OpenVINO where
   installed) in --rounds interleaved rounds of --repeats runs, best round kept;
3. where the time goes, from each build's task bests (weight x best latency): the share of the
   tasks that are not convolutions, and every memory-bound task (fewer operations per byte than
   the fp32 peak has per byte of bandwidth) in GB/s and % of a STREAM copy of as many bytes timed
   in the same run (experiments/reproduce_study.py's yardsticks);
4. experiments/results/network-bars-<model>-<precisions>-<trials>.{md,json,png}.

Run nothing else on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.ablate_network import commit_of_this_checkout, publish, time_alternately  # noqa: E402
from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from experiments.reproduce_study import Row, measure_copies, measure_peaks, memory_bound, task_table  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.errors import UserError  # noqa: E402
from minansor.network.models import load_model  # noqa: E402
from minansor.network.tuning import tune_network  # noqa: E402
from minansor.plots import pyplot  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from minansor.tasks.targets import resolve_target  # noqa: E402

SLOW_TASK_MS = 0.05  # memory-bound tasks above this are held to the bandwidth bar
BANDWIDTH_BAR = 0.40  # share of a copy of as many bytes
GLUE_BAR = 0.10  # share of the network's task time outside the convolutions


def is_convolution(task_name: str) -> bool:
    return "conv" in task_name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolox-s", help="a built-in fp32 model with an -int8 twin (default yolox-s)")
    p.add_argument("--trials", type=int, default=2000, help="trials of each build (default 2000)")
    p.add_argument("--precisions", default="fp32,int8", help="fp32, int8 or both (default fp32,int8)")
    p.add_argument("--records-of", action="append", default=[], metavar="PRECISION=DIR",
                   help="tune that precision in DIR (an earlier run's records, same config and seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    p.add_argument("--repeats", type=int, default=10, help="runs per build and engine per round (default 10)")
    p.add_argument("--work-dir", default=None, help="default work_dirs/network-bars-<model>")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    target = resolve_target("cpu")
    precisions = [x.strip() for x in args.precisions.split(",") if x.strip()]
    work_dir = args.work_dir or os.path.join("work_dirs", f"network-bars-{args.model}")
    try:
        if not precisions or set(precisions) - {"fp32", "int8"}:
            raise UserError(f"--precisions takes fp32 and/or int8, got {args.precisions!r}")
        dirs = {precision: os.path.join(work_dir, precision) for precision in precisions}
        for assignment in args.records_of:
            precision, _, path = assignment.partition("=")
            if precision not in dirs or not os.path.isdir(path):
                raise UserError(f"--records-of {assignment!r}: want PRECISION=DIR with a precision of "
                                f"{','.join(precisions)} and an existing dir")
            dirs[precision] = path
        networks = {precision: load_model(args.model + ("-int8" if precision == "int8" else ""), args.seed)
                    for precision in precisions}
    except UserError as err:
        p.error(str(err))

    built = {}
    for precision, network in networks.items():
        print(f"tuning {network.name}, {args.trials} trials in {dirs[precision]}", flush=True)
        built[precision] = tune_network(network, SearchConfig(), dirs[precision], args.trials, args.seed, target,
                                        progress=not args.no_progress, measure_untuned=False,
                                        compare_engines=False, log=print)
    label = {precision: f"minansor {precision}, {args.trials} trials" for precision in precisions}
    first, *others = precisions
    best = time_alternately(networks[first], {label[first]: built[first].library}, args.rounds, args.repeats,
                            args.seed, target, tuple((networks[x], {label[x]: built[x].library}) for x in others))

    peaks = measure_peaks()
    rows = {precision: Row(precision, "TVM + minansor", args.trials, best[label[precision]] * 1e3, float("nan"),
                           float("nan"), "ok" if result.tuned_check.ok else result.tuned_check.detail,
                           result.tuning.wall_s,
                           [{"task": r.task.name, "weight": r.task.weight, "flops": r.task.flops,
                             "bytes": r.task.bytes, "best_ms": r.best_ms} for r in result.tuning.results])
            for precision, result in built.items()}
    copies = measure_copies(list(rows.values()), peaks)

    command = "python experiments/network_bars.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = [f"# {args.model}: {' and '.join(precisions)} at {args.trials} trials, against the engines", "",
             f"Command: `{command}` (at commit {commit_of_this_checkout()})", "", f"Machine: {machine()}", "",
             f"Each build tuned with the default search and seed {args.seed}; every build and engine timed in "
             f"{args.rounds} interleaved rounds of {args.repeats} runs (median per round, best round kept), batch 1. "
             f"Peaks measured in the same run: fp32 {peaks['fp32']:.0f} GFLOPS, int8 {peaks['int8']:.0f} GOPS "
             f"({peaks['instructions']['int8']}), STREAM triad {peaks['bandwidth']:.0f} GB/s.", "",
             "| runtime | ms |", "|---|---|"]
    lines += [f"| {key} | {seconds * 1e3:.2f} |" for key, seconds in sorted(best.items(), key=lambda kv: kv[1])]
    bars, summary = [], {}
    onnxruntime_fp32 = best.get("onnxruntime (fp32)")
    for precision, row in rows.items():
        total = sum(t["weight"] * t["best_ms"] for t in row.tasks)
        glue = sum(t["weight"] * t["best_ms"] for t in row.tasks if not is_convolution(t["task"]))
        slow = [t for t in row.tasks if memory_bound(t, peaks) and t["best_ms"] > SLOW_TASK_MS]
        below = [t["task"] for t in slow
                 if t["bytes"] / (t["best_ms"] * 1e-3) / 1e9 < BANDWIDTH_BAR * copies[t["bytes"]]]
        summary[precision] = {"ms": row.latency_ms, "check": row.check, "tasks_ms": total, "glue_ms": glue,
                              "glue_share": glue / total, "slow_memory_bound": len(slow), "below_bandwidth_bar": below,
                              "tuning_wall_s": row.tuning_s, "tasks": row.tasks}
        bars.append(f"- {precision}: everything but the convolutions {glue:.2f} of {total:.2f} ms of task time "
                    f"({100 * glue / total:.1f} %; bar {100 * GLUE_BAR:.0f} %): "
                    f"{'met' if glue <= GLUE_BAR * total else 'NOT met'}; memory-bound tasks over {SLOW_TASK_MS} ms "
                    f"at >= {100 * BANDWIDTH_BAR:.0f} % of a copy: {len(slow) - len(below)} of {len(slow)}"
                    + (f" (below: {', '.join(below)})" if below else ""))
        if onnxruntime_fp32:
            ratio = onnxruntime_fp32 / (row.latency_ms * 1e-3)
            bars.append(f"- {precision}: {ratio:.2f}x onnxruntime fp32's speed "
                        f"({'faster' if ratio > 1 else 'slower'}); check {row.check}")
    if {"fp32", "int8"} <= set(rows):
        ratio = rows["fp32"].latency_ms / rows["int8"].latency_ms
        bars.append(f"- int8 is {ratio:.2f}x our fp32's speed at the same trials (bar 2x): "
                    f"{'met' if ratio >= 2 else 'NOT met'}")
    lines += ["", "## The bars", ""] + bars
    for precision, row in rows.items():
        headers, body = task_table(row, peaks, copies)
        lines += ["", f"## {precision}: tasks by time (calls x best)", "", *markdown_table(headers, body)]

    os.makedirs(RESULTS, exist_ok=True)
    base = os.path.join(RESULTS, f"network-bars-{args.model}-{'-'.join(precisions)}-{args.trials}")
    with open(base + ".json", "w") as f:
        json.dump({"command": command, "machine": machine(), "commit": commit_of_this_checkout(),
                   "trials": args.trials, "seed": args.seed, "peaks": peaks,
                   "copy_gbs": {str(k): v for k, v in copies.items()},
                   "latency_ms": {key: s * 1e3 for key, s in best.items()}, "builds": summary}, f, indent=1)
    fig, ax = pyplot().subplots(figsize=(7, 0.45 * len(best) + 1.2))
    ordered = sorted(best.items(), key=lambda kv: kv[1])
    ax.barh([key for key, _ in ordered][::-1], [s * 1e3 for _, s in ordered][::-1],
            color=["tab:green" if key.startswith("minansor") else "tab:gray" for key, _ in ordered][::-1])
    ax.set_xlabel("latency, ms (batch 1; best of interleaved rounds)")
    ax.set_title(f"{args.model} at {args.trials} trials")
    publish(base, lines, fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
