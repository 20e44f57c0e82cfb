"""The search trace: what one round of search did and where its time went.

Every round appends one record to `rounds.jsonl` in the work dir (see tune.TaskTuner): the
population it evolved, how many of the programs it tried were valid, how many distinct new
programs it met, how well the model's scores ranked the measured programs, the best latency so
far, and the round's time split by phase. `minansor report` plots these records.

The phases are exclusive: a phase nested inside another (features read while the model scores
a population) counts only for the inner one, so the split adds up to the round's time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Search phases first, then measurement: the order of the report's stacked bars.
PHASES = ("sampling", "evolution", "features", "model", "build", "run")


class Stopwatch:
    """Seconds spent per phase, exclusive of nested phases, read from `clock`."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[str] = []
        self._mark = 0.0
        self._clock = clock

    def _charge(self) -> None:
        now = self._clock()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._mark
        self._mark = now

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def take(self) -> dict[str, float]:
        """The seconds so far, and a fresh start for the next round."""
        out = dict(self.seconds)
        self.seconds.clear()
        return out


class RoundStats:
    """What a strategy's `propose` saw in one round: the size of the population it evolved, the
    programs it tried to build from decisions (sampled or bred) and how many were valid, and the
    distinct unmeasured programs it met."""

    def __init__(self) -> None:
        self.population = 0
        self.tried = 0
        self.invalid = 0
        self.unique = 0

    def tried_one(self, valid: bool) -> None:
        self.tried += 1
        self.invalid += not valid

    def summary(self) -> dict:
        return {"population": self.population,
                "valid_rate": 1.0 - self.invalid / self.tried if self.tried else 1.0,
                "unique_programs": self.unique}
