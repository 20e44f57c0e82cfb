"""A whole network: minansor's `tune_network`, then MetaSchedule's `tune_relax` on the same fused
module, both builds timed alternately.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from tvm.s_tir import meta_schedule as ms

from .. import metaschedule
from ..config import SearchConfig
from ..network.graph import Network
from ..network.run import build, check_against_reference, run
from ..network.tuning import tune_network
from ..tasks.targets import resolve_target
from ..tir.intrinsics import register_intrinsics
from .results import NetworkComparison


def compare_network(network: Network, trials: int, config: SearchConfig, work_dir: str, seed: int = 0, target="cpu",
                    progress: bool = True, repeats: int = 5) -> NetworkComparison:
    """minansor's `tune_network`, then MetaSchedule's `tune_relax` on the same fused module with
    the same total trials and the same trials per round; both builds apply their records the
    same way (MetaScheduleApplyDatabase) and are timed alternately in the Relax VM."""
    target = resolve_target(target)
    ours_dir = os.path.join(work_dir, "minansor")
    ours = tune_network(network, config, ours_dir, trials, seed, target, progress=progress, repeats=repeats)
    fused = ours.fused
    per_round = max(1, min(config.trials_per_round, trials // len(ours.tuning.results)))
    ms_dir = os.path.join(work_dir, "metaschedule")
    finished = os.path.join(ms_dir, "finished.json")  # MetaSchedule cannot resume; a finished run is kept
    if os.path.exists(finished):
        with open(finished) as f:
            ms_wall = json.load(f)["wall_s"]
        database = ms.database.JSONDatabase(work_dir=ms_dir)
    else:
        register_intrinsics(target)
        start = time.perf_counter()
        database = ms.relax_integration.tune_relax(fused, {}, target, ms_dir, max_trials_global=trials,
                                                   num_trials_per_iter=per_round, seed=seed,
                                                   builder=metaschedule.builder(config),
                                                   runner=metaschedule.runner(config))
        ms_wall = time.perf_counter() - start
        with open(finished, "w") as f:
            json.dump({"trials": trials, "wall_s": ms_wall}, f)
    ms_executable, _ = build(fused, target, database)
    inputs = [spec.random(np.random.default_rng(seed)) for spec in network.inputs]
    samples: list[list[float]] = [[], []]
    for _ in range(repeats):
        for i, executable in enumerate((ours.executable, ms_executable)):
            timing = run(executable, inputs, repeats=1)
            samples[i].append(timing.median_s)
    ms_check = check_against_reference(network, timing.outputs, inputs, config)  # the last run was MetaSchedule's
    return NetworkComparison(network.name, trials, ours.untuned.median_s * 1e3,
                             1e3 * float(np.median(samples[0])), 1e3 * float(np.median(samples[1])),
                             ours.tuning.wall_s, ms_wall, ours.tuned_check.ok, ms_check.ok,
                             len(ours.tuning.results))
