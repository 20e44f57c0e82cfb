"""Recipe: open minansor's records with MetaSchedule, and build from them.

A work dir holds MetaSchedule's own JSON database (database_workload.json and
database_tuning_record.json, written through its `JSONDatabase`) beside our trials.jsonl. So
MetaSchedule's tools read our results with no conversion: query the best schedule of a
workload, compile a PrimFunc with the database applied (`compile_tir`), or build a whole Relax
model with `relax.transform.MetaScheduleApplyDatabase` (what `minansor tune-model` does).

    python examples/metaschedule_records.py --workload yolo-conv-26x26-128-128-3x3 --trials 64
"""

from __future__ import annotations

import sys

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from minansor.measure.verify import call_outputs
from minansor.tasks.workloads import make_task
from minansor.tir.layout_rewrite import packed_shapes
from minansor.tune import tune_task

import recipe


def main(argv: list[str] | None = None) -> int:
    parser = recipe.parser(__doc__, "work_dirs/examples/metaschedule_records", trials=64)
    args = parser.parse_args(argv)
    task = make_task(args.workload)
    ours = tune_task(task, recipe.config(args), args.work_dir, args.trials, progress=False)

    database = ms.database.JSONDatabase(work_dir=args.work_dir)  # MetaSchedule's reader, nothing of ours
    best = database.query_tuning_record(task.mod, task.target, workload_name="main")
    print(f"MetaSchedule reads {len(database)} records; its best: {np.median([float(s) for s in best.run_secs]) * 1e3:.4f}"
          f" ms, ours: {ours.best_ms:.4f} ms")
    print("its trace of that program:\n" + "\n".join("  " + line for line in str(best.trace).splitlines()[:12])
          + "\n  ...")
    built = ms.tir_integration.compile_tir(database, task.mod, task.target).mod  # the best schedule applied
    # A packed weight: here the packing stage stays in the program and runs at every call (a network packs once).
    print("constants it packs: " + (", ".join(f"{name} {shape} -> {packed}" for name, shape, packed
                                              in packed_shapes(built)) or "none"))
    rng = np.random.default_rng(0)
    inputs = [spec.random(rng) for spec in task.args]
    got = call_outputs(tvm.compile(built, target=task.target).mod, tvm.cpu(), task, inputs)
    want = call_outputs(tvm.compile(task.mod, target=task.target).mod, tvm.cpu(), task, inputs)
    error = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
    print(f"built by MetaSchedule from our records: max abs error vs the untuned program {error:.2g}")
    return 0 if error <= 1e-3 * max(1.0, max(float(np.abs(w).max()) for w in want)) else 1


if __name__ == "__main__":
    sys.exit(main())
