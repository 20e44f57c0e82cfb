"""Side by side with stock MetaSchedule (TVM's TensorIR port of Ansor).

For one task: minansor's tuner, then MetaSchedule's `tune_tir`, one after the other on this
machine, with the same trial budget and the same number of measurements per round. Each
tuner's curve comes from its own measurements; the headline numbers do not: both best
programs are re-measured here, alternately, with the same runner settings, so the ratio is
not an artefact of two timing methods. This machine's fp32 peak (an FMA-bound kernel, peak.py)
and numpy's sgemm (a vendor GEMM) are timed in the same run as its ceilings.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil

import tvm

from ..config import SearchConfig
from ..errors import UserError
from ..measure.peak import fp32_peak_gflops, memory_bandwidth_gbs
from ..measure.verify import check_against_untuned
from ..records import RecordStore
from ..space.search_space import SearchSpace
from ..tasks.task import Task
from ..tune import best_trial, tune_task
from .metaschedule_runs import metaschedule_best, run_metaschedule
from .remeasure import numpy_sgemm_gflops, remeasure
from .results import Comparison, TunerRun, best_so_far, failure_classes, no_valid_program


def start_afresh(work_dir: str, fresh: bool) -> None:
    """A comparison starts both tuners from nothing: left in the work dir, MetaSchedule's old
    records would seed its search and minansor's would only be resumed. `fresh` deletes them;
    otherwise they are an error, before anything is tuned."""
    if os.path.isdir(work_dir) and os.listdir(work_dir):
        if not fresh:
            raise UserError(f"{work_dir} already holds a comparison's records; pass --fresh to start it over "
                            "(or choose another --work-dir)")
        shutil.rmtree(work_dir)


def minansor_best(task: Task, config: SearchConfig, ours_dir: str) -> tvm.IRModule:
    """The best program recorded by a minansor run in `ours_dir`."""
    space = SearchSpace(task, config)
    trials = RecordStore(ours_dir).load(task.name)
    best = best_trial(trials, space)
    if best is None:
        raise no_valid_program("minansor", task, len(trials), ours_dir, [t.error for t in trials if t.error])
    return space.apply(best.program).mod


def as_compared(task: Task, config: SearchConfig) -> Task:
    """The task as both tuners get it. MetaSchedule's RewriteLayout postproc packs exactly the
    inputs marked layout-free, so with our layout rewrite off none is marked, and neither packs."""
    return task.with_layout_free(()) if config.layout_rewrite == "off" else task


def compare_task(task: Task, trials: int, config: SearchConfig, work_dir: str, seed: int = 0,
                 progress: bool = True, fresh: bool = False, metaschedule: TunerRun | None = None) -> Comparison:
    """Both tuners from nothing, then both best programs re-measured side by side.
    `metaschedule`: a finished MetaSchedule run of this task, its records kept in `work_dir`;
    then only minansor is tuned (from nothing), to try a change to the search against it."""
    task = as_compared(task, config)
    ours_dir, ms_dir = os.path.join(work_dir, "minansor"), os.path.join(work_dir, "metaschedule")
    if metaschedule is None:
        start_afresh(work_dir, fresh)
        os.makedirs(ms_dir, exist_ok=True)
    else:
        shutil.rmtree(ours_dir, ignore_errors=True)
    # numpy's sgemm runs on the CPU: no ceiling for a GPU program
    sgemm = math.nan if task.target.kind.name == "cuda" else numpy_sgemm_gflops()
    peak = fp32_peak_gflops(task.target)
    bandwidth = copy = math.nan
    if task.target.kind.name != "cuda":
        bandwidth = memory_bandwidth_gbs(task.target)
        copy = memory_bandwidth_gbs(task.target, "copy", megabytes=task.bytes / 2 / (1 << 20))

    ours = tune_task(task, config, ours_dir, trials, seed, progress=progress)
    trials_recorded = RecordStore(ours_dir).load(task.name)
    own_curve = best_so_far([t.median_s * 1e3 for t in trials_recorded])
    if metaschedule is None:
        ms_mod, metaschedule = run_metaschedule(task, trials, config, ms_dir, seed)
        metaschedule.check_ok = check_against_untuned(task, ms_mod, config.check_rtol, config.check_atol, seed).ok
    ours_run = TunerRun("minansor", math.nan, ours.best_ms, own_curve, ours.search_s_per_round, ours.wall_s,
                        bool(ours.check and ours.check.ok), ours.valid_rate,
                        failure_classes(t.error for t in trials_recorded), ours.rejections)
    return remeasure_comparison(task, config, work_dir, Comparison(task.name, task.flops, trials, sgemm, ours_run,
                                                                   metaschedule, peak, task.bytes, bandwidth, copy))


def remeasure_comparison(task: Task, config: SearchConfig, work_dir: str, comparison: Comparison) -> Comparison:
    """`comparison` with both best programs, read back from their records in `work_dir`,
    re-measured side by side: also how a change to the measurement is applied to kept runs."""
    task = as_compared(task, config)
    ours = minansor_best(task, config, os.path.join(work_dir, "minansor"))
    theirs = metaschedule_best(task, os.path.join(work_dir, "metaschedule"), len(comparison.metaschedule.curve))
    ours_ms, theirs_ms = remeasure(task, [ours, theirs], config)
    return dataclasses.replace(comparison, minansor=dataclasses.replace(comparison.minansor, best_ms=ours_ms),
                               metaschedule=dataclasses.replace(comparison.metaschedule, best_ms=theirs_ms))
