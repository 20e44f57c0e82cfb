"""Recipe: warm-start minansor's cost model from MetaSchedule's records.

MetaSchedule's programs are traces, not points of our search space (sketch + decisions), so
they cannot be mutated here; but their scheduled TIR has features, and their measured times
are labels. `records.metaschedule_measurements` replays every record of the task onto it, and
`tune_task(..., warm_start=...)` hands them to `EvolutionarySearch.warm_start`: the model
trains on them before the first round, so the very first round is evolved under a trained
model instead of being drawn at random.

    python examples/warm_start_from_metaschedule.py --workload yolo-conv-26x26-128-128-3x3 --trials 64

Runs MetaSchedule's `tune_tir` first (into WORK_DIR/metaschedule; kept, so a second run reuses
it), then minansor cold and warm with the same seed and budget.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from tvm.s_tir import meta_schedule as ms

from minansor import metaschedule
from minansor.records import metaschedule_measurements
from minansor.tasks.workloads import make_task
from minansor.tir.intrinsics import register_intrinsics
from minansor.tune import tune_task

import recipe


def main(argv: list[str] | None = None) -> int:
    parser = recipe.parser(__doc__, "work_dirs/examples/warm_start", trials=64)
    args = parser.parse_args(argv)
    config = recipe.config(args)
    task = make_task(args.workload)
    ms_dir = os.path.join(args.work_dir, "metaschedule")
    if not os.path.exists(os.path.join(ms_dir, "database_tuning_record.json")):
        register_intrinsics(task.target)  # the CPU's only: registering all of TVM's takes 20-60 s
        ms.tune_tir(task.mod, task.target, ms_dir, max_trials_global=args.trials,
                    num_trials_per_iter=config.trials_per_round, builder=metaschedule.builder(config),
                    runner=metaschedule.runner(config))
    prior = metaschedule_measurements(ms_dir, task)
    finite = [s for _, s in prior if np.isfinite(s)]
    if not finite:
        print(f"MetaSchedule's {len(prior)} records of {task.name} in {ms_dir} are all failures: nothing to learn from")
        return 1
    print(f"MetaSchedule measured {len(prior)} programs of {task.name}; its best {min(finite) * 1e3:.4f} ms")
    for label, warm in (("cold", None), ("warm", prior)):
        result = tune_task(task, config, os.path.join(args.work_dir, label), args.trials, progress=False,
                           warm_start=warm)
        first = result.rounds[0]
        print(f"minansor {label}: first round best {first['best_ms']:.4f} ms "
              f"(rank correlation {first['rank_correlation']:.2f}), after {result.trials} trials "
              f"{result.best_ms:.4f} ms, check {'ok' if result.check.ok else 'FAILED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
