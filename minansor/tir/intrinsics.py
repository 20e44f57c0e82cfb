"""TVM's tensor intrinsics, registered for the target at hand only, and MetaSchedule's tuning
context made without registering all of them first.

`tvm.s_tir.meta_schedule.TuneContext` begins with `import tvm.s_tir.tensor_intrin`, whose
package registers every tensor intrinsic TVM has (CUDA, x86, ARM, ROCm, Hexagon, RISC-V): about
500 TVMScript functions, each parsed with a full stack inspection. That import took 20 to 60 s
per process on this project's 2-core machines (the more modules are loaded, the slower), before
MetaSchedule tuned, verified GPU code or extracted a feature. `register_intrinsics(target)`
registers those of the target's own instruction set (what MetaSchedule's rules for that target
can tensorize with) in under a second, and marks the package as imported, so that the import in
`TuneContext` has nothing left to do.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import tvm

PACKAGE = "tvm.s_tir.tensor_intrin"


def intrinsic_modules(target: tvm.target.Target) -> tuple[str, ...]:
    """The modules of TVM's intrinsic package that apply to `target`."""
    if target.kind.name == "cuda":
        return ("cuda",)
    triple = str(target.attrs["mtriple"]) if "mtriple" in target.attrs else ""
    return ("arm_cpu",) if triple.startswith(("aarch64", "arm")) else ("x86",)


def register_intrinsics(target: tvm.target.Target, modules: tuple[str, ...] | None = None) -> None:
    """Register the tensor intrinsics of `target`'s instruction set (or of the named `modules` of
    TVM's package), and only those."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        package = importlib.util.module_from_spec(spec)  # its __init__ (every intrinsic) is not run
        sys.modules[PACKAGE] = package
        setattr(importlib.import_module(PACKAGE.rpartition(".")[0]), "tensor_intrin", package)
    for name in intrinsic_modules(target) if modules is None else modules:
        importlib.import_module(f"{PACKAGE}.{name}")


def tune_context(target: tvm.target.Target, mod: tvm.IRModule | None = None, intrinsics: bool = True):
    """MetaSchedule's TuneContext for `target` (one thread), with only the target's intrinsics
    registered, or none (`intrinsics=False`: for a context that schedules nothing)."""
    from tvm.s_tir import meta_schedule as ms

    register_intrinsics(target, None if intrinsics else ())
    return ms.TuneContext(mod=mod, target=target, num_threads=1)
