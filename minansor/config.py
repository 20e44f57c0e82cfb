"""Every choice of the search in one frozen object.

An ablation is one field changed (`dataclasses.replace(config, field=value)`, or
`--set field=value` on the command line); nothing else in the code reads a constant that a
researcher might want to vary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from .errors import UserError


@dataclass(frozen=True)
class SearchConfig:
    # --- the search space (sketch rules and random annotation) ---
    cpu_sketch_rules: tuple[str, ...] = ("always_inline", "add_rfactor", "add_cache_write",
                                         "multi_level_tiling_with_vnni", "multi_level_tiling_with_fusion",
                                         "multi_level_tiling", "skip_stage")
    cpu_tile_structure: str = "SSRSRS"  # Ansor's CPU multi-level tiling
    gpu_tile_structure: str = "SSSRRSRS"  # Ansor's GPU tiling: blockIdx, vthread, threadIdx, ... (gpu_sketch.py)
    fusion_levels: tuple[int, ...] = (1, 2)  # tile levels a single elementwise consumer may join
    max_innermost_tile: int = 64  # largest innermost split factor
    tile_sampling: str = "per_prime"  # or "uniform" over all factorizations (see annotate.py)
    parallel_extent_per_core: int = 16  # fuse outer loops until extent >= this x cores
    max_vector_length: int = 64  # random annotation vectorizes an innermost loop up to this extent
    vector_preferred_loops: int = 1  # innermost spatial loops random annotation fuses into one vector
    unroll_steps: tuple[int, ...] = (0, 16, 64, 512)  # auto_unroll_max_step choices
    cache_write_scope: str = "local"
    gpu_thread_choices: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)  # threads per block (gpu_sketch.py)
    gpu_vector_choices: tuple[int, ...] = (1, 2, 4)  # vector width of a cooperative shared-memory fetch
    layout_rewrite: str = "always"  # constant inputs of tiled blocks packed in tile order: always, optional, off
    num_cores: int = 0  # cores of the measurement target; 0 = take them from the target
    vnni: bool = True  # int8 multiply-accumulates as VNNI dot products (vnni.py) where the target has them
    vnni_padding: bool = True  # with vnni: int8 conv channels rounded up to whole 16 x 4 tiles in the graph (int8.py)

    # --- the search strategy ---
    search: str = "evolutionary"
    trials_per_round: int = 64  # candidates built and measured together
    max_sample_attempts: int = 20  # tries per wanted program before a round gives up
    population: int = 192
    generations: int = 4
    mutation_probability: float = 0.85
    crossover_probability: float = 0.0  # taken before mutation; the rest of the draws copy
    mutators: str = "tile_size:0.90,compute_location:0.05,unroll:0.03,parallel:0.02"
    eps_greedy: float = 0.05  # share of each round measured at random
    refine_share: float = 0.0  # share of each round given to local refinement (EvolutionarySearch.refinements)
    refine_parents: int = 8  # best measured programs whose neighbourhood is refined
    refine_draws: int = 32  # mutations drawn per refined parent
    init_measured_ratio: float = 0.2  # share of the population seeded with the best measured
    min_fresh_random: int = 50  # fresh random programs in every initial population

    # --- the cost model ---
    cost_model: str = "xgb"
    features: str = "minansor"  # or "tvm" (TVM's PerStoreFeature)
    model_min_samples: int = 32  # measured programs before the model is trusted
    share_cost_model: bool = True  # networks: one model for all tasks (see cost_model.SharedModel)

    # --- networks: the graph tasks come from (network.py) ---
    data_layout: str = "NHWC"  # activations: NHWC (channels innermost) or NCHW as imported (data_layout.py)

    # --- the task scheduler (networks; see scheduler.py) ---
    task_scheduler: str = "gradient"  # or "round_robin"
    scheduler_alpha: float = 0.2  # weight of the backward (observed) gradient term
    scheduler_beta: float = 2.0  # how far below a similar task's FLOPS a task is expected to stay
    scheduler_backward_window: int = 3  # rounds over which the backward term is taken
    task_early_stop_trials: int = 0  # stop a task after this many trials without improvement; 0 never

    # --- measurement ---
    number: int = 1  # calls per timed repeat (raised until min_repeat_ms is reached)
    repeat: int = 3  # timed repeats; the median is reported
    min_repeat_ms: int = 50
    # The longest of 4000 YOLOv4-tiny conv builds here took 6.5 s (median 0.3 s), the longest run
    # 4.4 s: both timeouts leave room for a machine twice as slow. A worker's start is not counted.
    build_timeout_s: float = 30.0
    run_timeout_s: float = 30.0
    build_workers: int = 2
    # compare.remeasure: best programs timed side by side, in this many turns of repeats of at
    # least this long each (the median over turns is kept)
    remeasure_turns: int = 10
    remeasure_min_repeat_ms: int = 100

    # --- checking the best program ---
    check_rtol: float = 1e-3
    check_atol: float = 1e-3

    @property
    def parallel_extent(self) -> int:
        """The parallel extent Ansor's rule aims for: `parallel_extent_per_core` x cores."""
        return self.parallel_extent_per_core * self.num_cores


SEARCH_STRATEGIES = ("evolutionary", "random")
TILE_SAMPLINGS = ("per_prime", "uniform")
TASK_SCHEDULERS = ("gradient", "round_robin")
# always: a derived step of every tiled sketch; optional: sketches with and without it; off: none.
LAYOUT_REWRITES = ("always", "optional", "off")


def validate(config: SearchConfig) -> SearchConfig:
    """Reject a config that names something that does not exist; one-line errors."""
    if config.search not in SEARCH_STRATEGIES:
        raise UserError(f"unknown search strategy {config.search!r}; choose from {', '.join(SEARCH_STRATEGIES)}")
    if config.tile_sampling not in TILE_SAMPLINGS:
        raise UserError(f"unknown tile sampling {config.tile_sampling!r}; choose from {', '.join(TILE_SAMPLINGS)}")
    from .data_layout import DATA_LAYOUTS

    if config.data_layout not in DATA_LAYOUTS:
        raise UserError(f"unknown data layout {config.data_layout!r}; choose from {', '.join(DATA_LAYOUTS)}")
    if config.layout_rewrite not in LAYOUT_REWRITES:
        raise UserError(f"unknown layout rewrite {config.layout_rewrite!r}; choose from {', '.join(LAYOUT_REWRITES)}")
    # The registries live beside what they register, and can grow (see examples/).
    from .cost_model import COST_MODELS
    from .features import FEATURE_SETS
    from .mutate import parse_weights
    from .sketch import SKETCH_RULES

    if config.cost_model not in COST_MODELS:
        raise UserError(f"unknown cost model {config.cost_model!r}; choose from {', '.join(COST_MODELS)}")
    if config.task_scheduler not in TASK_SCHEDULERS:
        raise UserError(f"unknown task scheduler {config.task_scheduler!r}; choose from {', '.join(TASK_SCHEDULERS)}")
    if config.features not in FEATURE_SETS:
        raise UserError(f"unknown feature set {config.features!r}; choose from {', '.join(FEATURE_SETS)}")
    for name in ("mutation_probability", "crossover_probability", "eps_greedy", "init_measured_ratio",
                 "scheduler_alpha", "refine_share"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise UserError(f"config field {name} must lie in [0, 1], got {getattr(config, name)}")
    if config.mutation_probability + config.crossover_probability > 1.0:
        raise UserError("mutation_probability + crossover_probability must not exceed 1")
    if config.refine_share + config.eps_greedy > 1.0:
        raise UserError("refine_share + eps_greedy must not exceed 1")
    parse_weights(config.mutators)
    unknown_rules = [name for name in config.cpu_sketch_rules if name not in SKETCH_RULES]
    if unknown_rules:
        raise UserError(f"unknown sketch rule(s) {', '.join(unknown_rules)}; choose from {', '.join(SKETCH_RULES)}")
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
                "max_sample_attempts", "number", "repeat", "build_workers", "population",
                "scheduler_backward_window", "refine_parents", "refine_draws", "remeasure_turns")
    for name in positive:
        if getattr(config, name) < 1:
            raise UserError(f"config field {name} must be >= 1, got {getattr(config, name)}")
    return config


def with_overrides(config: SearchConfig, assignments: list[str]) -> SearchConfig:
    """Apply `field=value` strings (from `--set`), parsing each value as the field's type."""
    by_name = {f.name: f for f in fields(config)}
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
