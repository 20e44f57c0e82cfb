"""Random search: every round, fresh random programs of uniformly chosen sketches. The
simplest strategy, and the baseline every smarter one must beat."""

from __future__ import annotations

import numpy as np

from ..config import SearchConfig
from ..space.program import Applied
from ..space.search_space import SearchSpace
from .strategy import Proposal, sample_new
from .trace import RoundStats, Stopwatch


class RandomSearch:
    def __init__(self, space: SearchSpace, config: SearchConfig, rng: np.random.Generator):
        self.space, self.config, self.rng = space, config, rng
        self.clock = Stopwatch()
        self.stats = RoundStats()

    def propose(self, count: int, seen: set[str]) -> list[Proposal]:
        """Up to `count` valid programs not in `seen` (keys of programs measured or proposed)."""
        self.stats = RoundStats()
        with self.clock.phase("sampling"):
            sampled = sample_new(self.space, self.rng, count, seen, self.config.max_sample_attempts, self.stats,
                                 self.config.sample_patience)
        seen.update(applied.program.key() for applied in sampled)
        self.stats.population = self.stats.unique = len(sampled)
        return [Proposal(applied, float("nan"), "random") for applied in sampled]

    def observe(self, measured: list[tuple[Applied, float]]) -> None:
        pass

    def warm_start(self, schedules: list) -> None:
        pass  # no model to teach
