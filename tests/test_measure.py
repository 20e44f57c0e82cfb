"""Failures are data: a build error, a crashing candidate and a hanging one each cost one
failed trial with its error text, and measurement goes on."""

import dataclasses

from tvm import te, tirx
import pytest
from tvm.s_tir import Schedule

from minansor.measure.local import LocalMeasurer
from minansor.tasks.task import Task
from minansor.tasks.workloads import make_task


def _crashing_task() -> Task:
    a = te.placeholder((4,), name="A")
    b = te.compute((4,), lambda i: a[i] + tirx.call_extern("float32", "abort"), name="B")
    return Task.from_te("crash", [a, b])


@pytest.mark.slow
def test_build_error_crash_and_timeout_are_failed_trials_and_measurement_goes_on(fast_config):
    config = dataclasses.replace(fast_config, run_timeout_s=1.0)
    add = make_task("add-4x4")
    unbuildable = Schedule(add.mod)
    unbuildable.bind(unbuildable.get_loops(unbuildable.get_sblock("C"))[0], "threadIdx.x")  # GPU-only on llvm
    crash = _crashing_task()
    slow = make_task("gemm-1024x1024x1024")  # the untuned program runs for seconds

    with LocalMeasurer(config) as measurer:
        bad_build, good = measurer.measure(add, [unbuildable.mod, add.mod])
        (crashed,) = measurer.measure(crash, [crash.mod])
        (timed_out,) = measurer.measure(slow, [slow.mod])
        (after,) = measurer.measure(add, [add.mod])

    assert not bad_build.ok and bad_build.error.startswith("build:")
    assert good.ok and good.median_s > 0
    assert not crashed.ok and crashed.error.startswith("run:")
    assert not timed_out.ok and timed_out.error == "run: timeout"
    assert after.ok, after.error
