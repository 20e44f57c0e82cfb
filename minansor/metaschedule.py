"""Stock MetaSchedule's builder and runner, with the timeouts minansor measures under.

MetaSchedule's `LocalBuilder` starts a fresh worker pool for every batch, and its
`default_build` begins with `import tvm.s_tir.tensor_intrin`: every tensor intrinsic TVM has
(CUDA, ROCm, Hexagon, ...) is registered, inside the timed build. That import took 23 to 31 s on
this project's 2-core machines, against a 30 s build timeout: on a slow machine every candidate
"timed out" before it was compiled, and on any machine each round paid it again.

The registration is only needed to *schedule* with an intrinsic (`sch.tensorize` looks it up);
a tensorized program carries the intrinsic's implementation in its TIR and builds in a process
that never imported it (checked with `dot_16x4_avx512`). So MetaSchedule here builds with
`build`: its own `default_build` without that import, the same two passes in the same order.
The search, its rules (tensorization included) and the programs it builds are MetaSchedule's.

Its tuning context has the same import at its start: run `tir.intrinsics.register_intrinsics`
for the target first, and only that target's intrinsics are registered (under a second).

Both tuners get the same build and run timeouts (`SearchConfig.build_timeout_s`,
`run_timeout_s`); in neither does starting a worker count against them.
"""

from __future__ import annotations

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

from .config import SearchConfig


def build(mod: tvm.IRModule, target: tvm.target.Target, _params) -> tvm.runtime.Module:
    """MetaSchedule's `default_build` minus the registration of tensor intrinsics."""
    from tvm.driver import build as tvm_build

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def builder(config: SearchConfig) -> ms.builder.LocalBuilder:
    return ms.builder.LocalBuilder(max_workers=config.build_workers, timeout_sec=config.build_timeout_s, f_build=build)


def runner(config: SearchConfig) -> ms.runner.LocalRunner:
    return ms.runner.LocalRunner(timeout_sec=config.run_timeout_s)
