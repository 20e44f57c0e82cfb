"""How much one network's latency moves between processes on this machine.

    python experiments/network_timing.py work_dirs/study-416/fp32/yolov4-tiny-fp32.so --processes 8

Times one exported network library (what `tune_network` writes: WORK_DIR/MODEL.so) the way every
network row is timed (`network.run_library`: a fresh process, the median of `--repeats` runs), in
`--processes` processes one after the other, on a random input of its first input's shape
(`--input-shape`, default YOLOv4-tiny's). Beside each process's median it prints the share of
CPU time the hypervisor took from this VM meanwhile (steal, /proc/stat), which a timing cannot
see from inside. Writes experiments/results/network-timing-<library name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.cli import format_table  # noqa: E402
from minansor.network.run import run_library  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from minansor.tasks.targets import resolve_target  # noqa: E402


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return fields[7], sum(fields[:8])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", help="an exported network (.so) for this machine's CPU")
    parser.add_argument("--processes", type=int, default=8, help="fresh processes, one after the other (default 8)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per process; the median is kept (default 10)")
    parser.add_argument("--input-shape", default="1,3,416,416", help="shape of the float32 input (default 1,3,416,416)")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.library):
        parser.error(f"no such library: {args.library}")
    shape = tuple(int(d) for d in args.input_shape.split(","))
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    target = resolve_target("cpu")
    rows = []
    for process in range(args.processes):
        steal0, total0 = cpu_ticks()
        median_ms = run_library(args.library, [x], args.repeats, target).median_s * 1e3
        steal1, total1 = cpu_ticks()
        rows.append({"process": process + 1, "median_ms": median_ms,
                     "steal_percent": 100.0 * (steal1 - steal0) / max(1, total1 - total0)})
        print(f"process {process + 1}: {median_ms:.1f} ms (steal {rows[-1]['steal_percent']:.1f} %)", flush=True)
    medians = [r["median_ms"] for r in rows]
    summary = {"min_ms": min(medians), "median_ms": float(np.median(medians)), "max_ms": max(medians)}
    headers = ["process", f"median of {args.repeats} ms", "steal %"]
    body = [[r["process"], f"{r['median_ms']:.1f}", f"{r['steal_percent']:.1f}"] for r in rows]
    print(format_table(headers, body))
    print(f"over processes: min {summary['min_ms']:.1f}, median {summary['median_ms']:.1f}, max {summary['max_ms']:.1f} ms")
    command = "python experiments/network_timing.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# One network timed in {args.processes} fresh processes", "", f"Command: `{command}`", "",
             f"Machine: {machine()}", "",
             "Each process times the library as `network.run_library` does (the median of its runs); steal is the "
             "share of CPU time the hypervisor took from this VM while that process ran.", "",
             *markdown_table(headers, body)]
    lines += ["", f"Over processes: min {summary['min_ms']:.1f}, median {summary['median_ms']:.1f}, "
                  f"max {summary['max_ms']:.1f} ms."]
    stem = os.path.join(RESULTS, "network-timing-" + os.path.splitext(os.path.basename(args.library))[0])
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"command": command, "library": args.library, "repeats": args.repeats, "processes": rows, **summary},
                  f, indent=1)
    print(f"wrote {stem}.md, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
