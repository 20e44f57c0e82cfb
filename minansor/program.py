"""A program: a sketch index plus the decisions for its knobs. Plain, hashable, JSON-able data;
`apply_program` replays it onto the task deterministically.

Sampling (`annotate.random_program`) and replay share `materialize`: the same walk over the
sketch's steps, with a callback that either draws a value or looks it up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import tvm
from tvm.s_tir import Schedule

from .config import SearchConfig
from .sketch import Sketch
from .steps import Decide, InvalidProgram, Knob


@dataclass(frozen=True)
class Program:
    sketch: int
    decisions: tuple[tuple[str, Any], ...]  # sorted (knob name, value); tile values are tuples

    @classmethod
    def make(cls, sketch: int, decisions: dict[str, Any]) -> "Program":
        return cls(sketch, tuple(sorted(decisions.items())))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.decisions)

    def to_json(self) -> dict:
        return {"sketch": self.sketch, "decisions": {k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in self.decisions}}

    @classmethod
    def from_json(cls, obj: dict) -> "Program":
        return cls.make(int(obj["sketch"]), {k: tuple(v) if isinstance(v, list) else v
                                             for k, v in obj["decisions"].items()})

    def key(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


@dataclass
class Applied:
    """A program applied to its task: the schedule and the knobs that were decided."""

    program: Program
    sch: Schedule
    knobs: tuple[Knob, ...]

    @property
    def mod(self) -> tvm.IRModule:
        return self.sch.mod


def materialize(mod: tvm.IRModule, sketch: Sketch, decide: Decide,
                config: SearchConfig) -> tuple[Schedule, dict[str, Any], tuple[Knob, ...]]:
    """Walk the sketch's steps on a fresh schedule, settling every knob through `decide`.
    Any refusal by TVM becomes `InvalidProgram`."""
    sch = Schedule(mod)
    decisions: dict[str, Any] = {}
    knobs: list[Knob] = []

    def recording(knob: Knob, preferred):
        if knob.name in decisions:
            raise InvalidProgram(f"knob {knob.name} asked twice")
        value = decide(knob, preferred)
        if not knob.admits(value):
            raise InvalidProgram(f"{knob.name} = {value!r} is outside its domain")
        decisions[knob.name] = value
        knobs.append(knob)
        return value

    for step in sketch.all_steps:
        try:
            step.apply(sch, recording, config)
        except InvalidProgram:
            raise
        except Exception as err:  # a ScheduleError or any other refusal from TVM
            raise InvalidProgram(f"{step.describe()}: {str(err).strip().splitlines()[-1]}") from None
    return sch, decisions, tuple(knobs)


def apply_program(mod: tvm.IRModule, sketches: list[Sketch], program: Program, config: SearchConfig) -> Applied:
    if not 0 <= program.sketch < len(sketches):
        raise InvalidProgram(f"sketch {program.sketch} does not exist")
    recorded = program.as_dict()

    def replay(knob: Knob, preferred):
        if knob.name not in recorded:
            raise InvalidProgram(f"no decision for {knob.name}")
        return recorded[knob.name]

    sch, used, knobs = materialize(mod, sketches[program.sketch], replay, config)
    if set(used) != set(recorded):
        raise InvalidProgram(f"decisions for knobs the sketch never asks: {sorted(set(recorded) - set(used))}")
    return Applied(program, sch, knobs)
