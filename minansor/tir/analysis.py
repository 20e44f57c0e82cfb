"""Questions the search asks about a TensorIR program: what a block iterates over, what it
reads, how its loops nest. Read-only helpers over a `tvm.s_tir.Schedule`; nothing here changes
a schedule."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
from tvm import tirx
from tvm.s_tir import Schedule
from tvm.s_tir.schedule import SBlockRV
from tvm.s_tir.stmt import SBlock, SBlockRealize

SPATIAL, REDUCTION = "S", "R"

@contextmanager
def unchecked_schedule_methods() -> Iterator[None]:
    """Within this block, `Schedule` methods skip TVM's Python argument type check, which costs
    about eight times the call itself (3 ms instead of 29 ms to apply a conv program). The steps
    pass well-typed arguments by construction, and TVM still validates every primitive in C++.
    It patches the class, so it is scoped to the search's own walks over steps and restored
    after them: schedules built outside it (MetaSchedule's, a user's) keep their checks."""
    wrapped = {name: attr for name, attr in vars(Schedule).items() if hasattr(attr, "__wrapped__")}
    for name, attr in wrapped.items():
        setattr(Schedule, name, attr.__wrapped__)
    try:
        yield
    finally:
        for name, attr in wrapped.items():
            setattr(Schedule, name, attr)

_ITER_KIND = {0: SPATIAL, 2: REDUCTION}

# Calls that make a stage too costly to recompute at every use (Ansor's "expensive ops").
_EXPENSIVE_CALLS = ("exp", "log", "sqrt", "rsqrt", "pow", "tanh", "sigmoid", "erf", "fmod")


def _children(node) -> tuple:
    if isinstance(node, tirx.SeqStmt):
        return tuple(node.seq)
    if isinstance(node, SBlockRealize):
        return (node.block,)
    if isinstance(node, SBlock):
        return (node.body,) if node.init is None else (node.init, node.body)
    if isinstance(node, tirx.IfThenElse):
        return (node.then_case,) if node.else_case is None else (node.then_case, node.else_case)
    if hasattr(node, "body") and isinstance(node.body, tirx.Stmt):
        return (node.body,)
    return ()


def walk_nested(node, ancestors: tuple = ()) -> Iterator[tuple[Any, tuple]]:
    """(statement, the statements around it, outermost first) for every statement below `node`,
    pre-order: the one walker over TIR statements (TVM 0.27 has no Python statement visitor)."""
    yield node, ancestors
    inner = ancestors + (node,)
    for child in _children(node):
        yield from walk_nested(child, inner)


def walk(node) -> Iterator:
    """Every statement below `node`, pre-order."""
    return (stmt for stmt, _ in walk_nested(node))


def block_names(sch: Schedule) -> list[str]:
    """Names of the leaf blocks of the function, in program order."""
    root = sch.get_sblock("root")
    return [sch.get(b).name_hint for b in sch.get_child_blocks(root)]


def has_block(sch: Schedule, name: str) -> bool:
    return name in block_names(sch)


@dataclass(frozen=True)
class BlockInfo:
    """The iteration space of one block: kind ("S"/"R") and extent of each block iterator,
    and the loop variables each iterator is bound to."""

    name: str
    iter_names: tuple[str, ...]
    kinds: tuple[str, ...]
    extents: tuple[int, ...]
    bound_loop_vars: tuple[frozenset[str], ...]

    @property
    def has_reduction(self) -> bool:
        return REDUCTION in self.kinds

    @property
    def reduction_size(self) -> int:
        return math.prod(e for k, e in zip(self.kinds, self.extents) if k == REDUCTION)


def realize(sch: Schedule, name: str) -> SBlockRealize:
    """The block `name` with the values its iterators are bound to."""
    # Search only under the block's parent loop (or the root), not the whole function.
    parent = sch.get_sref(sch.get_sblock(name)).parent
    for node in walk(parent.stmt):
        if isinstance(node, SBlockRealize) and node.block.name_hint == name:
            return node
    raise KeyError(name)


def block_info(sch: Schedule, name: str) -> BlockInfo:
    realized = realize(sch, name)
    block = realized.block
    kinds = []
    for iv in block.iter_vars:
        kind = _ITER_KIND.get(int(iv.iter_type))
        if kind is None:
            raise ValueError(f"block {name} has an iterator of unsupported kind {iv.iter_type}")
        kinds.append(kind)
    extents = tuple(int(iv.dom.extent) for iv in block.iter_vars)
    bound = tuple(frozenset(v.name for v in tirx.analysis.undefined_vars(value))
                  for value in realized.iter_values)
    iter_names = tuple(iv.var.name for iv in block.iter_vars)
    return BlockInfo(name, iter_names, tuple(kinds), extents, bound)


def loop_kinds(sch: Schedule, block: str, loops) -> list[str | None]:
    """For each loop: "S" if it only drives spatial iterators of `block`, "R" if it drives a
    reduction iterator, None if the block does not depend on it."""
    info = block_info(sch, block)
    kinds = []
    for loop in loops:
        var = sch.get(loop).loop_var.name
        used = [k for k, vars_ in zip(info.kinds, info.bound_loop_vars) if var in vars_]
        kinds.append((REDUCTION if REDUCTION in used else SPATIAL) if used else None)
    return kinds


def loop_extents(sch: Schedule, loops) -> list[int]:
    return [int(sch.get(l).extent) for l in loops]


def is_root_level(sch: Schedule, block: SBlockRV) -> bool:
    """True when the block's outermost loop hangs directly under the function's root block."""
    loops = sch.get_loops(block)
    if not loops:
        return True
    parent = sch.get_sref(loops[0]).parent
    return isinstance(parent.stmt, SBlock) and parent.stmt.name_hint == "root"


def is_perfect_child(sch: Schedule, outer, inner) -> bool:
    """True when loop `inner` is the whole body of loop `outer`."""
    return sch.get(outer).body.same_as(sch.get(inner))


def body_is_single_block(sch: Schedule, loop) -> bool:
    return isinstance(sch.get(loop).body, SBlockRealize)


def read_buffers(sch: Schedule, name: str) -> list[tuple[str, tuple[frozenset[str], ...]]]:
    """(buffer name, block iterator names used by each index) for every buffer the block reads
    that it does not also write."""
    block = realize(sch, name).block
    written = {w.source.name for w in block.writes}
    out = []
    for region in block.reads:
        if region.source.name in written:
            continue
        used = tuple(frozenset(v.name for v in tirx.analysis.undefined_vars(r.min)) for r in region.region)
        out.append((region.source.name, used))
    return out


def drives_contiguous_write(sch: Schedule, name: str, loop) -> bool:
    """Whether `loop` drives an iterator of block `name` that indexes the innermost (contiguous)
    axis of the buffer the block writes."""
    realized = realize(sch, name)
    last = realized.block.writes[0].region[-1].min
    innermost = {v.name for v in tirx.analysis.undefined_vars(last)}
    var = sch.get(loop).loop_var.name
    return any(iv.var.name in innermost and var in {v.name for v in tirx.analysis.undefined_vars(value)}
               for iv, value in zip(realized.block.iter_vars, realized.iter_values))


def transposes(sch: Schedule, name: str) -> bool:
    """Whether block `name` reads some buffer along another axis than it writes: the innermost
    index of a read uses none of the iterators of the innermost index of the write (a layout
    transpose, whose reads or writes are strided whichever loop is innermost)."""
    block = realize(sch, name).block
    written = {v.name for v in tirx.analysis.undefined_vars(block.writes[0].region[-1].min)}
    return bool(written) and any(
        used and not used[-1] & written for buffer, used in read_buffers(sch, name) if len(used) > 1)


def written_buffers(sch: Schedule, name: str) -> list[str]:
    return [w.source.name for w in realize(sch, name).block.writes]


def walk_expr(expr) -> Iterator:
    """Every sub-expression of `expr`, pre-order."""
    yield expr
    for attr in ("a", "b", "value", "condition", "true_value", "false_value"):
        sub = getattr(expr, attr, None)
        if isinstance(sub, tvm.ir.Expr):
            yield from walk_expr(sub)
    for attr in ("args", "indices"):
        for sub in getattr(expr, attr, None) or ():
            if isinstance(sub, tvm.ir.Expr):
                yield from walk_expr(sub)


def _stored_exprs(sch: Schedule, name: str) -> Iterator:
    block = realize(sch, name).block
    for node in walk(block.body):
        if isinstance(node, tirx.BufferStore):
            yield from walk_expr(node.value)


def operand_dtypes(sch: Schedule, name: str) -> tuple[list[str], list[str]]:
    """(dtypes of the buffers block `name` writes, sorted dtypes of the other buffers it reads):
    e.g. (["int32"], ["int8", "uint8"]) for an int8 multiply-accumulate."""
    body = realize(sch, name).block
    written = [region.source.name for region in body.writes]
    return ([str(region.source.dtype) for region in body.writes],
            sorted(str(region.source.dtype) for region in body.reads if region.source.name not in written))


_ARITHMETIC = {tirx.Add: np.add, tirx.Sub: np.subtract, tirx.Mul: np.multiply, tirx.FloorDiv: np.floor_divide,
               tirx.FloorMod: np.mod, tirx.Min: np.minimum, tirx.Max: np.maximum}


def evaluate(expr, values: dict[str, Any]):
    """An index expression (variables, integers, + - * // % min max) with its variables, by
    name, set to `values` (numbers or numpy arrays, evaluated elementwise)."""
    if isinstance(expr, tirx.Var):
        return values[expr.name]
    if isinstance(expr, tirx.IntImm):
        return np.int64(expr.value)
    if type(expr) in _ARITHMETIC:
        return _ARITHMETIC[type(expr)](evaluate(expr.a, values), evaluate(expr.b, values))
    raise TypeError(f"an index of the form {type(expr).__name__} is not evaluated: {expr}")


def read_indices(sch: Schedule, name: str) -> list[tuple[str, list]]:
    """(buffer name, index expressions) of every load in the block body."""
    return [(e.source.name, list(e.indices)) for e in _stored_exprs(sch, name) if isinstance(e, tvm.ir.TensorLoad)]


def block_calls(sch: Schedule, name: str) -> set[str]:
    """Names of the intrinsic calls (if_then_else, exp, ...) in the block body."""
    return {str(e.op.name).split(".")[-1] for e in _stored_exprs(sch, name) if isinstance(e, tvm.ir.Call)}


def has_expensive_or_branching_op(sch: Schedule, name: str) -> bool:
    calls = block_calls(sch, name)
    return "if_then_else" in calls or any(c in calls for c in _EXPENSIVE_CALLS)


def is_output_block(sch: Schedule, name: str) -> bool:
    """Whether the block writes an output of the function. (Read off the function's parameters:
    TVM's own `get_output_blocks` fails on a function with a block inside a reduction's init,
    as `blockize` leaves one.)"""
    params = {param.name for param in sch.mod["main"].params}
    return any(name_ in params for name_ in written_buffers(sch, name))


def consumers(sch: Schedule, name: str) -> list[str]:
    return [sch.get(b).name_hint for b in sch.get_consumers(sch.get_sblock(name))]
