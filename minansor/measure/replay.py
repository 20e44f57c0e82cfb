"""The replay runner: measurements answered from recorded ones instead of hardware.

Two uses:
- determinism: replaying a run's own records gives back exactly that run (same seed, same
  measurements, same search path);
- ablations in minutes: a search variant asks for programs no run ever measured, and gets the
  latency of the *nearest* recorded program of the same sketch (decisions compared knob by knob),
  or a failed trial if `fallback="fail"`. Every answer is counted by kind, and `describe()` says
  plainly that the numbers are a replay.

`records.replay_from(work_dirs)` makes one from the records of earlier runs.
"""

from __future__ import annotations

import math
from collections import Counter

import tvm

from ..errors import UserError
from ..space.program import Program
from ..tasks.task import Task
from .measurer import MeasureResult, NetworkTiming
from .verify import run_locally

FALLBACKS = ("nearest", "fail")


def decision_distance(a: Program, b: Program) -> float:
    """How far apart two programs are: over their knobs, |log2 ratio| summed over tile factors,
    plus 1 for every other decision that differs or that only one of them has; infinite across
    sketches (their knobs mean different things)."""
    if a.sketch != b.sketch:
        return math.inf
    da, db = a.as_dict(), b.as_dict()
    distance = 0.0
    for name in da.keys() | db.keys():
        x, y = da.get(name), db.get(name)
        if isinstance(x, tuple) and isinstance(y, tuple) and len(x) == len(y):
            distance += sum(abs(math.log2(p / q)) for p, q in zip(x, y))
        else:
            distance += x != y
    return distance


class ReplayMeasurer:
    """Answers `measure_programs` from recorded results, per task: the program's own record,
    else (fallback "nearest") the nearest recorded program of its sketch, else a failed trial."""

    def __init__(self, recorded: dict[str, list[tuple[Program, MeasureResult]]], fallback: str = "nearest"):
        """`recorded`: task name -> its measured programs."""
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        self.fallback = fallback
        self.exact = {task: {p.key(): r for p, r in pairs} for task, pairs in recorded.items()}
        self.pairs = recorded
        self.answers: Counter = Counter()  # exact / nearest / missing
        self.last_split_s = {"build": 0.0, "run": 0.0}

    def answer(self, task: str, program: Program) -> MeasureResult:
        found = self.exact.get(task, {}).get(program.key())
        if found is not None:
            self.answers["exact"] += 1
            return found
        if self.fallback == "nearest":
            distance, result = min(((decision_distance(program, p), r) for p, r in self.pairs.get(task, [])),
                                   key=lambda item: item[0], default=(math.inf, None))
            if math.isfinite(distance):
                self.answers["nearest"] += 1
                return result
        self.answers["missing"] += 1
        return MeasureResult(None, "replay: no recorded program to answer with")

    def measure_programs(self, task: Task, applied: list, seed: int = 0) -> list[MeasureResult]:
        return [self.answer(task.name, a.program) for a in applied]

    def outputs(self, task: Task, mod, inputs: list) -> list:
        """A replay runs nothing: the numerical check runs on this machine."""
        return run_locally(task, mod, inputs)

    def time_network(self, path: str, inputs: list, repeats: int, target: tvm.target.Target) -> NetworkTiming:
        raise UserError("a replay answers from recorded measurements and runs nothing: it cannot time a whole "
                        "network (tune the network on this machine or on a device behind --rpc)")

    def describe(self, answers: Counter | None = None) -> str:
        """The REPLAY line for this replayer's answers so far, or for `answers` counted elsewhere."""
        answers = self.answers if answers is None else answers
        total = sum(answers.values())
        pool = sum(len(pairs) for pairs in self.pairs.values())
        return (f"REPLAY, not hardware: {total} measurements answered from {pool} recorded ones: "
                f"{answers['exact']} exact, {answers['nearest']} by the nearest recorded program, "
                f"{answers['missing']} with no answer (failed trials)")

    def __enter__(self) -> "ReplayMeasurer":
        return self

    def __exit__(self, *exc) -> None:
        pass
