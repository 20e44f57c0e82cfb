"""Random search: every round, fresh random programs of uniformly chosen sketches. The
simplest strategy, and the baseline every smarter one must beat."""

from __future__ import annotations

import numpy as np

from .config import SearchConfig
from .program import Applied
from .space import SearchSpace


def propose_random(space: SearchSpace, rng: np.random.Generator, count: int, seen: set[str],
                   config: SearchConfig) -> list[Applied]:
    """Up to `count` valid programs not in `seen` (keys of programs measured or proposed)."""
    out: list[Applied] = []
    for _ in range(count * config.max_sample_attempts):
        if len(out) == count:
            break
        applied = space.random(rng)
        if applied is None:
            continue
        key = applied.program.key()
        if key in seen:
            continue
        seen.add(key)
        out.append(applied)
    return out
