"""Local search around the measured best: coordinate descent on hardware, one knob at a time.

Droplet search (arXiv 2406.20037) observed that a few hundred trials of Ansor followed by
coordinate descent around the best program usually beats Ansor at thousands of trials: the
fastest programs sit one small step away from the best one in some knob, where the cost model
is least sure. Here a step is

- a tile split: one prime factor moved between two adjacent levels of one loop's tiles;
- a choice (unroll, vector width, compute location, parallel fusion): the next or the previous
  value in the knob's list.

`neighbours` lists every step from a program in a fixed order (knobs as the sketch asks them).
The tuner measures the unmeasured neighbours of the task's best program; a neighbour that is
faster becomes the best, and the descent goes on from there. The descent has converged when every
neighbour of the best has been measured and none is faster. Its state is the records themselves
(the best program, the programs measured), so a resumed run goes on where it stopped.
"""

from __future__ import annotations

from ..space.annotate import prime_factors
from ..space.program import Applied, Program
from ..space.search_space import SearchSpace
from ..space.steps import InvalidProgram, Knob


def tile_steps(factors: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every split one prime factor away: the smallest prime of a level moved to a neighbouring level."""
    out = []
    for i in range(len(factors) - 1):
        for source, target in ((i, i + 1), (i + 1, i)):
            if factors[source] == 1:
                continue
            prime = min(prime_factors(factors[source]))
            moved = list(factors)
            moved[source] //= prime
            moved[target] *= prime
            out.append(tuple(moved))
    return out


def choice_steps(value, knob: Knob) -> list:
    """The values next to `value` in the knob's list of choices."""
    if value not in knob.choices:
        return []
    at = knob.choices.index(value)
    return [knob.choices[i] for i in (at + 1, at - 1) if 0 <= i < len(knob.choices)]


def neighbours(program: Program, knobs: tuple[Knob, ...]) -> list[Program]:
    """Every program one step from `program` (see the module docstring), in knob order."""
    decisions = program.as_dict()
    out = []
    for knob in knobs:
        value = decisions[knob.name]
        steps = tile_steps(value) if knob.is_tile else choice_steps(value, knob)
        out += [Program.make(program.sketch, {**decisions, knob.name: step}) for step in steps if knob.admits(step)]
    return out


def unmeasured_neighbours(space: SearchSpace, best: Applied, measured: set[str], count: int) -> list[Applied]:
    """Up to `count` neighbours of `best` whose keys are not in `measured`, in order. One that TVM
    rejects is no candidate (so no trial): its key joins `measured`, so it is not asked again."""
    out = []
    for program in neighbours(best.program, best.knobs):
        if len(out) == count:
            break
        if program.key() in measured:
            continue
        try:
            out.append(space.apply(program))
        except InvalidProgram:
            measured.add(program.key())
    return out
