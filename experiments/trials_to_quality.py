"""Trials to quality: how many trials the default search needs for what another search reaches at
the full budget, on a whole network, measured.

    python experiments/trials_to_quality.py --model yolox-s --trials 2000 --budgets 500

1. tuning: `tune_network` from nothing with the default SearchConfig and with the --set changes
   (by default the search as it was before transfer across tasks: `transfer_programs=0
   warmup_order=given warmup_trials=0`), each at --trials and at every smaller --budgets, every
   run from nothing in its own records (a budget is not a checkpoint of a longer run: the round
   sizes depend on it); a killed run resumes from its records;
2. timing: every build and the engines a user would otherwise pick (onnxruntime, OpenVINO,
   PyTorch where installed), in --rounds interleaved rounds of --repeats runs, best round kept;
3. experiments/results/trials-to-quality-<model>-<trials>.{md,json,png}: measured latency per
   budget, the estimated latency (sum of weight x best task latency) after every trial of each
   run, the smallest budget at which the default reaches the other search's full-budget latency.

Run nothing else on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.ablate_network import _slug, commit_of_this_checkout, publish, time_alternately  # noqa: E402
from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.errors import UserError  # noqa: E402
from minansor.network.models import load_model  # noqa: E402
from minansor.network.tuning import estimated_latency_curve, tune_network  # noqa: E402
from minansor.plots import pyplot  # noqa: E402
from minansor.records import RecordStore  # noqa: E402
from minansor.report import markdown_table, origin_counts  # noqa: E402
from minansor.tasks.targets import resolve_target  # noqa: E402
from minansor.validation import with_overrides  # noqa: E402

BEFORE_TRANSFER = ["transfer_programs=0", "warmup_order=given", "warmup_trials=0"]


def tuning_seconds(work_dir: str) -> float:
    """Search, build and run time of every round in the records (rounds.jsonl): the tuning time of
    the run however many times it was resumed (the wall time of one call counts only its own rounds)."""
    return sum(r["search_s"] + r["split_s"].get("build", 0.0) + r["split_s"].get("run", 0.0)
               for r in RecordStore(work_dir).load_rounds())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolox-s", help="a built-in model, .onnx or .pt2 (default yolox-s)")
    p.add_argument("--trials", type=int, default=2000, help="the full budget of both searches (default 2000)")
    p.add_argument("--budgets", default="500",
                   help="smaller budgets at which both searches are also run from nothing (default 500)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help=f"the other search: SearchConfig changes (repeatable; default {' '.join(BEFORE_TRANSFER)})")
    p.add_argument("--label", default=None,
                   help="the other search's name in the report (default: 'before transfer' for the default --set, "
                        "else the changes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    p.add_argument("--repeats", type=int, default=10, help="runs per build and engine per round (default 10)")
    p.add_argument("--work-dir", default=None, help="default work_dirs/trials-to-quality-<model>")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    changes = args.set or BEFORE_TRANSFER
    target = resolve_target("cpu")
    model = _slug(os.path.basename(args.model))
    work_dir = args.work_dir or os.path.join("work_dirs", f"trials-to-quality-{model}")
    try:  # bad input: one line, before anything is tuned
        budgets = sorted({int(c) for c in args.budgets.split(",") if c.strip()} | {args.trials})
        if budgets[0] < 1 or budgets[-1] > args.trials:
            raise UserError(f"budgets must lie in 1..{args.trials}, got {args.budgets}")
        label = args.label or ("before transfer" if changes == BEFORE_TRANSFER else " ".join(changes))
        variants = {"default": SearchConfig(), label: with_overrides(SearchConfig(), changes)}
        network = load_model(args.model, args.seed)
    except (UserError, ValueError) as err:
        p.error(str(err))

    libraries, estimated, measured_at, wall, origins, tasks = {}, {}, {}, {}, {}, 0
    for label, config in variants.items():
        for k in budgets:
            records = os.path.join(work_dir, _slug(label) + ("" if k == args.trials else f"-{k}"))
            print(f"tuning {network.name} ({label}), {k} trials from nothing", flush=True)
            result = tune_network(network, config, records, k, args.seed, target, progress=not args.no_progress,
                                  measure_untuned=False, compare_engines=False, log=print)
            libraries[(label, k)] = result.library
            weights = {r.task.name: r.task.weight for r in result.tuning.results}
            estimated[(label, k)] = estimated_latency_curve(RecordStore(records).load(), weights)
            wall[(label, k)] = tuning_seconds(records)
            origins[(label, k)] = origin_counts(RecordStore(records).load())
            tasks = len(result.tuning.results)
    best = time_alternately(network, {f"minansor, {label}, {k} trials": path for (label, k), path in libraries.items()},
                            args.rounds, args.repeats, args.seed, target)
    for (label, k) in libraries:
        measured_at.setdefault(label, {})[k] = best.pop(f"minansor, {label}, {k} trials")
    engines = best

    other = next(label for label in variants if label != "default")
    goal = measured_at[other][args.trials]
    reached = next((k for k in budgets if measured_at["default"][k] <= goal), None)

    command = "python experiments/trials_to_quality.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = [f"# {network.name}: trials to quality, default search against {other} (`{' '.join(changes)}`)", "",
             f"Command: `{command}` (at commit {commit_of_this_checkout()})", "", f"Machine: {machine()}", "",
             f"{network.name}: {tasks} tasks. Every run tuned from nothing with seed {args.seed}, at each budget on its "
             "own (rounds of min(64, budget / tasks) trials). Every build and engine "
             f"timed in {args.rounds} interleaved rounds of {args.repeats} runs (median per round, best round kept), "
             "batch 1.", "", f"**The default reaches {other}'s {args.trials}-trial latency ({goal * 1e3:.2f} ms measured) "
             + (f"with a budget of {reached} trials** (the smallest budget run at or below it)." if reached else
                "at none of the budgets run.**"), "",
             "| budget | " + " | ".join(f"{label} ms (measured)" for label in variants) + " | "
             + " | ".join(f"{label} ms (estimated: sum of task bests)" for label in variants) + " | "
             + " | ".join(f"{label} tuning min (search, build, run)" for label in variants) + " |",
             "|---" * (1 + 3 * len(variants)) + "|"]
    for k in budgets:
        lines.append(f"| {k} | " + " | ".join(f"{measured_at[label][k] * 1e3:.2f}" for label in variants) + " | "
                     + " | ".join(f"{estimated[(label, k)][-1][1] * 1e3:.2f}" if estimated[(label, k)] else "-"
                                  for label in variants) + " | "
                     + " | ".join(f"{wall[(label, k)] / 60:.1f}" for label in variants) + " |")
    kinds = sorted({kind for counts in origins.values() for kind in counts})
    lines += ["", "Where the trials of each run and each task's final best came from (trials / task bests; "
                  "`transfer`: lent by another task, `local`: coordinate descent around the best):", "",
              *markdown_table(["run", *kinds], [[f"{label}, {k}", *(" / ".join(map(str, counts.get(kind, (0, 0))))
                                                                   for kind in kinds)]
                                               for (label, k), counts in origins.items()])]
    lines += ["", "| engine | ms | default build at the full budget / engine (below 1: the build is faster) |", "|---|---|---|"]
    for key, seconds in sorted(engines.items(), key=lambda kv: kv[1]):
        lines.append(f"| {key} | {seconds * 1e3:.2f} | {measured_at['default'][args.trials] / seconds:.2f} |")

    os.makedirs(RESULTS, exist_ok=True)
    base = os.path.join(RESULTS, f"trials-to-quality-{model}-{args.trials}")
    with open(base + ".json", "w") as f:
        json.dump({"command": command, "machine": machine(), "model": network.name, "commit": commit_of_this_checkout(),
                   "changes": changes, "trials": args.trials, "seed": args.seed,
                   "measured_ms": {label: {str(k): s * 1e3 for k, s in at.items()} for label, at in measured_at.items()},
                   "estimated_ms": {f"{label}, {k}": [[count, s * 1e3] for count, s in curve]
                                    for (label, k), curve in estimated.items()},
                   "engines_ms": {key: s * 1e3 for key, s in engines.items()}, "reached_at": reached,
                   "tuning_wall_s": {f"{label}, {k}": s for (label, k), s in wall.items()},
                   "origins": {f"{label}, {k}": counts for (label, k), counts in origins.items()}, "tasks": tasks}, f, indent=1)
    fig, ax = pyplot().subplots(figsize=(8, 4.5))
    for label, color in zip(variants, ("tab:blue", "tab:orange")):
        for k in budgets:
            curve = estimated[(label, k)]
            ax.plot([c for c, _ in curve], [s * 1e3 for _, s in curve], color=color, alpha=0.35,
                    label=f"{label}: estimated during each run (sum of task bests)" if k == budgets[-1] else None)
        ax.plot(budgets, [measured_at[label][k] * 1e3 for k in budgets], "o-", color=color,
                label=f"{label}: measured build at each budget")
    for (key, seconds), style in zip(sorted(engines.items(), key=lambda kv: kv[1]), ("--", ":", "-.", (0, (1, 4)))):
        ax.axhline(seconds * 1e3, color="gray", linestyle=style, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("network latency, ms (batch 1)")
    ax.set_title(f"{network.name}: latency against trials")
    ax.legend(fontsize=7)
    publish(base, lines, fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
