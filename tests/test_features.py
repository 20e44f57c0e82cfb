"""Value-level tests of the cost model's features: intervals.py, stores.py and features.py.

Two tiny programs are worked out by hand:

- a 16x16x16 GEMM tile, split, reordered, parallelized, unrolled, vectorized, with an
  auto-unroll annotation and a local cache for C (`scheduled_gemm_tile`);
- the unscheduled `conv-6x6-2-4-3x3` task: NCHW conv 2 -> 4 channels, 3x3 kernel, padding 1,
  then bias and leaky ReLU (stages pad_temp, conv2d_nchw, T_add, compute).

Every feature is log2(1 + x)-scaled, so each expected value is written as `lg(raw)` with the raw
count computed in a comment. The last three tests pin what was once wrong: an accumulator's
footprint counted twice in the intensity curve, and an init store marked as reading.
"""

import math

import numpy as np
import pytest
import tvm
from tvm import tirx
from tvm.s_tir import Schedule

from minansor.model.features import (ACCESS_FEATURES, ACCESS_SLOTS, COMPUTE_FEATURES, CURVE_POINTS, FEATURE_NAMES,
                                     extract, store_features)
from minansor.model.intervals import compile_index, interval
from minansor.model.stores import collect_stores
from minansor.tasks.workloads import make_task

SERIAL, PARALLEL, VECTORIZED, UNROLLED = (int(k) for k in (tirx.ForKind.SERIAL, tirx.ForKind.PARALLEL,
                                                            tirx.ForKind.VECTORIZED, tirx.ForKind.UNROLLED))
F32 = 4  # bytes per float32 element


def lg(x: float) -> float:
    """The scaling every count goes through: log2(1 + x)."""
    return math.log2(1 + x)


# ---------------------------------------------------------------- the two programs


def scheduled_gemm_tile():
    """C[16,16] = A[16,16] @ B[16,16], scheduled as

        i_0 (4, parallel, auto-unroll 16)
          j_0 (2)
            k_0 (8, reduction)
              i_1 (4)
                k_1 (2, unrolled, reduction)
                  j_1 (8, vectorized)
                    C_local[v_i, v_j] = 0                                  (init, store 0)
                    C_local[v_i, v_j] += A[v_i, v_k] * B[v_k, v_j]         (update, store 1)
            ax0 (4)
              ax1 (8)
                C[v0, v1] = C_local[v0, v1]                                (write-back, store 2)

    with v_i = 4 i_0 + i_1, v_j = 8 j_0 + j_1, v_k = 2 k_0 + k_1, v0 = 4 i_0 + ax0, v1 = 8 j_0 + ax1.
    C_local is a "local" cache of the full 16x16 shape (1024 bytes)."""
    sch = Schedule(make_task("gemm-16x16x16").mod)
    block = sch.get_sblock("C")
    i, j, k = sch.get_loops(block)
    i0, i1 = sch.split(i, [4, 4])
    j0, j1 = sch.split(j, [2, 8])
    k0, k1 = sch.split(k, [8, 2])
    sch.reorder(i0, j0, k0, i1, k1, j1)
    write_back = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(write_back, j0)
    sch.parallel(i0)
    sch.unroll(k1)
    sch.vectorize(j1)
    sch.annotate(i0, "pragma_auto_unroll_max_step", 16)
    return sch.mod["main"]


GEMM_INIT, GEMM_UPDATE, GEMM_WRITE_BACK = range(3)
# The conv task as make_task builds it: one loop nest per stage, all loops serial.
#   pad_temp[0, c, y, x]    (1, 2, 8, 8) = data[0, c, y-1, x-1] inside the 6x6 border, else 0
#   conv2d_nchw[0, f, y, x] (1, 4, 6, 6) += pad_temp[0, rc, y+ry, x+rx] * weight[f, rc, ry, rx]
#   T_add[0, f, y, x]       (1, 4, 6, 6) = conv2d_nchw[0, f, y, x] + bias[0, f, 0, 0]
#   compute[0, f, y, x]     (1, 4, 6, 6) = select(0 < T_add[..], T_add[..], T_add[..] * 0.1)
CONV_NAME = "conv-6x6-2-4-3x3"
PAD, CONV_INIT, CONV, BIAS_ADD, LEAKY = range(5)


@pytest.fixture(scope="module")
def gemm_func():
    return scheduled_gemm_tile()


@pytest.fixture(scope="module")
def gemm(gemm_func):
    return collect_stores(gemm_func)


@pytest.fixture(scope="module")
def conv_func():
    return make_task(CONV_NAME).mod["main"]


@pytest.fixture(scope="module")
def conv(conv_func):
    return collect_stores(conv_func)


# ---------------------------------------------------------------- helpers


def row_of(store) -> dict[str, float]:
    """A store's feature row by column name."""
    return dict(zip(FEATURE_NAMES, store_features(store).tolist()))


def assert_features(row: dict[str, float], expected: dict[str, float]) -> None:
    """Every expected column has its value (float32 precision); all mismatches are listed at once."""
    wrong = {name: (row[name], value) for name, value in expected.items()
             if row[name] != pytest.approx(value, rel=1e-5, abs=1e-6)}
    assert not wrong, "feature: (computed, expected)\n" + "\n".join(f"  {n}: {v}" for n, v in wrong.items())


def access_slot(slot: int, *, write: bool, read: bool, moved: float, unique: float, lines: float, stride: int,
                reuse: tuple[float, float, float] | None = None) -> dict[str, float]:
    """Expected columns of one access slot from hand-computed raw values: bytes moved, unique
    bytes, cache lines, innermost stride (elements) and `reuse` = (distance in iterations,
    distance in bytes, count) at the innermost loop that revisits the same data, or None."""
    iters, distance_bytes, count = reuse or (0, 0, 0)  # lg(0) = 0: no reuse gives zeros
    raw = {"present": 1.0, "is_write": float(write), "is_read": float(read), "bytes": lg(moved),
           "unique_bytes": lg(unique), "lines": lg(lines), "reuse_exists": float(reuse is not None),
           "reuse_distance_iters": lg(iters), "reuse_distance_bytes": lg(distance_bytes), "reuse_count": lg(count),
           "innermost_stride": lg(stride), "bytes_per_unique_byte": lg(moved / unique)}
    return {f"access{slot}_{name}": value for name, value in raw.items()}


def empty_slots(first: int) -> dict[str, float]:
    return {f"access{slot}_{name}": 0.0 for slot in range(first, ACCESS_SLOTS) for name in ACCESS_FEATURES}


def intensity_curve(per_level: list[float]) -> dict[str, float]:
    """Expected curve columns from the intensity under each loop level (level 0: the whole nest,
    last: one iteration): sampled at CURVE_POINTS evenly spaced positions between the first and
    last level by linear interpolation, then log-scaled."""
    last = len(per_level) - 1
    values = []
    for point in range(CURVE_POINTS):
        x = point * last / (CURVE_POINTS - 1)
        below = min(int(x), last - 1)
        frac = x - below
        values.append(lg(per_level[below] * (1 - frac) + per_level[below + 1] * frac))
    return {f"intensity_curve_{i}": v for i, v in enumerate(values)}


def no_computation() -> dict[str, float]:
    return {name: 0.0 for name in COMPUTE_FEATURES}


def serial_loops(extents: list[int], reduction: int = 1) -> dict[str, float]:
    """Loop columns of a nest of plain serial loops with no annotation."""
    return {"vector_extent": 0.0, "vector_is_innermost": 0.0, "unroll_extent": 0.0, "parallel_extent": 0.0,
            "parallel_loops": 0.0, "auto_unroll_max_step": 0.0, "loop_count": float(len(extents)),
            "trip_count": lg(math.prod(extents)), "innermost_extent": lg(extents[-1]),
            "reduction_trip_count": lg(reduction)}


def loop_table(store) -> list[tuple]:
    return [(l.name, l.extent, l.kind, l.auto_unroll, l.is_reduction) for l in store.loops]


def access_table(store) -> list[tuple]:
    return [(a.buffer, a.shape, a.dtype_bytes, a.is_write, a.is_read) for a in store.accesses]


def v(name):
    return ("v", name)


def c(value):
    return ("c", value)


# ---------------------------------------------------------------- intervals


def test_interval_of_sums_differences_and_products():
    i, j = tirx.Var("i", "int32"), tirx.Var("j", "int32")
    env = {"i": (0, 3), "j": (0, 3)}
    assert compile_index(i * 4 + j) == ("+", ("*", v("i"), c(4)), v("j"))
    assert interval(compile_index(i * 4 + j), env) == (0, 15)  # 4*3 + 3
    assert interval(compile_index(i - j), env) == (-3, 3)  # 0 - 3 .. 3 - 0
    assert interval(compile_index(i * -2 + 1), env) == (-5, 1)  # -2*3 + 1 .. -2*0 + 1
    # a product of two ranges takes the extreme corner products: i in [-2, 3], j in [1, 4]
    # -> {-2*1, -2*4, 3*1, 3*4} = {-2, -8, 3, 12}
    assert interval(compile_index(i * j), {"i": (-2, 3), "j": (1, 4)}) == (-8, 12)


def test_interval_of_floordiv_and_floormod():
    i, j = tirx.Var("i", "int32"), tirx.Var("j", "int32")
    fused = i * 8 + j  # a fused loop i (2) x j (8)
    assert interval(compile_index(tirx.floordiv(fused, 4)), {"i": (0, 1), "j": (0, 7)}) == (0, 3)  # 15 // 4
    assert interval(compile_index(tirx.floordiv(fused, 4)), {"i": (1, 1), "j": (4, 7)}) == (3, 3)  # 12..15 // 4
    assert interval(compile_index(tirx.floordiv(j, 4)), {"j": (-5, -1)}) == (-2, -1)  # floor division rounds down
    # floormod: exact while the range stays inside one period, the whole period otherwise
    assert interval(compile_index(tirx.floormod(j, 8)), {"j": (2, 5)}) == (2, 5)
    assert interval(compile_index(tirx.floormod(j, 4)), {"j": (3, 5)}) == (0, 3)  # 3, 0, 1: wraps at 4
    assert interval(compile_index(tirx.floormod(fused, 4)), {"i": (0, 1), "j": (0, 7)}) == (0, 3)
    assert interval(compile_index(tirx.floormod(j, 4)), {"j": (-3, -1)}) == (1, 3)  # -3 % 4 = 1, -1 % 4 = 3


def test_interval_of_min_max_casts_and_what_it_does_not_model():
    i, j, k = tirx.Var("i", "int32"), tirx.Var("j", "int32"), tirx.Var("k", "int32")
    env = {"i": (0, 5), "j": (1, 4)}
    assert interval(compile_index(tirx.min(i, 2)), env) == (0, 2)
    assert interval(compile_index(tirx.max(i, 2)), env) == (2, 5)
    assert interval(compile_index(tirx.Cast("int64", i) + 1), env) == (1, 6)  # casts are looked through
    assert interval(compile_index(i + k), env) == (0, 5)  # k is not in env: it counts as 0
    assert interval(compile_index(tirx.floordiv(i, j)), env) == (0, 0)  # only constant divisors are modeled
    assert compile_index(tirx.truncdiv(i, 4)) == c(0)  # truncating Div is not modeled: 0


# ---------------------------------------------------------------- stores


def test_gemm_tile_stores_have_their_loops_bindings_accesses_and_counts(gemm):
    assert [s.accesses[0].buffer for s in gemm] == ["C_local", "C_local", "C"]

    tile_loops = [("i_0", 4, PARALLEL, 16, False), ("j_0", 2, SERIAL, 0, False), ("k_0", 8, SERIAL, 0, True),
                  ("i_1", 4, SERIAL, 0, False), ("k_1", 2, UNROLLED, 0, True), ("j_1", 8, VECTORIZED, 0, False)]
    tile_bindings = {"v_i": ("+", ("*", v("i_0"), c(4)), v("i_1")), "v_j": ("+", ("*", v("j_0"), c(8)), v("j_1")),
                     "v_k": ("+", ("*", v("k_0"), c(2)), v("k_1"))}
    local = ("C_local", (16, 16), F32)
    for store in (gemm[GEMM_INIT], gemm[GEMM_UPDATE]):
        assert loop_table(store) == tile_loops
        assert store.bindings == tile_bindings
        assert store.writes_cache and store.cache_bytes == 16 * 16 * F32

    init, update, write_back = gemm
    assert access_table(init) == [(*local, True, False)]
    assert init.counts == {}  # C_local = 0.0 computes nothing
    # the accumulator is loaded as well as stored: one Access per load
    assert access_table(update) == [(*local, True, False), (*local, False, True), ("A", (16, 16), F32, False, True),
                                    ("B", (16, 16), F32, False, True)]
    assert [a.indices for a in update.accesses] == [[v("v_i"), v("v_j")], [v("v_i"), v("v_j")],
                                                    [v("v_i"), v("v_k")], [v("v_k"), v("v_j")]]
    assert update.counts == {"float_add_sub": 1, "float_mul": 1}

    assert loop_table(write_back) == [("i_0", 4, PARALLEL, 16, False), ("j_0", 2, SERIAL, 0, False),
                                      ("ax0", 4, SERIAL, 0, False), ("ax1", 8, SERIAL, 0, False)]
    assert write_back.bindings == {"v0": ("+", ("*", v("i_0"), c(4)), v("ax0")),
                                   "v1": ("+", ("*", v("j_0"), c(8)), v("ax1"))}
    assert access_table(write_back) == [("C", (16, 16), F32, True, False), (*local, False, True)]
    assert write_back.counts == {}
    assert not write_back.writes_cache and write_back.cache_bytes == 0  # C is global


def test_conv_stores_follow_its_stages(conv):
    assert [s.accesses[0].buffer for s in conv] == ["pad_temp", "conv2d_nchw", "conv2d_nchw", "T_add", "compute"]
    assert [[l.extent for l in s.loops] for s in conv] == [[1, 2, 8, 8], [1, 4, 6, 6, 2, 3, 3], [1, 4, 6, 6, 2, 3, 3],
                                                          [1, 4, 6, 6], [1, 4, 6, 6]]
    assert all(l.kind == SERIAL and l.auto_unroll == 0 for s in conv for l in s.loops)
    # rc, ry, rx drive the reduction iterators of the conv block (its init sits under them too)
    for store in (conv[CONV_INIT], conv[CONV]):
        assert [l.name for l in store.loops if l.is_reduction] == ["rc", "ry", "rx"]
    assert not any(l.is_reduction for s in (conv[PAD], conv[BIAS_ADD], conv[LEAKY]) for l in s.loops)

    # pad: if_then_else(1 <= y and y < 7 and 1 <= x and x < 7, data[..], 0): one float select and
    # four int32 comparisons (the `and`s are not counted)
    assert [s.counts for s in conv] == [{"float_compare_select": 1, "int_ops": 4}, {},
                                        {"float_add_sub": 1, "float_mul": 1}, {"float_add_sub": 1},
                                        # select(0 < t, t, t * 0.1): the comparison, the select, the multiply
                                        {"float_compare_select": 2, "float_mul": 1}]

    data = conv[PAD].accesses[1]
    assert (data.buffer, data.shape, data.is_read) == ("data", (1, 2, 6, 6), True)
    assert data.indices == [v("v_i0"), v("v_i1"), ("-", v("v_i2"), c(1)), ("-", v("v_i3"), c(1))]
    assert access_table(conv[CONV]) == [("conv2d_nchw", (1, 4, 6, 6), F32, True, False),
                                        ("conv2d_nchw", (1, 4, 6, 6), F32, False, True),
                                        ("pad_temp", (1, 2, 8, 8), F32, False, True),
                                        ("weight", (4, 2, 3, 3), F32, False, True)]
    assert conv[CONV].accesses[2].indices == [v("v_nn"), v("v_rc"), ("+", v("v_yy"), v("v_ry")),
                                              ("+", v("v_xx"), v("v_rx"))]
    assert conv[BIAS_ADD].accesses[2].indices == [v("v_ax0"), v("v_ax1"), c(0), c(0)]
    # the leaky ReLU loads T_add three times, and each load is recorded
    assert [a.buffer for a in conv[LEAKY].accesses] == ["compute", "T_add", "T_add", "T_add"]
    # the stage buffers are global allocations, not scheduled caches
    assert not any(s.writes_cache for s in conv)


def test_extract_gives_one_row_per_store_in_program_order(gemm_func, gemm, conv_func, conv):
    assert len(FEATURE_NAMES) == 7 + 10 + ACCESS_SLOTS * 12 + CURVE_POINTS + 2 == 89
    for func, stores in ((gemm_func, gemm), (conv_func, conv)):
        matrix = extract(tvm.IRModule({"main": func}))
        assert matrix.shape == (len(stores), len(FEATURE_NAMES))
        assert np.array_equal(matrix, np.stack([store_features(s) for s in stores]))


# ---------------------------------------------------------------- features: the GEMM tile


def test_gemm_update_computation_is_its_operations_times_the_trip_count(gemm):
    # one add and one multiply per iteration, 4*2*8*4*2*8 = 4096 iterations
    assert_features(row_of(gemm[GEMM_UPDATE]), {**no_computation(), "float_add_sub": lg(4096), "float_mul": lg(4096)})


def test_gemm_update_loop_features(gemm):
    row = row_of(gemm[GEMM_UPDATE])
    assert_features(row, {
        "vector_extent": lg(8),  # j_1
        "vector_is_innermost": 1.0,
        "unroll_extent": lg(2),  # k_1
        "parallel_extent": lg(4),  # i_0
        "parallel_loops": 1.0,
        "auto_unroll_max_step": lg(16),
        "loop_count": 6.0,
        "trip_count": lg(4096),
        "innermost_extent": lg(8),
        "reduction_trip_count": lg(8 * 2),  # k_0 * k_1
    })
    # the vectorized and the unrolled loop are told apart (8 lanes, unrolled twice)
    assert row["vector_extent"] > row["unroll_extent"]


def test_gemm_update_access_features(gemm):
    # Loops, outer to inner: i_0 (4), j_0 (2), k_0 (8), i_1 (4), k_1 (2), j_1 (8); 4096 iterations,
    # so every access moves 4096 * 4 = 16384 bytes and, whole nest, touches 16 x 16 elements = 1024
    # unique bytes = 1024 / 64 = 16 cache lines (contiguous innermost stride).
    # Slots: the written buffer first, then the reads by footprint (all 256 elements: load order).
    # The accumulator takes two slots: written (is_read too, since it is a reduction) and loaded.
    moved, unique = 4096 * F32, 256 * F32
    row = row_of(gemm[GEMM_UPDATE])
    assert_features(row, {
        # C_local[4 i_0 + i_1, 8 j_0 + j_1]: j_1 moves it by 1; k_1 (2) is the innermost loop that
        # does not move it: reuse every 8 iterations (j_1), over a footprint of 8 elements = 32 bytes
        **access_slot(0, write=True, read=True, moved=moved, unique=unique, lines=16, stride=1, reuse=(8, 32, 2)),
        **access_slot(1, write=False, read=True, moved=moved, unique=unique, lines=16, stride=1, reuse=(8, 32, 2)),
        # A[4 i_0 + i_1, 2 k_0 + k_1]: j_1 (8) does not move it (reuse at once: distance 1 iteration,
        # 1 element = 4 bytes, 8 times); k_1 moves it by 1
        **access_slot(2, write=False, read=True, moved=moved, unique=unique, lines=16, stride=1, reuse=(1, 4, 8)),
        # B[2 k_0 + k_1, 8 j_0 + j_1]: j_1 moves it by 1, k_1 by 16; i_1 (4) does not move it: reuse
        # every 2 * 8 = 16 iterations, over 2 rows x 8 columns = 16 elements = 64 bytes
        **access_slot(3, write=False, read=True, moved=moved, unique=unique, lines=16, stride=1, reuse=(16, 64, 4)),
        **empty_slots(4),
    })
    # unique bytes (the 16x16 footprint) are not bytes moved (every iteration's load)
    assert row["access2_unique_bytes"] == pytest.approx(lg(1024)) and row["access2_bytes"] == pytest.approx(lg(16384))


def test_gemm_allocation_features_mark_the_stores_into_the_local_cache(gemm):
    local = {"writes_cache_buffer": 1.0, "cache_buffer_bytes": lg(16 * 16 * F32)}  # the full 16x16 cache
    assert_features(row_of(gemm[GEMM_INIT]), local)
    assert_features(row_of(gemm[GEMM_UPDATE]), local)
    assert_features(row_of(gemm[GEMM_WRITE_BACK]), {"writes_cache_buffer": 0.0, "cache_buffer_bytes": 0.0})


def test_gemm_init_store_row(gemm):
    # The init sits inside the block, so it is modeled under all six loops (4096 iterations) though
    # it runs once per (v_i, v_j); TVM's PerStoreFeature, which lowers the init to an `if` in the
    # same place, sees the same loops.
    row = row_of(gemm[GEMM_INIT])
    assert_features(row, {**no_computation(), "loop_count": 6.0, "trip_count": lg(4096),
                          "reduction_trip_count": lg(16), "access0_bytes": lg(4096 * F32),
                          "access0_unique_bytes": lg(256 * F32), **empty_slots(1),
                          **intensity_curve([0.0] * 7)})  # no operations: zero intensity


def test_gemm_write_back_row(gemm):
    # i_0 (4, parallel, auto-unroll 16), j_0 (2), ax0 (4), ax1 (8): 256 iterations, one element each
    assert_features(row_of(gemm[GEMM_WRITE_BACK]), {
        **no_computation(),
        "vector_extent": 0.0, "vector_is_innermost": 0.0, "unroll_extent": 0.0,
        "parallel_extent": lg(4), "parallel_loops": 1.0, "auto_unroll_max_step": lg(16),
        "loop_count": 4.0, "trip_count": lg(256), "innermost_extent": lg(8),
        "reduction_trip_count": lg(1),  # no reduction loop: an empty product
        # C and C_local: 256 elements, each touched once (every loop moves them): no reuse
        **access_slot(0, write=True, read=False, moved=256 * F32, unique=256 * F32, lines=16, stride=1),
        **access_slot(1, write=False, read=True, moved=256 * F32, unique=256 * F32, lines=16, stride=1),
        **empty_slots(2),
        **intensity_curve([0.0] * 5),  # a copy: no operations
        "writes_cache_buffer": 0.0, "cache_buffer_bytes": 0.0,
    })


# ---------------------------------------------------------------- features: the conv


def test_conv_computation_features(conv):
    rows = [row_of(s) for s in conv]
    # pad: 1 * 2 * 8 * 8 = 128 iterations, 1 select and 4 integer comparisons each
    assert_features(rows[PAD], {**no_computation(), "float_compare_select": lg(128), "int_ops": lg(4 * 128)})
    assert_features(rows[CONV_INIT], no_computation())
    # conv: 1 * 4 * 6 * 6 * 2 * 3 * 3 = 2592 iterations, one multiply-add each
    assert_features(rows[CONV], {**no_computation(), "float_add_sub": lg(2592), "float_mul": lg(2592)})
    # bias and leaky ReLU: 1 * 4 * 6 * 6 = 144 iterations
    assert_features(rows[BIAS_ADD], {**no_computation(), "float_add_sub": lg(144)})
    assert_features(rows[LEAKY], {**no_computation(), "float_compare_select": lg(2 * 144), "float_mul": lg(144)})


def test_conv_loop_features(conv):
    assert_features(row_of(conv[PAD]), serial_loops([1, 2, 8, 8]))
    assert_features(row_of(conv[CONV]), serial_loops([1, 4, 6, 6, 2, 3, 3], reduction=2 * 3 * 3))
    assert_features(row_of(conv[BIAS_ADD]), serial_loops([1, 4, 6, 6]))


def test_conv_access_features(conv):
    # Loops nn (1), ff (4), yy (6), xx (6), rc (2), ry (3), rx (3): 2592 iterations, 2592 * 4 = 10368
    # bytes moved per access. Slots: conv2d_nchw written, conv2d_nchw loaded (144 elements), then
    # pad_temp (128), weight (72).
    moved = 2592 * F32
    assert_features(row_of(conv[CONV]), {
        # conv2d_nchw[0, ff, yy, xx]: 4*6*6 = 144 elements = 576 bytes = 9 lines; xx moves it by 1;
        # rx (3), the innermost loop, does not move it: distance 1 iteration, 1 element (4 bytes)
        **access_slot(0, write=True, read=True, moved=moved, unique=576, lines=9, stride=1, reuse=(1, 4, 3)),
        **access_slot(1, write=False, read=True, moved=moved, unique=576, lines=9, stride=1, reuse=(1, 4, 3)),
        # pad_temp[0, rc, yy+ry, xx+rx]: 2 x 8 x 8 = 128 elements = 512 bytes = 8 lines; rx moves it by 1;
        # ff (4) does not move it: reuse every 6*6*2*3*3 = 648 iterations, over the whole
        # 128-element (512-byte) footprint under ff
        **access_slot(2, write=False, read=True, moved=moved, unique=512, lines=8, stride=1, reuse=(648, 512, 4)),
        # weight[ff, rc, ry, rx]: 4*2*3*3 = 72 elements = 288 bytes = 4.5 lines; rx moves it by 1;
        # xx (6) does not move it: reuse every 2*3*3 = 18 iterations over 18 elements = 72 bytes
        **access_slot(3, write=False, read=True, moved=moved, unique=288, lines=4.5, stride=1, reuse=(18, 72, 6)),
        **empty_slots(4),
    })


def test_padding_store_row(conv):
    # pad_temp[0, c, y, x] = data[0, c, y-1, x-1] inside the border, for c < 2, y, x < 8: 128 iterations
    row = row_of(conv[PAD])
    assert_features(row, {
        **access_slot(0, write=True, read=False, moved=128 * F32, unique=128 * F32, lines=512 / 64, stride=1),
        # data: y-1 ranges over [-1, 6], 8 values, but data has 6 rows: the box is clipped to
        # 1 x 2 x 6 x 6 = 72 elements = 288 bytes = 4.5 lines, while 128 * 4 = 512 bytes are loaded
        **access_slot(1, write=False, read=True, moved=128 * F32, unique=72 * F32, lines=288 / 64, stride=1),
        **empty_slots(2),
        "writes_cache_buffer": 0.0, "cache_buffer_bytes": 0.0,
    })
    assert row["access1_unique_bytes"] < row["access1_bytes"]  # unique bytes are not bytes moved

    # Intensity: 5 operations per iteration (1 select + 4 comparisons) times the iterations under
    # each loop level, over the unique bytes of pad_temp + data at that level:
    #   level 0 (whole nest)  128 iterations; pad_temp 2*8*8 = 128, data 2*6*6 = 72 elements: 200 * 4 = 800 B
    #   level 1 (i0 fixed)    the same:                                                      800 B
    #   level 2 (c fixed)     64 iterations;  pad_temp 64, data 36:                 100 * 4 = 400 B
    #   level 3 (y fixed)     8 iterations;   pad_temp 8,  data 1 x 6 (x-1 in [-1, 6]): 14 * 4 = 56 B
    #   level 4 (one point)   1 iteration;    1 + 1 element:                          2 * 4 = 8 B
    per_level = [5 * 128 / 800, 5 * 128 / 800, 5 * 64 / 400, 5 * 8 / 56, 5 * 1 / 8]
    assert_features(row, intensity_curve(per_level))


def test_bias_add_store_accesses_and_intensity(conv):
    # T_add[0, f, y, x] = conv2d_nchw[0, f, y, x] + bias[0, f, 0, 0] over ax0 (1), ax1 (4), ax2 (6), ax3 (6)
    row = row_of(conv[BIAS_ADD])
    assert_features(row, {
        **access_slot(0, write=True, read=False, moved=144 * F32, unique=144 * F32, lines=9, stride=1),
        **access_slot(1, write=False, read=True, moved=144 * F32, unique=144 * F32, lines=9, stride=1),
        # bias: 4 elements = 16 bytes = 16/64 of a line; ax3 and ax2 leave it in place, ax1 moves it
        # by 1; reuse at ax3 (6 times, 1 iteration and 1 element = 4 bytes apart); 576 / 16 = 36
        # bytes per unique byte
        **access_slot(2, write=False, read=True, moved=144 * F32, unique=16, lines=0.25, stride=1, reuse=(1, 4, 6)),
        **empty_slots(3),
    })
    # Intensity: 1 add per iteration; unique elements T_add + conv2d_nchw + bias per level
    #   level 0: 144 it., 144 + 144 + 4 = 292 el. = 1168 B     level 1 (ax0 fixed): the same
    #   level 2: 36 it., 36 + 36 + 1 = 73 el. = 292 B          level 3: 6 it., 6 + 6 + 1 = 13 el. = 52 B
    #   level 4: 1 it., 3 el. = 12 B
    assert_features(row, intensity_curve([144 / 1168, 144 / 1168, 36 / 292, 6 / 52, 1 / 12]))


# ---------------------------------------------------------------- what was once wrong


def test_intensity_counts_each_buffer_once(gemm, conv):
    # GEMM update: unique elements of C_local (once) + A + B under each loop level
    # (footprints C_local: 256, 64, 32, 32, 8, 8, 1; A: 256, 64, 64, 8, 2, 1, 1; B: 256, 256, 128, 16, 16, 8, 1)
    #   = 768, 384, 224, 56, 26, 17, 3 elements; 2 operations x iterations under the level
    #   (4096, 1024, 512, 64, 16, 8, 1). Counted twice, C_local gave 1024, 448, 256, 88, 34, 25, 4.
    gemm_levels = [2 * it / (4 * el) for it, el in zip([4096, 1024, 512, 64, 16, 8, 1], [768, 384, 224, 56, 26, 17, 3])]
    # conv: conv2d_nchw (once) 144, 144, 36, 6, 1, 1, 1, 1; pad_temp 128, 128, 128, 48, 18, 9, 3, 1;
    # weight 72, 72, 18, 18, 18, 9, 3, 1 -> 344, 344, 182, 72, 37, 19, 7, 3 elements;
    # iterations 2592, 2592, 648, 108, 18, 9, 3, 1
    conv_levels = [2 * it / (4 * el) for it, el in zip([2592, 2592, 648, 108, 18, 9, 3, 1],
                                                       [344, 344, 182, 72, 37, 19, 7, 3])]
    # leaky ReLU: 3 operations; compute + T_add (once) = 2 elements per point, 288 whole nest:
    # 3 * 144 / (288 * 4) = 0.375 at every level (T_add counted three times gave 0.1875)
    leaky_levels = [0.375] * 5
    assert_features(row_of(gemm[GEMM_UPDATE]), intensity_curve(gemm_levels))
    assert_features(row_of(conv[CONV]), intensity_curve(conv_levels))
    assert_features(row_of(conv[LEAKY]), intensity_curve(leaky_levels))


def test_a_buffer_loaded_three_times_fills_a_slot_per_load(conv):
    """Slots are per access, as the module says (MetaSchedule's PerStoreFeature groups by buffer):
    the leaky ReLU's store, then its three loads of T_add."""
    row = row_of(conv[LEAKY])
    assert [row[f"access{slot}_present"] for slot in range(ACCESS_SLOTS)] == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_the_init_store_reads_nothing(gemm):
    assert row_of(gemm[GEMM_INIT])["access0_is_read"] == 0.0
    assert row_of(gemm[GEMM_UPDATE])["access0_is_read"] == 1.0  # the accumulation reads what it writes
