"""What a search strategy is: the interface the tuning loop drives, and what it hands out.

A strategy proposes programs a round at a time and learns from what was measured. Two
implement it (evolve.py, random_search.py), registered by name in strategies.py; a new one
needs only these methods and an entry there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tvm.s_tir import Schedule

from ..space.program import Applied
from ..space.search_space import SearchSpace
from .trace import RoundStats, Stopwatch


@dataclass
class Proposal:
    """A program handed out for measurement, and why."""

    applied: Applied
    score: float  # the cost model's prediction when it was chosen (nan: no model)
    origin: str  # random, copy, mutate:<mutator>, crossover
    parents: tuple[str, ...] = ()  # program keys
    ancestry: tuple[dict, ...] = ()  # the unmeasured programs bred into this one this round (see evolve.py)


class SearchStrategy(Protocol):
    clock: Stopwatch  # this round's time per phase (trace.py)
    stats: RoundStats  # this round's population, validity and uniqueness

    def propose(self, count: int, seen: set[str]) -> list[Proposal]:
        """Up to `count` valid programs whose keys are not in `seen`, which it extends."""
        ...

    def observe(self, measured: list[tuple[Applied, float]]) -> None:
        """Learn from measured (program, seconds); inf for a failed trial."""
        ...

    def warm_start(self, schedules: list[tuple[Schedule, float]]) -> None:
        """Learn first from (schedule, seconds) measured elsewhere, e.g. by MetaSchedule."""
        ...


def sample_new(space: SearchSpace, rng: np.random.Generator, count: int, exclude: set[str],
               attempts_per_program: int, stats: RoundStats, patience: int = 0) -> list[Applied]:
    """Up to `count` distinct valid random programs whose keys are not in `exclude`, drawing
    at most `attempts_per_program` x `count` times, and giving up after `patience` draws in a
    row brought nothing new (0: never). Every draw is counted in `stats`. A draw costs a TVM
    replay whether or not it is new, so a space with a few dozen programs would otherwise
    spend thousands of replays (seconds) finding none."""
    out: list[Applied] = []
    keys = set(exclude)
    fruitless = 0
    for _ in range(count * attempts_per_program):
        if len(out) == count or (patience and fruitless >= patience):
            break
        applied = space.random(rng)
        stats.tried_one(applied is not None)
        if applied is not None and applied.program.key() not in keys:
            keys.add(applied.program.key())
            out.append(applied)
            fruitless = 0
        else:
            fruitless += 1
    return out
