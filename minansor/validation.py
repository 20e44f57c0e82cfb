"""A `SearchConfig` checked against the registries that define the names its fields may take.

config.py is a leaf that imports nothing of minansor; this module is the one place that knows
every registry (strategies, sketch rules, cost models, feature sets, mutators, schedulers,
layouts), so an unknown name fails here with a one-line error before any work starts. The
registries can grow (examples/add_sketch_rule.py, examples/custom_cost_model.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .config import SearchConfig
from .data_layout import DATA_LAYOUTS
from .errors import UserError
from .model.cost_model import COST_MODELS
from .model.features import FEATURE_SETS
from .scheduler import TASK_SCHEDULERS, WARMUP_ORDERS
from .search.mutate import parse_weights
from .search.strategies import STRATEGIES
from .space.annotate import TILE_SAMPLINGS
from .space.cpu_rules import LAYOUT_REWRITES, SKETCH_RULES
from .space.gpu_rules import GPU_SKETCH_RULES


def _one_of(value: str, names: Iterable[str], what: str) -> None:
    names = tuple(names)
    if value not in names:
        raise UserError(f"unknown {what} {value!r}; choose from {', '.join(names)}")


def validate(config: SearchConfig) -> SearchConfig:
    """Reject a config that names something that does not exist, or a value out of range."""
    _one_of(config.search, STRATEGIES, "search strategy")
    _one_of(config.tile_sampling, TILE_SAMPLINGS, "tile sampling")
    _one_of(config.data_layout, DATA_LAYOUTS, "data layout")
    _one_of(config.layout_rewrite, LAYOUT_REWRITES, "layout rewrite")
    _one_of(config.cost_model, COST_MODELS, "cost model")
    _one_of(config.task_scheduler, TASK_SCHEDULERS, "task scheduler")
    _one_of(config.warmup_order, WARMUP_ORDERS, "warm-up order")
    _one_of(config.features, FEATURE_SETS, "feature set")
    for name in ("mutation_probability", "crossover_probability", "eps_greedy", "init_measured_ratio",
                 "scheduler_alpha", "refine_share"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise UserError(f"config field {name} must lie in [0, 1], got {getattr(config, name)}")
    if config.mutation_probability + config.crossover_probability > 1.0:
        raise UserError("mutation_probability + crossover_probability must not exceed 1")
    if config.refine_share + config.eps_greedy > 1.0:
        raise UserError("refine_share + eps_greedy must not exceed 1")
    parse_weights(config.mutators)
    parse_weights(config.gpu_mutators)
    for names, registry, which in ((config.cpu_sketch_rules, SKETCH_RULES, "CPU"),
                                   (config.gpu_sketch_rules, GPU_SKETCH_RULES, "GPU")):
        unknown = [name for name in names if name not in registry]
        if unknown:
            raise UserError(f"unknown {which} sketch rule(s) {', '.join(unknown)}; choose from {', '.join(registry)}")
    if set(config.cpu_tile_structure) - {"S", "R"} or "S" not in config.cpu_tile_structure:
        raise UserError(f"tile structure {config.cpu_tile_structure!r} must be made of S and R and contain S")
    if set(config.gpu_tile_structure) - {"S", "R"} or not config.gpu_tile_structure.startswith("SSS"):
        raise UserError(f"GPU tile structure {config.gpu_tile_structure!r} must be made of S and R and start with "
                        "SSS (blockIdx, vthread, threadIdx)")
    n_spatial_levels = config.cpu_tile_structure.count("S")
    if any(not 1 <= level < n_spatial_levels for level in config.fusion_levels):
        raise UserError(f"fusion levels {config.fusion_levels} must lie in 1..{n_spatial_levels - 1}")
    positive = ("max_innermost_tile", "parallel_extent_per_core", "max_vector_length", "vector_preferred_loops",
                "trials_per_round",
                "max_sample_attempts", "breeding_attempts", "tile_sampling_attempts", "xgb_max_rounds", "number", "repeat", "build_workers", "population",
                "scheduler_backward_window", "refine_parents", "refine_draws", "remeasure_turns")
    for name in positive:
        if getattr(config, name) < 1:
            raise UserError(f"config field {name} must be >= 1, got {getattr(config, name)}")
    for name in ("warmup_trials", "transfer_programs", "task_early_stop_trials", "sample_patience", "population_per_trial"):
        if getattr(config, name) < 0:
            raise UserError(f"config field {name} must be >= 0, got {getattr(config, name)}")
    return config


def with_overrides(config: SearchConfig, assignments: list[str]) -> SearchConfig:
    """Apply `field=value` strings (from `--set`), parsing each value as the field's type."""
    by_name = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep or name not in by_name:
            raise UserError(f"--set expects FIELD=VALUE with FIELD one of: {', '.join(by_name)}; got {assignment!r}")
        current = getattr(config, name)
        try:
            if isinstance(current, tuple):
                changes[name] = tuple(type(current[0])(v) for v in text.split(",") if v)
            elif isinstance(current, bool):
                changes[name] = text.lower() in ("1", "true", "yes", "on")
            else:
                changes[name] = type(current)(text)
        except ValueError:
            raise UserError(f"cannot read {text!r} as a value of {name} ({type(current).__name__})") from None
    return validate(dataclasses.replace(config, **changes))
