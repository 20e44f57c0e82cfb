"""GPU sketch rules: Ansor's GPU search space, in the same step language as the CPU rules.

A block with data reuse is tiled "SSSRRSRS": spatial levels 1 / 2 / 3 become blockIdx.x /
vthread.x / threadIdx.x, the first reduction level decides how much of each input a thread
block stages in shared memory (fetched cooperatively by all its threads, with a vector width
to choose), and the block accumulates in registers ("local", written back under threadIdx with
its elementwise consumer inlined into the write-back). A reduction with no reuse is reduced
across the threads of a block (cross-thread reduction); any other block gets its spatial loops
fused and spread over blocks and threads. What is left open: every tile size, the threads per
block of the simple blocks, the vector width of each cooperative fetch, the unroll depth.
Random annotation draws each of them from its whole domain, and a mutator of its own (mutate.py,
`SearchConfig.gpu_mutators`) moves it.

A program that breaks the target's limits (threads per block, shared memory, registers) is
invalid: `check_gpu_limits` runs MetaSchedule's VerifyGPUCode before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm.s_tir import Schedule

from ..config import SearchConfig
from ..tir import analysis
from ..tir.intrinsics import tune_context
from ..tir.analysis import REDUCTION, SPATIAL
from .sketch import (Derivation, Outcome, Rule, always_inline, is_tiled, needs_multi_level_tiling,
                     single_elementwise_consumer, skip_stage)
from .steps import (CacheWrite, Decide, DecomposeReduction, FuseConsumer, Inline, InvalidProgram, Knob, MultiLevelTile,
                    Step, Unroll)

def _fuse_and_bind(sch: Schedule, loops: list, tag: str):
    loop = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    sch.bind(loop, tag)
    return loop


def _bound_loops(sch: Schedule, block: str) -> dict[str, int]:
    """thread tag -> extent of the loops around `block` that are bound to GPU threads."""
    out = {}
    for loop in sch.get_loops(sch.get_sblock(block)):
        binding = sch.get(loop).thread_binding
        if binding is not None:
            out[binding.thread_tag] = int(sch.get(loop).extent)
    return out


def _thread_extent(sch: Schedule, block: str) -> int:
    threads = _bound_loops(sch, block).get("threadIdx.x")
    if threads is None:
        raise InvalidProgram(f"{block} is not bound to threads")
    return threads


def _split_over_threads(sch: Schedule, decide: Decide, block: str, loops: list, thread_choices: tuple[int, ...]):
    """Fuse `loops`, split off a number of threads (a knob over the `thread_choices` that the
    extent fills, or the smallest) and bind them to threadIdx.x; returns the outer part."""
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    extent = int(sch.get(fused).extent)
    choices = tuple(t for t in thread_choices if t <= extent) or (min(thread_choices),)
    threads = decide(Knob(f"threads {block}", block, choices=choices), None)
    outer, inner = sch.split(fused, [None, threads])
    sch.bind(inner, "threadIdx.x")
    return outer


# ---------------------------------------------------------------- steps


@dataclass(frozen=True)
class ReverseInline:
    """Compute the elementwise `block` inside its producer (here: the register write-back)."""

    block: str

    def apply(self, sch: Schedule, decide: Decide) -> None:
        sch.reverse_compute_inline(sch.get_sblock(self.block))

    def describe(self) -> str:
        return f"inline {self.block} into its producer"


@dataclass(frozen=True)
class BindTiles:
    """After a "SSSRRSRS" tiling of `block`: fuse the loops of spatial level 1, 2 and 3 and bind
    them to blockIdx.x, vthread.x and threadIdx.x."""

    block: str

    def apply(self, sch: Schedule, decide: Decide) -> None:
        n_spatial = analysis.block_info(sch, self.block).kinds.count(SPATIAL)
        loops = sch.get_loops(sch.get_sblock(self.block))
        levels = [loops[i * n_spatial:(i + 1) * n_spatial] for i in range(3)]
        for level, tag in zip(levels, ("blockIdx.x", "vthread.x", "threadIdx.x")):
            _fuse_and_bind(sch, level, tag)

    def describe(self) -> str:
        return f"bind the outer three spatial tile levels of {self.block} to blockIdx / vthread / threadIdx"


@dataclass(frozen=True)
class CacheReadShared:
    """Stage input `index` of the tiled `block` in shared memory at the first reduction level,
    fetched cooperatively: the copy's loops fused, split over the block's threads, and vectorized
    by a width chosen from those of `vector_choices` that divide a row of the staged region."""

    block: str
    index: int
    vector_choices: tuple[int, ...]

    def apply(self, sch: Schedule, decide: Decide) -> None:
        block = sch.get_sblock(self.block)
        n_reduction = analysis.block_info(sch, self.block).kinds.count(REDUCTION)
        cache = sch.cache_read(block, self.index, "shared")
        loops = sch.get_loops(block)
        at = loops[3 + n_reduction - 1]  # after blockIdx, vthread, threadIdx: the end of reduction level 1
        sch.compute_at(cache, at, preserve_unit_loops=True)
        depth = len(sch.get_loops(cache)) - len(sch.get_loops(cache)[:loops.index(at) + 1])
        inner = sch.get_loops(cache)[-depth:]  # one loop per dimension of the staged region
        row = int(sch.get(inner[-1]).extent)
        fused = sch.fuse(*inner) if len(inner) > 1 else inner[0]
        threads = _thread_extent(sch, self.block)
        # A vector must not cross a row of the staged region: its lanes would not be contiguous,
        # and TVM's vectorizer refuses such a copy at build time (seen on an H200: 3 of 64
        # conv programs with a weight row of 3 floats fetched 2 or 4 wide failed to build).
        widths = tuple(w for w in self.vector_choices if row % w == 0) or (1,)
        width = decide(Knob(f"vector {self.block}.read{self.index}", self.block, choices=widths), None)
        _, thread, vector = sch.split(fused, [None, threads, width])
        sch.bind(thread, "threadIdx.x")
        if width > 1:
            sch.vectorize(vector)

    def describe(self) -> str:
        return f"stage input {self.index} of {self.block} in shared memory, fetched by all threads"


@dataclass(frozen=True)
class BindThreads:
    """A block without tiling: fuse its outer spatial loops, split them into blocks of a chosen
    number of threads (from `thread_choices`), bind blockIdx.x / threadIdx.x."""

    block: str
    thread_choices: tuple[int, ...]

    def apply(self, sch: Schedule, decide: Decide) -> None:
        if not analysis.has_block(sch, self.block):
            return
        loops = sch.get_loops(sch.get_sblock(self.block))
        kinds = analysis.loop_kinds(sch, self.block, loops)
        spatial = []
        for loop, kind in zip(loops, kinds):
            if kind != SPATIAL:
                break
            spatial.append(loop)
        if not spatial:
            raise InvalidProgram(f"{self.block} has no spatial loop to bind")
        sch.bind(_split_over_threads(sch, decide, self.block, spatial, self.thread_choices), "blockIdx.x")

    def describe(self) -> str:
        return f"spread the spatial loops of {self.block} over blocks and threads"


@dataclass(frozen=True)
class CrossThreadReduction:
    """A reduction without reuse: each thread block owns some outputs, and its threads share
    the reduction (split it, bind the inner part to threadIdx.x; TVM lowers it to an allreduce),
    the number of threads chosen from `thread_choices`."""

    block: str
    thread_choices: tuple[int, ...]

    def apply(self, sch: Schedule, decide: Decide) -> None:
        block = sch.get_sblock(self.block)
        loops = sch.get_loops(block)
        kinds = analysis.loop_kinds(sch, self.block, loops)
        spatial = [l for l, k in zip(loops, kinds) if k == SPATIAL]
        reduction = [l for l, k in zip(loops, kinds) if k == REDUCTION]
        if not spatial or not reduction:
            raise InvalidProgram(f"{self.block} needs spatial and reduction loops")
        sch.reorder(*spatial, *reduction)
        _split_over_threads(sch, decide, self.block, reduction, self.thread_choices)
        _fuse_and_bind(sch, spatial, "blockIdx.x")

    def describe(self) -> str:
        return f"reduce {self.block} across the threads of a block"


# ---------------------------------------------------------------- rules


def _reused_inputs(sch: Schedule, block: str) -> list[int]:
    """Read-buffer indices worth staging in shared memory: those that skip a spatial iterator."""
    info = analysis.block_info(sch, block)
    spatial = {n for n, k, e in zip(info.iter_names, info.kinds, info.extents) if k == SPATIAL and e > 1}
    return [i for i, (_, index_vars) in enumerate(analysis.read_buffers(sch, block))
            if spatial - (frozenset().union(*index_vars) if index_vars else frozenset())]


def inline_injective(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    """On a GPU even padding is cheap to recompute: inline every non-output block without a
    reduction whose consumers take it (the shared-memory fetch then pads on the fly)."""
    sch = d.sch
    if (analysis.is_output_block(sch, block) or analysis.block_info(sch, block).has_reduction
            or not analysis.consumers(sch, block)):
        return Outcome.PASS, []
    try:
        return Outcome.APPLY_AND_SKIP_REST, [d.then(Inline(block))]
    except Exception:  # TVM refuses (e.g. a consumer reads it non-elementwise in a way it cannot inline)
        return Outcome.PASS, []


def gpu_multi_level_tiling(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    if not needs_multi_level_tiling(d.sch, block):
        return Outcome.PASS, []
    tiling = MultiLevelTile(block, config.gpu_tile_structure, config.max_innermost_tile)
    cache = CacheWrite(block, "local")
    consumer = single_elementwise_consumer(d.sch, block)
    steps: list[Step] = [tiling, cache]
    if consumer is not None:
        steps.append(ReverseInline(consumer))
    steps += [FuseConsumer(block, cache.writer, tiling, 3), BindTiles(block)]
    steps += [CacheReadShared(block, i, config.gpu_vector_choices) for i in _reused_inputs(d.sch, block)]
    return Outcome.APPLY_AND_SKIP_REST, [d.then(*steps)]


def cross_thread_reduction(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    info = analysis.block_info(d.sch, block)
    if not info.has_reduction or needs_multi_level_tiling(d.sch, block) or info.reduction_size < 32:
        return Outcome.PASS, []
    return Outcome.APPLY_AND_SKIP_REST, [d.then(CrossThreadReduction(block, config.gpu_thread_choices))]


# Every GPU rule by name. SearchConfig.gpu_sketch_rules lists the ones in use, in the order they
# are tried; register another by adding it here.
GPU_SKETCH_RULES: dict[str, Rule] = {rule.__name__: rule for rule in (
    always_inline, inline_injective, gpu_multi_level_tiling, cross_thread_reduction, skip_stage)}


def gpu_rules(config: SearchConfig) -> tuple[Rule, ...]:
    return tuple(GPU_SKETCH_RULES[name] for name in config.gpu_sketch_rules)


def gpu_annotation_steps(d: Derivation, config: SearchConfig) -> tuple[Step, ...]:
    """Blocks the rules left alone get threads; every reduction an unroll depth and its
    initialization hoisted out of the reduction loops."""
    sch, steps = d.sch, d.steps
    handled = {s.block for s in steps if isinstance(s, (BindTiles, CrossThreadReduction))}
    handled |= {s.consumer for s in steps if isinstance(s, FuseConsumer)}
    names = analysis.block_names(sch)
    out: list[Step] = [BindThreads(b, config.gpu_thread_choices) for b in names
                       if b not in handled and not is_tiled(steps, b) and not _bound_loops(sch, b)]
    reducing = [b for b in names if analysis.block_info(sch, b).has_reduction]
    out += [Unroll(b, config.unroll_steps) for b in reducing]
    return tuple(out) + tuple(DecomposeReduction(b) for b in reducing if b not in handled or is_tiled(steps, b))


def check_gpu_limits(mod: tvm.IRModule, target: tvm.target.Target) -> None:
    """Raise InvalidProgram if `mod` exceeds `target`'s threads, shared memory or registers."""
    if not _gpu_code_verifier(target).apply(Schedule(mod)):
        raise InvalidProgram("exceeds the GPU's limits (threads, shared memory or registers per block)")


_VERIFIERS: dict[str, object] = {}  # str(target) -> its VerifyGPUCode postproc


def _gpu_code_verifier(target: tvm.target.Target):
    """MetaSchedule's VerifyGPUCode postproc, set up once per target (intrinsics.tune_context:
    without registering every tensor intrinsic TVM has, which took 40-50 s per process)."""
    from tvm.s_tir import meta_schedule as ms

    key = str(target)
    if key not in _VERIFIERS:
        _VERIFIERS[key] = ms.postproc.VerifyGPUCode()
        _VERIFIERS[key]._initialize_with_tune_context(tune_context(target, intrinsics=False))
    return _VERIFIERS[key]
