"""Layout rewrite of constant tensors: a weight stored in the order its tiled loop nest reads it.

Ansor: "because changing the layout of constant tensors can be done at compile time with no
runtime overhead, rewrite the layout of constant tensors according to the multi-level split
structure to make it as cache-friendly as possible". A conv weight `W[co, ci, kh, kw]` read by
a nest tiled `co0 ci0 .. co1 .. ci1 kh kw .. co2` becomes `W'[co0, ci0, .., co1, .., ci1, kh,
kw, .., co2]`: one dimension per tile loop that moves along it, outermost first, so the
innermost tile is contiguous and every tile of the weight is one block of memory.

Which inputs are constants the task says: the PrimFunc attribute `layout_free_buffers` (the
parameter indices), the one MetaSchedule's `RewriteLayout` postproc and Relax's
`AttachAttrLayoutFreeBuffers` use. The rewrite itself is TVM's usual form, so that every TVM
tool understands it: a `cache_read` of the weight into a global buffer, annotated
`meta_schedule.layout_rewrite_preproc`, whose layout `transform_layout` then changes. That
block is the packing stage:

- measurement times the kernel alone (`kernel`: the packing block removed, the packed weight
  a parameter, as MetaSchedule's builder does), on weights already in the packed layout;
- the numerical check packs the weights with the program's own packing stage (`pack_inputs`)
  and compares the kernel's outputs with the untuned program's on the original weights;
- a network splits the stage out (`relax.transform.SplitLayoutRewritePreproc`) and folds it
  into its constants at compile time (network/run.py).
"""

from __future__ import annotations

import math

import numpy as np
import tvm
from tvm import tirx
from tvm.s_tir import Schedule
from tvm.s_tir.stmt import SBlockRealize
from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

from . import analysis

LAYOUT_FREE_ATTR = "layout_free_buffers"  # PrimFunc attribute: indices of the constant parameters
PACKING_ATTR = "meta_schedule.layout_rewrite_preproc"  # block annotation of a packing stage


def layout_free_params(func: tirx.PrimFunc) -> tuple[int, ...]:
    """Indices of the parameters a compiler may store in any layout (constant weights)."""
    marked = func.attrs.get(LAYOUT_FREE_ATTR) if func.attrs is not None else None
    return tuple(sorted(int(i) for i in marked)) if marked is not None else ()


def mark_layout_free(func: tirx.PrimFunc, params: tuple[int, ...]) -> tirx.PrimFunc:
    """`func` with exactly `params` marked layout-free (none: the attribute removed)."""
    if params:
        return func.with_attr(LAYOUT_FREE_ATTR, [int(i) for i in params])
    return func.without_attr(LAYOUT_FREE_ATTR) if layout_free_params(func) else func


def layout_free_buffers(sch: Schedule) -> set[str]:
    """Names of the layout-free parameter buffers of the scheduled function."""
    func = sch.mod["main"]
    return {func.params[i].name for i in layout_free_params(func)}


def is_packing_block(sch: Schedule, block: str) -> bool:
    return PACKING_ATTR in sch.get(sch.get_sblock(block)).annotations


def tile_order(sch: Schedule, block: str, buffer: str) -> list[tuple[int, int, int, int]]:
    """How the loop nest of `block` walks `buffer`: for every loop of extent > 1 that moves
    along a dimension of it, outermost first, (dimension, loop extent, stride, granule): the loop
    steps the index by `stride * granule`. Each index of the buffer must be a sum of block
    iterators, each moving it along one dimension (as weights are read). A block tiled for a
    tensor intrinsic reads the buffer through the block inside it: the walk goes on into that
    block's loops, so the intrinsic's tile comes last, in the order the intrinsic reads it; the
    loops outside step in whole intrinsic tiles (`granule`), so that the packed index of the
    intrinsic's tile is its own iterators alone, as tensorization needs."""
    chain = readers(sch, block, buffer)
    binding, level = {}, {}
    for depth, name in enumerate(chain):
        realized = analysis.realize(sch, name)
        for iv, value in zip(realized.block.iter_vars, realized.iter_values):
            binding[iv.var.name], level[iv.var.name] = value, depth
    region = next(r for r in analysis.realize(sch, chain[-1]).block.reads if r.source.name == buffer)
    dims = []
    for index in region.region:
        iterators = [v.name for v in tirx.analysis.undefined_vars(index.min)]
        # one iterator per block level (an outer tile and the intrinsic's part of it), never two of one block
        if any(name not in binding for name in iterators) or len({level[n] for n in iterators}) < len(iterators):
            raise ValueError(f"{buffer} is not indexed by plain iterators of {block}")
        dims.append({v.name for name in iterators for v in tirx.analysis.undefined_vars(binding[name])})
    walk = []  # (dimension, extent, inside the intrinsic)
    for depth, name in enumerate(chain):  # get_loops stops at the enclosing block
        for loop in sch.get_loops(sch.get_sblock(name)):
            extent, var = int(sch.get(loop).extent), sch.get(loop).loop_var.name
            moved = [d for d, loop_vars in enumerate(dims) if var in loop_vars]
            if extent > 1 and moved:
                if len(moved) > 1:
                    raise ValueError(f"a loop of {block} moves along several dimensions of {buffer}")
                walk.append((moved[0], extent, depth > 0))
    granule = {dim: math.prod(e for d, e, inner in walk if d == dim and inner) for dim, _, _ in walk}
    # A perfect split: a loop's stride along its dimension is the product of the inner loops' extents.
    return [(dim, extent, math.prod(e for d, e, i in walk[k + 1:] if d == dim and i == inner),
             1 if inner else granule[dim]) for k, (dim, extent, inner) in enumerate(walk)]


def readers(sch: Schedule, block: str, buffer: str) -> list[str]:
    """`block`, then the block inside it that reads `buffer`, and so on down to the innermost."""
    chain = [block]
    while True:
        inner = [name for name in (sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock(chain[-1])))
                 if any(r.source.name == buffer for r in analysis.realize(sch, name).block.reads)]
        if not inner:
            return chain
        chain.append(inner[0])


def rewrite_layout(sch: Schedule, block: str, buffer: str) -> None:
    """Pack `buffer` (a layout-free parameter read by the tiled `block`) in `tile_order`."""
    order = tile_order(sch, block, buffer)
    sblock = sch.get_sblock(block)
    read_index = next(i for i, r in enumerate(sch.get(sblock).reads) if r.source.name == buffer)
    packing = sch.cache_read(sblock, read_index, "global")
    sch.annotate(packing, PACKING_ATTR, 1)

    def packed_index(*index):
        return ([(index[dim] // granule if granule > 1 else index[dim]) // stride % extent
                 for dim, extent, stride, granule in order] or [index[0]])  # a single element

    sch.transform_layout(sblock, ("read", read_index), packed_index)


def kernel(mod: tvm.IRModule) -> tvm.IRModule:
    """The program as deployed and measured: packing stages removed, each packed buffer a
    parameter in place of the weight it packs (MetaSchedule's builder does the same)."""
    return RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)


def packings(mod: tvm.IRModule) -> dict[int, tirx.IndexMap]:
    """For every packed parameter of `mod` (a program with its packing stages): its index and
    the index map its packing stage applies, read off the stage itself."""
    func = mod["main"]
    position = {param.name: i for i, param in enumerate(func.params)}
    out = {}
    for node in analysis.walk(func.body):
        if isinstance(node, SBlockRealize) and PACKING_ATTR in node.block.annotations:
            store = node.block.body
            load = store.value
            out[position[load.source.name]] = tirx.IndexMap(list(load.indices), list(store.indices), None)
    return out


def packed_shapes(mod: tvm.IRModule) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(parameter, its shape, its packed shape) for every constant `mod` packs."""
    params = mod["main"].params
    return [(params[i].name, tuple(int(d) for d in params[i].shape),
             tuple(int(d) for d in index_map.map_shape(params[i].shape)))
            for i, index_map in sorted(packings(mod).items())]


def pack_inputs(mod: tvm.IRModule, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The arguments of `kernel(mod)` for these arguments of the original program: each packed
    parameter packed by `mod`'s own packing stage."""
    packed = list(inputs)
    for index, index_map in packings(mod).items():
        packed[index] = apply_index_map(index_map, inputs[index])
    return packed


def apply_index_map(index_map: tirx.IndexMap, array: np.ndarray) -> np.ndarray:
    """`array` moved to the layout `index_map` gives it: each element's new index evaluated for
    all elements at once with numpy (TVM's `IndexMap.map_tensor` walks the elements one by one,
    seconds for a network's weights)."""
    grid = {var.name: values for var, values in zip(index_map.initial_indices,
                                                     np.indices(array.shape, dtype=np.int64))}
    shape = tuple(int(d) for d in index_map.map_shape(list(array.shape)))
    out = np.zeros(shape, array.dtype)
    out[tuple(np.broadcast_to(analysis.evaluate(e, grid), array.shape) for e in index_map.final_indices)] = array
    return out
