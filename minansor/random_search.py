"""Random search: every round, fresh random programs of uniformly chosen sketches. The
simplest strategy, and the baseline every smarter one must beat."""

from __future__ import annotations

import numpy as np

from .config import SearchConfig
from .evolve import Proposal
from .program import Applied
from .space import SearchSpace


class RandomSearch:
    def __init__(self, space: SearchSpace, config: SearchConfig, rng: np.random.Generator):
        self.space, self.config, self.rng = space, config, rng

    def propose(self, count: int, seen: set[str]) -> list[Proposal]:
        """Up to `count` valid programs not in `seen` (keys of programs measured or proposed)."""
        out: list[Proposal] = []
        for _ in range(count * self.config.max_sample_attempts):
            if len(out) == count:
                break
            applied = self.space.random(self.rng)
            if applied is None or applied.program.key() in seen:
                continue
            seen.add(applied.program.key())
            out.append(Proposal(applied, float("nan"), "random"))
        return out

    def observe(self, measured: list[tuple[Applied, float]]) -> None:
        pass
