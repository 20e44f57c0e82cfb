"""Graph rewrites over the Relax functions of a module, each rewriter handed the matched call.

TVM's `rewrite_call` hands a rewriter the matched expression, which is the variable bound to the
call where the match went through a binding (a function's output, for one); the call itself is
`matches[pattern]`. `rewrite_calls` gives every rewriter the call, so none has to know.
"""

from __future__ import annotations

from typing import Callable

import tvm
from tvm import relax
from tvm.relax.dpl import DFPattern, rewrite_call


def rewrite_calls(pattern: DFPattern, rewrite: Callable[[relax.Call, dict], relax.Expr | None],
                  func: relax.Function) -> relax.Function:
    """`func` with every call `pattern` matches replaced by `rewrite(call, matches)`; where that is
    None the call stays."""

    def rewriter(expr: relax.Expr, matches: dict) -> relax.Expr:
        new = rewrite(matches[pattern], matches)
        return expr if new is None else new

    return rewrite_call(pattern, rewriter, func)


def map_functions(mod: tvm.IRModule, transform: Callable[[relax.Function], relax.Function]) -> tvm.IRModule:
    """`mod` with `transform` applied to each of its Relax functions, the PrimFuncs kept."""
    functions = {gv: transform(func) if isinstance(func, relax.Function) else func
                 for gv, func in mod.functions_items()}
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
