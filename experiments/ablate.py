"""Ablations of the search: one SearchConfig change per variant, several seeds each, answered by
the replay runner so that a whole grid runs in minutes without touching hardware.

    python experiments/ablate.py                                        # default grid, one YOLO conv
    python experiments/ablate.py --tasks gemm-512x512x512 --seeds 0,1,2,3,4 --budgets 64,200
    python experiments/ablate.py --only default,"crossover on" --variant "pop 96=population=96"

1. The pool: real measurements of the tasks on this machine (--pool), by runs that no variant
   under test repeats: the default search and random search at --pool-seeds, which must differ
   from --seeds (a variant's own seed-0 run in the pool would replay itself exactly and look
   better than it is). Measured first where a run has fewer than its share of --pool-trials.
2. Every variant x seed tunes the tasks to the largest budget with a ReplayMeasurer on the pool:
   a program the pool measured gets its recorded latency, any other the latency of the nearest
   recorded program of its sketch (measure/replay.decision_distance). Results say so, with the counts.
3. The table: per variant and budget, the mean +- standard deviation over seeds of the estimated
   latency (sum over tasks of weight x best latency; for one task its best latency), and the
   ratio to the default, and the share of each variant's measurements the pool answered
   exactly; the plot: mean curves. experiments/results/ablate-<name>.{md,png,json}.

A replayed ablation ranks search choices by how well they find the good programs *of the pool*;
confirm a winner with real measurements (compare_metaschedule.py --set ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
from collections import Counter

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.cli import format_table  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.errors import UserError  # noqa: E402
from minansor.network.tuning import estimated_latency_curve  # noqa: E402
from minansor.plots import pyplot, save  # noqa: E402
from minansor.records import RecordStore  # noqa: E402
from minansor.measure.replay import FALLBACKS, ReplayMeasurer  # noqa: E402
from minansor.records import replay_from  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from minansor.tasks.workloads import make_task  # noqa: E402
from minansor.tune import tune_tasks  # noqa: E402
from minansor.validation import with_overrides  # noqa: E402

DEFAULT_GRID: dict[str, list[str]] = {
    "default": [],
    "random cost model": ["cost_model=random"],
    "TVM's features": ["features=tvm"],
    "crossover on": ["crossover_probability=0.3", "mutation_probability=0.6"],
    "tile-size mutator only": ["mutators=tile_size:1.0"],
    "uniform mutator weights": ["mutators=tile_size:0.25,compute_location:0.25,unroll:0.25,parallel:0.25"],
    "population 64": ["population=64"],
    "no eps-greedy": ["eps_greedy=0"],
    "random search": ["search=random"],
    "round-robin task scheduler": ["task_scheduler=round_robin"],  # only with several tasks
}
DEFAULT_TASKS = "yolo-conv-26x26-256-256-3x3"
ANSWERS_FILE = "replay-answers.json"  # how the pool answered a run, summed over its resumptions


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """'LABEL=FIELD=VALUE;FIELD=VALUE' -> (label, ['FIELD=VALUE', ...])."""
    label, sep, assignments = spec.partition("=")
    if not sep or not label:
        raise UserError(f"--variant expects LABEL=FIELD=VALUE[;FIELD=VALUE...], got {spec!r}")
    return label, [a for a in assignments.split(";") if a]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")


def fill_pool(tasks, config: SearchConfig, pool: str, trials: int, seeds: list[int], progress: bool) -> list[str]:
    """Real measurements, `trials` in all: the default search and random search at each of
    `seeds`, an equal share each, every run in its own directory under `pool`; returns them."""
    runs = {f"{source}-seed{seed}": (dataclasses.replace(config, search=source), seed)
            for source in ("evolutionary", "random") for seed in seeds}
    share = max(1, trials // len(runs))
    for label, (run_config, seed) in runs.items():
        work = os.path.join(pool, label)
        have = len(RecordStore(work).load())
        if have < share:
            print(f"measuring the pool on this machine: {work} ({have} of {share} trials)", flush=True)
            tune_tasks(tasks, run_config, work, share, seed=seed, progress=progress)
    return [os.path.join(pool, label) for label in runs]


def latency_at(curve: list[tuple[int, float]], budget: int) -> float:
    """Estimated latency after `budget` trials (inf before every task has a program)."""
    reached = [seconds for count, seconds in curve if count <= budget]
    return reached[-1] if reached else float("inf")


def run_variant(tasks, config: SearchConfig, pool: ReplayMeasurer, work_dir: str, seed: int,
                budgets: list[int]) -> tuple[list[float], list[tuple[int, float]], Counter]:
    """(estimated latency at each budget, the whole curve, how the pool answered) of one replayed run.
    The answers are kept beside the run's records, so a resumed run reports all of them."""
    before = Counter(pool.answers)
    tune_tasks(tasks, config, work_dir, max(budgets), seed, progress=False, measurer=pool)
    path = os.path.join(work_dir, ANSWERS_FILE)
    answers = Counter()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            answers.update(json.load(f))
    answers.update(pool.answers - before)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(answers, f)
    curve = estimated_latency_curve(RecordStore(work_dir).load(), {t.name: t.weight for t in tasks})
    return [latency_at(curve, b) for b in budgets], curve, answers


def summarize(rows: dict[str, list[list[float]]], budgets: list[int]) -> tuple[list[str], list[list]]:
    """Mean +- std over seeds per budget, and the ratio of means to the default variant."""
    headers = ["variant"] + [f"{b} trials: ms (mean ± std)" for b in budgets] + [f"vs default @{budgets[-1]}"]
    baseline = np.mean([r[-1] for r in rows["default"]]) if "default" in rows else None
    table = []
    for label, runs in rows.items():
        values = np.array(runs) * 1e3
        cells = [f"{values[:, i].mean():.4f} ± {values[:, i].std():.4f}" if np.isfinite(values[:, i]).all()
                 else "a task not tuned yet" for i in range(len(budgets))]
        ratio = f"{values[:, -1].mean() / (baseline * 1e3):.3f}" if baseline else "-"
        table.append([label] + cells + [ratio])
    return headers, table


def plot(curves: dict[str, list[list[tuple[int, float]]]], budget: int, title: str, path: str) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 4.5))
    grid = np.arange(1, budget + 1)
    for label, runs in curves.items():
        values = np.array([[latency_at(run, b) for b in grid] for run in runs]) * 1e3
        finite = np.isfinite(values).all(axis=0)
        ax.plot(grid[finite], values[:, finite].mean(axis=0), label=label, linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("estimated latency (ms), mean over seeds")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"comma-separated workloads (default {DEFAULT_TASKS})")
    parser.add_argument("--budgets", default="64,200", help="comma-separated trial budgets (default 64,200)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds per variant (default 0,1,2)")
    parser.add_argument("--only", help="comma-separated variants of the default grid to run (default: all)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=FIELD=VALUE[;FIELD=VALUE]",
                        help="an extra variant (repeatable)")
    parser.add_argument("--pool", help="a run's records to replay as they are, made at seeds other than --seeds "
                                       "(default: measure a pool in work_dirs/ablate/<name>/pool)")
    parser.add_argument("--pool-trials", type=int, default=400, help="real measurements in the pool (default 400)")
    parser.add_argument("--pool-seeds", default="100,101",
                        help="seeds of the pool's runs, none of them in --seeds (default 100,101)")
    parser.add_argument("--fallback", choices=FALLBACKS, default="nearest",
                        help="a program the pool never measured: the nearest one's latency, or a failed trial")
    parser.add_argument("--name", help="results name (default: from the tasks)")
    parser.add_argument("--work-dir", default="work_dirs/ablate", help="records of the pool and of every replay")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a SearchConfig change for every variant and the pool")
    parser.add_argument("--results", default=RESULTS, help="where the table and plot go (default experiments/results)")
    parser.add_argument("--fresh", action="store_true", help="replay every variant again (the pool is kept)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        try:
            budgets = sorted({int(b) for b in args.budgets.split(",") if b})
            seeds = [int(s) for s in args.seeds.split(",") if s]
            pool_seeds = [int(s) for s in args.pool_seeds.split(",") if s]
        except ValueError:
            raise UserError(f"--budgets, --seeds and --pool-seeds take comma-separated integers, got "
                            f"{args.budgets!r}, {args.seeds!r}, {args.pool_seeds!r}") from None
        if args.pool:
            pool_seeds = sorted({t.seed for t in RecordStore(args.pool).load()})
        if set(seeds) & set(pool_seeds) or not pool_seeds:
            raise UserError(f"the pool's seeds {pool_seeds} must differ from --seeds {seeds}: a variant whose own "
                            "run is in the pool replays itself")
        tasks = [make_task(name) for name in args.tasks.split(",") if name]
        base = with_overrides(SearchConfig(), args.set)
        grid = dict(DEFAULT_GRID)
        if len(tasks) == 1:
            grid.pop("round-robin task scheduler")
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            unknown = [w for w in wanted if w not in grid]
            if unknown:
                raise UserError(f"unknown variant(s) {unknown}; the grid has: {', '.join(grid)}")
            grid = {w: grid[w] for w in wanted}
        grid.update(parse_variant(v) for v in args.variant)
        configs = {label: with_overrides(base, changes) for label, changes in grid.items()}
    except (UserError, ValueError) as err:
        print(f"ablate: error: {err}", file=sys.stderr)
        return 2
    name = args.name or slug("-".join(t.name for t in tasks))
    root = os.path.join(args.work_dir, name)
    pool_dir = args.pool or os.path.join(root, "pool")
    pool_runs = ([args.pool] if args.pool
                 else fill_pool(tasks, base, pool_dir, args.pool_trials, pool_seeds, not args.no_progress))
    pool = replay_from(*pool_runs, fallback=args.fallback)

    rows: dict[str, list[list[float]]] = {}
    curves: dict[str, list[list[tuple[int, float]]]] = {}
    answers: dict[str, Counter] = {}
    with tqdm(total=len(configs) * len(seeds), desc="replaying", unit="run", disable=args.no_progress) as bar:
        for label, config in configs.items():
            answers[label] = Counter()
            for seed in seeds:
                work = os.path.join(root, slug(label), f"seed{seed}")
                if args.fresh:
                    shutil.rmtree(work, ignore_errors=True)
                at_budgets, curve, run_answers = run_variant(tasks, config, pool, work, seed, budgets)
                rows.setdefault(label, []).append(at_budgets)
                curves.setdefault(label, []).append(curve)
                answers[label].update(run_answers)
                bar.update()

    headers, table = summarize(rows, budgets)
    headers.append("exact answers")
    for row, label in zip(table, rows):
        counts = answers[label]
        row.append(f"{counts['exact'] / max(1, sum(counts.values())):.0%}")
    replay_line = pool.describe(sum(answers.values(), Counter()))
    print(replay_line)
    print(format_table(headers, table))
    os.makedirs(args.results, exist_ok=True)
    stem = os.path.join(args.results, f"ablate-{name}")
    plot(curves, max(budgets), f"{name}: REPLAY of {pool_dir}, {len(seeds)} seed(s)", stem + ".png")
    command = shlex.join(sys.argv[1:] if argv is None else argv)
    lines = [f"# Ablation (replayed): {', '.join(t.name for t in tasks)}", "",
             f"**{replay_line}.** The pool `{pool_dir}` holds real measurements on this machine by "
             f"runs at seeds {pool_seeds}, which no variant below runs; "
             "every latency below is the pool's answer, not a measurement ('exact answers': the share "
             "of a variant's programs the pool had measured itself).", "",
             f"Machine of the pool: {machine()}. Command: `python experiments/ablate.py {command}`. "
             f"Seeds {seeds}; the default config plus: " + (", ".join(args.set) or "nothing") + ".", "",
             *markdown_table(headers, table)]
    lines += ["", "Replay answers per variant (all seeds):", ""]
    lines += [f"- {label} ({'; '.join(grid[label]) or 'no change'}): "
              + ", ".join(f"{counts[k]} {k}" for k in ("exact", "nearest", "missing"))
              for label, counts in answers.items()]
    lines += ["", f"![curves](ablate-{name}.png)", ""]
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"tasks": [t.name for t in tasks], "budgets": budgets, "seeds": seeds, "replay": replay_line,
                   "variants": {label: {"changes": grid[label], "latency_s": rows[label]} for label in rows}}, f,
                  indent=1)
    print(f"report: {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
