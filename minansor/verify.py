"""The numerical check every reported "best" program passes: same outputs as the untuned
PrimFunc on random inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm

from .task import Task


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    max_abs_error: float
    detail: str


def check_against_untuned(task: Task, mod: tvm.IRModule, rtol: float, atol: float, seed: int = 0) -> CheckResult:
    rng = np.random.default_rng(seed)
    inputs = [spec.random(rng) for spec in task.args]
    outputs = []
    for candidate in (task.mod, mod):
        dev = tvm.cpu()
        arrays = [tvm.runtime.tensor(x, dev) for x in inputs]
        tvm.compile(candidate, target=task.target).mod["main"](*arrays)
        outputs.append([a.numpy() for a, spec in zip(arrays, task.args) if spec.is_output])
    names = [spec.name for spec in task.args if spec.is_output]
    return compare_outputs(names, outputs[0], outputs[1], rtol, atol, "the untuned program")


def compare_outputs(names: list[str], want: list[np.ndarray], got: list[np.ndarray], rtol: float, atol: float,
                    reference: str) -> CheckResult:
    """allclose per output, with atol scaled by the output's magnitude (at least 1)."""
    if len(want) != len(got):
        return CheckResult(False, float("inf"), f"{len(got)} outputs, {reference} has {len(want)}")
    worst, detail, ok = 0.0, "outputs match", True
    for name, w, g in zip(names, want, got):
        if w.shape != g.shape:
            return CheckResult(False, float("inf"), f"{name} has shape {g.shape}, {reference} gives {w.shape}")
        err = float(np.max(np.abs(w.astype(np.float64) - g))) if w.size else 0.0
        worst = max(worst, err)
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        if not np.allclose(g, w, rtol=rtol, atol=atol * max(scale, 1.0)):
            ok, detail = False, f"{name} differs from {reference} (max abs error {err:.3g})"
    return CheckResult(ok, worst, detail)
