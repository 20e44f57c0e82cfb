"""The stores of a scheduled PrimFunc, each with what the features describe: the loops around
it, its blocks' iterator bindings, the buffers it writes and reads, and the operations it executes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import tvm
from tvm import tirx
from tvm.s_tir.stmt import SBlock, SBlockRealize

from ..tir import analysis
from ..tir.layout_rewrite import PACKING_ATTR
from .intervals import compile_index

@dataclass(frozen=True)
class Loop:
    name: str
    extent: int
    kind: int  # tirx.ForKind
    auto_unroll: int
    is_reduction: bool  # drives a reduction iterator of the block below it


@dataclass
class Access:
    buffer: str
    shape: tuple[int, ...]
    dtype_bytes: int
    indices: list  # compiled index expressions
    is_write: bool
    is_read: bool = False


@dataclass
class StoreContext:
    loops: list[Loop]
    bindings: dict  # block iterator name -> compiled expression over loop variables
    accesses: list[Access] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)
    writes_cache: bool = False
    cache_bytes: float = 0.0


def _dtype_bytes(dtype) -> int:
    return max(tvm.runtime.DataType(str(dtype)).bits // 8, 1)


def _buffer_shape(buffer) -> tuple[int, ...]:
    return tuple(int(d) if isinstance(d, tirx.IntImm) else 1 for d in buffer.shape)


_BINARY_KIND = {tirx.Add: "add_sub", tirx.Sub: "add_sub", tirx.Mul: "mul", tirx.Div: "div_mod",
                tirx.FloorDiv: "div_mod", tirx.FloorMod: "div_mod", tirx.Mod: "div_mod", tirx.Min: "min_max",
                tirx.Max: "min_max", tirx.LT: "compare_select", tirx.LE: "compare_select",
                tirx.GT: "compare_select", tirx.GE: "compare_select", tirx.EQ: "compare_select",
                tirx.NE: "compare_select"}


def _count_ops(expr, ctx: StoreContext) -> None:
    """Tally the operations of a stored value, and collect the buffers it reads."""
    if isinstance(expr, tvm.ir.TensorLoad):
        ctx.accesses.append(Access(expr.source.name, _buffer_shape(expr.source), _dtype_bytes(expr.source.dtype),
                                   [compile_index(i) for i in expr.indices], is_write=False, is_read=True))
        return  # index arithmetic is address computation, not work
    kind = _BINARY_KIND.get(type(expr))
    if kind is not None:
        operand_is_float = str(expr.a.ty).startswith("float")
        name = f"float_{kind}" if operand_is_float else "int_ops"
        ctx.counts[name] = ctx.counts.get(name, 0) + 1
    elif isinstance(expr, tirx.Select) or (isinstance(expr, tvm.ir.Call) and expr.op.name.endswith("if_then_else")):
        ctx.counts["float_compare_select"] = ctx.counts.get("float_compare_select", 0) + 1
    elif isinstance(expr, tvm.ir.Call):
        ctx.counts["float_math_call"] = ctx.counts.get("float_math_call", 0) + 1
    for attr in ("a", "b", "value", "condition", "true_value", "false_value"):
        sub = getattr(expr, attr, None)
        if isinstance(sub, tvm.ir.Expr):
            _count_ops(sub, ctx)
    for sub in getattr(expr, "args", None) or ():
        if isinstance(sub, tvm.ir.Expr):
            _count_ops(sub, ctx)


def collect_stores(func: tirx.PrimFunc) -> list[StoreContext]:
    """One context per BufferStore: the loops around it, the block bindings, its accesses."""
    stores: list[StoreContext] = []
    cache_buffers: dict[str, int] = {}
    for node, around in analysis.walk_nested(func.body):
        if isinstance(node, SBlock):
            for buf in node.alloc_buffers:
                if str(buf.scope()) != "global":
                    cache_buffers[buf.name] = math.prod(_buffer_shape(buf)) * _dtype_bytes(buf.dtype)
        if not isinstance(node, tirx.BufferStore):
            continue
        loops, bindings = _loops_and_bindings(around)
        if loops is None:
            continue  # packing a constant happens at compile time, never in the measured kernel
        ctx = StoreContext(loops, bindings)
        ctx.accesses.append(Access(node.buffer.name, _buffer_shape(node.buffer), _dtype_bytes(node.buffer.dtype),
                                   [compile_index(i) for i in node.indices], is_write=True))
        _count_ops(node.value, ctx)
        if node.buffer.name in cache_buffers:
            ctx.writes_cache, ctx.cache_bytes = True, cache_buffers[node.buffer.name]
        stores.append(ctx)
    return stores


def _loops_and_bindings(around: tuple) -> tuple[list[Loop] | None, dict]:
    """The loops around a store (a loop drives a reduction if a reduction iterator of the
    innermost block around the store reads its variable) and its blocks' iterator bindings;
    None inside a packing block."""
    loops: list[Loop] = []
    bindings: dict = {}
    for node in around:
        if isinstance(node, tirx.For):
            auto_unroll = int(dict(node.annotations).get("pragma_auto_unroll_max_step", 0))
            loops.append(Loop(node.loop_var.name, int(node.extent), int(node.kind), auto_unroll, False))
        elif isinstance(node, SBlockRealize):
            if PACKING_ATTR in node.block.annotations:
                return None, bindings
            reducing: set[str] = set()
            for iv, value in zip(node.block.iter_vars, node.iter_values):
                bindings[iv.var.name] = compile_index(value)
                if int(iv.iter_type) == 2:
                    reducing |= {v.name for v in tirx.analysis.undefined_vars(value)}
            loops = [Loop(l.name, l.extent, l.kind, l.auto_unroll, l.name in reducing) for l in loops]
    return loops, bindings
