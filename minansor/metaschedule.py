"""Stock MetaSchedule's builder and runner, with the timeouts minansor measures under.

MetaSchedule's `LocalBuilder` starts a fresh worker pool for every batch, and its
`default_build` imports `tvm.s_tir.tensor_intrin` inside the timed build: every tensor
intrinsic TVM has (CUDA, ROCm, Hexagon, ...), 20 to 31 s on this project's 2-core machines,
against a 30 s build timeout. On a slow machine every candidate then "times out" before it is
compiled. Here the same import runs as the worker's initializer, which `PopenWorker` sends
without a timeout, so the timeout bounds the build alone; the build itself is MetaSchedule's
own, unchanged. The import still costs wall time every round, and that stays out of
MetaSchedule's search time (compare.py counts only its search and cost-model scopes).

Both tuners get the same build and run timeouts (`SearchConfig.build_timeout_s`,
`run_timeout_s`); neither one includes starting a worker.
"""

from __future__ import annotations

from tvm.s_tir import meta_schedule as ms

from .config import SearchConfig


def import_tensor_intrinsics() -> None:
    """Register TVM's tensor intrinsics in a build worker, before its first (timed) build."""
    import tvm.s_tir.tensor_intrin  # noqa: F401  (registration is the import's side effect)


def builder(config: SearchConfig) -> ms.builder.LocalBuilder:
    return ms.builder.LocalBuilder(max_workers=config.build_workers, timeout_sec=config.build_timeout_s,
                                   initializer=import_tensor_intrinsics)


def runner(config: SearchConfig) -> ms.runner.LocalRunner:
    return ms.runner.LocalRunner(timeout_sec=config.run_timeout_s)
