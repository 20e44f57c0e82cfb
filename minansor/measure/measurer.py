"""What a measurer is: the interface the tuning loop measures through, and what it returns.

Three implement it: `local.LocalMeasurer` (this machine), `rpc.RPCMeasurer` (devices behind a
tracker) and `replay.ReplayMeasurer` (answers from recorded measurements, and runs nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tvm

from ..tasks.task import Task


def median_latency(latencies_s: Sequence[float] | None) -> float:
    """The median of timed repeats; inf when there are none (a failed trial)."""
    if not latencies_s:
        return float("inf")
    ordered = sorted(latencies_s)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


class Measured:
    """What a measurement and a recorded trial (records.Trial) both say: the timed repeats, or
    the error that stopped them."""

    latencies_s: tuple[float, ...] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def median_s(self) -> float:
        return median_latency(self.latencies_s)


@dataclass(frozen=True)
class MeasureResult(Measured):
    latencies_s: tuple[float, ...] | None  # one per timed repeat
    error: str | None
    build_s: float = 0.0
    run_s: float = 0.0


@dataclass
class NetworkTiming:
    """A whole network run: its outputs (fetched back) and the median of its timed runs."""

    outputs: list[np.ndarray]
    median_s: float


class Measurer(Protocol):
    last_split_s: dict[str, float]  # wall seconds of the last batch by phase (build, run), for the trace

    def measure_programs(self, task: Task, applied: list, seed: int = 0) -> list[MeasureResult]:
        """One result per applied program (anything with a `.mod`), in order; a failure is a
        result with an error, never an exception."""
        ...

    def outputs(self, task: Task, mod: tvm.IRModule, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The output arguments after one call of `mod`, run where this measurer runs programs:
        the numerical check of the best program runs there."""
        ...

    def time_network(self, path: str, inputs: list[np.ndarray], repeats: int,
                     target: tvm.target.Target) -> NetworkTiming:
        """An exported network (a Relax VM library at `path`) run where this measurer runs
        programs: the median of `repeats` timed runs after a warm-up, and its outputs. A
        measurer that runs nothing raises UserError."""
        ...

    def __enter__(self) -> Measurer: ...

    def __exit__(self, *exc) -> None: ...
