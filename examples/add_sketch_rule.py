"""Recipe: add a sketch rule, and let the search use it.

A rule is a plain function (derivation, block, config) -> (Outcome, [derivations]). This one
offers, next to Ansor's multi-level tiling, a *shallow* tiling ("SRS": one outer spatial level,
the reduction, one inner spatial level): a smaller space that random annotation covers faster.
It returns `Outcome.APPLY`, so the rules after it still run and the usual sketches stay.

    python examples/add_sketch_rule.py --workload yolo-conv-26x26-128-128-3x3 --trials 64
"""

from __future__ import annotations

import dataclasses
import os
import sys

from minansor.config import SearchConfig
from minansor.space.cpu_rules import SKETCH_RULES
from minansor.space.search_space import SearchSpace
from minansor.space.sketch import Derivation, Outcome, needs_multi_level_tiling
from minansor.space.steps import MultiLevelTile
from minansor.tasks.workloads import make_task
from minansor.tune import tune_task

import recipe


def shallow_tiling(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    """A block with data reuse may also be tiled at two spatial levels only."""
    if not needs_multi_level_tiling(d.sch, block):
        return Outcome.PASS, []
    return Outcome.APPLY, [d.then(MultiLevelTile(block, "SRS", config.max_innermost_tile))]


SKETCH_RULES["shallow_tiling"] = shallow_tiling  # registered: now a name SearchConfig accepts


def with_shallow_tiling(config: SearchConfig) -> SearchConfig:
    """The configured rule list with the new rule tried first."""
    return dataclasses.replace(config, cpu_sketch_rules=("shallow_tiling",) + config.cpu_sketch_rules)


def main(argv: list[str] | None = None) -> int:
    parser = recipe.parser(__doc__, "work_dirs/examples/add_sketch_rule", trials=64)
    args = parser.parse_args(argv)
    base = recipe.config(args)
    task = make_task(args.workload)
    for label, config in (("default rules", base), ("with shallow_tiling", with_shallow_tiling(base))):
        space = SearchSpace(task, config)
        print(f"{label}: {len(space.sketches)} sketches")
        for index, sketch in enumerate(space.sketches):
            print(f"  sketch {index}: " + "; ".join(sketch.describe()))
        result = tune_task(task, config, os.path.join(args.work_dir, label.replace(" ", "-")), args.trials,
                           progress=False)
        print(f"  best after {result.trials} trials: {result.best_ms:.4f} ms (sketch {result.best.program.sketch}), "
              f"check {'ok' if result.check.ok else 'FAILED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
