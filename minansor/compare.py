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
import json
import math
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.ir.utils import derived_object

from . import metaschedule
from .config import SearchConfig
from .errors import NoValidProgram, UserError
from .measure.local import LocalMeasurer
from .measure.peak import fp32_peak_gflops
from .measure.verify import check_against_untuned
from .network.graph import Network
from .network.run import build, check_against_reference, run
from .network.tuning import tune_network
from .plots import pyplot, save
from .records import RecordStore
from .report import markdown_table
from .space.search_space import SearchSpace
from .tasks.targets import resolve_target
from .tasks.task import Task
from .tune import best_trial, tune_task

# MetaSchedule's profiler scopes that do what minansor's propose + learn do (its evolutionary
# search and its cost-model update); measurement, start-up and logging are left out of both.
_MS_SEARCH_SCOPES = ("EvoSearch/", "MeasureCallback/UpdateCostModel")


@dataclass
class TunerRun:
    name: str
    best_ms: float  # re-measured side by side
    own_best_ms: float  # as the tuner itself measured it
    curve: list[float]  # best latency (ms) after each trial, by the tuner's own measurements
    search_s_per_round: float
    wall_s: float
    check_ok: bool


@dataclass
class Comparison:
    task: str
    flops: float
    trials: int
    numpy_sgemm_gflops: float
    minansor: TunerRun
    metaschedule: TunerRun
    peak_gflops: float = math.nan  # this machine's fp32 peak (peak.py), measured in the same run

    @property
    def ratio(self) -> float:
        """minansor best latency / MetaSchedule best latency: below 1 means minansor is faster."""
        return self.minansor.best_ms / self.metaschedule.best_ms

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        """Inverse of `dataclasses.asdict`, for results saved as JSON."""
        runs = {key: TunerRun(**data[key]) for key in ("minansor", "metaschedule")}
        return cls(**{**data, **runs})

    def gflops(self, run: TunerRun) -> float:
        return self.flops / (run.best_ms * 1e-3) / 1e9


def numpy_sgemm_gflops(n: int = 1024, repeats: int = 7) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def _best_so_far(latencies_ms: list[float]) -> list[float]:
    return list(np.minimum.accumulate(np.array(latencies_ms, dtype=float))) if latencies_ms else []


@derived_object
class _RecordInOrder(ms.measure_callback.PyMeasureCallback):
    """Keeps MetaSchedule's measured latencies in trial order (its database does not), and the
    first line of every failed candidate's error."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        for built, result in zip(builder_results, runner_results):
            secs = [float(s) for s in result.run_secs] if result.run_secs and not result.error_msg else []
            self.latencies_ms.append(1e3 * float(np.mean(secs)) if secs else math.inf)
            error = built.error_msg or result.error_msg
            if error:
                self.errors.append(next((line for line in str(error).splitlines() if line.strip()), "?").strip())


def no_valid_program(tuner: str, task: Task, trials: int, work_dir: str, errors: list[str]) -> NoValidProgram:
    """The one-line report of a run whose every candidate failed, with its most common error."""
    common = f" (most often: {max(set(errors), key=errors.count)})" if errors else ""
    return NoValidProgram(f"{tuner} found no valid program of {task.name} in {trials} trials{common}; "
                          f"the records of both tuners are kept in {os.path.dirname(work_dir)}")


def run_metaschedule(task: Task, trials: int, config: SearchConfig, work_dir: str, seed: int):
    """Stock `tune_tir` with our timeouts (metaschedule.py); returns (best module, curve,
    search seconds per round, wall seconds). Raises NoValidProgram when nothing ran."""
    per_round = config.trials_per_round
    recorder = _RecordInOrder()
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
    return best.mod, _best_so_far(recorder.latencies_ms), search / rounds, wall


def remeasure(task: Task, mods: list[tvm.IRModule], config: SearchConfig) -> list[float]:
    """Median latency (ms) of each module. All are built once, then timed in
    `config.remeasure_turns` turns with the
    order reversed every turn, so that neither the position nor a moment's load on a shared
    machine favours one; the median over turns is robust to the run-to-run spread (up to 15 %
    on gemm-1024³ here)."""
    turns = config.remeasure_turns
    config = dataclasses.replace(config, number=1, repeat=5, min_repeat_ms=config.remeasure_min_repeat_ms)
    samples: list[list[float]] = [[] for _ in mods]
    with LocalMeasurer(config) as measurer:
        built = measurer.build(task, mods)
        for turn in range(turns):
            for i in (reversed if turn % 2 else list)(range(len(mods))):
                latencies = measurer.run_all(task, [built[i]], seed=0)[0][0] if built[i].error is None else None
                samples[i].extend(latencies or [math.inf])
    return [1e3 * float(np.median(s)) for s in samples]


def start_afresh(work_dir: str, fresh: bool) -> None:
    """A comparison starts both tuners from nothing: left in the work dir, MetaSchedule's old
    records would seed its search and minansor's would only be resumed. `fresh` deletes them;
    otherwise they are an error, before anything is tuned."""
    if os.path.isdir(work_dir) and os.listdir(work_dir):
        if not fresh:
            raise UserError(f"{work_dir} already holds a comparison's records; pass --fresh to start it over "
                            "(or choose another --work-dir)")
        shutil.rmtree(work_dir)


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
    sgemm = numpy_sgemm_gflops()
    peak = fp32_peak_gflops(task.target) if task.target.kind.name == "llvm" else math.nan

    ours = tune_task(task, config, ours_dir, trials, seed, progress=progress)
    own_curve = _best_so_far([t.median_s * 1e3 for t in RecordStore(ours_dir).load(task.name)])
    if metaschedule is None:
        ms_mod, ms_curve, ms_search, ms_wall = run_metaschedule(task, trials, config, ms_dir, seed)
        ms_check = check_against_untuned(task, ms_mod, config.check_rtol, config.check_atol, seed).ok
        metaschedule = TunerRun("MetaSchedule", math.nan, ms_curve[-1] if ms_curve else math.inf, ms_curve,
                                ms_search, ms_wall, ms_check)
    ours_run = TunerRun("minansor", math.nan, ours.best_ms, own_curve, ours.search_s_per_round, ours.wall_s,
                        bool(ours.check and ours.check.ok))
    return remeasure_comparison(task, config, work_dir, Comparison(task.name, task.flops, trials, sgemm, ours_run,
                                                                   metaschedule, peak))


def remeasure_comparison(task: Task, config: SearchConfig, work_dir: str, comparison: Comparison) -> Comparison:
    """`comparison` with both best programs, read back from their records in `work_dir`,
    re-measured side by side: also how a change to the measurement is applied to kept runs."""
    task = as_compared(task, config)
    ours = minansor_best(task, config, os.path.join(work_dir, "minansor"))
    theirs = metaschedule_best(task, os.path.join(work_dir, "metaschedule"), len(comparison.metaschedule.curve))
    ours_ms, theirs_ms = remeasure(task, [ours, theirs], config)
    return dataclasses.replace(comparison, minansor=dataclasses.replace(comparison.minansor, best_ms=ours_ms),
                               metaschedule=dataclasses.replace(comparison.metaschedule, best_ms=theirs_ms))


# ---------------------------------------------------------------- reporting


def table_rows(results: list[Comparison]) -> tuple[list[str], list[list]]:
    headers = ["task", "trials", "minansor ms", "MetaSchedule ms", "ratio", "minansor GFLOPS",
               "MetaSchedule GFLOPS", "% peak (ours / MS)", "% sgemm (ours / MS)", "search s/round (ours / MS)",
               "wall s (ours / MS)", "checks"]
    rows = []
    for r in results:
        a, b = r.minansor, r.metaschedule
        rows.append([r.task, r.trials, f"{a.best_ms:.3f}", f"{b.best_ms:.3f}", f"{r.ratio:.3f}",
                     f"{r.gflops(a):.1f}", f"{r.gflops(b):.1f}",
                     f"{100 * r.gflops(a) / r.peak_gflops:.0f} / {100 * r.gflops(b) / r.peak_gflops:.0f}",
                     f"{100 * r.gflops(a) / r.numpy_sgemm_gflops:.0f} / {100 * r.gflops(b) / r.numpy_sgemm_gflops:.0f}",
                     f"{a.search_s_per_round:.1f} / {b.search_s_per_round:.1f}", f"{a.wall_s:.0f} / {b.wall_s:.0f}",
                     "ok" if a.check_ok and b.check_ok else "FAILED"])
    return headers, rows


def geometric_mean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values)))) if len(values) else math.nan


def geometric_mean_ratio(results: list[Comparison]) -> float:
    return geometric_mean([r.ratio for r in results])


def geometric_mean_interval(ratios: list[float]) -> tuple[float, float]:
    """95 % interval of the geometric mean of `ratios`, taken as independent draws (normal
    approximation on their logs). One seed's ratios spread by 10 % and more, so a geometric
    mean means little without it."""
    logs = np.log(ratios)
    if len(logs) < 2:
        return math.nan, math.nan
    half = 1.96 * float(np.std(logs, ddof=1)) / math.sqrt(len(logs))
    return float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def markdown(results: list[Comparison], title: str, command: str, machine: str) -> str:
    headers, rows = table_rows(results)
    lines = [f"# {title}", "", f"Command: `{command}`", "", f"Machine: {machine}", "",
             (f"fp32 peak (FMA-bound kernel, peak.py, same run): {results[0].peak_gflops:.0f} GFLOPS; numpy sgemm "
              f"(1024³, same run): {results[0].numpy_sgemm_gflops:.0f} GFLOPS") if results else "", "",
             *markdown_table(headers, rows)]
    lines += ["", f"Geometric mean of minansor / MetaSchedule best latency: **{geometric_mean_ratio(results):.3f}** "
                  "(below 1: minansor faster). Latencies are medians of both best programs re-measured alternately "
                  "in the same run; search s/round is everything but building and running."]
    return "\n".join(lines) + "\n"


def seeds_markdown(by_seed: dict[int, list[Comparison]], title: str, command: str, machine: str) -> str:
    """One row per task with its ratio at every seed: the spread a single seed hides. The
    geometric mean is taken over every (task, seed) pair that both tuners finished."""
    seeds = sorted(by_seed)
    results = [r for s in seeds for r in by_seed[s]]
    ratios = {(r.task, s): r.ratio for s in seeds for r in by_seed[s]}
    headers = ["task"] + [f"ratio seed {s}" for s in seeds] + ["geomean over seeds"]
    rows = []
    for task in dict.fromkeys(r.task for r in results):
        cells = [f"{ratios[task, s]:.3f}" if (task, s) in ratios else "-" for s in seeds]
        rows.append([task] + cells + [f"{geometric_mean_ratio([r for r in results if r.task == task]):.3f}"])
    lines = [f"# {title}", "", f"Command: `{command}`", "", f"Machine: {machine}", "", *markdown_table(headers, rows)]
    per_seed = ", ".join(f"seed {s}: {geometric_mean_ratio(by_seed[s]):.3f}" for s in seeds)
    overall, (low, high) = geometric_mean_ratio(results), geometric_mean_interval([r.ratio for r in results])
    faster = sum(r.ratio < 1 for r in results)
    lines += ["", f"Geometric mean of minansor / MetaSchedule over all {len(results)} (task, seed) pairs: "
                  f"**{overall:.3f}** (below 1: minansor faster); per seed over its tasks: {per_seed}.",
              "", f"95 % interval of that mean, the pairs taken as independent: {low:.3f}–{high:.3f}. "
                  f"minansor was faster on {faster} of the {len(results)} pairs.", ""]
    return "\n".join(lines)


def plot_curves(results: list[Comparison], path: str) -> None:
    plt = pyplot()

    columns = min(3, len(results))
    rows = math.ceil(len(results) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for ax, r in zip(axes.flat, results):
        for tuner, style in ((r.minansor, "-"), (r.metaschedule, "--")):
            ax.plot(range(1, len(tuner.curve) + 1), tuner.curve, style, label=tuner.name)
        ax.set_title(r.task, fontsize=9)
        ax.set_xlabel("trials")
        ax.set_ylabel("best latency (ms, own measurement)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")
    save(fig, path)


# ---------------------------------------------------------------- whole networks


@dataclass
class NetworkComparison:
    network: str
    trials: int
    untuned_ms: float
    minansor_ms: float  # end to end, both builds re-measured alternately
    metaschedule_ms: float
    minansor_wall_s: float  # tuning only
    metaschedule_wall_s: float
    minansor_check_ok: bool
    metaschedule_check_ok: bool
    tasks: int

    @property
    def ratio(self) -> float:
        return self.minansor_ms / self.metaschedule_ms


def compare_network(network: Network, trials: int, config: SearchConfig, work_dir: str, seed: int = 0, target="cpu",
                    progress: bool = True, repeats: int = 5) -> NetworkComparison:
    """minansor's `tune_network`, then MetaSchedule's `tune_relax` on the same fused module with
    the same total trials and the same trials per round; both builds apply their records the
    same way (MetaScheduleApplyDatabase) and are timed alternately in the Relax VM."""
    target = resolve_target(target)
    ours_dir = os.path.join(work_dir, "minansor")
    ours = tune_network(network, config, ours_dir, trials, seed, target, progress=progress, repeats=repeats)
    fused = ours.fused
    per_round = max(1, min(config.trials_per_round, trials // len(ours.tuning.results)))
    ms_dir = os.path.join(work_dir, "metaschedule")
    finished = os.path.join(ms_dir, "finished.json")  # MetaSchedule cannot resume; a finished run is kept
    if os.path.exists(finished):
        with open(finished) as f:
            ms_wall = json.load(f)["wall_s"]
        database = ms.database.JSONDatabase(work_dir=ms_dir)
    else:
        start = time.perf_counter()
        database = ms.relax_integration.tune_relax(fused, {}, target, ms_dir, max_trials_global=trials,
                                                   num_trials_per_iter=per_round, seed=seed,
                                                   builder=metaschedule.builder(config),
                                                   runner=metaschedule.runner(config))
        ms_wall = time.perf_counter() - start
        with open(finished, "w") as f:
            json.dump({"trials": trials, "wall_s": ms_wall}, f)
    ms_executable, _ = build(fused, target, database)
    inputs = [spec.random(np.random.default_rng(seed)) for spec in network.inputs]
    samples: list[list[float]] = [[], []]
    for _ in range(repeats):
        for i, executable in enumerate((ours.executable, ms_executable)):
            timing = run(executable, inputs, repeats=1)
            samples[i].append(timing.median_s)
    ms_check = check_against_reference(network, timing.outputs, inputs, config)  # the last run was MetaSchedule's
    return NetworkComparison(network.name, trials, ours.untuned.median_s * 1e3,
                             1e3 * float(np.median(samples[0])), 1e3 * float(np.median(samples[1])),
                             ours.tuning.wall_s, ms_wall, ours.tuned_check.ok, ms_check.ok,
                             len(ours.tuning.results))


def network_markdown(r: NetworkComparison, command: str, machine: str) -> str:
    return "\n".join([
        f"# minansor vs MetaSchedule on {r.network}, {r.trials} trials in total", "",
        f"Command: `{command}`", "", f"Machine: {machine}", "",
        "| network | tasks | trials | untuned ms | minansor ms | MetaSchedule ms | ratio | tuning wall s (ours / MS) "
        "| checks |", "|---|---|---|---|---|---|---|---|---|",
        f"| {r.network} | {r.tasks} | {r.trials} | {r.untuned_ms:.2f} | {r.minansor_ms:.2f} | {r.metaschedule_ms:.2f} "
        f"| {r.ratio:.3f} | {r.minansor_wall_s:.0f} / {r.metaschedule_wall_s:.0f} "
        f"| {'ok' if r.minansor_check_ok and r.metaschedule_check_ok else 'FAILED'} |", "",
        "End-to-end latencies are medians of both tuned builds run alternately in the Relax VM in the same "
        "process; both builds apply their records with MetaScheduleApplyDatabase to the same fused module.", ""])
