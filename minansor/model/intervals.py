"""Interval arithmetic over TIR index expressions: how far an access reaches when each loop
variable ranges over an interval. The features (features.py) measure footprints, strides and
reuse with it, without going back to TVM's analyzers for every question.
"""

from __future__ import annotations

from tvm import tirx

_OPS = {tirx.Add: "+", tirx.Sub: "-", tirx.Mul: "*", tirx.FloorDiv: "//", tirx.FloorMod: "%", tirx.Min: "min",
        tirx.Max: "max"}


def compile_index(expr) -> tuple:
    """An integer TIR expression as nested tuples, so it can be evaluated many times without
    going back to TVM: ("c", value) | ("v", name) | (op, a, b). Anything else counts as 0."""
    if isinstance(expr, tirx.IntImm):
        return ("c", int(expr.value))
    if isinstance(expr, tirx.Var):
        return ("v", expr.name)
    if isinstance(expr, tirx.Cast):
        return compile_index(expr.value)
    op = _OPS.get(type(expr))
    if op is None:
        return ("c", 0)
    return (op, compile_index(expr.a), compile_index(expr.b))


def interval(node: tuple, env: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """Bounds of a compiled expression when every variable ranges over its interval in `env`
    (unknown variables count as 0)."""
    op = node[0]
    if op == "c":
        return node[1], node[1]
    if op == "v":
        return env.get(node[1], (0, 0))
    (alo, ahi), (blo, bhi) = interval(node[1], env), interval(node[2], env)
    if op == "+":
        return alo + blo, ahi + bhi
    if op == "-":
        return alo - bhi, ahi - blo
    if op == "*":
        products = (alo * blo, alo * bhi, ahi * blo, ahi * bhi)
        return min(products), max(products)
    if op == "min":
        return min(alo, blo), min(ahi, bhi)
    if op == "max":
        return max(alo, blo), max(ahi, bhi)
    if blo != bhi or blo <= 0:  # schedules only divide by positive constants
        return 0, 0
    if op == "//":
        return alo // blo, ahi // blo
    if ahi - alo + 1 >= blo or alo // blo != ahi // blo:
        return 0, blo - 1
    return alo % blo, ahi % blo
