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

from ..tir.analysis import unchecked_schedule_methods
from .sketch import Sketch
from .steps import Decide, InvalidProgram, Knob, Tensorize


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
    untensorized: tvm.IRModule | None = None  # the program just before its first Tensorize step

    @property
    def mod(self) -> tvm.IRModule:
        return self.sch.mod

    @property
    def modeled(self) -> tvm.IRModule:
        """The program as the cost model reads it: a tensorized block as the loop nest it
        computes (one opaque intrinsic call would hide its work), every loop around it final."""
        return self.untensorized if self.untensorized is not None else self.mod


def materialize(mod: tvm.IRModule, sketches: list[Sketch], index: int, decide: Decide) -> Applied:
    """Walk the steps of sketch `index` on a fresh schedule, settling every knob through
    `decide`. Any refusal by TVM becomes `InvalidProgram`."""
    sch = Schedule(mod)
    untensorized = None
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

    with unchecked_schedule_methods():
        for step in sketches[index].all_steps:
            if isinstance(step, Tensorize) and untensorized is None:
                untensorized = sch.mod
            try:
                step.apply(sch, recording)
            except InvalidProgram:
                raise
            except Exception as err:  # a ScheduleError or any other refusal from TVM
                raise InvalidProgram(f"{step.describe()}: {str(err).strip().splitlines()[-1]}") from None
    return Applied(Program.make(index, decisions), sch, tuple(knobs), untensorized)


def apply_program(mod: tvm.IRModule, sketches: list[Sketch], program: Program) -> Applied:
    if not 0 <= program.sketch < len(sketches):
        raise InvalidProgram(f"sketch {program.sketch} does not exist")
    recorded = program.as_dict()

    def replay(knob: Knob, preferred):
        if knob.name not in recorded:
            raise InvalidProgram(f"no decision for {knob.name}")
        return recorded[knob.name]

    applied = materialize(mod, sketches, program.sketch, replay)
    if applied.program != program:
        unasked = sorted(set(recorded) - set(applied.program.as_dict()))
        raise InvalidProgram(f"decisions for knobs the sketch never asks: {unasked}")
    return applied
