"""The tuning loop of one task: propose a round of programs, measure them, record every trial,
repeat until the trial budget is spent; then check the best program against the untuned one.

The budget counts every trial in the work dir, so re-running the same command after an
interruption finishes the budget without measuring anything twice; the random stream of a
resumed run is seeded by (seed, trials already recorded), so it is reproducible too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .config import SearchConfig, validate
from .measure import LocalMeasurer
from .program import Applied
from .random_search import propose_random
from .records import RecordStore, Trial
from .space import SearchSpace
from .task import Task
from .verify import CheckResult, check_against_untuned

STRATEGIES = {"random": propose_random}


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

    @property
    def best_ms(self) -> float:
        return self.best.median_s * 1e3 if self.best else float("inf")

    @property
    def gflops(self) -> float:
        return self.task.flops / self.best.median_s / 1e9 if self.best else 0.0

    def summary(self) -> dict:
        return {"task": self.task.name, "best_ms": self.best_ms, "gflops": self.gflops, "trials": self.trials,
                "new_trials": self.new_trials, "failed": self.failed, "valid_rate": self.valid_rate,
                "wall_s": self.wall_s, "check_ok": self.check.ok if self.check else None,
                "check_max_abs_error": self.check.max_abs_error if self.check else None,
                "best_sketch": self.best.program.sketch if self.best else None}


def best_trial(trials: list[Trial], space: SearchSpace) -> Trial | None:
    """The fastest successful trial whose sketch still exists unchanged."""
    usable = [t for t in trials if t.ok and t.program.sketch < len(space.sketches)
              and t.sketch_fingerprint == space.fingerprint(t.program.sketch)]
    return min(usable, key=lambda t: t.median_s, default=None)


def tune_task(task: Task, config: SearchConfig, work_dir: str, trials: int, seed: int = 0,
              progress: bool = True) -> TuneResult:
    config = validate(config)
    start = time.perf_counter()
    space = SearchSpace(task, config)
    store = RecordStore(work_dir)
    history = store.load(task.name)
    seen = {t.program.key() for t in history}
    rng = np.random.default_rng([seed, len(history)])
    propose = STRATEGIES[config.search]
    round_index = max((t.round for t in history), default=-1) + 1
    new = 0
    with LocalMeasurer(space.config) as measurer, \
            tqdm(total=trials, initial=min(len(history), trials), disable=not progress, desc=task.name,
                 unit="trial", leave=False) as bar:
        while len(history) < trials:
            batch = propose(space, rng, min(config.trials_per_round, trials - len(history)), seen, space.config)
            if not batch:
                break  # the space has nothing new to offer
            results = measurer.measure(task, [a.mod for a in batch], seed=seed)
            for applied, result in zip(batch, results):
                trial = Trial(task.name, len(history), round_index, applied.program,
                              space.fingerprint(applied.program.sketch), result.latencies_s, result.error,
                              result.build_s, result.run_s, config.search, seed)
                store.append(task, applied, trial)
                history.append(trial)
                new += 1
            round_index += 1
            best = best_trial(history, space)
            bar.update(len(batch))
            if best:
                bar.set_postfix(best_ms=f"{best.median_s * 1e3:.3f}")
    best = best_trial(history, space)
    best_applied = space.apply(best.program) if best else None
    check = (check_against_untuned(task, best_applied.mod, config.check_rtol, config.check_atol, seed)
             if best_applied else None)
    return TuneResult(task, best, best_applied, len(history), new, sum(not t.ok for t in history),
                      space.valid_rate, time.perf_counter() - start, check, store.skipped_lines)
