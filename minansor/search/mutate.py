"""Mutation and crossover: new programs from measured or promising ones.

A mutator is a plain function `(program, knobs, rng) -> program | None` that changes one
decision and keeps the program inside its sketch's domain (None when it has nothing to change).
`MUTATORS` names them; `SearchConfig.mutators` weighs them ("tile_size:0.9,unroll:0.1").

Crossover (described in the Ansor paper, absent from both reference implementations) mixes
two parents of the same sketch block by block: all decisions shaping one block come from the
same parent, so a child inherits coherent tilings rather than a mix of halves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import UserError
from ..space.annotate import divisors
from ..space.program import Program
from ..space.steps import Knob

Mutator = Callable[[Program, tuple[Knob, ...], np.random.Generator], Program | None]


def _pick(items: list, rng: np.random.Generator):
    return items[int(rng.integers(len(items)))] if items else None


def mutate_tile_size(program: Program, knobs: tuple[Knob, ...], rng: np.random.Generator) -> Program | None:
    """Move a divisor of one tile factor to another level of the same loop (product kept)."""
    decisions = program.as_dict()
    knob = _pick([k for k in knobs if k.parts > 1 and k.extent > 1], rng)  # one level: nowhere to move
    if knob is None:
        return None
    factors = list(decisions[knob.name])
    source = _pick([i for i, f in enumerate(factors) if f > 1], rng)
    target = _pick([i for i in range(len(factors)) if i != source], rng)
    divisor = _pick([d for d in divisors(factors[source]) if d > 1], rng)
    factors[source] //= divisor
    factors[target] *= divisor
    if not knob.admits(tuple(factors)):
        return None
    return Program.make(program.sketch, {**decisions, knob.name: tuple(factors)})


def _mutate_choice(kind: str) -> Mutator:
    def mutate(program: Program, knobs: tuple[Knob, ...], rng: np.random.Generator) -> Program | None:
        decisions = program.as_dict()
        knob = _pick([k for k in knobs if k.kind == kind and len(k.choices) > 1], rng)
        if knob is None:
            return None
        value = _pick([c for c in knob.choices if c != decisions[knob.name]], rng)
        return Program.make(program.sketch, {**decisions, knob.name: value})

    mutate.__name__ = f"mutate_{kind}"
    mutate.__doc__ = f"Give one {kind} knob a different value."
    return mutate


MUTATORS: dict[str, Mutator] = {
    "tile_size": mutate_tile_size,
    "compute_location": _mutate_choice("location"),
    "unroll": _mutate_choice("unroll"),
    "parallel": _mutate_choice("parallel"),
    "vectorize": _mutate_choice("vectorize"),
    "threads": _mutate_choice("threads"),  # GPU: threads per block of a block the tiling rule left alone
    "vector": _mutate_choice("vector"),  # GPU: vector width of a cooperative shared-memory fetch
}


def parse_weights(spec: str) -> dict[str, float]:
    """'tile_size:0.9,unroll:0.1' -> {'tile_size': 0.9, 'unroll': 0.1}, checked against MUTATORS."""
    weights = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition(":")
        if name not in MUTATORS:
            raise UserError(f"unknown mutator {name!r}; choose from {', '.join(MUTATORS)}")
        try:
            weights[name] = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"mutator weight {weight!r} is not a number") from None
        if weights[name] < 0:
            raise UserError(f"mutator weight of {name} must be >= 0")
    if not weights or sum(weights.values()) <= 0:
        raise UserError(f"no mutator with a positive weight in {spec!r}")
    return weights


def mutate(program: Program, knobs: tuple[Knob, ...], weights: dict[str, float],
           rng: np.random.Generator) -> tuple[Program | None, str]:
    """Apply one mutator drawn by weight; returns (child or None, mutator name)."""
    names = list(weights)
    probabilities = np.array([weights[n] for n in names]) / sum(weights.values())
    name = names[int(rng.choice(len(names), p=probabilities))]
    return MUTATORS[name](program, knobs, rng), name


def crossover(first: Program, first_knobs: tuple[Knob, ...], second: Program, second_knobs: tuple[Knob, ...],
              rng: np.random.Generator) -> Program | None:
    """Each block's decisions all from one parent or all from the other. None if the parents
    differ in sketch or the child equals a parent; replay rejects a child whose blocks no longer
    fit together (say, one parent inlined a block the other parallelized)."""
    if first.sketch != second.sketch:
        return None
    by_block: dict[str, list[dict]] = {}
    for program, knobs in ((first, first_knobs), (second, second_knobs)):
        decisions = program.as_dict()
        for knob in knobs:
            sides = by_block.setdefault(knob.block, [{}, {}])
            sides[program is second][knob.name] = decisions[knob.name]
    child: dict = {}
    for block in sorted(by_block):
        child.update(by_block[block][int(rng.random() < 0.5)])
    program = Program.make(first.sketch, child)
    return None if program in (first, second) else program
