"""Measurement: build candidates in a process pool, run them one at a time in a separate
process, and turn every failure (build error, crash, timeout, wrong shape) into a recorded
failed trial rather than an aborted run.

Builds run in parallel; runs never overlap with each other or with builds, so timings are
taken on a quiet machine. Worker processes come from TVM's `PopenPoolExecutor`, which kills
and replaces a worker that times out or dies; a worker's start (importing TVM) happens before
the timeout of its first call begins.

What is built and timed is the program's kernel: a constant input whose layout the program
rewrites is passed already packed, and the packing stage is not part of it (layout_rewrite.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import tvm
from tvm.support import cc
from tvm.support.popen_pool import PopenPoolExecutor

from ..config import SearchConfig
from ..tasks.targets import cross_compiler, device_type, settle_main_thread
from ..tasks.task import ArgSpec, Task
from ..tir import amx
from ..tir.layout_rewrite import kernel
from .measurer import MeasureResult, NetworkTiming
from .verify import run_locally


ArgTuple = tuple[str, tuple[int, ...], str, bool]  # an ArgSpec's fields, cheap to send to a worker


@dataclass(frozen=True)
class Built:
    """One candidate after the build: its library (or why there is none) and the arguments its
    kernel takes, a packed weight in its packed shape."""

    path: str | None
    error: str | None
    seconds: float
    args: tuple[ArgTuple, ...] = ()


def kernel_args(task: Task, kernel_mod: tvm.IRModule) -> tuple[ArgTuple, ...]:
    """The task's arguments as `kernel_mod` (a program's kernel) takes them."""
    return tuple((param.name, tuple(int(d) for d in param.shape), str(param.dtype), spec.is_output)
                 for param, spec in zip(kernel_mod["main"].params, task.args))


def build_module(mod_json: str, target_config: dict, path: str, compiler: str | None = None) -> float:
    """Compile one scheduled module (a program's kernel) into a shared library at `path` (runs in a worker)."""
    start = time.perf_counter()
    mod = tvm.ir.load_json(mod_json)
    export_library(tvm.compile(amx.with_permission(mod), target=tvm.target.Target(target_config)), path, compiler)
    return time.perf_counter() - start


def export_library(executable, path: str, compiler: str | None = None) -> None:
    """Write a built executable (one PrimFunc or a whole network) as a shared library, linked
    with `compiler` when the target's host is another machine (a cross compiler)."""
    executable.export_library(path, fcompile=cc.cross_compiler(compiler) if compiler else None)


def open_local(path: str, target: tvm.target.Target):
    """(the library at `path` loaded on this machine, the device it runs on)."""
    return tvm.runtime.load_module(path), tvm.device(device_type(target))


def time_network_on(library, dev, inputs: list, repeats: int) -> NetworkTiming:
    """A loaded network library (local or behind an RPC session) run in the Relax VM on `dev`:
    the median of `repeats` timed runs after a warm-up, and the outputs fetched back."""
    from tvm import relax

    vm = relax.VirtualMachine(library, dev)
    # The stateful calls are the ones that work over RPC (the arguments travel as DLTensors).
    vm.set_input("main", *(tvm.runtime.tensor(x, dev) for x in inputs))
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=repeats)
    median_s = float(np.median(timer("main").results))
    return NetworkTiming(flatten_outputs(vm.get_outputs("main")), median_s)


def flatten_outputs(value) -> list:
    """A VM result (a tensor, or nested tuples of them) as a flat list of numpy arrays."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Array":
        return [array for item in value for array in flatten_outputs(item)]
    return [value.numpy()]


def time_network_here(path: str, inputs: list, repeats: int, target: tvm.target.Target) -> NetworkTiming:
    """`time_network_on` this machine, in a fresh process as every candidate is timed."""
    return in_fresh_process(_time_network_in_process, path, inputs, repeats, target.export())


def _time_network_in_process(path: str, inputs: list, repeats: int, target_config: dict) -> NetworkTiming:
    settle_main_thread()
    return time_network_on(*open_local(path, tvm.target.Target(target_config)), inputs, repeats)


def time_library(lib, dev, args: tuple[ArgTuple, ...], number: int, repeat: int, min_repeat_ms: int, seed: int) -> list[float]:
    """Seconds per call of `lib`'s main on seeded random inputs on `dev`, one value per repeat;
    `lib` and `dev` may be local or behind an RPC session."""
    rng = np.random.default_rng(seed)
    arrays = [tvm.runtime.tensor(ArgSpec(*spec).random(rng), dev) for spec in args]
    timer = lib.time_evaluator("main", dev, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)
    return [float(x) for x in timer(*arrays).results]


def run_module(path: str, device: str, args: tuple[ArgTuple, ...], number: int, repeat: int, min_repeat_ms: int,
               seed: int) -> list[float]:
    """Time one built library on this machine's `device` ("cpu" or "cuda"; runs in a worker)."""
    settle_main_thread()
    return time_library(tvm.runtime.load_module(path), tvm.device(device), args, number, repeat, min_repeat_ms, seed)


def in_fresh_process(fn, *args):
    """`fn(*args)` in a process of its own, as every candidate is timed: no cost model's threads
    and no earlier work of this process share its cores (after an xgboost training in the same
    process, the FMA kernel of peak.py ran at half speed here)."""
    pool = PopenPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn, *args).result()
    finally:
        pool.shutdown()


def error_text(err: Exception) -> str:
    """One line: "timeout", or the exception's type and last line (a compile error, a crash)."""
    if isinstance(err, TimeoutError):
        return "timeout"
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"[:500]


Run = tuple[tuple[float, ...] | None, str | None, float]  # (latencies or None, error or None, run seconds)


class LocalMeasurer:
    """Builds with `config.build_workers` processes; runs on this machine's CPU. Subclasses
    run elsewhere by overriding `run_all` (see rpc.RPCMeasurer)."""

    def __init__(self, config: SearchConfig):
        self.config = config
        self._build_pool = PopenPoolExecutor(max_workers=config.build_workers, timeout=config.build_timeout_s)
        self._run_pool = self._make_run_pool()
        self._scratch = tempfile.mkdtemp(prefix="minansor-build-")
        self._count = 0
        self.last_split_s = {"build": 0.0, "run": 0.0}  # wall seconds of the last batch (search trace)

    def _make_run_pool(self) -> PopenPoolExecutor | None:
        return PopenPoolExecutor(max_workers=1, timeout=self.config.run_timeout_s)

    def build(self, task: Task, mods: list[tvm.IRModule]) -> list[Built]:
        """Every module's kernel compiled, in order."""
        target, compiler = task.target.export(), cross_compiler(task.target)
        kernels = [kernel(m) for m in mods]
        paths = []
        for _ in mods:
            self._count += 1
            paths.append(os.path.join(self._scratch, f"candidate{self._count}.so"))
        futures = [self._build_pool.submit(build_module, tvm.ir.save_json(k), target, p, compiler)
                   for k, p in zip(kernels, paths)]
        out = []
        for path, kernel_mod, future in zip(paths, kernels, futures):
            try:
                out.append(Built(path, None, future.result(), kernel_args(task, kernel_mod)))
            except Exception as err:  # a compile error, a crash, a timeout
                out.append(Built(None, "build: " + error_text(err), 0.0))
        return out

    def run(self, task: Task, built: Built, seed: int) -> Run:
        c = self.config
        start = time.perf_counter()
        future = self._run_pool.submit(run_module, built.path, device_type(task.target), built.args, c.number, c.repeat,
                                       c.min_repeat_ms, seed)
        try:
            latencies = tuple(future.result())
        except Exception as err:
            return None, "run: " + error_text(err), time.perf_counter() - start
        return latencies, None, time.perf_counter() - start

    def run_all(self, task: Task, built: list[Built], seed: int) -> list[Run]:
        """One run per built library, in order; here one at a time on a quiet machine."""
        return [self.run(task, b, seed) for b in built]

    def measure(self, task: Task, mods: list[tvm.IRModule], seed: int = 0) -> list[MeasureResult]:
        """Build all, then run what built: one result per module, in order."""
        began = time.perf_counter()
        built = self.build(task, mods)
        ok = [b for b in built if b.error is None]
        built_at = time.perf_counter()
        runs = iter(self.run_all(task, ok, seed))
        self.last_split_s = {"build": built_at - began, "run": time.perf_counter() - built_at}
        for b in ok:
            os.remove(b.path)
        results = []
        for b in built:
            if b.error is not None:
                results.append(MeasureResult(None, b.error, b.seconds))
            else:
                latencies, error, run_s = next(runs)
                results.append(MeasureResult(latencies, error, b.seconds, run_s))
        return results

    def measure_programs(self, task: Task, applied: list, seed: int = 0) -> list[MeasureResult]:
        """Measure applied programs (anything with a `.mod`)."""
        return self.measure(task, [a.mod for a in applied], seed)

    def outputs(self, task: Task, mod: tvm.IRModule, inputs: list) -> list:
        """One call of `mod` on this machine: the output arguments, for the numerical check."""
        return run_locally(task, mod, inputs)

    def time_network(self, path: str, inputs: list, repeats: int, target: tvm.target.Target) -> NetworkTiming:
        return time_network_here(path, inputs, repeats, target)

    def close(self) -> None:
        self._build_pool.shutdown()
        if self._run_pool is not None:
            self._run_pool.shutdown()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "LocalMeasurer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
