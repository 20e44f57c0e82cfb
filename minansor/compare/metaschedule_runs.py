"""Stock MetaSchedule (`tune_tir`) run under minansor's timeouts, its curve and search time
recorded in trial order, and the best program read back from its database.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from .. import metaschedule
from ..config import SearchConfig
from ..errors import UserError
from ..tasks.task import Task
from ..tir.intrinsics import register_intrinsics
from .results import TunerRun, best_so_far, failure_classes, no_valid_program


# MetaSchedule's profiler scopes that do what minansor's propose + learn do (its evolutionary
# search and its cost-model update); measurement, start-up and logging are left out of both.
_MS_SEARCH_SCOPES = ("EvoSearch/", "MeasureCallback/UpdateCostModel")


@derived_object
class _RecordInOrder(ms.measure_callback.PyMeasureCallback):
    """Keeps MetaSchedule's measured latencies in trial order (its database does not), and the
    first and last line of every failed candidate's error."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        for built, result in zip(builder_results, runner_results):
            secs = [float(s) for s in result.run_secs] if result.run_secs and not result.error_msg else []
            self.latencies_ms.append(1e3 * float(np.mean(secs)) if secs else math.inf)
            error = built.error_msg or result.error_msg
            if error:  # its messages open with who failed ("LocalRunner: An exception occurred") and end with why
                lines = [line.strip() for line in str(error).splitlines() if line.strip()] or ["?"]
                self.errors.append(lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}")


def run_metaschedule(task: Task, trials: int, config: SearchConfig, work_dir: str,
                     seed: int) -> tuple[tvm.IRModule, TunerRun]:
    """Stock `tune_tir` with our timeouts (metaschedule.py); returns its best module and its run
    (curve, search seconds per round, wall seconds, failures; not yet re-measured or checked).
    Raises NoValidProgram when nothing ran."""
    per_round = config.trials_per_round
    recorder = _RecordInOrder()
    register_intrinsics(task.target)
    start = time.perf_counter()
    with ms.Profiler() as profiler:
        database = ms.tune_tir(task.mod, task.target, work_dir, max_trials_global=trials,
                               num_trials_per_iter=per_round, seed=seed, builder=metaschedule.builder(config),
                               runner=metaschedule.runner(config),
                               measure_callbacks=list(ms.measure_callback.MeasureCallback.create("default"))
                               + [recorder])
    wall = time.perf_counter() - start
    times = {str(k): float(v) for k, v in profiler.get().items()}
    # Scopes nest ("EvoSearch/Evolve/Misc/..."): count only the outermost of each.
    search = sum(v for k, v in times.items() if k.startswith(_MS_SEARCH_SCOPES)
                 and not any(k != other and k.startswith(other + "/") for other in times))
    rounds = max(1, math.ceil(len(recorder.latencies_ms) / per_round))
    best = database.query_schedule(task.mod, task.target, workload_name="main")
    if best is None:
        raise no_valid_program("MetaSchedule", task, trials, work_dir, recorder.errors)
    curve = best_so_far(recorder.latencies_ms)
    return best.mod, TunerRun("MetaSchedule", math.nan, curve[-1] if curve else math.inf, curve, search / rounds, wall,
                              False, failures=failure_classes(recorder.errors))


def metaschedule_best(task: Task, ms_dir: str, trials: int) -> tvm.IRModule:
    """The best program of a finished MetaSchedule run, from its database in `ms_dir`."""
    if not os.path.exists(os.path.join(ms_dir, "database_tuning_record.json")):
        raise UserError(f"{ms_dir} holds no MetaSchedule records to keep")
    database = ms.database.JSONDatabase(work_dir=ms_dir)
    if len(database) != trials:
        raise UserError(f"{ms_dir} holds {len(database)} MetaSchedule trials, not {trials}: not a finished run")
    best = database.query_schedule(task.mod, task.target, workload_name="main")
    if best is None:
        raise no_valid_program("MetaSchedule", task, trials, ms_dir, [])
    return best.mod
