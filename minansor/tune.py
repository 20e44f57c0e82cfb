"""The tuning loop of one task: propose a round of programs, measure them, record every trial,
let the strategy learn from them, repeat until the trial budget is spent; then check the best
program against the untuned one.

The budget counts every trial in the work dir, so re-running the same command after an
interruption finishes the budget without measuring anything twice. A resumed strategy first
re-learns from the recorded trials, and its random stream is seeded by (seed, trials already
recorded), so the same seed and the same records give the same search.

Search overhead is everything but building and running: proposing (sampling, evolution,
features, prediction) and learning (model training). It is timed per round.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .config import SearchConfig, validate
from .cost_model import normalized_throughput, rank_correlation
from .evolve import EvolutionarySearch
from .measure import LocalMeasurer
from .program import Applied
from .random_search import RandomSearch
from .records import RecordStore, Trial
from .space import SearchSpace
from .steps import InvalidProgram
from .task import Task
from .verify import CheckResult, check_against_untuned

STRATEGIES = {"evolutionary": EvolutionarySearch, "random": RandomSearch}
ROUNDS_FILE = "rounds.jsonl"


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
    rounds: list[dict] = field(default_factory=list)  # this call's rounds (see ROUNDS_FILE)

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
                "best_sketch": self.best.program.sketch if self.best else None}


def best_trial(trials: list[Trial], space: SearchSpace) -> Trial | None:
    """The fastest successful trial whose sketch still exists unchanged."""
    usable = [t for t in trials if t.ok and t.program.sketch < len(space.sketches)
              and t.sketch_fingerprint == space.fingerprint(t.program.sketch)]
    return min(usable, key=lambda t: t.median_s, default=None)


def replay_history(space: SearchSpace, trials: list[Trial]) -> list[tuple[Applied, float]]:
    """Recorded trials as (program, seconds) for a strategy to learn from; programs whose sketch
    changed since they were recorded are left out."""
    out = []
    for t in trials:
        if t.program.sketch < len(space.sketches) and t.sketch_fingerprint == space.fingerprint(t.program.sketch):
            try:
                out.append((space.apply(t.program), t.median_s))
            except InvalidProgram:
                continue
    return out


def tune_task(task: Task, config: SearchConfig, work_dir: str, trials: int, seed: int = 0,
              progress: bool = True, measurer=None) -> TuneResult:
    """Tune until `trials` are recorded in `work_dir`. `measurer` defaults to a LocalMeasurer;
    a ReplayMeasurer answers from earlier records instead."""
    config = validate(config)
    start = time.perf_counter()
    space = SearchSpace(task, config)
    store = RecordStore(work_dir)
    history = store.load(task.name)
    seen = {t.program.key() for t in history}
    strategy = STRATEGIES[config.search](space, space.config, np.random.default_rng([seed, len(history)]))
    if history and len(history) < trials:
        strategy.observe(replay_history(space, history))
    round_index = max((t.round for t in history), default=-1) + 1
    rounds: list[dict] = []
    new = 0
    with measurer or LocalMeasurer(space.config) as measurer, \
            tqdm(total=trials, initial=min(len(history), trials), disable=not progress, desc=task.name,
                 unit="trial", leave=False) as bar:
        while len(history) < trials:
            began = time.perf_counter()
            proposals = strategy.propose(min(config.trials_per_round, trials - len(history)), seen)
            proposed_s = time.perf_counter() - began
            if not proposals:
                break  # the space has nothing new to offer
            results = measurer.measure_programs(task, [p.applied for p in proposals], seed=seed)
            for proposal, result in zip(proposals, results):
                meta = {"score": proposal.score, "origin": proposal.origin, "parents": list(proposal.parents)}
                trial = Trial(task.name, len(history), round_index, proposal.applied.program,
                              space.fingerprint(proposal.applied.program.sketch), result.latencies_s,
                              result.error, result.build_s, result.run_s, config.search, seed, meta)
                store.append(task, proposal.applied, trial)
                history.append(trial)
                new += 1
            began = time.perf_counter()
            strategy.observe([(p.applied, r.median_s) for p, r in zip(proposals, results)])
            learned_s = time.perf_counter() - began
            best = best_trial(history, space)
            record = {"task": task.name, "round": round_index, "trials": len(history),
                      "search_s": proposed_s + learned_s, "propose_s": proposed_s, "learn_s": learned_s,
                      "build_s": sum(r.build_s for r in results), "run_s": sum(r.run_s for r in results),
                      "failed": sum(not r.ok for r in results),
                      "rank_correlation": rank_correlation(np.array([p.score for p in proposals]),
                                                           normalized_throughput(np.array([r.median_s for r in results]))),
                      "best_ms": best.median_s * 1e3 if best else None}
            rounds.append(record)
            with open(os.path.join(work_dir, ROUNDS_FILE), "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            round_index += 1
            bar.update(len(proposals))
            if best:
                bar.set_postfix(best_ms=f"{best.median_s * 1e3:.3f}", search_s=f"{record['search_s']:.1f}",
                                rho=f"{record['rank_correlation']:.2f}")
    best = best_trial(history, space)
    best_applied = space.apply(best.program) if best else None
    check = (check_against_untuned(task, best_applied.mod, config.check_rtol, config.check_atol, seed)
             if best_applied else None)
    return TuneResult(task, best, best_applied, len(history), new, sum(not t.ok for t in history),
                      space.valid_rate, time.perf_counter() - start, check, store.skipped_lines, rounds)
