"""What the layout rewrite of constant weights is worth to each tuner, in one run.

    python experiments/rewrite_effect.py --suite quick-nhwc --budget 200 --seeds 0,1,2

Reads the four best programs of every (task, seed) that `compare_metaschedule.py` left in its work
dirs, once with the rewrite on (the default) and once off (`--set layout_rewrite=off`):

    python experiments/compare_metaschedule.py --suite quick-nhwc --budgets 200 --seeds 0,1,2
    python experiments/compare_metaschedule.py --suite quick-nhwc --budgets 200 --seeds 0,1,2 --set layout_rewrite=off

and re-measures the four side by side, in turns (`compare.remeasure`: built once, the order
reversed every turn, the median kept), so that the effect of the rewrite is not mixed up with two
runs an hour apart on a shared machine. Writes experiments/results/rewrite-effect-<suite>-<budget>.md
and .json: per pair, the four latencies, what the rewrite gained each tuner (latency off / on,
above 1: the rewrite helped) and minansor / MetaSchedule with it on and off; then the geometric
means with 95 % intervals. The .json is rewritten after every pair and a pair already in it is
kept, so a killed run goes on where it stopped (--fresh starts over).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.compare_metaschedule import RESULTS, SUITES, machine, rewrite_suffix, seed_suffix  # noqa: E402
from minansor.cli import format_table  # noqa: E402
from minansor.compare.metaschedule_runs import metaschedule_best  # noqa: E402
from minansor.compare.remeasure import remeasure  # noqa: E402
from minansor.compare.report import geometric_mean, geometric_mean_interval  # noqa: E402
from minansor.compare.task import as_compared, minansor_best  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from minansor.tasks.workloads import make_task  # noqa: E402

SETTINGS = {"on": SearchConfig(), "off": dataclasses.replace(SearchConfig(), layout_rewrite="off")}
LATENCIES = [("minansor", "on"), ("minansor", "off"), ("MetaSchedule", "on"), ("MetaSchedule", "off")]
# (name, numerator, denominator) of each ratio of latencies reported; every one is a ratio of two
# programs timed in the same turns.
RATIOS = [("rewrite gain, minansor (off / on)", ("minansor", "off"), ("minansor", "on")),
          ("rewrite gain, MetaSchedule (off / on)", ("MetaSchedule", "off"), ("MetaSchedule", "on")),
          ("minansor / MetaSchedule, rewrite on", ("minansor", "on"), ("MetaSchedule", "on")),
          ("minansor / MetaSchedule, rewrite off", ("minansor", "off"), ("MetaSchedule", "off"))]


def work_dir(root: str, setting: str, budget: int, seed: int, task: str) -> str:
    """Where compare_metaschedule.py keeps one task's records for a setting of the rewrite."""
    return os.path.join(root + rewrite_suffix(SETTINGS[setting]), f"{budget}{seed_suffix(seed)}", task)


def measure_pair(name: str, seed: int, budget: int, root: str) -> dict:
    """The four best programs of one (task, seed), re-measured side by side (ms)."""
    mods = []
    for tuner, setting in LATENCIES:
        config = SETTINGS[setting]
        task, folder = as_compared(make_task(name), config), work_dir(root, setting, budget, seed, name)
        mods.append(minansor_best(task, config, os.path.join(folder, "minansor")) if tuner == "minansor"
                    else metaschedule_best(task, os.path.join(folder, "metaschedule"), budget))
    latencies = remeasure(make_task(name), mods, SETTINGS["on"])
    return {"task": name, "seed": seed, "ms": {f"{t} {s}": ms for (t, s), ms in zip(LATENCIES, latencies)}}


def ratio(pair: dict, numerator: tuple[str, str], denominator: tuple[str, str]) -> float:
    return pair["ms"][" ".join(numerator)] / pair["ms"][" ".join(denominator)]


def report(pairs: list[dict], command: str, title: str) -> tuple[list[str], str]:
    headers = ["task", "seed"] + [f"{t} {s} ms" for t, s in LATENCIES] + [name for name, _, _ in RATIOS]
    body = [[p["task"], p["seed"]] + [f"{p['ms'][f'{t} {s}']:.3f}" for t, s in LATENCIES]
            + [f"{ratio(p, a, b):.3f}" for _, a, b in RATIOS] for p in pairs]
    summary = []
    for name, a, b in RATIOS:
        ratios = [ratio(p, a, b) for p in pairs]
        mean, (low, high) = geometric_mean(ratios), geometric_mean_interval(ratios)
        summary.append(f"- {name}: **{mean:.3f}** (95 % interval {low:.3f}–{high:.3f})")
    lines = [f"# {title}", "", f"Command: `{command}`", "", f"Machine: {machine()}", "",
             "The best program of each tuner with the layout rewrite of constant weights on (both tuners pack the "
             "weights in the order their tiles read them: minansor's RewriteLayout step, MetaSchedule's RewriteLayout "
             "postproc) and off (neither does), re-measured side by side in turns. A rewrite gain above 1: the "
             "rewrite made that tuner's best program faster. minansor / MetaSchedule below 1: minansor faster.", "",
             *markdown_table(headers, body), "", f"Geometric means over {len(pairs)} (task, seed) pairs:", "",
             *summary, ""]
    return [format_table(headers, body), *summary], "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=SUITES, default="quick-nhwc", help="task list (default quick-nhwc)")
    parser.add_argument("--budget", type=int, default=200, help="the budget both comparisons ran (default 200)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--work-dir", default="work_dirs/compare",
                        help="compare_metaschedule.py's --work-dir (default work_dirs/compare)")
    parser.add_argument("--fresh", action="store_true", help="re-measure pairs already in the results")
    parser.add_argument("--results", default=RESULTS, help="where the table goes (default experiments/results)")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    todo = [(name, seed) for seed in seeds for name in SUITES[args.suite]]
    missing = [work_dir(args.work_dir, setting, args.budget, seed, name) for name, seed in todo
               for setting in SETTINGS if not os.path.isdir(work_dir(args.work_dir, setting, args.budget, seed, name))]
    if missing:
        parser.error(f"no comparison records in {missing[0]} (and {len(missing) - 1} more): run both "
                     "compare_metaschedule.py commands of --help first")
    stem = os.path.join(args.results, f"rewrite-effect-{args.suite}-{args.budget}")
    command = "python experiments/rewrite_effect.py " + " ".join(argv if argv is not None else sys.argv[1:])
    pairs = []
    if os.path.exists(stem + ".json") and not args.fresh:
        with open(stem + ".json") as f:
            pairs = [p for p in json.load(f)["pairs"] if (p["task"], p["seed"]) in todo]
    done = {(p["task"], p["seed"]) for p in pairs}
    for name, seed in tqdm([t for t in todo if t not in done], desc="re-measuring four bests", unit="pair"):
        pairs.append(measure_pair(name, seed, args.budget, args.work_dir))
        pairs.sort(key=lambda p: todo.index((p["task"], p["seed"])))
        with open(stem + ".json", "w") as f:
            json.dump({"command": command, "pairs": pairs}, f, indent=1)
    printed, text = report(pairs, command, f"The layout rewrite, on and off, for both tuners ({args.suite}, "
                                             f"{args.budget} trials, seeds {args.seeds})")
    print("\n".join(printed))
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(f"wrote {stem}.md, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
