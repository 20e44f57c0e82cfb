"""Random search: every round, fresh random programs of uniformly chosen sketches. The
simplest strategy, and the baseline every smarter one must beat."""

from __future__ import annotations

import numpy as np

from .config import SearchConfig
from .evolve import Proposal
from .program import Applied
from .space import SearchSpace
from .trace import RoundStats, Stopwatch


class RandomSearch:
    def __init__(self, space: SearchSpace, config: SearchConfig, rng: np.random.Generator):
        self.space, self.config, self.rng = space, config, rng
        self.clock = Stopwatch()
        self.stats = RoundStats()

    def propose(self, count: int, seen: set[str]) -> list[Proposal]:
        """Up to `count` valid programs not in `seen` (keys of programs measured or proposed)."""
        out: list[Proposal] = []
        self.stats = RoundStats()
        with self.clock.phase("sampling"):
            for _ in range(count * self.config.max_sample_attempts):
                if len(out) == count:
                    break
                applied = self.space.random(self.rng)
                self.stats.tried_one(applied is not None)
                if applied is None or applied.program.key() in seen:
                    continue
                seen.add(applied.program.key())
                out.append(Proposal(applied, float("nan"), "random"))
        self.stats.population = self.stats.unique = len(out)
        return out

    def observe(self, measured: list[tuple[Applied, float]]) -> None:
        pass

    def warm_start(self, schedules: list) -> None:
        pass  # no model to teach
