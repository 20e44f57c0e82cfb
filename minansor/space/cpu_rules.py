"""The CPU sketch rules (Ansor's, plus tiling for AMX and VNNI) and where random annotation
decides on a CPU.

Every rule is registered by name in `SKETCH_RULES`; `SearchConfig.cpu_sketch_rules` lists the
ones in use, in the order they are tried (the engine is sketch.py). `annotation_steps` then lists
the open decisions of a finished derivation: compute locations of the blocks the rules left
movable, then vectorize / parallel / unroll per block.
"""

from __future__ import annotations

from tvm.s_tir import Schedule

from ..config import SearchConfig
from ..tir import amx, analysis, layout_rewrite, vnni
from .sketch import (Derivation, Outcome, Rule, always_inline, constant_inputs, is_tiled, needs_multi_level_tiling,
                     single_elementwise_consumer, skip_stage)
from .steps import (CacheWrite, ComputeLocation, DecomposeReduction, FuseConsumer, MultiLevelTile, Parallel,
                    RewriteLayout, Rfactor, Step, Tensorize, TileForIntrinsic, TileForMicroKernel, Unroll,
                    Vectorize, VectorizeUnderReduction)

# SearchConfig.layout_rewrite. always: a derived step of every tiled sketch; optional: sketches
# with and without it; off: none.
LAYOUT_REWRITES = ("always", "optional", "off")


def layout_choices(sch: Schedule, block: str, config: SearchConfig) -> list[tuple[Step, ...]]:
    """How the constant inputs of a block about to be tiled may be stored: rewritten into its
    tile order, as they are, or both as separate sketches (`SearchConfig.layout_rewrite`)."""
    read = constant_inputs(sch, block)
    if not read or config.layout_rewrite == "off":
        return [()]
    rewrite = tuple(RewriteLayout(block, buffer) for buffer in read)
    return [rewrite] if config.layout_rewrite == "always" else [rewrite, ()]


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
    return Outcome.APPLY_AND_SKIP_REST, tiled_around(d, block, config, TileForIntrinsic(block, vnni.VNNI_INTRIN))


def tiled_around(d: Derivation, block: str, config: SearchConfig,
                 intrinsic: TileForIntrinsic | TileForMicroKernel) -> list[Derivation]:
    """The sketches of a block tiled for an intrinsic: the loops outside it multi-level tiled,
    its elementwise consumer fused at each level or not, its constant inputs always packed."""
    consumer = single_elementwise_consumer(d.sch, block)
    tiling = MultiLevelTile(intrinsic.outer, config.cpu_tile_structure, config.max_innermost_tile)
    packing = tuple(RewriteLayout(intrinsic.outer, buffer) for buffer in constant_inputs(d.sch, block))
    fused = [d.then(intrinsic, tiling, FuseConsumer(intrinsic.outer, consumer, tiling, level), *packing)
             for level in config.fusion_levels] if consumer else []
    return fused + [d.then(intrinsic, tiling, *packing)]


def multi_level_tiling_with_amx(d: Derivation, block: str,
                                config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    """A uint8 x int8 -> int32 multiply-accumulate on a CPU with AMX: its innermost loops become
    one call of a register-blocked AMX micro-kernel (amx.py: several accumulator tiles held
    across the whole input-channel reduction), and the loops around it are tiled and fused like
    any other block's. The weight is always packed, into the layout B tiles are loaded in.
    Where no micro-kernel fits (or one would not tensorize, e.g. a strided convolution, whose
    rows are not one stride apart) the VNNI rule takes the block."""
    if not config.amx or not needs_multi_level_tiling(d.sch, block):
        return Outcome.PASS, []
    kernel = amx.fit(d.sch, block)
    if kernel is None:
        return Outcome.PASS, []
    intrinsic = TileForMicroKernel(block, kernel)
    packing = tuple(RewriteLayout(intrinsic.outer, buffer) for buffer in constant_inputs(d.sch, block))
    if not _tensorizes(d, intrinsic, packing):
        return Outcome.PASS, []
    return Outcome.APPLY_AND_SKIP_REST, tiled_around(d, block, config, intrinsic)


def _tensorizes(d: Derivation, tiling: TileForMicroKernel, packing: tuple[Step, ...]) -> bool:
    """Whether the block, tiled for the intrinsic as it stands and its constants packed, is
    tensorized by it (tried on a copy)."""
    trial = d.sch.copy()
    try:
        for step in (tiling, *packing, Tensorize(tiling.outer, tiling.intrin, tiling.kernel.skip_init)):
            step.apply(trial, lambda knob, preferred: None)
    except Exception:  # TVM reports a mismatch as any of several errors: the rule then does not apply
        return False
    return True


# A transpose's spatial loops in two levels: tiles small enough that the lines its strided side
# touches stay in cache while the contiguous side is walked.
TRANSPOSE_TILE_STRUCTURE = "SS"


def tile_transpose(d: Derivation, block: str, config: SearchConfig) -> tuple[Outcome, list[Derivation]]:
    """A block that reads along another axis than it writes (a layout transpose) is tiled in two
    levels of its spatial loops, so each tile reads whole cache lines and writes whole vectors.
    `APPLY`: the untiled loop nest stays a sketch too. Not in Ansor, whose transposes run in the
    loop order of their output."""
    info = analysis.block_info(d.sch, block)
    if (info.has_reduction or is_tiled(d.steps, block) or len(info.kinds) < 2
            or not analysis.transposes(d.sch, block)):
        return Outcome.PASS, []
    return Outcome.APPLY, [d.then(MultiLevelTile(block, TRANSPOSE_TILE_STRUCTURE, config.max_innermost_tile))]


# Every CPU rule by name. SearchConfig.cpu_sketch_rules lists the ones in use, in the order they
# are tried; register another by adding it here (examples/add_sketch_rule.py).
SKETCH_RULES: dict[str, Rule] = {rule.__name__: rule for rule in (
    always_inline, add_rfactor, add_cache_write, multi_level_tiling_with_amx, multi_level_tiling_with_vnni, multi_level_tiling_with_fusion,
    multi_level_tiling, tile_transpose, skip_stage)}


def cpu_rules(config: SearchConfig) -> tuple[Rule, ...]:
    return tuple(SKETCH_RULES[name] for name in config.cpu_sketch_rules)


# ---------------------------------------------------------------- annotation


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
    intrinsics = {s.outer: s.intrin for s in steps if isinstance(s, (TileForIntrinsic, TileForMicroKernel))}
    skip_init = {s.outer: s.kernel.skip_init for s in steps if isinstance(s, TileForMicroKernel)}
    out: list[Step] = [ComputeLocation(b, inline=not set(analysis.consumers(sch, b)) & set(intrinsics))
                       for b in reversed(movable)]
    reducing = [b for b in names if analysis.block_info(sch, b).has_reduction]
    tiled = {b for b in names if is_tiled(steps, b)}
    for b in names:
        vectorize = [] if b in intrinsics else [Vectorize(b, config.max_vector_length, config.vector_preferred_loops)]
        if b in reducing and b not in tiled:
            vectorize.insert(0, VectorizeUnderReduction(b, config.max_vector_length))
        unroll = [Unroll(b, config.unroll_steps)] if b in reducing else []
        out += [*vectorize, Parallel(b, config.parallel_extent), *unroll]
    out += [DecomposeReduction(b) for b in reducing if b not in intrinsics]
    return tuple(out) + tuple(Tensorize(b, intrin, skip_init.get(b)) for b, intrin in intrinsics.items())
