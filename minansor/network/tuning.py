"""The whole job for a network: optimize the graph, extract tasks, tune them under one budget,
build, export, time untuned and tuned, check, and plot the latency against trials."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tvm

from ..config import SearchConfig
from ..errors import UserError
from ..measure.local import export_library
from ..measure.measurer import Measurer, NetworkTiming
from ..measure.verify import CheckResult
from ..plots import pyplot, save
from ..records import RecordStore, Trial
from ..records_library import RecordsLibrary
from ..tasks.targets import cross_compiler, resolve_target
from ..tune import TasksResult, tune_tasks
from .extract import NetworkTask, extract_tasks
from .graph import Network, graph_summary, optimize_for
from .engines import network_engines
from .run import build, check_against_reference, median_time, run, run_library


@dataclass
class NetworkResult:
    network: str
    fused: tvm.IRModule  # the optimized module the tasks came from and the records apply to
    executable: Any  # the tuned build
    graph_before: dict[str, int]
    graph_after: dict[str, int]
    tasks: list[NetworkTask]
    tuning: TasksResult
    untuned: NetworkTiming | None
    tuned: NetworkTiming
    untuned_check: CheckResult | None
    tuned_check: CheckResult
    tuned_functions: list[str]  # PrimFuncs that got a tuned schedule in the build
    library: str  # the exported deployable library
    plot: str  # estimated and measured latency vs trials (PNG)
    engines: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)  # (engine, precision, median s)

    @property
    def speedup(self) -> float:
        return self.untuned.median_s / self.tuned.median_s if self.untuned else math.nan

    def summary(self) -> dict:
        return {"network": self.network, "trials": self.tuning.trials, "new_trials": self.tuning.new_trials,
                "tuning_wall_s": self.tuning.wall_s, "graph_before": self.graph_before, "graph_after": self.graph_after,
                "untuned_ms": self.untuned.median_s * 1e3 if self.untuned else None,
                "tuned_ms": self.tuned.median_s * 1e3, "speedup": self.speedup,
                "estimated_ms": self.tuning.estimated_s * 1e3, "tuned_check_ok": self.tuned_check.ok,
                "tuned_max_abs_error": self.tuned_check.max_abs_error, "library": self.library, "plot": self.plot,
                "tuned_functions": self.tuned_functions,
                "engines": [{"engine": name, "precision": precision, "ms": seconds * 1e3}
                            for name, precision, seconds in self.engines],
                "tasks": [{"name": t.name, "weight": t.weight, "flops": t.flops, "skipped": t.skipped}
                          for t in self.tasks],
                "results": [r.summary() for r in self.tuning.results]}

    def task_rows(self) -> tuple[list[str], list[list]]:
        """Per task: weight, trials, best latency and its share of the estimated total."""
        by_name = {r.task.name: r for r in self.tuning.results}
        total = sum(r.task.weight * r.best_ms for r in self.tuning.results if r.best)
        progress = {p.name: p for p in self.tuning.progress}
        rows = []
        for t in self.tasks:
            result = by_name.get(t.name)
            if result is None:
                rows.append([t.name, t.weight, f"{t.flops / 1e6:.1f}", "-", "-", "-", t.skipped])
                continue
            share = t.weight * result.best_ms / total if result.best and total else math.nan
            status = progress[t.name].stopped or ("" if result.check and result.check.ok else "check FAILED")
            rows.append([t.name, t.weight, f"{t.flops / 1e6:.1f}", result.trials,
                         f"{result.best_ms:.4f}" if result.best else "-", f"{share:.1%}", status])
        return ["task", "weight", "MFLOP", "trials", "best ms", "share", "note"], rows


def estimated_latency_curve(trials: list[Trial], weights: dict[str, int]) -> list[tuple[int, float]]:
    """(trials so far, sum of weight x best latency in seconds) after every trial, in recorded
    order, from the first trial at which every task has a valid program."""
    best: dict[str, float] = {}
    curve = []
    for count, trial in enumerate((t for t in trials if t.task in weights), start=1):
        if trial.ok:
            best[trial.task] = min(best.get(trial.task, math.inf), trial.median_s)
        if len(best) == len(weights):
            curve.append((count, sum(weights[name] * best[name] for name in weights)))
    return curve


def plot_network(curve: list[tuple[int, float]], untuned_s: float | None, tuned_s: float, title: str,
                 path: str) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    if curve:
        ax.plot([c for c, _ in curve], [1e3 * s for _, s in curve], label="sum of weight x best task latency")
    ax.axhline(1e3 * tuned_s, color="tab:green", linestyle="--", label=f"tuned network, measured ({1e3 * tuned_s:.2f} ms)")
    if untuned_s:
        ax.axhline(1e3 * untuned_s, color="tab:red", linestyle=":", label=f"untuned ({1e3 * untuned_s:.1f} ms)")
    ax.set_yscale("log")
    ax.set_xlim(left=0)  # the curve starts once every task has a valid program
    ax.set_xlabel("trials")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    save(fig, path)


def tune_network(network: Network, config: SearchConfig, work_dir: str, trials: int, seed: int = 0,
                 target="cpu", progress: bool = True, repeats: int = 5, measure_untuned: bool = True,
                 log: Callable[[str], None] = lambda line: None, measurer: Measurer | None = None,
                 compare_engines: bool = True, library: RecordsLibrary | None = None) -> NetworkResult:
    """Optimize the graph, extract tasks, tune them with the task scheduler until `trials` are
    recorded in `work_dir`, build with the best records, export the library, time the network
    untuned and tuned, and check the outputs against the source framework; on this machine, time
    the other engines on the same model (`compare_engines`). A `measurer` with devices behind an
    RPC tracker (rpc.RPCMeasurer) measures the candidates and the network there. `library`: records
    of earlier runs to learn from (records_library.py)."""
    target = resolve_target(target)
    fused = optimize_for(network.mod, config, target, network.precision)
    before, after = graph_summary(network.mod), graph_summary(fused)
    log(f"graph: {before['operator calls']} operator calls ({before['distinct operators']} distinct) -> "
        f"{after['PrimFunc calls']} calls of {after['PrimFuncs']} fused PrimFuncs, "
        f"{after['transposes between layers']} transposing between layers")
    tasks = extract_tasks(fused, target)
    tunable = [t.task for t in tasks if t.task is not None]
    log(f"tasks: {len(tunable)} to tune, {len(tasks) - len(tunable)} not")
    for t in tasks:
        log(f"  {t.name}: {t.weight} call(s), {t.flops / 1e6:.2f} MFLOP" + (f"; {t.skipped}" if t.skipped else ""))
    if not tunable:
        raise UserError(f"{network.name}: nothing to tune")
    inputs = [spec.random(np.random.default_rng(seed)) for spec in network.inputs]
    untuned = untuned_check = None
    if measure_untuned:
        log("timing the untuned network")
        untuned = run(build(fused, target)[0], inputs, repeats, target, measurer)
        untuned_check = check_against_reference(network, untuned.outputs, inputs, config)
    tuning = tune_tasks(tunable, config, work_dir, trials, seed, progress, measurer, library)
    store = RecordStore(work_dir)
    executable, tuned_functions = build(fused, target, store.database)
    library = os.path.join(work_dir, f"{network.name}.so")
    export_library(executable, library, cross_compiler(target))
    tuned = run_library(library, inputs, repeats, target, measurer)
    engines = time_engines(network, inputs, repeats, log) if measurer is None and compare_engines else []
    weights = {t.name: t.weight for t in tunable}
    plot = os.path.join(work_dir, f"{network.name}.png")
    plot_network(estimated_latency_curve(store.load(), weights),
                 untuned.median_s if untuned else None, tuned.median_s, f"{network.name}: {tuning.trials} trials", plot)
    return NetworkResult(network.name, fused, executable, before, after, tasks, tuning, untuned, tuned, untuned_check,
                         check_against_reference(network, tuned.outputs, inputs, config), tuned_functions, library,
                         plot, engines)


def time_engines(network: Network, inputs: list[np.ndarray], repeats: int,
                 log: Callable[[str], None]) -> list[tuple[str, str, float]]:
    """(engine, precision, median seconds) of the engines a user would otherwise run the model
    with on this CPU (engines.py), each timed after 3 warm-up runs."""
    timed = []
    for engine in network_engines(network, log):
        log(f"timing {engine.name} ({engine.precision})")
        timed.append((engine.name, engine.precision, median_time(lambda: engine.forward(inputs), repeats, warmup=3)[0]))
    return timed
