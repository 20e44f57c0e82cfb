"""Trials to quality: how many trials the default search needs for what another search reaches at
the full budget, on a whole network, measured.

    python experiments/trials_to_quality.py --model yolox-s --trials 2000 --checkpoints 250,500,1000

1. tuning: `tune_network` from nothing with the default SearchConfig and with the --set changes
   (by default the search as it was before transfer across tasks: `transfer_programs=0
   warmup_order=given warmup_trials=0`), each into its own records (a killed run resumes);
2. checkpoints: for every --checkpoints count k, the records as they stood after their first k
   trials are copied into a work dir of their own and built: the network as if the run had been
   stopped there (nothing is re-tuned);
3. timing: every build and the engines a user would otherwise pick (onnxruntime, OpenVINO,
   PyTorch where installed), in --rounds interleaved rounds of --repeats runs, best round kept;
4. experiments/results/trials-to-quality-<model>-<trials>.{md,json,png}: measured latency at each
   checkpoint, the estimated latency (sum of weight x best task latency) after every trial, the
   trials the default needs to reach the other search's final measured latency.

Run nothing else on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.ablate_network import _slug, commit_of_this_checkout, time_alternately  # noqa: E402
from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.errors import UserError  # noqa: E402
from minansor.network.models import load_model  # noqa: E402
from minansor.network.tuning import estimated_latency_curve, tune_network  # noqa: E402
from minansor.plots import pyplot, save  # noqa: E402
from minansor.records import CONFIG_FILE, TASKS_FILE, TRIALS_FILE, RecordStore  # noqa: E402
from minansor.tasks.targets import resolve_target  # noqa: E402
from minansor.validation import with_overrides  # noqa: E402

BEFORE_TRANSFER = ["transfer_programs=0", "warmup_order=given", "warmup_trials=0"]
TUNING_RECORDS, WORKLOADS = "database_tuning_record.json", "database_workload.json"


def records_after(work_dir: str, trials: int, dest: str) -> None:
    """Write into `dest` the records of `work_dir` as they stood after its first `trials` trials:
    trials.jsonl cut there, MetaSchedule's tuning records cut after as many successful trials
    (they are appended together), the tasks and the config as they are."""
    store = RecordStore(work_dir)
    kept = store.load()[:trials]
    if store.skipped_lines:
        raise UserError(f"{work_dir}: {store.skipped_lines} unreadable trial lines; cannot cut the records")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    for name in (CONFIG_FILE, TASKS_FILE, WORKLOADS):
        shutil.copy(os.path.join(work_dir, name), dest)
    with open(os.path.join(dest, TRIALS_FILE), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(t.to_json()) + "\n" for t in kept)
    with open(os.path.join(work_dir, TUNING_RECORDS), encoding="utf-8") as f:
        records = f.readlines()
    with open(os.path.join(dest, TUNING_RECORDS), "w", encoding="utf-8") as f:
        f.writelines(records[:sum(t.ok for t in kept)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolox-s", help="a built-in model, .onnx or .pt2 (default yolox-s)")
    p.add_argument("--trials", type=int, default=2000, help="the full budget of both searches (default 2000)")
    p.add_argument("--checkpoints", default="250,500,1000",
                   help="trial counts below --trials at which both runs are also built and timed (default 250,500,1000)")
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
        checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c.strip()} | {args.trials})
        if checkpoints[0] < 1 or checkpoints[-1] > args.trials:
            raise UserError(f"checkpoints must lie in 1..{args.trials}, got {args.checkpoints}")
        label = args.label or ("before transfer" if changes == BEFORE_TRANSFER else " ".join(changes))
        variants = {"default": SearchConfig(), label: with_overrides(SearchConfig(), changes)}
        network = load_model(args.model, args.seed)
    except (UserError, ValueError) as err:
        p.error(str(err))

    libraries, estimated, measured_at, wall = {}, {}, {}, {}
    for label, config in variants.items():
        full = os.path.join(work_dir, _slug(label))
        print(f"tuning {network.name} ({label}), {args.trials} trials", flush=True)
        result = tune_network(network, config, full, args.trials, args.seed, target, progress=not args.no_progress,
                              measure_untuned=False, compare_engines=False, log=print)
        weights = {r.task.name: r.task.weight for r in result.tuning.results}
        estimated[label] = estimated_latency_curve(RecordStore(full).load(), weights)
        wall[label] = result.tuning.wall_s
        for k in checkpoints:
            if k == args.trials:
                libraries[(label, k)] = result.library
                continue
            cut = f"{full}-at-{k}"
            records_after(full, k, cut)
            print(f"building {network.name} ({label}) from its first {k} trials", flush=True)
            libraries[(label, k)] = tune_network(network, config, cut, k, args.seed, target, progress=False,
                                                 measure_untuned=False, compare_engines=False).library
    best = time_alternately(network, {f"minansor, {label}, {k} trials": path for (label, k), path in libraries.items()},
                            args.rounds, args.repeats, args.seed, target)
    for (label, k) in libraries:
        measured_at.setdefault(label, {})[k] = best.pop(f"minansor, {label}, {k} trials")
    engines = best

    other = next(label for label in variants if label != "default")
    goal = measured_at[other][args.trials]
    reached = next((k for k in checkpoints if measured_at["default"][k] <= goal), None)
    goal_estimate = estimated[other][-1][1] if estimated[other] else None
    reached_estimate = next((count for count, s in estimated["default"] if goal_estimate and s <= goal_estimate), None)

    command = "python experiments/trials_to_quality.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = [f"# {network.name}: trials to quality, default search against {other} (`{' '.join(changes)}`)", "",
             f"Command: `{command}` (at commit {commit_of_this_checkout()})", "", f"Machine: {machine()}", "",
             f"Both searches tuned from nothing with seed {args.seed} to {args.trials} trials; at each checkpoint the "
             "network was built from the records as they stood after that many trials. Every build and engine timed "
             f"in {args.rounds} interleaved rounds of {args.repeats} runs (median per round, best round kept), batch 1.",
             "", f"**The default reaches {other}'s {args.trials}-trial latency ({goal * 1e3:.2f} ms measured) "
             + (f"at {reached} trials** (the first checkpoint at or below it)." if reached else
                "at none of the checkpoints.**"),
             f"By the estimate (sum of weight x best task latency), after {reached_estimate} trials."
             if reached_estimate else "By the estimate, never within the budget.", "",
             "| trials | " + " | ".join(f"{label} ms (measured)" for label in variants) + " | "
             + " | ".join(f"{label} ms (estimated)" for label in variants) + " |",
             "|---" * (1 + 2 * len(variants)) + "|"]

    def estimate_at(label: str, k: int) -> str:
        before = [s for count, s in estimated[label] if count <= k]
        return f"{before[-1] * 1e3:.2f}" if before else "-"

    for k in checkpoints:
        lines.append(f"| {k} | " + " | ".join(f"{measured_at[label][k] * 1e3:.2f}" for label in variants) + " | "
                     + " | ".join(estimate_at(label, k) for label in variants) + " |")
    lines += ["", "| engine | ms | default at full budget / engine |", "|---|---|---|"]
    for key, seconds in sorted(engines.items(), key=lambda kv: kv[1]):
        lines.append(f"| {key} | {seconds * 1e3:.2f} | {measured_at['default'][args.trials] / seconds:.2f} |")
    lines += ["", "Tuning wall time: " + ", ".join(f"{label} {wall[label] / 60:.1f} min" for label in variants) + "."]

    os.makedirs(RESULTS, exist_ok=True)
    base = os.path.join(RESULTS, f"trials-to-quality-{model}-{args.trials}")
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(base + ".json", "w") as f:
        json.dump({"command": command, "machine": machine(), "model": network.name, "commit": commit_of_this_checkout(),
                   "changes": changes, "trials": args.trials, "seed": args.seed,
                   "measured_ms": {label: {str(k): s * 1e3 for k, s in at.items()} for label, at in measured_at.items()},
                   "estimated_ms": {label: [[count, s * 1e3] for count, s in curve] for label, curve in estimated.items()},
                   "engines_ms": {key: s * 1e3 for key, s in engines.items()}, "reached_at": reached,
                   "reached_at_estimated": reached_estimate, "tuning_wall_s": wall}, f, indent=1)
    fig, ax = pyplot().subplots(figsize=(8, 4.5))
    for (label, curve), color in zip(estimated.items(), ("tab:blue", "tab:orange")):
        ax.plot([c for c, _ in curve], [s * 1e3 for _, s in curve], color=color, alpha=0.6,
                label=f"{label}: estimated (sum of task bests)")
        ax.plot(checkpoints, [measured_at[label][k] * 1e3 for k in checkpoints], "o-", color=color,
                label=f"{label}: measured build")
    for (key, seconds), style in zip(sorted(engines.items(), key=lambda kv: kv[1]), ("--", ":", "-.", (0, (1, 4)))):
        ax.axhline(seconds * 1e3, color="gray", linestyle=style, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("network latency, ms (batch 1)")
    ax.set_title(f"{network.name}: latency against trials")
    ax.legend(fontsize=7)
    save(fig, base + ".png")
    print("\n".join(lines))
    print(f"wrote {base}.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
