"""The search space of one task: its sketches, and programs drawn from or replayed onto them."""

from __future__ import annotations

import dataclasses

import numpy as np

from .annotate import random_program
from .config import SearchConfig
from .program import Applied, Program, apply_program
from .sketch import Sketch, generate_sketches
from .steps import InvalidProgram
from .targets import device_type
from .task import Task
from .vnni import has_vnni


class SearchSpace:
    def __init__(self, task: Task, config: SearchConfig):
        self.task = task
        self.config = dataclasses.replace(config, num_cores=config.num_cores or task.num_cores,
                                          vnni=config.vnni and has_vnni(task.target))
        self.gpu = device_type(task.target) == "cuda"
        self.sketches: list[Sketch] = generate_sketches(task.mod, self.config, self.gpu)
        self.sampled = 0  # programs drawn
        self.invalid = 0  # of which TVM rejected

    @property
    def valid_rate(self) -> float:
        return 1.0 - self.invalid / self.sampled if self.sampled else 1.0

    def random(self, rng: np.random.Generator, sketch: int | None = None) -> Applied | None:
        """A random program (of a random sketch unless one is given), or None if invalid."""
        index = int(rng.integers(len(self.sketches))) if sketch is None else sketch
        self.sampled += 1
        try:
            return self._checked(random_program(self.task.mod, self.sketches, index, self.config, rng))
        except InvalidProgram:
            self.invalid += 1
            return None

    def apply(self, program: Program) -> Applied:
        """Replay a program; raises InvalidProgram."""
        return self._checked(apply_program(self.task.mod, self.sketches, program))

    def _checked(self, applied: Applied) -> Applied:
        """On a GPU, a program beyond the target's limits is invalid before it is ever built."""
        if self.gpu:
            from .gpu_sketch import check_gpu_limits

            check_gpu_limits(applied.mod, self.task.target)
        return applied

    def fingerprint(self, sketch: int) -> str:
        return self.sketches[sketch].fingerprint()
