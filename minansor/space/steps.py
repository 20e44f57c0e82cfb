"""Transform steps: the small language sketches and programs are written in.

A step is a self-contained action: its fields name the blocks it works on and the bounds of
its knobs (the largest innermost tile, the unroll choices, ...), frozen in when the sketch is
derived. Every number it leaves open (a split factor, a compute location, how many loops to
parallelize) comes from a *knob* it asks a `Decide` callback to settle. Sampling a program and
replaying one are the same walk over the steps with two different callbacks (see `program.py`),
so a program is just (sketch, decisions), and a sketch prints, hashes and replays without the
search settings it was derived under.

Steps are frozen dataclasses: hashable, printable, comparable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tvm.s_tir import Schedule
from tvm.s_tir.schedule.transform import tile_with_tensor_intrin

from ..tir import amx, analysis, layout_rewrite
from ..tir import vnni  # noqa: F401  registers the VNNI intrinsic, which the steps look up by name
from ..tir.analysis import REDUCTION, SPATIAL


class InvalidProgram(Exception):
    """A program whose decisions do not fit its sketch or that TVM refuses to schedule."""


@dataclass(frozen=True)
class Knob:
    """One open decision. A tile knob splits `extent` into `parts` factors (the innermost at
    most `max_innermost`); a choice knob picks one of `choices`."""

    name: str
    block: str  # the block it shapes; crossover swaps knobs block by block
    choices: tuple = ()
    extent: int = 0
    parts: int = 0
    max_innermost: int = 0

    @property
    def is_tile(self) -> bool:
        return self.parts > 0

    @property
    def kind(self) -> str:
        """tile, location, vectorize, parallel or unroll: the first word of the name."""
        return self.name.split(" ", 1)[0]

    def admits(self, value: Any) -> bool:
        if not self.is_tile:
            return value in self.choices
        if not isinstance(value, tuple) or len(value) != self.parts or any(f < 1 for f in value):
            return False
        return math.prod(value) == self.extent and value[-1] <= self.max_innermost


# (knob, preferred values or None) -> value. `preferred` is where random annotation should
# sample from (e.g. Ansor's rule for the parallel extent); replay ignores it.
Decide = Callable[[Knob, Sequence | None], Any]


class Step(Protocol):
    def apply(self, sch: Schedule, decide: Decide) -> None: ...

    def describe(self) -> str: ...


def _loop_name(sch: Schedule, loop) -> str:
    return sch.get(loop).loop_var.name


# ---------------------------------------------------------------- structure (sketch) steps


@dataclass(frozen=True)
class Inline:
    block: str

    def apply(self, sch: Schedule, decide: Decide) -> None:
        sch.compute_inline(sch.get_sblock(self.block))

    def describe(self) -> str:
        return f"inline {self.block} into its consumers"


@dataclass(frozen=True)
class CacheWrite:
    """Compute `block` into a local buffer; a new block `<block>_<scope>` writes it back."""

    block: str
    scope: str = "local"

    @property
    def writer(self) -> str:
        return f"{self.block}_{self.scope}"

    def apply(self, sch: Schedule, decide: Decide) -> None:
        sch.cache_write(sch.get_sblock(self.block), 0, self.scope)

    def describe(self) -> str:
        return f"cache_write {self.block} into scope {self.scope!r} (written back by {self.writer})"


@dataclass(frozen=True)
class MultiLevelTile:
    """Split every loop of `block` into one factor per level of `structure` ("SSRSRS": spatial
    loops get 4 levels, reduction loops 2) and reorder level by level; no innermost factor
    exceeds `max_innermost`."""

    block: str
    structure: str
    max_innermost: int

    def apply(self, sch: Schedule, decide: Decide) -> None:
        block = sch.get_sblock(self.block)
        levels: dict[str, list[list]] = {SPATIAL: [], REDUCTION: []}
        loops = sch.get_loops(block)
        for loop, kind in zip(loops, analysis.loop_kinds(sch, self.block, loops)):
            kind = kind or SPATIAL
            parts = self.structure.count(kind)
            if parts == 0:
                raise InvalidProgram(f"structure {self.structure} has no level for {kind} loops")
            extent = int(sch.get(loop).extent)
            knob = Knob(f"tile {self.block}.{_loop_name(sch, loop)}", self.block, extent=extent, parts=parts,
                        max_innermost=self.max_innermost)
            levels[kind].append(sch.split(loop, list(decide(knob, None))))
        order, taken = [], {SPATIAL: 0, REDUCTION: 0}
        for kind in self.structure:
            order.extend(split[taken[kind]] for split in levels[kind])
            taken[kind] += 1
        sch.reorder(*order)

    def level_end(self, n_spatial: int, n_reduction: int, level: int) -> int:
        """Index (among the tiled loops) of the innermost loop of the level-th spatial level."""
        seen_spatial, position = 0, 0
        for kind in self.structure:
            position += n_spatial if kind == SPATIAL else n_reduction
            if kind == SPATIAL:
                seen_spatial += 1
                if seen_spatial == level:
                    return position - 1
        raise InvalidProgram(f"structure {self.structure} has no spatial level {level}")

    def describe(self) -> str:
        return f"multi-level tile {self.block} as {self.structure}"


@dataclass(frozen=True)
class FuseConsumer:
    """Compute the elementwise `consumer` inside the tiles of `block`, under spatial level
    `level` (1 = the outermost tile)."""

    block: str
    consumer: str
    tiling: MultiLevelTile
    level: int

    def apply(self, sch: Schedule, decide: Decide) -> None:
        info = analysis.block_info(sch, self.block)
        n_spatial = info.kinds.count(SPATIAL)
        index = self.tiling.level_end(n_spatial, len(info.kinds) - n_spatial, self.level)
        loops = sch.get_loops(sch.get_sblock(self.block))
        sch.reverse_compute_at(sch.get_sblock(self.consumer), loops[index], preserve_unit_loops=True)

    def describe(self) -> str:
        return f"fuse {self.consumer} into {self.block} at tile level {self.level}"


@dataclass(frozen=True)
class Rfactor:
    """Split the reduction of `block` in two and turn one half (`outer` or `inner`) into a
    spatial axis of a new block `<block>_rf`, so a long reduction can run in parallel or in
    vector lanes."""

    block: str
    factor: str  # "outer" | "inner"
    max_innermost: int  # largest inner factor of the split

    def apply(self, sch: Schedule, decide: Decide) -> None:
        block = sch.get_sblock(self.block)
        loops = sch.get_loops(block)
        reduction = [l for l, k in zip(loops, analysis.loop_kinds(sch, self.block, loops)) if k == REDUCTION]
        if not reduction:
            raise InvalidProgram(f"{self.block} has no reduction loop to rfactor")
        loop = reduction[0] if len(reduction) == 1 else sch.fuse(*reduction)
        extent = int(sch.get(loop).extent)
        knob = Knob(f"tile {self.block}.{_loop_name(sch, loop)}", self.block, extent=extent, parts=2,
                    max_innermost=self.max_innermost)
        outer, inner = sch.split(loop, list(decide(knob, None)))
        # The new axis goes last in the rfactor buffer, so vector lanes run along it.
        output_dims = analysis.block_info(sch, self.block).kinds.count(SPATIAL)
        sch.rfactor(outer if self.factor == "outer" else inner, output_dims)

    def describe(self) -> str:
        return f"rfactor the {self.factor} part of the reduction of {self.block} into {self.block}_rf"


@dataclass(frozen=True)
class RewriteLayout:
    """Store the constant input `buffer` of the tiled `block` in the order the tiles read it
    (layout_rewrite.py). It follows the tiling, so its layout is decided by the tile sizes;
    the packing stage it adds runs once at compile time, never in a measured kernel."""

    block: str
    buffer: str

    def apply(self, sch: Schedule, decide: Decide) -> None:
        layout_rewrite.rewrite_layout(sch, self.block, self.buffer)

    def describe(self) -> str:
        return f"rewrite the layout of {self.buffer} into the tile order of {self.block} (packed at compile time)"


@dataclass(frozen=True)
class TileForIntrinsic:
    """Split the loops of `block` so that its innermost iterations are exactly one call of the
    tensor intrinsic `intrin` (vnni.py), and wrap everything outside them in a new block
    `<block>_o`: the block that multi-level tiling then tiles, and that `Tensorize` replaces
    by the intrinsic once annotation is done."""

    block: str
    intrin: str

    @property
    def outer(self) -> str:
        return f"{self.block}_o"

    def apply(self, sch: Schedule, decide: Decide) -> None:
        loop = tile_with_tensor_intrin(sch, sch.get_sblock(self.block), self.intrin)
        if loop is None:
            raise InvalidProgram(f"the loops of {self.block} do not hold the intrinsic {self.intrin}")
        sch.blockize(loop)

    def describe(self) -> str:
        return f"tile {self.block} for the intrinsic {self.intrin} (the rest of its loops: block {self.outer})"


@dataclass(frozen=True)
class TileForMicroKernel:
    """`TileForIntrinsic` for an AMX micro-kernel (amx.py), whose shape its fields give: the
    innermost loops become the kernel's M x N x K nest, the reduction split in groups (4 int8, 2
    bf16) with the groups moved outside the N loop, so that the layout rewrite packs the weight
    in the `[K/4, N, 4]` (`[K/2, N, 2]`) order a B tile is loaded in; a kernel with a window takes the conv's window
    loops inside too, around that nest. Everything outside is block `<block>_o`."""

    block: str
    kernel: amx.MicroKernel

    @property
    def outer(self) -> str:
        return f"{self.block}_o"

    @property
    def intrin(self) -> str:
        return self.kernel.intrinsic

    def apply(self, sch: Schedule, decide: Decide) -> None:
        block = sch.get_sblock(self.block)
        if tile_with_tensor_intrin(sch, block, self.kernel.loops) is None:
            raise InvalidProgram(f"the loops of {self.block} do not hold the AMX micro-kernel {self.kernel}")
        loops = sch.get_loops(block)
        outer, (i, j, k) = loops[:-3], loops[-3:]
        k4, k1 = sch.split(k, [None, self.kernel.product.group])
        window = []
        if self.kernel.has_window:  # the conv's kernel window goes inside, right around the M x N x K nest
            kinds = analysis.loop_kinds(sch, self.block, outer)
            window = [n for n, (loop, kind) in enumerate(zip(outer, kinds))
                      if kind == REDUCTION and int(sch.get(loop).extent) > 1]
            if tuple(int(sch.get(outer[n]).extent) for n in window) != self.kernel.window:
                raise InvalidProgram(f"the reduction loops of {self.block} are not the window {self.kernel.window}")
        rest = [loop for n, loop in enumerate(outer) if n not in window]
        sch.reorder(*rest, *(outer[n] for n in window), i, k4, j, k1)
        sch.blockize(outer[window[0]] if window else i)

    def describe(self) -> str:
        (m, n, k), (kh, kw) = self.kernel.shape, self.kernel.window
        window = f" over a {kh}x{kw} window" if self.kernel.has_window else ""
        return (f"tile {self.block} for the AMX micro-kernel {m}x{n}x{k}{window} ({self.kernel.mt}x{self.kernel.nt} "
                f"accumulator tiles; the rest of its loops: block {self.outer})")


# ---------------------------------------------------------------- annotation steps


@dataclass(frozen=True)
class ComputeLocation:
    """Where `block` is computed: inlined, at the root, or under any loop of its single
    consumer (deep inside a reduction loop, a producer makes only the slice that iteration reads)."""

    block: str
    # Not into a tensor intrinsic, whose operands must be buffers. Left out of the repr (the
    # fingerprint of a sketch): a sketch with a TileForIntrinsic step already tells it apart.
    inline: bool = field(default=True, repr=False)

    def apply(self, sch: Schedule, decide: Decide) -> None:
        (consumer,) = analysis.consumers(sch, self.block) or (None,)
        loops = sch.get_loops(sch.get_sblock(consumer)) if consumer is not None else []
        places = ("inline", "root") if self.inline else ("root",)
        choice = decide(Knob(f"location {self.block}", self.block, choices=(*places, *range(len(loops)))), None)
        if choice == "inline":
            sch.compute_inline(sch.get_sblock(self.block))
        elif choice != "root":
            sch.compute_at(sch.get_sblock(self.block), loops[choice], preserve_unit_loops=True)

    def describe(self) -> str:
        return f"choose where {self.block} is computed (inline / root / a loop of its consumer)"


@dataclass(frozen=True)
class Vectorize:
    """Fuse the innermost spatial loops of `block` (how many is the knob) and vectorize them.
    Random annotation fuses `preferred_loops` of them (one by default: fusing more loops into
    one vector turns contiguous accesses into gathers; random programs of YOLO convs ran 2x
    slower, measured at commit a13e0ed), and none when the innermost loop is longer than
    `max_length`."""

    block: str
    max_length: int
    preferred_loops: int

    def apply(self, sch: Schedule, decide: Decide) -> None:
        if not analysis.has_block(sch, self.block):
            return  # inlined by an earlier decision
        candidates = []  # innermost first
        loops = sch.get_loops(sch.get_sblock(self.block))
        for loop, kind in reversed(list(zip(loops, analysis.loop_kinds(sch, self.block, loops)))):
            if kind != SPATIAL or sch.get(loop).kind != 0:
                break
            nested = (analysis.body_is_single_block(sch, loop) if not candidates
                      else analysis.is_perfect_child(sch, loop, candidates[-1]))
            if not nested:
                break
            candidates.append(loop)
        if not candidates:
            return
        fits = int(sch.get(candidates[0]).extent) <= self.max_length or bool(vector_widths(
            int(sch.get(candidates[0]).extent), self.max_length))
        preferred = min(self.preferred_loops, len(candidates)) if fits else 0
        count = decide(Knob(f"vectorize {self.block}", self.block, choices=tuple(range(len(candidates) + 1))),
                       (preferred,))
        if not count:
            return
        chosen = candidates[:count][::-1]
        loop = sch.fuse(*chosen) if count > 1 else chosen[0]
        extent = int(sch.get(loop).extent)
        if extent > self.max_length:  # too long for one vector: a vector of it, split off inside
            widths = vector_widths(extent, self.max_length)
            if not widths:
                raise InvalidProgram(f"no vector width up to {self.max_length} divides {extent}")
            width = decide(Knob(f"vectorize width {self.block}", self.block, choices=widths), None)
            loop = sch.split(loop, [None, width])[1]
        sch.vectorize(loop)

    def describe(self) -> str:
        return f"vectorize the innermost spatial loops of {self.block}"


def vector_widths(extent: int, max_length: int) -> tuple[int, ...]:
    """The powers of two from 4 to `max_length` that divide `extent`: vectors a loop splits into."""
    return tuple(w for w in (4, 8, 16, 32, 64, 128) if w <= max_length and extent % w == 0)


@dataclass(frozen=True)
class VectorizeUnderReduction:
    """A block whose innermost loops are reductions (a pooling window, a sum over rows): a vector
    of its innermost spatial loop split off, moved under the reduction loops and vectorized, so a
    max-pool takes the maximum of whole vectors of channels across its window. The width is the
    knob (1: left alone); random annotation prefers a vector where the loop walks the contiguous
    axis of the output, where a vector is one load."""

    block: str
    max_length: int

    def apply(self, sch: Schedule, decide: Decide) -> None:
        if not analysis.has_block(sch, self.block):
            return
        loops = sch.get_loops(sch.get_sblock(self.block))
        kinds = analysis.loop_kinds(sch, self.block, loops)
        spatial = [i for i, kind in enumerate(kinds) if kind == SPATIAL]
        if not spatial or spatial[-1] == len(loops) - 1 or any(k != REDUCTION for k in kinds[spatial[-1] + 1:]):
            return
        loop, chain = loops[spatial[-1]], loops[spatial[-1]:]
        widths = vector_widths(int(sch.get(loop).extent), self.max_length)
        if not widths or sch.get(loop).kind != 0:
            return
        if not (all(analysis.is_perfect_child(sch, a, b) for a, b in zip(chain, chain[1:]))
                and analysis.body_is_single_block(sch, chain[-1])):
            return  # a producer computed inside the window: the loops cannot be reordered
        contiguous = analysis.drives_contiguous_write(sch, self.block, loop)
        width = decide(Knob(f"vectorize under-reduction {self.block}", self.block, choices=(1, *widths)),
                       widths if contiguous else (1,))
        if width > 1:
            inner = sch.split(loop, [None, width])[1]
            sch.reorder(*loops[spatial[-1] + 1:], inner)
            sch.vectorize(inner)

    def describe(self) -> str:
        return f"vectorize a spatial loop of {self.block} under its reduction loops"


@dataclass(frozen=True)
class Parallel:
    """Fuse the outer spatial loops of a root-level `block` and run them in parallel. Random
    annotation fuses until the extent reaches `min_extent` (Ansor: 16 x cores); the knob (how
    many loops) is what mutation varies."""

    block: str
    min_extent: int

    def apply(self, sch: Schedule, decide: Decide) -> None:
        if not analysis.has_block(sch, self.block):
            return
        block = sch.get_sblock(self.block)
        if not analysis.is_root_level(sch, block):
            return
        candidates = []
        loops = sch.get_loops(block)
        for loop, kind in zip(loops, analysis.loop_kinds(sch, self.block, loops)):
            if kind != SPATIAL or sch.get(loop).kind != 0:
                break
            if candidates and not analysis.is_perfect_child(sch, candidates[-1], loop):
                break
            candidates.append(loop)
        if not candidates:
            return
        rule, product = len(candidates), 1
        for count, extent in enumerate(analysis.loop_extents(sch, candidates), start=1):
            product *= extent
            if product >= self.min_extent:
                rule = count
                break
        count = decide(Knob(f"parallel {self.block}", self.block, choices=tuple(range(len(candidates) + 1))), (rule,))
        if count:
            chosen = candidates[:count]
            sch.parallel(sch.fuse(*chosen) if count > 1 else chosen[0])

    def describe(self) -> str:
        return f"parallelize the outer spatial loops of {self.block}"


@dataclass(frozen=True)
class Unroll:
    """Ask the compiler to unroll the loop nest of `block` up to a chosen number of steps."""

    block: str
    choices: tuple[int, ...]  # auto_unroll_max_step values

    def apply(self, sch: Schedule, decide: Decide) -> None:
        if not analysis.has_block(sch, self.block):
            return
        loops = sch.get_loops(sch.get_sblock(self.block))
        if not loops:
            return
        steps = decide(Knob(f"unroll {self.block}", self.block, choices=self.choices), None)
        if steps:
            sch.annotate(loops[0], "pragma_auto_unroll_max_step", int(steps))
            sch.annotate(loops[0], "pragma_unroll_explicit", 1)

    def describe(self) -> str:
        return f"choose the auto-unroll depth of {self.block}"


@dataclass(frozen=True)
class DecomposeReduction:
    """Hoist the reduction's initialization out of the reduction loops into its own block, so
    the innermost loops carry no `if first iteration` branch and vectorize cleanly."""

    block: str

    def apply(self, sch: Schedule, decide: Decide) -> None:
        if analysis.has_block(sch, self.block):
            decompose_reduction(sch, self.block)

    def describe(self) -> str:
        return f"initialize {self.block} outside its reduction loops"


def decompose_reduction(sch: Schedule, name: str):
    """Move the initialization of block `name` out of its first reduction loop; returns (the
    block, its initialization block or None)."""
    block = sch.get_sblock(name)
    loops = sch.get_loops(block)
    first_reduction = next((l for l, k in zip(loops, analysis.loop_kinds(sch, name, loops)) if k == REDUCTION), None)
    return block, (sch.decompose_reduction(block, first_reduction) if first_reduction is not None else None)


@dataclass(frozen=True)
class Tensorize:
    """Replace the body of the outer block of a `TileForIntrinsic` by the intrinsic. The
    intrinsic only accumulates, so the reduction's initialization first moves out of the
    reduction loops; an `init_intrin` then replaces that initialization too (an AMX kernel that
    starts from zeroed tiles needs none). The last step of a program: every loop around the
    intrinsic is settled."""

    block: str
    intrin: str
    init_intrin: str | None = None

    def apply(self, sch: Schedule, decide: Decide) -> None:
        block, init = decompose_reduction(sch, self.block)
        sch.tensorize(block, self.intrin)
        if self.init_intrin:
            sch.tensorize(init, self.init_intrin)

    def describe(self) -> str:
        return f"tensorize {self.block} with {self.intrin}" + (f" (its init with {self.init_intrin})"
                                                              if self.init_intrin else "")
