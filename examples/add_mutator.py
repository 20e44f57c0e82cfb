"""Recipe: add a mutator, then ablate it against the default mix.

A mutator is a plain function (program, knobs, rng) -> program or None. This one swaps two
levels of one tile (the product, hence the loop, is unchanged): a bigger jump than Ansor's
tile-size mutator, which moves one divisor at a time. Registering it in `MUTATORS` makes its
name valid in `SearchConfig.mutators`; the ablation script then compares the two mixes over
several seeds, answered by the replay runner from a pool of real measurements.

    python examples/add_mutator.py --workload yolo-conv-26x26-128-128-3x3 --budgets 64,200 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments import ablate  # noqa: E402
from minansor.config import SearchConfig  # noqa: E402
from minansor.search.mutate import MUTATORS, parse_weights  # noqa: E402
from minansor.space.program import Program  # noqa: E402
from minansor.space.steps import Knob  # noqa: E402


def swap_tile_levels(program: Program, knobs: tuple[Knob, ...], rng: np.random.Generator) -> Program | None:
    """Exchange the factors of two levels of one tile knob."""
    decisions = program.as_dict()
    tiles = [k for k in knobs if k.is_tile and len(set(decisions[k.name])) > 1]
    if not tiles:
        return None
    knob = tiles[int(rng.integers(len(tiles)))]
    factors = list(decisions[knob.name])
    i, j = rng.choice(len(factors), size=2, replace=False)
    factors[i], factors[j] = factors[j], factors[i]
    if not knob.admits(tuple(factors)) or tuple(factors) == decisions[knob.name]:
        return None
    return Program.make(program.sketch, {**decisions, knob.name: tuple(factors)})


MUTATORS["swap_tile_levels"] = swap_tile_levels


def with_swaps(mix: str, share: float = 0.2) -> str:
    """The mix `mix` scaled down to make room for `share` of swaps."""
    weights = {name: weight * (1 - share) for name, weight in parse_weights(mix).items()}
    weights["swap_tile_levels"] = share
    return ",".join(f"{name}:{weight:.3f}" for name, weight in weights.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Any other option goes to experiments/ablate.py (see its --help): "
                                            "--budgets, --seeds, --pool-trials, --set, ...")
    parser.add_argument("--workload", default="yolo-conv-26x26-128-128-3x3")
    parser.add_argument("--share", type=float, default=0.2, help="weight of the new mutator (default 0.2)")
    args, rest = parser.parse_known_args(argv)  # the rest goes to experiments/ablate.py
    mix = with_swaps(SearchConfig().mutators, args.share)
    print(f"default mix: {SearchConfig().mutators}\nwith swaps:  {mix}")
    return ablate.main(["--tasks", args.workload, "--only", "default", "--variant", f"with swaps=mutators={mix}",
                        "--name", f"mutator-{args.workload}"] + rest)


if __name__ == "__main__":
    sys.exit(main())
