"""The tuning loops: one task (`tune_task`), or the tasks of a network sharing one budget
(`tune_tasks`, the task scheduler picking who gets each round). A round: propose programs,
measure them, record every trial, let the strategy learn from them. At the end each task's
best program is checked against its untuned PrimFunc.

The budget counts every trial in the work dir, so re-running the same command after an
interruption finishes the budget without measuring anything twice. A resumed strategy first
re-learns from the recorded trials, and its random stream is seeded by (seed, task name, trials
already recorded), so the same seed and the same records give the same search.

Search overhead is everything but building and running: proposing (sampling, evolution,
features, prediction) and learning (model training). It is timed per round.
"""

from __future__ import annotations

import itertools
import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .config import SearchConfig
from .measure.local import LocalMeasurer
from .measure.measurer import Measurer
from .measure.verify import CheckResult, check_against_untuned
from .model.cost_model import CostModel, SharedModel, make_cost_model, normalized_throughput, rank_correlation
from .records import RecordStore, Trial
from .records_library import RecordsLibrary
from .scheduler import NO_PROGRAM_S, TaskProgress, TaskScheduler, objective_s, similarity_group
from .search.local_search import unmeasured_neighbours
from .search.strategies import STRATEGIES
from .search.strategy import Proposal
from .search.trace import PHASES
from .search.transfer import Donor, transferred
from .space.program import Applied
from .space.search_space import SearchSpace
from .space.steps import InvalidProgram
from .tasks.task import Task
from .tir.layout_rewrite import packed_shapes
from .validation import validate

@dataclass
class TuneResult:
    task: Task
    best: Trial | None
    best_applied: Applied | None
    trials: int  # all recorded trials of the task
    new_trials: int  # measured by this call
    failed: int
    valid_rate: float
    wall_s: float
    check: CheckResult | None
    skipped_lines: int  # unreadable lines in trials.jsonl
    rounds: list[dict] = field(default_factory=list)  # this call's rounds (see records.ROUNDS_FILE)
    rejections: dict[str, int] = field(default_factory=dict)  # invalid random programs by reason (SearchSpace)

    @property
    def best_ms(self) -> float:
        return self.best.median_s * 1e3 if self.best else float("inf")

    @property
    def gflops(self) -> float:
        return self.task.flops / self.best.median_s / 1e9 if self.best else 0.0

    @property
    def search_s_per_round(self) -> float:
        return float(np.mean([r["search_s"] for r in self.rounds])) if self.rounds else 0.0

    def summary(self) -> dict:
        return {"task": self.task.name, "best_ms": self.best_ms, "gflops": self.gflops, "trials": self.trials,
                "new_trials": self.new_trials, "failed": self.failed, "valid_rate": self.valid_rate,
                "wall_s": self.wall_s, "search_s_per_round": self.search_s_per_round,
                "check_ok": self.check.ok if self.check else None,
                "check_max_abs_error": self.check.max_abs_error if self.check else None,
                "best_sketch": self.best.program.sketch if self.best else None,
                "packed": [[name, list(shape), list(packed)] for name, shape, packed
                           in (packed_shapes(self.best_applied.mod) if self.best_applied else [])]}


def of_current_sketches(trials: list[Trial], space: SearchSpace) -> list[Trial]:
    """The trials whose sketch still exists unchanged (the rules or the step language may have
    changed since the others were recorded)."""
    return [t for t in trials if t.program.sketch < len(space.sketches)
            and t.sketch_fingerprint == space.fingerprint(t.program.sketch)]


def best_trial(trials: list[Trial], space: SearchSpace) -> Trial | None:
    """The fastest successful trial whose sketch still exists unchanged."""
    return min((t for t in of_current_sketches(trials, space) if t.ok), key=lambda t: t.median_s, default=None)


def replay_history(space: SearchSpace, trials: list[Trial]) -> list[tuple[Applied, float]]:
    """Recorded trials as (program, seconds) for a strategy to learn from; programs whose sketch
    changed since they were recorded are left out."""
    out = []
    for t in of_current_sketches(trials, space):
        try:
            out.append((space.apply(t.program), t.median_s))
        except InvalidProgram:
            continue
    return out


def announce_config(store: RecordStore, config: SearchConfig) -> None:
    """Record the config a run starts with in its work dir; a resume under another one says which
    fields changed (its earlier trials were searched under the old values)."""
    changed = store.save_config(config)
    if changed:
        tqdm.write(f"{store.work_dir}: resuming records made under another config ({'; '.join(changed)})")


def task_rng(seed: int, task: Task, recorded: int) -> np.random.Generator:
    """The stream of one task's search: its own for every task of a network (the name is in the seed),
    and a new one when a run resumes (the records it resumes from are)."""
    return np.random.default_rng([seed, zlib.crc32(task.name.encode()), recorded])


class TaskTuner:
    """One task's tuning state (search space, records, strategy), advanced a round at a time.
    `tune_task` drives one; the task scheduler drives many through one measurer and one store."""

    def __init__(self, task: Task, config: SearchConfig, store: RecordStore, seed: int = 0,
                 history: list[Trial] | None = None, model: CostModel | None = None):
        """`history`: the task's recorded trials when the caller has read them already;
        `model`: a cost model shared with other tasks."""
        self.task, self.store, self.seed = task, store, seed
        self.space = SearchSpace(task, validate(config))
        self.config = self.space.config
        self.history = store.load(task.name) if history is None else history
        self.seen = {t.program.key() for t in self.history}
        shared = {"model": model} if model is not None else {}
        self.strategy = STRATEGIES[self.config.search](self.space, self.config, task_rng(seed, task, len(self.history)),
                                                      **shared)
        self.round_index = max((t.round for t in self.history), default=-1) + 1
        self.rounds: list[dict] = []  # this session's rounds (see records.ROUNDS_FILE)
        self.new_trials = 0
        self._replayed = False

    @property
    def best(self) -> Trial | None:
        return best_trial(self.history, self.space)

    def as_donor(self) -> Donor | None:
        """This task's best program, to lend to tasks that have not started (search/transfer.py)."""
        best = self.best
        return best and Donor(self.task.name, best.index, str(self.task.target), best.sketch_fingerprint,
                              best.program.decisions, best.median_s, self.task.flops, self.task.identity)

    def stalled(self) -> bool:
        """Whether the task's last round left its best where it was (read from the records)."""
        best = self.best
        return best is not None and self.round_index >= 2 and best.round < self.round_index - 1

    def tune_round(self, size: int, measurer: Measurer, lent: list[tuple[Applied, Donor]] = ()) -> dict | None:
        """Measure the `lent` programs (other tasks' programs re-fitted to this one); with
        `local_search`, when the last round did not improve the best, its unmeasured neighbours
        (search/local_search.py); then as many new programs as the strategy proposes to make
        `size`. Record them all, let the strategy learn from them; returns the round's record, or
        None when nothing new was left to measure."""
        if not self._replayed:
            self._replayed = True
            if self.history:  # a resumed strategy re-learns from the records first
                self.strategy.observe(replay_history(self.space, self.history))
        began = time.perf_counter()
        proposals = [Proposal(applied, float("nan"), donor.origin) for applied, donor in lent]
        self.seen.update(p.applied.program.key() for p in proposals)
        if self.config.local_search and self.stalled():
            best = self.space.apply(self.best.program)
            proposals += [Proposal(applied, float("nan"), "local", (best.program.key(),))
                          for applied in unmeasured_neighbours(self.space, best, self.seen, size - len(proposals))]
            self.seen.update(p.applied.program.key() for p in proposals)
        unscored = len(proposals)
        proposals += self.strategy.propose(size - len(proposals), self.seen)
        proposed_s = time.perf_counter() - began
        if not proposals:
            return None
        results = measurer.measure_programs(self.task, [p.applied for p in proposals], seed=self.seed)
        for proposal, result in zip(proposals, results):
            meta = {"score": proposal.score, "origin": proposal.origin, "parents": list(proposal.parents),
                    "ancestry": list(proposal.ancestry)}
            trial = Trial(self.task.name, len(self.history), self.round_index, proposal.applied.program,
                          self.space.fingerprint(proposal.applied.program.sketch), result.latencies_s,
                          result.error, result.build_s, result.run_s, self.config.search, self.seed, meta)
            self.store.append(self.task, proposal.applied, trial)
            self.history.append(trial)
            self.new_trials += 1
        began = time.perf_counter()
        self.strategy.observe([(p.applied, r.median_s) for p, r in zip(proposals, results)])
        learned_s = time.perf_counter() - began
        best = self.best
        split_s = {**self.strategy.clock.take(), **measurer.last_split_s}
        record = {"task": self.task.name, "round": self.round_index, "trials": len(self.history),
                  "measured": len(results), **self.strategy.stats.summary(),
                  "search_s": proposed_s + learned_s, "propose_s": proposed_s, "learn_s": learned_s,
                  "split_s": {phase: split_s.get(phase, 0.0) for phase in PHASES},
                  "failed": sum(not r.ok for r in results),
                  "lent": len(lent), "local": unscored - len(lent),
                  "rank_correlation": rank_correlation(np.array([p.score for p in proposals[unscored:]]),
                                                       normalized_throughput(np.array([r.median_s for r in results]))[unscored:]),
                  "best_ms": best.median_s * 1e3 if best else None}
        self.rounds.append(record)
        self.store.append_round(record)
        self.round_index += 1
        return record

    def result(self, wall_s: float, measurer: Measurer | None = None) -> TuneResult:
        """The best program so far, checked against the untuned PrimFunc (run where `measurer`
        runs programs; on this machine without one)."""
        best = self.best
        best_applied = self.space.apply(best.program) if best else None
        check = (check_against_untuned(self.task, best_applied.mod, self.config.check_rtol, self.config.check_atol,
                                       self.seed, measurer.outputs if measurer else None) if best_applied else None)
        return TuneResult(self.task, best, best_applied, len(self.history), self.new_trials,
                          sum(not t.ok for t in self.history), self.space.valid_rate, wall_s, check,
                          self.store.skipped_lines, self.rounds, dict(self.space.rejections.most_common()))


def tune_task(task: Task, config: SearchConfig, work_dir: str, trials: int, seed: int = 0,
              progress: bool = True, measurer: Measurer | None = None, warm_start: list | None = None) -> TuneResult:
    """Tune until `trials` are recorded in `work_dir`. `measurer` defaults to a LocalMeasurer;
    a ReplayMeasurer answers from earlier records instead. `warm_start`: (schedule, seconds) of
    programs measured elsewhere, for the cost model to learn first (EvolutionarySearch.warm_start;
    records.metaschedule_measurements reads them from MetaSchedule's database)."""
    start = time.perf_counter()
    store = RecordStore(work_dir)
    announce_config(store, validate(config))
    tuner = TaskTuner(task, config, store, seed)
    if warm_start:
        tuner.strategy.warm_start(warm_start)
    with measurer or LocalMeasurer(tuner.config) as measurer, \
            tqdm(total=trials, initial=min(len(tuner.history), trials), disable=not progress, desc=task.name,
                 unit="trial", leave=False) as bar:
        while len(tuner.history) < trials:
            record = tuner.tune_round(min(config.trials_per_round, trials - len(tuner.history)), measurer)
            if record is None:
                break
            bar.update(record["trials"] - bar.n)
            if record["best_ms"] is not None:
                bar.set_postfix(best_ms=f"{record['best_ms']:.3f}", search_s=f"{record['search_s']:.1f}",
                                rho=f"{record['rank_correlation']:.2f}")
        return tuner.result(time.perf_counter() - start, measurer)


@dataclass
class TasksResult:
    results: list[TuneResult]  # per task, in the order given
    progress: list[TaskProgress]  # the scheduler's view: rounds, best per round, why stopped
    wall_s: float

    @property
    def trials(self) -> int:
        """All recorded trials of these tasks."""
        return sum(r.trials for r in self.results)

    @property
    def new_trials(self) -> int:
        return sum(r.new_trials for r in self.results)

    @property
    def estimated_s(self) -> float:
        """Sum of weight x best latency: the network's latency as the tasks' bests predict it."""
        return objective_s(self.progress)


def _progress_from_records(tuner: TaskTuner) -> TaskProgress:
    """The scheduler's view of a task's recorded rounds. Only trials of its current sketches
    count: a task whose records all came from sketches that no longer exist starts over (a
    warm-up round), rather than looking like a task without a valid program, which the
    scheduler stops."""
    task = tuner.task
    progress = TaskProgress(task.name, task.weight, task.flops, similarity_group(task.name))
    best, done = None, 0
    current = of_current_sketches(tuner.history, tuner.space)
    for _, same_round in itertools.groupby(sorted(current, key=lambda t: t.round), key=lambda t: t.round):
        same_round = list(same_round)
        done += len(same_round)
        best = best_trial(same_round + ([best] if best else []), tuner.space)
        progress.record_round(best.median_s if best else None, done)
    return progress


def lend_programs(tuner: TaskTuner, tuners: list[TaskTuner], size: int,
                  library: list[Donor] = ()) -> list[tuple[Applied, Donor]]:
    """For a task's first round of `size` trials: the best programs of the other tasks (and of the
    records `library`) re-fitted to it, at most `transfer_programs` and half the round. Donors of
    the very same PrimFunc come first, then those of the same similarity group, then the nearest
    in FLOPs."""
    limit = min(tuner.config.transfer_programs, size // 2)
    if limit < 1:
        return []
    task = tuner.task
    group, flops = similarity_group(task.name), max(task.flops, 1.0)
    donors = [t.as_donor() for t in tuners if t is not tuner and t.best] + list(library)
    donors.sort(key=lambda d: (d.identity != task.identity, similarity_group(d.task) != group,
                               abs(math.log(max(d.flops, 1.0) / flops)), d.source, d.task))
    return transferred(tuner.space, str(task.target), donors, limit, tuner.seen)


def network_estimate(tasks: list[TaskProgress]) -> str:
    """The progress bar's network latency: the estimate once every task has a measured program,
    else how many tasks still lack one (and so what the estimate waits for)."""
    waiting = sum(t.best_s >= NO_PROGRAM_S for t in tasks)
    if waiting:
        return f"network ~? ({waiting} of {len(tasks)} tasks without a measured program yet)"
    return f"network ~{objective_s(tasks) * 1e3:.1f} ms"


def tune_tasks(tasks: list[Task], config: SearchConfig, work_dir: str, trials: int, seed: int = 0,
               progress: bool = True, measurer: Measurer | None = None,
               library: RecordsLibrary | None = None) -> TasksResult:
    """Tune `tasks` until `trials` are recorded for them in `work_dir`, in rounds of
    min(trials_per_round, trials / number of tasks) handed out by the task scheduler; a task's
    first round is at most `warmup_trials` and measures programs lent by the tasks before it and
    by the records `library` (records_library.py), whose measurements also pretrain the shared model."""
    start = time.perf_counter()
    config = validate(config)
    store = RecordStore(work_dir)
    announce_config(store, config)
    by_task: dict[str, list[Trial]] = {task.name: [] for task in tasks}
    for trial in store.load():
        by_task.get(trial.task, []).append(trial)
    recorded = sum(len(history) for history in by_task.values())
    # The shared model and the scheduler each get a stream of their own, spawned from the one seed.
    model_rng, scheduler_rng = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, recorded]).spawn(2))
    shared = (SharedModel(make_cost_model(model_rng, config))
              if config.share_cost_model and config.search == "evolutionary" else None)
    library = library or RecordsLibrary()
    if shared:
        shared.pretrain(library.measurements)
    tuners = [TaskTuner(task, config, store, seed, by_task[task.name], shared.for_task(task.name) if shared else None)
              for task in tasks]
    scheduler = TaskScheduler([_progress_from_records(t) for t in tuners], config, scheduler_rng)
    for i in range(len(tuners)):
        scheduler.update_stop(i)
    per_round = max(1, min(config.trials_per_round, trials // max(1, len(tasks))))
    first_round = min(per_round, config.warmup_trials) if config.warmup_trials else per_round
    with measurer or LocalMeasurer(config) as measurer, \
            tqdm(total=trials, initial=min(recorded, trials), disable=not progress, desc="tuning",
                 unit="trial") as bar:
        while recorded < trials and (i := scheduler.next_task()) is not None:
            tuner = tuners[i]
            before = len(tuner.history)
            starting = scheduler.tasks[i].rounds == 0
            size = min(first_round if starting else per_round, trials - recorded)
            lent = lend_programs(tuner, tuners, size, library.donors) if starting else []
            record = tuner.tune_round(size, measurer, lent)
            if record is None:
                scheduler.stop(i, "no new programs left in its space")
            else:
                best = tuner.best
                scheduler.record_round(i, best.median_s if best else None, len(tuner.history))
                recorded += len(tuner.history) - before
            if scheduler.tasks[i].stopped:
                tqdm.write(f"{tuner.task.name}: no more rounds ({scheduler.tasks[i].stopped})")
            if record is None:
                continue
            bar.update(min(recorded, trials) - bar.n)
            bar.set_postfix_str(f"{tuner.task.name}: {record['best_ms'] or math.inf:.3f} ms, "
                                + network_estimate(scheduler.tasks))
        return TasksResult([t.result(time.perf_counter() - start, measurer) for t in tuners], scheduler.tasks,
                           time.perf_counter() - start)
