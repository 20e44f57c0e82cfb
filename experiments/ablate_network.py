"""One choice of the pipeline off, on a whole network, measured: both builds tuned with the same
trials and seed, then timed alternately with the engines a user would otherwise pick.

    python experiments/ablate_network.py --model yolox-s-int8 --trials 300 --set fast_math=false
    python experiments/ablate_network.py --model yolox-s --trials 300 --set fast_math=false

1. tuning: `tune_network` with the default SearchConfig and with the --set changes, each into its
   own records (WORK_DIR/default, WORK_DIR/<changes>; a killed run resumes from them);
2. timing: --rounds interleaved rounds of both tuned libraries and the other engines on the same
   model (onnxruntime, OpenVINO where installed), each the median of --repeats runs; every row
   keeps its best round;
3. experiments/results/ablate-network-<model>-<changes>-<trials>.{md,json,png}: latency, ratio to
   the default build, tasks, tuning wall time, and each build's check against the source framework.

Graph-level choices (fast_math, data_layout, vnni_padding) change the tasks themselves, which the
replayed ablations of experiments/ablate.py cannot answer. Run nothing else on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.errors import UserError  # noqa: E402
from minansor.network.engines import network_engines  # noqa: E402
from minansor.network.models import load_model  # noqa: E402
from minansor.network.run import median_time, run_library  # noqa: E402
from minansor.network.tuning import tune_network  # noqa: E402
from minansor.plots import pyplot, save  # noqa: E402
from minansor.tasks.targets import resolve_target  # noqa: E402
from minansor.validation import with_overrides  # noqa: E402


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def time_alternately(network, libraries: dict[str, str], rounds: int, repeats: int, seed: int,
                     target, more: tuple = ()) -> dict[str, float]:
    """Seconds per label: each tuned library (label -> exported path) and every engine installed
    for `network`, and for each (network, libraries) in `more` (another precision of the model),
    timed in `rounds` interleaved rounds of `repeats` runs (median per round, best round kept).
    Engines are labelled "<engine> (<precision>)", those of a network in `more` "<network>: <engine> (<precision>)"."""
    runs = []
    for net, libs in ((network, libraries), *more):
        inputs = [spec.random(np.random.default_rng(seed)) for spec in net.inputs]
        prefix = f"{net.name}: " if net is not network else ""
        runs += [(label, lambda lib=lib, x=inputs: run_library(lib, x, repeats, target, None).median_s)
                 for label, lib in libs.items()]
        runs += [(f"{prefix}{e.name} ({e.precision})",
                  lambda e=e, x=inputs: median_time(lambda: e.forward(x), repeats, warmup=3)[0])
                 for e in network_engines(net, print)]
    best: dict[str, float] = {}
    for round_index in range(rounds):
        print(f"timing round {round_index + 1}/{rounds}", flush=True)
        for label, timed in runs:
            best[label] = min(best.get(label, np.inf), timed())
    return best


def publish(base: str, lines: list[str], fig) -> None:
    """The report's markdown (`lines`) and plot (`fig`) as base.md and base.png, and the report
    printed: how every network experiment ends (each writes its own base.json)."""
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    save(fig, base + ".png")
    print("\n".join(lines))
    print(f"wrote {base}.md, .json, .png")


def commit_of_this_checkout() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolox-s-int8", help="a built-in model, .onnx or .pt2 (default yolox-s-int8)")
    p.add_argument("--trials", type=int, default=300, help="trials of each build (default 300)")
    p.add_argument("--set", action="append", required=True, metavar="FIELD=VALUE",
                   help="the SearchConfig change under test (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    p.add_argument("--repeats", type=int, default=10, help="runs per engine per round (default 10)")
    p.add_argument("--work-dir", default=None, help="default work_dirs/ablate-network-<model>")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    target = resolve_target("cpu")
    changes = " ".join(args.set)
    model = _slug(os.path.basename(args.model))
    name = f"{model}-{_slug(changes)}-{args.trials}"
    work_dir = args.work_dir or os.path.join("work_dirs", f"ablate-network-{model}")
    try:  # a bad --set or model: one line, before anything is tuned
        variants = {"default": SearchConfig(), changes: with_overrides(SearchConfig(), args.set)}
        network = load_model(args.model, args.seed)
    except UserError as err:
        p.error(str(err))
    built = {}
    for label, config in variants.items():
        print(f"tuning {network.name} ({label}), {args.trials} trials", flush=True)
        built[label] = tune_network(network, config, os.path.join(work_dir, _slug(label)), args.trials, args.seed,
                                    target, progress=not args.no_progress, measure_untuned=False,
                                    compare_engines=False, log=print)
    best = time_alternately(network, {f"minansor, {label}": result.library for label, result in built.items()},
                            args.rounds, args.repeats, args.seed, target)
    reference = best["minansor, default"]
    rows = []
    for key, seconds in sorted(best.items(), key=lambda kv: kv[1]):
        label = key.removeprefix("minansor, ")
        result = built.get(label) if key.startswith("minansor, ") else None
        rows.append({"runtime": key, "ms": seconds * 1e3, "vs default build": seconds / reference,
                     "tasks": len(result.tuning.results) if result else None,
                     "estimated_ms": result.tuning.estimated_s * 1e3 if result else None,
                     "tuning_wall_s": result.tuning.wall_s if result else None,
                     "check": ("ok" if result.tuned_check.ok else f"FAILED: {result.tuned_check.detail}") if result else ""})
    command = "python experiments/ablate_network.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    commit = commit_of_this_checkout()
    lines = [f"# {network.name}: {changes} against the default, {args.trials} trials each", "",
             f"Command: `{command}` (at commit {commit})", "", f"Machine: {machine()}", "",
             f"Both builds tuned from nothing with seed {args.seed}; every runtime timed in {args.rounds} "
             f"interleaved rounds of {args.repeats} runs (median per round, best round kept), batch 1.", "",
             "| runtime | ms | vs default build | tasks | estimated ms (sum of task bests) | tuning wall s | check |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['runtime']} | {r['ms']:.2f} | {r['vs default build']:.2f} | {r['tasks'] or ''} | "
                     + (f"{r['estimated_ms']:.2f} | {r['tuning_wall_s']:.0f} | " if r["tasks"] else " | | ")
                     + f"{r['check']} |")
    os.makedirs(RESULTS, exist_ok=True)
    base = os.path.join(RESULTS, f"ablate-network-{name}")
    with open(base + ".json", "w") as f:
        json.dump({"command": command, "machine": machine(), "model": network.name, "commit": commit, "changes": args.set,
                   "trials": args.trials, "seed": args.seed, "rows": rows}, f, indent=1)
    fig, ax = pyplot().subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    ax.barh([r["runtime"] for r in rows][::-1], [r["ms"] for r in rows][::-1], color="tab:blue")
    ax.set_xlabel("latency, ms (batch 1; best of interleaved rounds)")
    ax.set_title(f"{network.name}: {changes} vs default, {args.trials} trials")
    publish(base, lines, fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
