"""Recipe: add a feature, and see how the cost model's rank correlation changes.

A feature set is a factory task -> (applied program -> matrix, one row per store). This one
takes our features (features.FEATURE_NAMES) and appends one column: how many loops the whole
scheduled program has, a crude measure of how deeply it is tiled. Registering it in
`FEATURE_SETS` makes it a value of `SearchConfig.features`.

Both feature sets then search the same task with the same seeds, answered by the replay runner
from one pool of real measurements, so the only difference is what the model sees; the script
prints the median rank correlation between predicted scores and measured throughput per round
(the number every round of the search trace records).

    python examples/add_feature.py --workload yolo-conv-26x26-128-128-3x3 --trials 128 --seeds 0,1,2
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from minansor.model.features import FEATURE_SETS, minansor_extractor
from minansor.records import replay_from
from minansor.tasks.workloads import make_task
from minansor.tir import analysis
from minansor.tune import tune_task

import recipe


def loop_count(applied) -> int:
    sch = applied.sch
    return len({sch.get(loop).loop_var.name for block in analysis.block_names(sch)
                for loop in sch.get_loops(sch.get_sblock(block))})


def with_loop_count(task):
    ours = minansor_extractor(task)

    def extract(applied) -> np.ndarray:
        matrix = ours(applied)
        column = np.full((len(matrix), 1), np.log2(1 + loop_count(applied)), dtype=matrix.dtype)
        return np.concatenate([matrix, column], axis=1)

    return extract


FEATURE_SETS["minansor+loops"] = with_loop_count


def main(argv: list[str] | None = None) -> int:
    parser = recipe.parser(__doc__, "work_dirs/examples/add_feature", trials=128)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    base = recipe.config(args)
    task = make_task(args.workload)
    pool = os.path.join(args.work_dir, "pool")
    tune_task(task, base, pool, args.trials, progress=False)  # real measurements (resumes)
    replay = replay_from(pool)
    for features in ("minansor", "minansor+loops"):
        config = dataclasses.replace(base, features=features)
        rho, best = [], []
        for seed in (int(s) for s in args.seeds.split(",")):
            work = os.path.join(args.work_dir, features, f"seed{seed}")
            result = tune_task(task, config, work, args.trials, seed, progress=False, measurer=replay)
            rho += [r["rank_correlation"] for r in result.rounds if np.isfinite(r["rank_correlation"])]
            best.append(result.best_ms)
        print(f"{features:15s} median rank correlation {np.median(rho) if rho else float('nan'):.3f} "
              f"over {len(rho)} rounds; best {np.mean(best):.4f} ms (mean over seeds)")
    print(replay.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
