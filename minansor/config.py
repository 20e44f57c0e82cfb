"""Every choice of the search in one frozen object.

An ablation is one field changed (`dataclasses.replace(config, field=value)`, or
`--set field=value` on the command line); nothing else in the code reads a constant that a
researcher might want to vary. This module imports nothing of minansor: the names a field may
take are checked against the registries that define them in validation.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class SearchConfig:
    # --- the search space (sketch rules and random annotation) ---
    cpu_sketch_rules: tuple[str, ...] = ("always_inline", "add_rfactor", "add_cache_write",
                                         "multi_level_tiling_with_amx", "multi_level_tiling_with_vnni",
                                         "multi_level_tiling_with_fusion", "multi_level_tiling", "tile_transpose",
                                         "skip_stage")
    gpu_sketch_rules: tuple[str, ...] = ("always_inline", "inline_injective", "gpu_multi_level_tiling",
                                         "cross_thread_reduction", "skip_stage")
    cpu_tile_structure: str = "SSRSRS"  # Ansor's CPU multi-level tiling
    gpu_tile_structure: str = "SSSRRSRS"  # Ansor's GPU tiling: blockIdx, vthread, threadIdx, ... (space/gpu_rules.py)
    fusion_levels: tuple[int, ...] = (1, 2)  # tile levels a single elementwise consumer may join
    max_innermost_tile: int = 64  # largest innermost split factor
    tile_sampling: str = "per_prime"  # or "uniform" over all factorizations (see annotate.py)
    tile_sampling_attempts: int = 100  # per-prime draws of one tile before falling back to uniform
    parallel_extent_per_core: int = 16  # fuse outer loops until extent >= this x cores
    max_vector_length: int = 64  # random annotation vectorizes an innermost loop up to this extent
    vector_preferred_loops: int = 1  # innermost spatial loops random annotation fuses into one vector
    unroll_steps: tuple[int, ...] = (0, 16, 64, 512)  # auto_unroll_max_step choices
    cache_write_scope: str = "local"
    gpu_thread_choices: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)  # threads per block (space/gpu_rules.py)
    gpu_vector_choices: tuple[int, ...] = (1, 2, 4)  # vector width of a cooperative shared-memory fetch
    layout_rewrite: str = "always"  # constant inputs of tiled blocks packed in tile order: always, optional, off
    num_cores: int = 0  # cores of the measurement target; 0 = take them from the target
    amx: bool = True  # int8 multiply-accumulates as AMX tile micro-kernels (amx.py) where the target has AMX
    vnni: bool = True  # int8 multiply-accumulates as VNNI dot products (vnni.py) where the target has them
    vnni_padding: bool = True  # with vnni: int8 conv channels rounded up to whole 16 x 4 tiles in the graph (network/int8.py)

    # --- the search strategy ---
    search: str = "evolutionary"
    trials_per_round: int = 64  # candidates built and measured together
    max_sample_attempts: int = 20  # tries per wanted program before a round gives up
    sample_patience: int = 64  # random sampling stops after this many draws in a row found nothing new: a small
    #                            space (a pad, a requantize) is exhausted long before 20 x 192 draws; 0: never (Ansor)
    breeding_attempts: int = 4  # draws per wanted child before a generation stops short
    population: int = 192
    population_per_trial: int = 12  # a round's population: this many per program it measures, at least
    #   min_fresh_random, at most `population` (a round of 16 or more keeps all 192); 0: `population` whatever
    #   the round (Ansor). YOLOv4-tiny at 200 trials (rounds of 4-5): tuning 2x faster, latency 0.97x / 1.02x
    #   (fp32 / int8; experiments/results/ablate-network-yolov4-tiny*-population-per-trial-12-200.md)
    generations: int = 4
    mutation_probability: float = 0.85
    crossover_probability: float = 0.0  # taken before mutation; the rest of the draws copy
    mutators: str = "tile_size:0.90,compute_location:0.05,unroll:0.03,parallel:0.02"
    gpu_mutators: str = "tile_size:0.90,unroll:0.04,threads:0.03,vector:0.03"  # a GPU program's knobs
    eps_greedy: float = 0.05  # share of each round measured at random
    local_search: bool = False  # a task whose last round left its best unchanged first measures the best's
    #                             unmeasured neighbours, one knob one step away (search/local_search.py)
    refine_share: float = 0.0  # share of each round given to local refinement (EvolutionarySearch.refinements)
    refine_parents: int = 8  # best measured programs whose neighbourhood is refined
    refine_draws: int = 32  # mutations drawn per refined parent
    init_measured_ratio: float = 0.2  # share of the population seeded with the best measured
    min_fresh_random: int = 50  # fresh random programs in every initial population

    # --- the cost model ---
    cost_model: str = "xgb"
    features: str = "minansor"  # or "tvm" (TVM's PerStoreFeature)
    model_min_samples: int = 32  # measured programs before the model is trusted
    # XGBoost (cost_model.XGBModel); its own seed matters only if sampling is turned on, which
    # these parameters leave off: the search's randomness is the one numpy Generator.
    xgb_max_depth: int = 10
    xgb_eta: float = 0.2
    xgb_gamma: float = 0.001
    xgb_min_child_weight: float = 0.0
    xgb_max_rounds: int = 300
    xgb_early_stopping_rounds: int = 50
    xgb_seed: int = 43
    share_cost_model: bool = True  # networks: one model for all tasks (see cost_model.SharedModel)

    # --- networks: the graph tasks come from (network/graph.py) ---
    data_layout: str = "NHWC"  # activations: NHWC (channels innermost) or NCHW as imported (data_layout.py)
    fast_math: bool = True  # exp, sigmoid, softmax, tanh as TVM's vectorizable fast_exp/fast_tanh (network/fast_math.py)
    separable_pools: bool = True  # a k x k max-pool (k >= 5) as 1 x k then k x 1: same values, 2k not k^2 (network/pooling.py)

    # --- the task scheduler (networks; see scheduler.py) ---
    task_scheduler: str = "gradient"  # or "round_robin"
    scheduler_alpha: float = 0.2  # weight of the backward (observed) gradient term
    scheduler_beta: float = 2.0  # how far below a similar task's FLOPS a task is expected to stay
    scheduler_backward_window: int = 3  # rounds over which the backward term is taken
    task_early_stop_trials: int = 0  # stop a task after this many trials without improvement; 0 never
    warmup_order: str = "calls_flops"  # first rounds heaviest first (calls x FLOPs), or "given" (Ansor)
    warmup_trials: int = 16  # size of a task's first round, at most the round size; 0: the round size (Ansor)
    transfer_programs: int = 4  # a task's first round measures up to this many best programs of
    #                             other tasks re-fitted to its shapes, at most half the round (search/transfer.py); 0 off

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

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SearchConfig":
        """Inverse of `to_json`; a field this version lacks is dropped, one it adds takes its default."""
        defaults = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: tuple(value) if isinstance(getattr(defaults, name), tuple) else value
                      for name, value in data.items() if name in known})

    def fingerprint(self) -> str:
        """A short stable identity of every field's value."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:12]

    def differences(self, other: "SearchConfig") -> list[str]:
        """"field: ours -> other's" for every field whose value differs."""
        return [f"{f.name}: {getattr(self, f.name)} -> {getattr(other, f.name)}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)]

    @property
    def parallel_extent(self) -> int:
        """The parallel extent Ansor's rule aims for: `parallel_extent_per_core` x cores."""
        if self.num_cores < 1:
            raise ValueError("num_cores is 0 (the target's): resolve the config for its target first "
                             "(space.search_space.for_target)")
        return self.parallel_extent_per_core * self.num_cores
