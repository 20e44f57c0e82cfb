"""Where the fast programs come from: one mutation of the best measured, or elsewhere?

    python experiments/lineage.py work_dirs/compare/200/*/minansor

For every model-guided trial (round 1 on) of every run given, asks whether it was a single
mutation of one of the `--top` best programs measured before its round ("near the best"), and
how often each kind came within 10 % of the run's final best. The answer is what local
refinement (`SearchConfig.refine_share`, `EvolutionarySearch.refinements`) builds on.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np

from minansor.cli import format_table
from minansor.errors import UserError
from minansor.records import Trial, read_records


def near_the_best(trial: Trial, measured_before: list[Trial], top: int) -> bool:
    """A direct mutation (nothing unmeasured in between) of one of the `top` best of `measured_before`."""
    best = {t.program.key() for t in sorted(measured_before, key=lambda t: t.median_s)[:top]}
    origin = trial.meta.get("origin", "")
    return (origin.startswith(("mutate:", "refine:")) and not trial.meta.get("ancestry")
            and bool(set(trial.meta.get("parents", ())) & best))


def classify(trials: list[Trial], top: int) -> dict[str, list[float]]:
    """{'near the best' | 'elsewhere': [latency / final best, ...]} over rounds 1 on."""
    final_best = min(t.median_s for t in trials)
    out: dict[str, list[float]] = {"near the best": [], "elsewhere": []}
    for trial in trials:
        if trial.round == 0:
            continue
        before = [t for t in trials if t.round < trial.round and t.ok]
        kind = "near the best" if near_the_best(trial, before, top) else "elsewhere"
        out[kind].append(trial.median_s / final_best)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dirs", nargs="+", help="minansor work dirs (one task each, or several)")
    parser.add_argument("--top", type=int, default=10, help="how many of the best measured count as 'the best'")
    args = parser.parse_args(argv)
    totals: dict[str, list[float]] = {"near the best": [], "elsewhere": []}
    origins: Counter[str] = Counter()
    try:
        for work_dir in args.work_dirs:
            _, trials = read_records(work_dir)
            for task in sorted({t.task for t in trials}):
                mine = [t for t in trials if t.task == task]
                for kind, ratios in classify(mine, args.top).items():
                    totals[kind] += ratios
                best = min(mine, key=lambda t: t.median_s)
                origins["random" if best.round == 0 else
                        "near the best" if near_the_best(best, [t for t in mine if t.round < best.round and t.ok],
                                                         args.top) else "elsewhere"] += 1
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = [[kind, len(r), int(np.sum(np.array(r) < 1.1)), f"{100 * np.mean(np.array(r) < 1.1):.1f}",
             f"{np.median(r):.2f}", origins[kind]] for kind, r in totals.items() if r]
    print(format_table(["model-guided trials", "count", "within 10 % of final best", "%", "median latency / final best",
                        "final bests found so"], rows))
    print(f"final bests from round 0 (random): {origins['random']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
