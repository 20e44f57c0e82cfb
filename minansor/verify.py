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
    worst, detail = 0.0, "outputs match"
    ok = True
    for spec, want, got in zip([s for s in task.args if s.is_output], *outputs):
        err = float(np.max(np.abs(want.astype(np.float64) - got))) if want.size else 0.0
        worst = max(worst, err)
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        if not np.allclose(got, want, rtol=rtol, atol=atol * max(scale, 1.0)):
            ok, detail = False, f"{spec.name} differs from the untuned program (max abs error {err:.3g})"
    return CheckResult(ok, worst, detail)
