"""What a comparison found: each tuner's run, per task and per network."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import NoValidProgram
from ..tasks.task import Task


@dataclass
class TunerRun:
    name: str
    best_ms: float  # re-measured side by side
    own_best_ms: float  # as the tuner itself measured it
    curve: list[float]  # best latency (ms) after each trial, by the tuner's own measurements
    search_s_per_round: float
    wall_s: float
    check_ok: bool
    valid_rate: float = math.nan  # share of the tuner's random programs that were valid (minansor's only)
    failures: dict[str, int] = field(default_factory=dict)  # failed trials by the first line of their error
    rejections: dict[str, int] = field(default_factory=dict)  # invalid random programs by reason, never built


def failure_classes(errors: Iterable[str | None], width: int = 160) -> dict[str, int]:
    """Failed trials counted by the first line of their error (at most `width` characters),
    most common first."""
    lines = (next((line.strip() for line in e.splitlines() if line.strip()), "?")[:width] for e in errors if e)
    return dict(Counter(lines).most_common())


@dataclass
class Comparison:
    task: str
    flops: float
    trials: int
    numpy_sgemm_gflops: float
    minansor: TunerRun
    metaschedule: TunerRun
    peak_gflops: float = math.nan  # this machine's fp32 peak (peak.py), measured in the same run
    bytes: float = math.nan  # what the task's arguments hold: the least a program reads and writes
    bandwidth_gbs: float = math.nan  # this machine's memory bandwidth (peak.py, STREAM triad), same run
    copy_gbs: float = math.nan  # a STREAM copy of as many bytes as the task's arguments hold, same run

    @property
    def ratio(self) -> float:
        """minansor best latency / MetaSchedule best latency: below 1 means minansor is faster."""
        return self.minansor.best_ms / self.metaschedule.best_ms

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        """Inverse of `dataclasses.asdict`, for results saved as JSON."""
        runs = {key: TunerRun(**data[key]) for key in ("minansor", "metaschedule")}
        return cls(**{**data, **runs})

    def gflops(self, run: TunerRun) -> float:
        return self.flops / (run.best_ms * 1e-3) / 1e9

    def gbs(self, run: TunerRun) -> float:
        return self.bytes / (run.best_ms * 1e-3) / 1e9

    @property
    def memory_bound(self) -> bool:
        """Left of the roofline's ridge: fewer operations per byte than the peak has per byte of
        bandwidth, so no program can reach the peak, and bandwidth is its ceiling."""
        return self.bytes > 0 and self.flops / self.bytes < self.peak_gflops / self.bandwidth_gbs


@dataclass
class NetworkComparison:
    network: str
    trials: int
    untuned_ms: float
    minansor_ms: float  # end to end, both builds re-measured alternately
    metaschedule_ms: float
    minansor_wall_s: float  # tuning only
    metaschedule_wall_s: float
    minansor_check_ok: bool
    metaschedule_check_ok: bool
    tasks: int

    @property
    def ratio(self) -> float:
        return self.minansor_ms / self.metaschedule_ms


def best_so_far(latencies_ms: list[float]) -> list[float]:
    return list(np.minimum.accumulate(np.array(latencies_ms, dtype=float))) if latencies_ms else []


def no_valid_program(tuner: str, task: Task, trials: int, work_dir: str, errors: list[str]) -> NoValidProgram:
    """The one-line report of a run whose every candidate failed, with its most common error."""
    common = f" (most often: {max(set(errors), key=errors.count)})" if errors else ""
    return NoValidProgram(f"{tuner} found no valid program of {task.name} in {trials} trials{common}; "
                          f"the records of both tuners are kept in {os.path.dirname(work_dir)}")
