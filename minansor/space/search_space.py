"""The search space of one task: its sketches, and programs drawn from or replayed onto them."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import tvm

from ..config import SearchConfig
from ..tasks.targets import device_type, target_cores
from ..tasks.task import Task
from ..tir.amx import has_amx
from ..tir.vnni import has_vnni
from . import cpu_rules, gpu_rules
from .annotate import random_program
from .program import Applied, Program, apply_program, materialize
from .sketch import Sketch, derive
from .steps import Decide, InvalidProgram


def for_target(config: SearchConfig, target: tvm.target.Target) -> SearchConfig:
    """`config` as it applies on `target`: `num_cores` 0 becomes the target's cores (the parallel
    extent and the rfactor threshold scale with them), and AMX and VNNI tiling are off where the
    target's CPU lacks them. Fields set to anything else stay as set."""
    return dataclasses.replace(config, num_cores=config.num_cores or target_cores(target),
                               amx=config.amx and has_amx(target), vnni=config.vnni and has_vnni(target))


def generate_sketches(mod, config: SearchConfig, target: tvm.target.Target) -> list[Sketch]:
    """The sketches of `mod` on `target` under `config` (resolved for the target: `for_target`):
    the CPU rules (cpu_rules.py), or the GPU rules (gpu_rules.py) for a CUDA target."""
    config = for_target(config, target)
    if device_type(target) == "cuda":
        return [Sketch(d.steps, gpu_rules.gpu_annotation_steps(d, config))
                for d in derive(mod, config, gpu_rules.gpu_rules(config))]
    return [Sketch(d.steps, cpu_rules.annotation_steps(d, config))
            for d in derive(mod, config, cpu_rules.cpu_rules(config))]


class SearchSpace:
    def __init__(self, task: Task, config: SearchConfig):
        self.task = task
        self.config = for_target(config, task.target)  # what the rules and the search read
        self.gpu = device_type(task.target) == "cuda"
        self.sketches: list[Sketch] = generate_sketches(task.mod, self.config, task.target)
        self.sampled = 0  # programs drawn
        self.rejections: Counter[str] = Counter()  # why the invalid ones were rejected, by first line

    @property
    def invalid(self) -> int:
        """Random programs drawn that were rejected (by TVM, or by the target's limits)."""
        return sum(self.rejections.values())

    @property
    def valid_rate(self) -> float:
        return 1.0 - self.invalid / self.sampled if self.sampled else 1.0

    def random(self, rng: np.random.Generator, sketch: int | None = None) -> Applied | None:
        """A random program (of a random sketch unless one is given), or None if invalid."""
        index = int(rng.integers(len(self.sketches))) if sketch is None else sketch
        self.sampled += 1
        try:
            return self._checked(random_program(self.task.mod, self.sketches, index, self.config, rng))
        except InvalidProgram as err:
            self.rejections[str(err).strip().split("\n", 1)[0][:160]] += 1
            return None

    def apply(self, program: Program) -> Applied:
        """Replay a program; raises InvalidProgram."""
        return self._checked(apply_program(self.task.mod, self.sketches, program))

    def materialize(self, sketch: int, decide: Decide) -> Applied:
        """Sketch `sketch` with every knob settled by `decide`; raises InvalidProgram."""
        return self._checked(materialize(self.task.mod, self.sketches, sketch, decide))

    def _checked(self, applied: Applied) -> Applied:
        """On a GPU, a program beyond the target's limits is invalid before it is ever built."""
        if self.gpu:
            gpu_rules.check_gpu_limits(applied.mod, self.task.target)
        return applied

    def fingerprint(self, sketch: int) -> str:
        return self.sketches[sketch].fingerprint()
