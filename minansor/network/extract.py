"""Task extraction: one task per distinct fused PrimFunc of the optimized module, weighted by
its calls.

Tasks come from the *fused* module and the records are applied to that same fused module,
PrimFunc by PrimFunc, the way MetaSchedule's own pass looks them up: by the structural hash of
the PrimFunc normalized to a one-function module. (Applying records to the raw module instead
only works through a pipeline that fuses it again the same way.)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import tvm
import tvm_ffi
from tvm import relax, tirx
from tvm.s_tir import Schedule

from ..errors import UserError
from ..tasks.targets import resolve_target
from ..tasks.task import Task
from ..tir import analysis
from .graph import callee, main_bindings


# MetaSchedule's own normalization, so our workloads are exactly the modules its
# MetaScheduleApplyDatabase pass queries.
normalize_prim_func: Callable[[tirx.PrimFunc], tvm.IRModule] = tvm.get_global_func(
    "tvm.s_tir.meta_schedule.normalize_mod")


@dataclass
class NetworkTask:
    """One distinct fused PrimFunc of the network."""

    name: str  # the first fused function of this structure
    functions: tuple[str, ...]  # every fused function with this structure
    weight: int  # calls in the network
    flops: float
    task: Task | None  # None when there is nothing to tune
    skipped: str = ""  # why it is not tuned


def _has_iterations(task: Task) -> bool:
    """Whether some block runs more than once: a PrimFunc of single-iteration blocks (scalar
    work) has nothing a schedule could change."""
    sch = Schedule(task.mod)
    return any(math.prod(analysis.loop_extents(sch, sch.get_loops(sch.get_sblock(block)))) > 1
               for block in analysis.block_names(sch))


def extract_tasks(fused: tvm.IRModule, target="cpu") -> list[NetworkTask]:
    """One task per distinct fused PrimFunc (structural hash), weighted by its calls."""
    target = resolve_target(target)
    calls = Counter(name for b in main_bindings(fused)
                    if isinstance(b.value, relax.Call) and (name := callee(b.value)))
    groups: dict[int, list[tuple[tvm.IRModule, list[str]]]] = {}  # structural hash -> (module, names)
    for gv, func in fused.functions.items():
        if not (isinstance(func, tirx.PrimFunc) and calls[gv.name_hint]):
            continue
        mod = normalize_prim_func(func)
        same_hash = groups.setdefault(tvm_ffi.structural_hash(mod), [])
        group = next((g for g in same_hash if tvm_ffi.structural_equal(mod, g[0])), None)
        if group is None:
            same_hash.append((mod, [gv.name_hint]))
        else:
            group[1].append(gv.name_hint)
    tasks = []
    for mod, names in (group for same_hash in groups.values() for group in same_hash):
        names = tuple(sorted(names))
        name = names[0]
        weight = sum(calls[n] for n in names)
        flops = float(tvm.s_tir.analysis.estimate_tir_flops(mod))
        try:
            task = Task.from_module(name, mod, target, weight)
        except UserError as err:
            tasks.append(NetworkTask(name, names, weight, flops, None, f"cannot be a task: {err}"))
            continue
        if not _has_iterations(task):
            tasks.append(NetworkTask(name, names, weight, flops, None, "nothing to tune: every block runs once"))
            continue
        tasks.append(NetworkTask(name, names, weight, flops, task))
    return sorted(tasks, key=lambda t: (-t.flops * t.weight, t.name))
