"""Sketch generation: derivation rules applied block by block, from the output backwards.

A sketch fixes the *structure* of a program (what is inlined, cached, tiled, fused, rfactored)
and leaves every number open. Each rule is a plain function

    rule(derivation, block, config) -> (Outcome, [new derivations])

and the rule list of a target is data (`SKETCH_RULES`, picked and ordered by
`SearchConfig.cpu_sketch_rules`; the GPU rules are in gpu_sketch.py). As in Ansor, for each
block the rules are tried in order; a rule that applies contributes its derivations, and
`APPLY_AND_SKIP_REST` stops the rules after it. `APPLY` keeps going, so one block can fork a derivation into several
sketches (rfactor or not, cache write or not).

After the rules, `annotation_steps` lists where random annotation will decide: compute
locations of the blocks the rules left movable, then vectorize / parallel / unroll per block.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from tvm import tirx
from tvm.s_tir import Schedule

from . import analysis, layout_rewrite, vnni
from .config import SearchConfig
from .steps import (CacheWrite, ComputeLocation, DecomposeReduction, FuseConsumer, Inline, MultiLevelTile, Parallel,
                    RewriteLayout, Rfactor, Step, Tensorize, TileForIntrinsic, Unroll, Vectorize)


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


def layout_choices(sch: Schedule, block: str, config: SearchConfig) -> list[tuple[Step, ...]]:
    """How the constant inputs of a block about to be tiled may be stored: rewritten into its
    tile order, as they are, or both as separate sketches (`SearchConfig.layout_rewrite`)."""
    read = constant_inputs(sch, block)
    if not read or config.layout_rewrite == "off":
        return [()]
    rewrite = tuple(RewriteLayout(block, buffer) for buffer in read)
    return [rewrite] if config.layout_rewrite == "always" else [rewrite, ()]


def constant_inputs(sch: Schedule, block: str) -> list[str]:
    constants = layout_rewrite.layout_free_buffers(sch)
    return sorted(buffer for buffer, _ in analysis.read_buffers(sch, block) if buffer in constants)


def is_tiled(steps: tuple[Step, ...], block: str) -> bool:
    return any(isinstance(s, MultiLevelTile) and s.block == block for s in steps)


# ---------------------------------------------------------------- CPU rules


def always_inline(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    if not is_strictly_inlinable(d.sch, block):
        return Outcome.PASS, []
    return Outcome.APPLY_AND_SKIP_REST, [d.then(Inline(block))]


def add_rfactor(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    """A long reduction with no reuse to tile for: offer both halves of a split as a new
    parallel / vector axis. `APPLY`, so the plain reduction stays a sketch too."""
    info = analysis.block_info(d.sch, block)
    if (not info.has_reduction or needs_multi_level_tiling(d.sch, block)
            or info.reduction_size <= config.parallel_extent):
        return Outcome.PASS, []
    return Outcome.APPLY, [d.then(Rfactor(block, factor, config.max_innermost_tile))
                           for factor in ("outer", "inner")]


def add_cache_write(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    """A tiled block with nothing to fuse gets a local accumulator and a write-back block,
    which the fusion rule then fuses (the block is visited again)."""
    if not needs_multi_level_tiling(d.sch, block) or single_elementwise_consumer(d.sch, block):
        return Outcome.PASS, []
    return Outcome.APPLY, [d.then(CacheWrite(block, config.cache_write_scope), advance=False)]


def multi_level_tiling_with_fusion(d: Derivation, block: str,
                                   config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    consumer = single_elementwise_consumer(d.sch, block) if needs_multi_level_tiling(d.sch, block) else None
    if consumer is None:
        return Outcome.PASS, []
    tiling = MultiLevelTile(block, config.cpu_tile_structure, config.max_innermost_tile)
    layouts = layout_choices(d.sch, block, config)
    fused = [d.then(tiling, FuseConsumer(block, consumer, tiling, level), *layout)
             for level in config.fusion_levels for layout in layouts]
    return Outcome.APPLY_AND_SKIP_REST, fused + [d.then(tiling, *layout) for layout in layouts]


def multi_level_tiling(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    if not needs_multi_level_tiling(d.sch, block):
        return Outcome.PASS, []
    tiling = MultiLevelTile(block, config.cpu_tile_structure, config.max_innermost_tile)
    return Outcome.APPLY_AND_SKIP_REST, [d.then(tiling, *layout) for layout in layout_choices(d.sch, block, config)]


def multi_level_tiling_with_vnni(d: Derivation, block: str,
                                 config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    """A uint8 x int8 -> int32 multiply-accumulate on a CPU with VNNI: its innermost 16 output
    values x 4 products become one `vpdpbusd` (vnni.py), and the loops around them are tiled and
    fused like any other block's. The weight is always packed, because the intrinsic reads its
    16 x 4 tile as one contiguous vector: in any other layout it would compute garbage."""
    if not config.vnni or not needs_multi_level_tiling(d.sch, block) or not vnni.is_vnni_block(d.sch, block):
        return Outcome.PASS, []
    consumer = single_elementwise_consumer(d.sch, block)
    intrinsic = TileForIntrinsic(block, vnni.VNNI_INTRIN)
    tiling = MultiLevelTile(intrinsic.outer, config.cpu_tile_structure, config.max_innermost_tile)
    packing = tuple(RewriteLayout(intrinsic.outer, buffer) for buffer in constant_inputs(d.sch, block))
    fused = [d.then(intrinsic, tiling, FuseConsumer(intrinsic.outer, consumer, tiling, level), *packing)
             for level in config.fusion_levels] if consumer else []
    return Outcome.APPLY_AND_SKIP_REST, fused + [d.then(intrinsic, tiling, *packing)]


def skip_stage(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    return Outcome.APPLY, [d.skip()]


# Every CPU rule by name. SearchConfig.cpu_sketch_rules lists the ones in use, in the order they
# are tried; register another by adding it here (examples/add_sketch_rule.py).
SKETCH_RULES: dict[str, Rule] = {rule.__name__: rule for rule in (
    always_inline, add_rfactor, add_cache_write, multi_level_tiling_with_vnni, multi_level_tiling_with_fusion,
    multi_level_tiling, skip_stage)}


def cpu_rules(config: SearchConfig) -> tuple[Rule, ...]:
    return tuple(SKETCH_RULES[name] for name in config.cpu_sketch_rules)


# ---------------------------------------------------------------- generation


def derive(mod, config: SearchConfig, rules: tuple[Rule, ...]) -> list[Derivation]:
    """Apply `rules` to every block from the output backwards; return the finished derivations."""
    sch = Schedule(mod)
    work = [Derivation(sch, (), tuple(reversed(analysis.block_names(sch))))]
    finished = []
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


def annotation_steps(d: Derivation, config: SearchConfig) -> tuple[Step, ...]:
    """Where random annotation decides, given a finished derivation; each step carries the
    bounds of its knobs from `config`."""
    sch, steps = d.sch, d.steps
    fused = {s.consumer for s in steps if isinstance(s, FuseConsumer)}
    # A packing stage runs once at compile time: nothing to decide about it.
    names = [b for b in analysis.block_names(sch) if not layout_rewrite.is_packing_block(sch, b)]
    movable = [b for b in names
               if not is_tiled(steps, b) and b not in fused and not analysis.is_output_block(sch, b)
               and not analysis.block_info(sch, b).has_reduction and len(analysis.consumers(sch, b)) == 1]
    # The innermost loops of a block tiled for an intrinsic are the intrinsic's: nothing inlined
    # into them, no vector, and the reduction is initialized by Tensorize, which comes last.
    intrinsics = {s.outer: s.intrin for s in steps if isinstance(s, TileForIntrinsic)}
    out: list[Step] = [ComputeLocation(b, inline=not set(analysis.consumers(sch, b)) & set(intrinsics))
                       for b in reversed(movable)]
    reducing = [b for b in names if analysis.block_info(sch, b).has_reduction]
    for b in names:
        vectorize = [] if b in intrinsics else [Vectorize(b, config.max_vector_length, config.vector_preferred_loops)]
        unroll = [Unroll(b, config.unroll_steps)] if b in reducing else []
        out += [*vectorize, Parallel(b, config.parallel_extent), *unroll]
    out += [DecomposeReduction(b) for b in reducing if b not in intrinsics]
    return tuple(out) + tuple(Tensorize(b, intrin) for b, intrin in intrinsics.items())


def generate_sketches(mod, config: SearchConfig, gpu: bool = False) -> list[Sketch]:
    """The sketches of `mod` under the CPU rules, or the GPU rules (gpu_sketch.py)."""
    if gpu:
        from .gpu_sketch import GPU_RULES, gpu_annotation_steps

        return [Sketch(d.steps, gpu_annotation_steps(d, config)) for d in derive(mod, config, GPU_RULES)]
    return [Sketch(d.steps, annotation_steps(d, config)) for d in derive(mod, config, cpu_rules(config))]
