"""Per-store program features: what the cost model sees of a scheduled program.

As in Ansor, a program is described store by store: for every `BufferStore` in the scheduled
TIR, one row of numbers about the work it does, the loops around it and the memory it touches.
The cost model scores rows and sums them per program ("pack-sum").

The row is defined once, in `FEATURE_NAMES`, and built by `FeatureRow`, which refuses a name
not in it and a row that misses one. No record stores features: records hold programs, and
features are computed from them by the code that reads them, so two versions never mix.

- computation: arithmetic operations executed by this store, by kind;
- loops: vector / unroll / parallel extents, auto-unroll depth, loop count, trip counts;
- memory, for up to `ACCESS_SLOTS` accesses (the store first, then loads by footprint; a buffer
  loaded at several indices takes a slot per load):
  bytes moved, unique bytes (the footprint), cache lines, reuse (does an enclosing loop revisit
  the same data; how far apart, how often), innermost stride;
- arithmetic intensity: operations per unique byte under each loop level, outer to inner,
  resampled to `CURVE_POINTS` points;
- allocation: does the store write a scheduled cache buffer, and how large it is.

Everything comes from interval arithmetic over the loop nest (intervals.py) of the stores that
stores.py collects; all counts are log2(1 + x)-scaled. `extract_tvm` wraps TVM's own `PerStoreFeature` (164 values) as
the alternative feature set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import tvm
from tvm import tirx

from ..space.program import Applied
from ..tasks.task import Task
from ..tir.intrinsics import tune_context
from .intervals import interval
from .stores import Access, StoreContext, collect_stores

ACCESS_SLOTS = 5
CURVE_POINTS = 10
CACHE_LINE_BYTES = 64

COMPUTE_FEATURES = ("float_add_sub", "float_mul", "float_div_mod", "float_min_max", "float_compare_select",
                    "float_math_call", "int_ops")
LOOP_FEATURES = ("vector_extent", "vector_is_innermost", "unroll_extent", "parallel_extent", "parallel_loops",
                 "auto_unroll_max_step", "loop_count", "trip_count", "innermost_extent", "reduction_trip_count")
ACCESS_FEATURES = ("present", "is_write", "is_read", "bytes", "unique_bytes", "lines", "reuse_exists",
                   "reuse_distance_iters", "reuse_distance_bytes", "reuse_count", "innermost_stride",
                   "bytes_per_unique_byte")
ALLOCATION_FEATURES = ("writes_cache_buffer", "cache_buffer_bytes")

FEATURE_NAMES: tuple[str, ...] = (
    COMPUTE_FEATURES + LOOP_FEATURES
    + tuple(f"access{slot}_{name}" for slot in range(ACCESS_SLOTS) for name in ACCESS_FEATURES)
    + tuple(f"intensity_curve_{i}" for i in range(CURVE_POINTS))
    + ALLOCATION_FEATURES
)


class FeatureRow:
    """One store's row under construction: every name of `FEATURE_NAMES` set exactly once."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def set(self, **values: float) -> None:
        for name, value in values.items():
            if name not in _FEATURE_INDEX:
                raise KeyError(f"{name!r} is not a feature (FEATURE_NAMES)")
            if name in self.values:
                raise KeyError(f"feature {name!r} set twice")
            self.values[name] = value

    def array(self) -> np.ndarray:
        missing = [name for name in FEATURE_NAMES if name not in self.values]
        if missing:
            raise KeyError(f"features never set: {', '.join(missing)}")
        return np.array([self.values[name] for name in FEATURE_NAMES], dtype=np.float32)


_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _log(x: float) -> float:
    return math.log2(1.0 + max(x, 0.0))


# ---------------------------------------------------------------- features of one store


def _block_var_env(ctx: StoreContext, loop_env: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    env = dict(loop_env)
    for name, value in ctx.bindings.items():
        env[name] = interval(value, loop_env)
    return env


def _footprint(access: Access, env: dict[str, tuple[int, int]]) -> int:
    """Elements in the bounding box the access touches under `env`."""
    size = 1
    for index, dim in zip(access.indices, access.shape):
        lo, hi = interval(index, env)
        size *= min(hi - lo + 1, dim)
    return max(size, 1)


def _flat_offset(access: Access, env: dict[str, tuple[int, int]]) -> int:
    offset = 0
    for index, dim in zip(access.indices, access.shape):
        offset = offset * dim + interval(index, env)[0]
    return offset


def _loop_env(ctx: StoreContext, inside_from: int) -> dict[str, tuple[int, int]]:
    """Loops before `inside_from` fixed at 0, loops from it inwards over their full range."""
    return {l.name: (0, l.extent - 1) if i >= inside_from else (0, 0) for i, l in enumerate(ctx.loops)}


def store_features(ctx: StoreContext) -> np.ndarray:
    loops = ctx.loops
    trips = math.prod(l.extent for l in loops)
    row = FeatureRow()
    row.set(**{name: _log(ctx.counts.get(name, 0) * trips) for name in COMPUTE_FEATURES})

    vector = [l for l in loops if l.kind == int(tirx.ForKind.VECTORIZED)]
    parallel = [l for l in loops if l.kind == int(tirx.ForKind.PARALLEL)]
    unrolled = [l for l in loops if l.kind == int(tirx.ForKind.UNROLLED)]
    row.set(
        vector_extent=_log(math.prod(l.extent for l in vector)) if vector else 0.0,
        vector_is_innermost=float(bool(loops) and loops[-1].kind == int(tirx.ForKind.VECTORIZED)),
        unroll_extent=_log(math.prod(l.extent for l in unrolled)) if unrolled else 0.0,
        parallel_extent=_log(math.prod(l.extent for l in parallel)) if parallel else 0.0,
        parallel_loops=float(len(parallel)),
        auto_unroll_max_step=_log(max((l.auto_unroll for l in loops), default=0)),
        loop_count=float(len(loops)),
        trip_count=_log(trips),
        innermost_extent=_log(loops[-1].extent) if loops else 0.0,
        reduction_trip_count=_log(math.prod(l.extent for l in loops if l.is_reduction)),
    )

    # Footprints under every loop level: level 0 is the whole nest, level len(loops) one iteration.
    envs = [_block_var_env(ctx, _loop_env(ctx, level)) for level in range(len(loops) + 1)]
    point = envs[-1]
    at_zero = _loop_env(ctx, len(loops))
    steps = [_block_var_env(ctx, {**at_zero, loop.name: (1, 1)}) for loop in loops]  # one loop moved by 1
    ranked = sorted(ctx.accesses, key=lambda a: (not a.is_write, -_footprint(a, envs[0])))
    unique_per_level = np.zeros(len(loops) + 1)
    counted: set[tuple[str, str]] = set()  # the same element read and written (an accumulator) is one footprint
    for slot, access in enumerate(ranked):
        footprints = [_footprint(access, env) for env in envs]
        if (access.buffer, repr(access.indices)) not in counted:
            counted.add((access.buffer, repr(access.indices)))
            unique_per_level += np.array(footprints, dtype=float) * access.dtype_bytes
        if slot >= ACCESS_SLOTS:
            continue  # counted in the intensity curve only
        prefix = f"access{slot}_"
        moved = trips * access.dtype_bytes
        unique = footprints[0] * access.dtype_bytes
        stride, reuse_level = 0, None
        for level in range(len(loops) - 1, -1, -1):  # innermost loop first
            delta = abs(_flat_offset(access, steps[level]) - _flat_offset(access, point))
            if delta and not stride:
                stride = delta
            if not delta and reuse_level is None and loops[level].extent > 1:
                reuse_level = level
        inner_stride_elems = stride if stride else 1
        lines = unique / CACHE_LINE_BYTES if inner_stride_elems * access.dtype_bytes < CACHE_LINE_BYTES \
            else footprints[0]
        row.set(**{
            prefix + "present": 1.0,
            prefix + "is_write": float(access.is_write),
            # a store that also loads what it writes (an accumulation) reads it too; an init does not
            prefix + "is_read": float(access.is_read or access.is_write and any(
                a.is_read and a.buffer == access.buffer for a in ctx.accesses)),
            prefix + "bytes": _log(moved),
            prefix + "unique_bytes": _log(unique),
            prefix + "lines": _log(lines),
            prefix + "reuse_exists": float(reuse_level is not None),
            prefix + "reuse_distance_iters": _log(math.prod(l.extent for l in loops[reuse_level + 1:]))
            if reuse_level is not None else 0.0,
            prefix + "reuse_distance_bytes": _log(footprints[reuse_level + 1] * access.dtype_bytes)
            if reuse_level is not None else 0.0,
            prefix + "reuse_count": _log(loops[reuse_level].extent) if reuse_level is not None else 0.0,
            prefix + "innermost_stride": _log(stride),
            prefix + "bytes_per_unique_byte": _log(moved / max(unique, 1)),
        })

    for slot in range(len(ranked), ACCESS_SLOTS):
        row.set(**{f"access{slot}_{name}": 0.0 for name in ACCESS_FEATURES})

    ops = sum(ctx.counts.values())
    levels = np.arange(len(loops) + 1)
    inner_trips = np.array([math.prod(l.extent for l in loops[level:]) for level in levels], dtype=float)
    intensity = ops * inner_trips / np.maximum(unique_per_level, 1.0)
    curve = np.interp(np.linspace(0, len(loops), CURVE_POINTS), levels, intensity)
    row.set(**{f"intensity_curve_{i}": _log(v) for i, v in enumerate(curve)})
    row.set(writes_cache_buffer=float(ctx.writes_cache), cache_buffer_bytes=_log(ctx.cache_bytes))
    return row.array()


def extract(mod: tvm.IRModule) -> np.ndarray:
    """The feature matrix of a scheduled module: one row per store."""
    stores = collect_stores(mod["main"])
    if not stores:
        return np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)
    return np.stack([store_features(ctx) for ctx in stores])


# ---------------------------------------------------------------- feature sets


Extractor = Callable[[Applied], np.ndarray]  # an applied program -> its feature matrix, one row per store


class FeatureSet(Protocol):
    """What `SearchConfig.features` names: made once per task, then asked for every program."""

    def __call__(self, task: Task) -> Extractor: ...


def tvm_extractor(task: Task) -> Extractor:
    """TVM's PerStoreFeature (Ansor's 164 features, computed in C++ by MetaSchedule)."""
    from tvm.s_tir import meta_schedule as ms

    context = tune_context(task.target, task.mod, intrinsics=False)
    extractor = ms.feature_extractor.PerStoreFeature()
    args = ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])

    def extract_one(applied) -> np.ndarray:
        (matrix,) = extractor.extract_from(context, [ms.MeasureCandidate(applied.sch, args)])
        return matrix.numpy().astype(np.float32)

    return extract_one


def minansor_extractor(task: Task) -> Extractor:
    """Our features (FEATURE_NAMES), read from the scheduled TIR (a tensorized block as the
    loop nest it computes: `Applied.modeled`)."""
    return lambda applied: extract(applied.modeled)


# SearchConfig.features names one of these. Register another by adding it (examples/add_feature.py).
FEATURE_SETS: dict[str, FeatureSet] = {"minansor": minansor_extractor, "tvm": tvm_extractor}


def make_extractor(name: str, task: Task) -> Extractor:
    return FEATURE_SETS[name](task)
