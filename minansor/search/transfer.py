"""Transfer across the tasks of a network: a task's first round starts from what similar tasks found.

Tasks of one network are alike: YOLOX-s repeats one convolution at a few shapes, and many of its
tasks differ only in their epilogue. Their sketches then have the same steps (a sketch's
fingerprint names blocks and rules, never extents), so the same knobs. A program of one task is
re-fitted to another by replaying its decisions onto a sketch of the same fingerprint:

- a tile split takes the factorization of the new extent nearest to the old factors (distance in
  log space, inner levels weighing most: they are the vector and register tiles);
- a choice keeps its value where the new knob still offers it, else the nearest number offered.

A program whose sketch the task lacks, that leaves a knob undecided, or that TVM rejects, is
dropped. Only programs measured on the same target are re-fitted (`donors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..space.annotate import factorizations
from ..space.program import Applied
from ..space.search_space import SearchSpace
from ..space.steps import InvalidProgram, Knob


@dataclass(frozen=True)
class Donor:
    """A measured program of another task, offered to a task that has not started."""

    task: str
    trial_index: int
    target: str  # the target it was measured for, as JSON
    fingerprint: str  # of its sketch
    decisions: tuple[tuple[str, Any], ...]
    seconds: float
    flops: float = 0.0  # of its task
    identity: str = ""  # its task's PrimFunc, by structural hash: equal ones are the same task

    source: str = ""  # the work dir it comes from, if not this run's (records_library.py)

    @property
    def origin(self) -> str:
        return f"transfer:{self.source + ':' if self.source else ''}{self.task}#{self.trial_index}"


def refit_tile(factors: tuple[int, ...], knob: Knob) -> tuple[int, ...]:
    """The factorization of `knob.extent` into `knob.parts` nearest to `factors`; level i of n
    weighs i + 1 (the innermost most). Raises InvalidProgram if none fits."""
    options = factorizations(knob.extent, knob.parts, knob.max_innermost)
    if not options or len(factors) != knob.parts:
        raise InvalidProgram(f"{knob.name}: no factorization of {knob.extent} near {factors}")

    def distance(option: tuple[int, ...]) -> float:
        return sum((i + 1) * abs(math.log(new / old)) for i, (new, old) in enumerate(zip(option, factors)))

    return min(options, key=distance)


def refit_choice(value: Any, knob: Knob) -> Any:
    """`value` if the knob offers it, else the nearest number it offers (the smaller on a tie)."""
    if value in knob.choices:
        return value
    numbers = [c for c in knob.choices if isinstance(c, int) and not isinstance(c, bool)]
    if not isinstance(value, int) or isinstance(value, bool) or not numbers:
        raise InvalidProgram(f"{knob.name}: {value!r} is not among {knob.choices}")
    return min(numbers, key=lambda c: (abs(c - value), c))


def refit(space: SearchSpace, donor: Donor) -> Applied | None:
    """The donor's program re-fitted to `space`'s task, or None (see the module docstring)."""
    decided = dict(donor.decisions)

    def decide(knob: Knob, preferred) -> Any:
        if knob.name not in decided:
            raise InvalidProgram(f"the donor never decided {knob.name}")
        value = decided[knob.name]
        return refit_tile(tuple(value), knob) if knob.is_tile else refit_choice(value, knob)

    for index in range(len(space.sketches)):
        if space.fingerprint(index) != donor.fingerprint:
            continue
        try:
            return space.materialize(index, decide)
        except InvalidProgram:
            continue
    return None


def transferred(space: SearchSpace, target: str, donors: list[Donor], limit: int,
                exclude: set[str]) -> list[tuple[Applied, Donor]]:
    """Up to `limit` distinct re-fitted programs whose keys are not in `exclude`, donors taken in
    the order given; donors measured for another target are skipped."""
    out: list[tuple[Applied, Donor]] = []
    keys = set(exclude)
    for donor in donors:
        if len(out) >= limit:
            break
        if donor.target != target:
            continue
        applied = refit(space, donor)
        if applied is not None and applied.program.key() not in keys:
            keys.add(applied.program.key())
            out.append((applied, donor))
    return out
