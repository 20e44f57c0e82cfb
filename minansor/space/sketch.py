"""Sketch generation: derivation rules applied block by block, from the output backwards.

A sketch fixes the *structure* of a program (what is inlined, cached, tiled, fused, rfactored)
and leaves every number open. Each rule is a plain function

    rule(derivation, block, config) -> (Outcome, [new derivations])

and the rule list of a target is data (the CPU rules in cpu_rules.py, picked and ordered by
`SearchConfig.cpu_sketch_rules`; the GPU rules in gpu_rules.py). As in Ansor, for each block
the rules are tried in order; a rule that applies contributes its derivations, and
`APPLY_AND_SKIP_REST` stops the rules after it. `APPLY` keeps going, so one block can fork a
derivation into several sketches (rfactor or not, cache write or not).

This module is the engine every target shares: the derivation, the analyses rules ask, the
rules both targets use, and `derive`. After the rules, each target's `annotation_steps` lists
where random annotation will decide.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from tvm import tirx
from tvm.s_tir import Schedule

from ..config import SearchConfig
from ..tir import analysis, layout_rewrite
from .steps import Inline, MultiLevelTile, Step


@dataclass(frozen=True)
class Sketch:
    steps: tuple[Step, ...]  # structure, from the derivation rules
    annotations: tuple[Step, ...]  # open decisions filled by random annotation

    @property
    def all_steps(self) -> tuple[Step, ...]:
        return self.steps + self.annotations

    def describe(self) -> list[str]:
        return [s.describe() for s in self.steps] or ["(no structural change)"]

    def fingerprint(self) -> str:
        """A stable text identity, stored with every record so a changed rule set is noticed."""
        return "; ".join(repr(s) for s in self.all_steps)


class Outcome(enum.Enum):
    PASS = "pass"
    APPLY = "apply"
    APPLY_AND_SKIP_REST = "apply and skip the rest"


@dataclass
class Derivation:
    """A sketch in the making: the schedule so far (with placeholder numbers), its steps, and
    the blocks still to visit (next first)."""

    sch: Schedule
    steps: tuple[Step, ...]
    pending: tuple[str, ...]

    def then(self, *new_steps: Step, advance: bool = True) -> "Derivation":
        sch = self.sch.copy()
        for step in new_steps:
            step.apply(sch, placeholder_decision)
        return Derivation(sch, self.steps + new_steps, self.pending[1:] if advance else self.pending)

    def skip(self) -> "Derivation":
        return Derivation(self.sch, self.steps, self.pending[1:])


def placeholder_decision(knob, preferred):
    """Any legal value: sketches are built with these and never measured."""
    if knob.is_tile:
        return (knob.extent,) + (1,) * (knob.parts - 1)
    return knob.choices[0]


Rule = Callable[[Derivation, str, SearchConfig], tuple[Outcome, list[Derivation]]]


# ---------------------------------------------------------------- the analyses rules ask


def is_strictly_inlinable(sch: Schedule, block: str) -> bool:
    """Cheap to recompute at every use: no reduction, not an output, no branch or expensive
    call, and every index a plain iterator or constant (Ansor's "strictly inlineable")."""
    if analysis.is_output_block(sch, block) or analysis.block_info(sch, block).has_reduction:
        return False
    if not analysis.consumers(sch, block) or analysis.has_expensive_or_branching_op(sch, block):
        return False
    return all(isinstance(i, (tirx.Var, tirx.IntImm)) for _, idx in analysis.read_indices(sch, block) for i in idx)


def needs_multi_level_tiling(sch: Schedule, block: str) -> bool:
    """Data reuse exists: count the inputs that ignore some spatial iterator of extent > 1
    (each value is then reused along it); tile if two do, or one does and the block reduces."""
    info = analysis.block_info(sch, block)
    spatial = {name for name, kind, extent in zip(info.iter_names, info.kinds, info.extents)
               if kind == analysis.SPATIAL and extent > 1}
    reusing_inputs = 0
    for _, index_vars in analysis.read_buffers(sch, block):
        used = frozenset().union(*index_vars) if index_vars else frozenset()
        if spatial - used:
            reusing_inputs += 1
    return reusing_inputs >= 2 or (reusing_inputs >= 1 and info.has_reduction)


def single_elementwise_consumer(sch: Schedule, block: str) -> str | None:
    """The one consumer that reads `block`'s output element by element over the same spatial
    iteration space, or None."""
    names = analysis.consumers(sch, block)
    if len(names) != 1:
        return None
    consumer = names[0]
    producer_info, consumer_info = analysis.block_info(sch, block), analysis.block_info(sch, consumer)
    spatial_extents = tuple(e for k, e in zip(producer_info.kinds, producer_info.extents) if k == analysis.SPATIAL)
    if consumer_info.has_reduction or consumer_info.extents != spatial_extents:
        return None
    outputs = set(analysis.written_buffers(sch, block))
    for buffer, indices in analysis.read_indices(sch, consumer):
        if buffer in outputs:
            names_read = [i.name if isinstance(i, tirx.Var) else None for i in indices]
            if names_read != list(consumer_info.iter_names):
                return None
    return consumer


def constant_inputs(sch: Schedule, block: str) -> list[str]:
    constants = layout_rewrite.layout_free_buffers(sch)
    return sorted(buffer for buffer, _ in analysis.read_buffers(sch, block) if buffer in constants)


def is_tiled(steps: tuple[Step, ...], block: str) -> bool:
    return any(isinstance(s, MultiLevelTile) and s.block == block for s in steps)


# ---------------------------------------------------------------- rules every target uses


def always_inline(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    if not is_strictly_inlinable(d.sch, block):
        return Outcome.PASS, []
    return Outcome.APPLY_AND_SKIP_REST, [d.then(Inline(block))]


def skip_stage(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    return Outcome.APPLY, [d.skip()]


# ---------------------------------------------------------------- generation


def derive(mod, config: SearchConfig, rules: tuple[Rule, ...]) -> list[Derivation]:
    """Apply `rules` to every block from the output backwards; return the finished derivations."""
    sch = Schedule(mod)
    work = [Derivation(sch, (), tuple(reversed(analysis.block_names(sch))))]
    finished = []
    with analysis.unchecked_schedule_methods():
        while work:
            d = work.pop(0)
            if not d.pending:
                finished.append(d)
                continue
            block = d.pending[0]
            for rule in rules:
                outcome, derived = rule(d, block, config)
                work.extend(derived)
                if outcome is Outcome.APPLY_AND_SKIP_REST:
                    break
    return finished
