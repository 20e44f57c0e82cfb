"""The headline numbers: best programs re-measured side by side, and numpy's sgemm timed in the
same run as a vendor ceiling.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import tvm

from ..config import SearchConfig
from ..measure.local import LocalMeasurer
from ..tasks.task import Task


def numpy_sgemm_gflops(n: int = 1024, repeats: int = 7) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def remeasure(task: Task, mods: list[tvm.IRModule], config: SearchConfig) -> list[float]:
    """Median latency (ms) of each module. All are built once, then timed in
    `config.remeasure_turns` turns with the
    order reversed every turn, so that neither the position nor a moment's load on a shared
    machine favours one; the median over turns is robust to the run-to-run spread (up to 15 %
    on gemm-1024³ here)."""
    turns = config.remeasure_turns
    config = dataclasses.replace(config, number=1, repeat=5, min_repeat_ms=config.remeasure_min_repeat_ms)
    samples: list[list[float]] = [[] for _ in mods]
    with LocalMeasurer(config) as measurer:
        built = measurer.build(task, mods)
        for turn in range(turns):
            for i in (reversed if turn % 2 else list)(range(len(mods))):
                latencies = measurer.run_all(task, [built[i]], seed=0)[0][0] if built[i].error is None else None
                samples[i].extend(latencies or [math.inf])
    return [1e3 * float(np.median(s)) for s in samples]
