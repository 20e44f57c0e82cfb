"""Random annotation: turn a sketch into a complete program by drawing every open decision.

Tile sizes place each prime factor of the loop extent at a random level (or, as in Ansor, are
uniform over all factorizations: `SearchConfig.tile_sampling`), innermost factor capped;
compute locations and unroll are uniform over their choices; vectorization takes the innermost
spatial loop; the parallel knob follows Ansor's rule (fuse outer loops until there is enough
parallel work). Mutation explores the other values of every knob. One
`numpy.random.Generator` is the only source of randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import tvm

from ..config import SearchConfig
from .program import Applied, materialize
from .sketch import Sketch
from .steps import InvalidProgram, Knob

TILE_SAMPLINGS = ("per_prime", "uniform")  # SearchConfig.tile_sampling: see sample_tile


@lru_cache(maxsize=4096)
def factorizations(extent: int, parts: int, max_innermost: int | None = None) -> tuple[tuple[int, ...], ...]:
    """Every ordered tuple of `parts` positive factors whose product is `extent`, innermost
    (last) factor at most `max_innermost`."""
    if parts == 1:
        return ((extent,),) if max_innermost is None or extent <= max_innermost else ()
    out = []
    for first in divisors(extent):
        for rest in factorizations(extent // first, parts - 1, max_innermost):
            out.append((first, *rest))
    return tuple(out)


@lru_cache(maxsize=4096)
def divisors(n: int) -> tuple[int, ...]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return tuple(sorted(set(small + [n // d for d in small])))


def sample_tile(knob: Knob, rng: np.random.Generator, how: str, attempts: int = 100) -> tuple[int, ...]:
    """"uniform": uniform over all factorizations (Ansor's FillTileSize). "per_prime": each prime
    factor of the extent goes to a level drawn uniformly (MetaSchedule's perfect-tile sampling),
    which favours balanced tiles; measured here to give much faster random programs (README).
    A per-prime draw whose innermost factor is too large is drawn again, `attempts` times at
    most, then the draw is uniform over the factorizations that fit."""
    if how == "per_prime":
        primes = prime_factors(knob.extent)
        for _ in range(attempts):
            factors = [1] * knob.parts
            for p in primes:
                factors[int(rng.integers(knob.parts))] *= p
            if factors[-1] <= knob.max_innermost:
                return tuple(factors)
    options = factorizations(knob.extent, knob.parts, knob.max_innermost)
    if not options:
        raise InvalidProgram(f"{knob.name}: no factorization of {knob.extent} fits")
    return options[rng.integers(len(options))]


def sample_knob(knob: Knob, preferred: Sequence | None, rng: np.random.Generator,
                tile_sampling: str = "per_prime", attempts: int = 100) -> Any:
    if knob.is_tile:
        return sample_tile(knob, rng, tile_sampling, attempts)
    options = tuple(preferred) if preferred else knob.choices
    return options[rng.integers(len(options))]


def random_program(mod: tvm.IRModule, sketches: list[Sketch], sketch_index: int, config: SearchConfig,
                   rng: np.random.Generator) -> Applied:
    """One random program of one sketch; raises `InvalidProgram` when TVM rejects it."""
    return materialize(mod, sketches, sketch_index,
                       lambda knob, preferred: sample_knob(knob, preferred, rng, config.tile_sampling,
                                                           config.tile_sampling_attempts))


def prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out + ([n] if n > 1 else [])
