"""Measurement: build candidates in a process pool, run them one at a time in a separate
process, and turn every failure (build error, crash, timeout, wrong shape) into a recorded
failed trial rather than an aborted run.

Builds run in parallel; runs never overlap with each other or with builds, so timings are
taken on a quiet machine. Worker processes come from TVM's `PopenPoolExecutor`, which kills
and replaces a worker that times out or dies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import tvm
from tvm.support.popen_pool import PopenPoolExecutor

from .config import SearchConfig
from .task import ArgSpec, Task


@dataclass(frozen=True)
class MeasureResult:
    latencies_s: tuple[float, ...] | None  # one per timed repeat
    error: str | None
    build_s: float = 0.0
    run_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def median_s(self) -> float:
        if not self.latencies_s:
            return float("inf")
        ordered = sorted(self.latencies_s)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def build_module(mod_json: str, target_config: dict, path: str) -> float:
    """Compile one scheduled module into a shared library at `path` (runs in a worker)."""
    start = time.perf_counter()
    mod = tvm.ir.load_json(mod_json)
    executable = tvm.compile(mod, target=tvm.target.Target(target_config))
    executable.export_library(path)
    return time.perf_counter() - start


def run_module(path: str, args: list[tuple], number: int, repeat: int, min_repeat_ms: int, seed: int) -> list[float]:
    """Time one built library on random inputs (runs in a worker). Returns seconds per call,
    one value per repeat."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dev = tvm.cpu()
    lib = tvm.runtime.load_module(path)
    arrays = [tvm.runtime.tensor(ArgSpec(*spec).random(rng), dev) for spec in args]
    timer = lib.time_evaluator("main", dev, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)
    return [float(x) for x in timer(*arrays).results]


def _arg_tuples(task: Task) -> list[tuple]:
    return [(a.name, a.shape, a.dtype, a.is_output) for a in task.args]


def _error_text(err: Exception) -> str:
    """One line: "timeout", or the exception's type and last line (a compile error, a crash)."""
    if isinstance(err, TimeoutError):
        return "timeout"
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"[:500]


class LocalMeasurer:
    """Builds with `config.build_workers` processes; runs on this machine's CPU."""

    def __init__(self, config: SearchConfig):
        self.config = config
        self._build_pool = PopenPoolExecutor(max_workers=config.build_workers, timeout=config.build_timeout_s)
        self._run_pool = PopenPoolExecutor(max_workers=1, timeout=config.run_timeout_s)
        self._scratch = tempfile.mkdtemp(prefix="minansor-build-")
        self._count = 0

    def build(self, task: Task, mods: list[tvm.IRModule]) -> list[tuple[str | None, str | None, float]]:
        """(library path or None, error or None, build seconds) per module."""
        target = task.target.export()
        paths = []
        for _ in mods:
            self._count += 1
            paths.append(os.path.join(self._scratch, f"candidate{self._count}.so"))
        futures = [self._build_pool.submit(build_module, tvm.ir.save_json(m), target, p) for m, p in zip(mods, paths)]
        out = []
        for path, future in zip(paths, futures):
            try:
                seconds = future.result()
                out.append((path, None, seconds))
            except Exception as err:  # a compile error, a crash, a timeout
                out.append((None, "build: " + _error_text(err), 0.0))
        return out

    def run(self, task: Task, path: str, seed: int) -> tuple[tuple[float, ...] | None, str | None, float]:
        c = self.config
        start = time.perf_counter()
        future = self._run_pool.submit(run_module, path, _arg_tuples(task), c.number, c.repeat, c.min_repeat_ms, seed)
        try:
            latencies = tuple(future.result())
        except Exception as err:
            return None, "run: " + _error_text(err), time.perf_counter() - start
        return latencies, None, time.perf_counter() - start

    def measure(self, task: Task, mods: list[tvm.IRModule], seed: int = 0) -> list[MeasureResult]:
        """Build all, then run one at a time."""
        results = []
        for path, error, build_s in self.build(task, mods):
            if error is not None:
                results.append(MeasureResult(None, error, build_s))
                continue
            latencies, error, run_s = self.run(task, path, seed)
            os.remove(path)
            results.append(MeasureResult(latencies, error, build_s, run_s))
        return results

    def measure_programs(self, task: Task, applied: list, seed: int = 0) -> list[MeasureResult]:
        """Measure applied programs (anything with a `.mod`)."""
        return self.measure(task, [a.mod for a in applied], seed)

    def close(self) -> None:
        self._build_pool.shutdown()
        self._run_pool.shutdown()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "LocalMeasurer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReplayMeasurer:
    """Answers from recorded results instead of hardware: the same seed and the same recorded
    measurements then give the same search. A program never recorded is a failed trial."""

    def __init__(self, recorded: dict[str, MeasureResult]):
        self.recorded = recorded
        self.misses = 0

    def measure_programs(self, task: Task, applied: list, seed: int = 0) -> list[MeasureResult]:
        out = []
        for key in (a.program.key() for a in applied):
            if key not in self.recorded:
                self.misses += 1
            out.append(self.recorded.get(key, MeasureResult(None, "replay: program not recorded")))
        return out

    def __enter__(self) -> "ReplayMeasurer":
        return self

    def __exit__(self, *exc) -> None:
        pass
