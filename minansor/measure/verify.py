"""The numerical check every reported "best" program passes: same outputs as the untuned
PrimFunc on random inputs. The program runs as it is measured and deployed: its kernel, given
its constant inputs packed by the program's own packing stage (layout_rewrite.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tvm

from ..tasks.targets import cross_compiler, device_type, resolve_target
from ..tasks.task import Task
from ..tir import amx
from ..tir.layout_rewrite import kernel, pack_inputs


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    max_abs_error: float
    detail: str


RunOutputs = Callable[[Task, tvm.IRModule, list[np.ndarray]], list[np.ndarray]]


BF16_ULP = 2.0 ** -7  # the spacing of bf16 values relative to the smallest value of their binade


def call_outputs(lib, dev, task: Task, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The output arguments after one call of `lib`'s main on `dev` (local or over RPC)."""
    arrays = [tvm.runtime.tensor(x, dev) for x in inputs]
    lib["main"](*arrays)
    return [a.numpy() for a, spec in zip(arrays, task.args) if spec.is_output]


def run_locally(task: Task, mod: tvm.IRModule, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The output arguments after one call of `mod` built for `task.target` on this machine."""
    return call_outputs(tvm.compile(amx.with_permission(mod), target=task.target).mod, tvm.device(device_type(task.target)), task, inputs)


def check_against_untuned(task: Task, mod: tvm.IRModule, rtol: float, atol: float, seed: int = 0,
                          run: RunOutputs | None = None) -> CheckResult:
    """`mod`'s kernel (run by `run`: here, or on the device that measured it) on the inputs
    packed as `mod` packs them, against the untuned PrimFunc on this machine's CPU on the same
    seeded random inputs."""
    rng = np.random.default_rng(seed)
    inputs = [spec.random(rng) for spec in task.args]
    local_cpu = device_type(task.target) == "cpu" and cross_compiler(task.target) is None
    reference_task = task if local_cpu else dataclasses.replace(task, target=resolve_target("cpu"))
    want = run_locally(reference_task, task.mod, inputs)
    got = (run or run_locally)(task, kernel(mod), pack_inputs(mod, inputs))
    names = [spec.name for spec in task.args if spec.is_output]
    return compare_outputs(names, want, got, rtol, atol, "the untuned program")


def compare_outputs(names: list[str], want: list[np.ndarray], got: list[np.ndarray], rtol: float, atol: float,
                    reference: str) -> CheckResult:
    """allclose per output, with atol scaled by the output's magnitude (at least 1). A bf16 output
    may differ by one unit in its last place (2^-7 of the value at most): two fp32 sums that differ
    in their last bits can round to neighbouring bf16 values."""
    if len(want) != len(got):
        return CheckResult(False, float("inf"), f"{len(got)} outputs, {reference} has {len(want)}")
    worst, detail, ok = 0.0, "outputs match", True
    for name, w, g in zip(names, want, got):
        if w.shape != g.shape:
            return CheckResult(False, float("inf"), f"{name} has shape {g.shape}, {reference} gives {w.shape}")
        err = float(np.max(np.abs(w.astype(np.float64) - g))) if w.size else 0.0
        worst = max(worst, err)
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        within = max(rtol, BF16_ULP) if str(w.dtype) == "bfloat16" else rtol
        if not np.allclose(np.asarray(g, np.float64), np.asarray(w, np.float64), rtol=within, atol=atol * max(scale, 1.0)):
            ok, detail = False, f"{name} differs from {reference} (max abs error {err:.3g})"
    return CheckResult(ok, worst, detail)
