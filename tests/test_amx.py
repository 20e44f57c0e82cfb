"""AMX: int8 convolutions tensorized with a register-blocked `tdpbusd` micro-kernel, on weights
packed into the tile layout, checked exactly against the untuned program; the permission and the
tile configuration are the kernel's own business."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tvm
from tvm.s_tir import Schedule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minansor.config import SearchConfig
from minansor.measure.local import export_library
from minansor.measure.verify import check_against_untuned, run_locally
from minansor.network.graph import optimize_for
from minansor.space.search_space import SearchSpace
from minansor.space.steps import RewriteLayout, Tensorize, TileForIntrinsic, TileForMicroKernel
from minansor.tasks.targets import resolve_target
from minansor.tasks.workloads import make_task
from minansor.tir import amx
from minansor.tir.layout_rewrite import kernel, pack_inputs, packed_shapes

from test_vnni import _conv_task, _qdq_conv, _valid

CPU = resolve_target("cpu")
CONFIG = dataclasses.replace(SearchConfig(), num_cores=2)
needs_amx = pytest.mark.skipif(not amx.has_amx(CPU), reason="this CPU has no AMX (no amx_int8 in /proc/cpuinfo)")
AMX_TARGET = {"kind": "llvm", "mcpu": "sapphirerapids", "num-cores": 2}  # sketches need no AMX to be derived


def _micro_kernels(space: SearchSpace) -> set:
    return {s for sketch in space.sketches for s in sketch.steps if isinstance(s, TileForMicroKernel)}


def test_int8_conv_sketches_tile_for_the_micro_kernel_and_pack_the_weight_for_b_tiles():
    space = SearchSpace(make_task("qconv-26x26-128-64-3x3", AMX_TARGET), CONFIG)
    (step,) = _micro_kernels(space)
    # 26 = 2 x 13 rows, 64 = 2 x 16 columns (2 x 2 accumulator tiles), 128 = 2 x 64 input channels,
    # the 3 x 3 window inside: the whole reduction, so the accumulators start from zero
    assert step.kernel == amx.MicroKernel(rows=13, mt=2, nt=2, k_tile=64, kb=2, window=(3, 3), overwrite=True)
    for sketch in space.sketches:
        assert step in sketch.steps
        assert sketch.annotations[-1] == Tensorize("conv2d_nhwc_o", step.intrin, step.kernel.skip_init)
        assert not any(s.describe().startswith("vectorize") and s.block == "conv2d_nhwc_o" for s in sketch.annotations)


def test_amx_is_used_only_where_it_applies():
    # the ablation, a CPU without AMX, a float conv, a reduction of one group of 4 (VNNI's)
    for name, target, config in [("qconv-26x26-64-64-3x3", AMX_TARGET, dataclasses.replace(CONFIG, amx=False)),
                                 ("qconv-26x26-64-64-3x3", {"kind": "llvm", "mcpu": "icelake-server"}, CONFIG),
                                 ("conv-26x26-64-64-3x3-nhwc", AMX_TARGET, CONFIG),
                                 ("qconv-26x26-4-64-3x3", AMX_TARGET, CONFIG)]:
        assert not _micro_kernels(SearchSpace(make_task(name, target), config)), name
    vnni = SearchSpace(make_task("qconv-26x26-4-64-3x3", AMX_TARGET), CONFIG)
    assert all(any(isinstance(s, TileForIntrinsic) for s in sketch.steps) for sketch in vnni.sketches)
    # a strided conv: the A rows of a tile are 2 input pixels apart
    (strided,) = _micro_kernels(SearchSpace(make_task("qconv-26x26-64-64-3x3s2", AMX_TARGET), CONFIG))
    assert strided.kernel.stride == 2 and strided.kernel.window == (3, 3)


def test_the_micro_kernel_fits_the_loops_it_is_given():
    assert amx.MicroKernel(13, 1, 2, 64, 8).shape == (13, 32, 512)
    with pytest.raises(ValueError):
        amx.MicroKernel(17, 1, 1, 64, 1)  # a tile has at most 16 rows
    with pytest.raises(ValueError):
        amx.MicroKernel(16, 2, 3, 64, 1)  # 6 accumulators + 2 A + 2 B tiles: more than 8 registers


@needs_amx
def test_amx_programs_emit_tile_instructions_and_equal_the_untuned_conv():
    task = make_task("qconv-26x26-128-64-3x3")
    space = SearchSpace(task, CONFIG)
    for applied in _valid(space, 2):
        (name, shape, packed), = [p for p in packed_shapes(applied.mod) if p[0] == "weight"]
        assert shape == (3, 3, 128, 64) and packed[-5:] == (3, 3, 128 // 4, 32, 4)  # [KH, KW, K/4, N, 4]: B tiles
        check = check_against_untuned(task, applied.mod, 0.0, 0.0)  # integers, then one float scale: exact
        assert check.ok, check.detail
        asm = tvm.compile(amx.with_permission(kernel(applied.mod)), target=task.target).mod.inspect_source("asm")
        assert all(op in asm for op in ("tdpbusd", "ldtilecfg", "sttilecfg", "tileloadd", "tilestored", "tilezero"))


@needs_amx
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([4, 8, 64, 128]), st.sampled_from([16, 32, 48]), st.sampled_from([(1, 1), (3, 1), (3, 2)]),
       st.integers(8, 30), st.integers(0, 2**16))
def test_any_amx_int8_conv_equals_the_untuned_one_exactly(cin, cout, window_and_stride, size, seed):
    k, stride = window_and_stride
    task = make_task(f"qconv-{size}x{size}-{cin}-{cout}-{k}x{k}" + (f"s{stride}" if stride > 1 else ""))
    space = SearchSpace(task, CONFIG)
    (applied,) = _valid(space, 1, seed)
    check = check_against_untuned(task, applied.mod, 0.0, 0.0, seed)
    assert check.ok, check.detail


@needs_amx
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([10, 20, 64]), st.sampled_from([8, 20, 75]), st.sampled_from([1, 3]), st.integers(8, 14),
       st.integers(0, 2**16))
def test_padded_qdq_convs_with_a_zero_point_run_on_amx_exactly(cin, cout, k, size, seed):
    task = _conv_task(optimize_for(_qdq_conv(cin, cout, k, 1, size, seed), CONFIG))
    space = SearchSpace(task, CONFIG)
    assert _micro_kernels(space)
    (applied,) = _valid(space, 1, seed)
    check = check_against_untuned(task, applied.mod, 0.0, 0.0, seed)
    assert check.ok, check.detail


def _parallel_program(space: SearchSpace):
    """A valid AMX program whose tiled block runs in parallel."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        applied = space.random(rng)
        if applied is not None and dict(applied.program.decisions).get("parallel conv2d_nhwc_o"):
            return applied
    raise AssertionError("no parallel AMX program in 50 draws")


@needs_amx
def test_a_process_that_never_asked_for_amx_runs_a_parallel_amx_library_correctly(tmp_path):
    task = make_task("qconv-26x26-64-32-3x3")
    applied = _parallel_program(SearchSpace(task, CONFIG))
    path = str(tmp_path / "amx.so")
    export_library(tvm.compile(amx.with_permission(kernel(applied.mod)), target=task.target), path)
    rng = np.random.default_rng(0)
    inputs = [spec.random(rng) for spec in task.args]
    np.savez(tmp_path / "inputs.npz", *pack_inputs(applied.mod, inputs))
    # a fresh interpreter with TVM only (no minansor: nobody asked Linux for the tiles) and a pool of 2 threads
    script = f"""
import numpy as np, tvm
arrays = np.load({str(tmp_path / 'inputs.npz')!r})
args = [tvm.runtime.tensor(arrays[f'arr_{{i}}']) for i in range(len(arrays.files))]
tvm.runtime.load_module({path!r})['main'](*args)
np.save({str(tmp_path / 'out.npy')!r}, args[-1].numpy())
"""
    env = {**os.environ, "TVM_NUM_THREADS": "2"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    (expected,) = run_locally(task, task.mod, inputs)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_only_functions_that_use_tiles_ask_for_them():
    plain = make_task("qconv-6x6-8-32-3x3").mod
    assert amx.with_permission(plain) is plain
    space = SearchSpace(make_task("qconv-26x26-64-32-3x3", AMX_TARGET), CONFIG)
    (applied,) = _valid(space, 1)
    asking = amx.with_permission(kernel(applied.mod))
    assert amx.uses_amx(asking["main"]) and "syscall" in asking["main"].script()


@needs_amx
@pytest.mark.parametrize("kernel", [amx.MicroKernel(13, 2, 2, 64, 1),  # the window outside: C loaded, 9 times
                                    amx.MicroKernel(13, 1, 1, 32, 2, window=(3, 3)),  # C loaded once
                                    amx.MicroKernel(13, 2, 1, 16, 4, window=(3, 3), overwrite=True),
                                    amx.MicroKernel(13, 1, 2, 64, 1, window=(3, 3), overwrite=True, stride=2)])
def test_every_form_of_the_micro_kernel_equals_the_untuned_conv(kernel):
    task = make_task("qconv-26x26-64-32-3x3" + ("s2" if kernel.stride == 2 else ""))
    sch = Schedule(task.mod)
    tiling = TileForMicroKernel("conv2d_nhwc", kernel)
    for step in (tiling, RewriteLayout(tiling.outer, "weight"), Tensorize(tiling.outer, tiling.intrin, kernel.skip_init)):
        step.apply(sch, lambda knob, preferred: None)
    check = check_against_untuned(task, sch.mod, 0.0, 0.0)
    assert check.ok, check.detail


def test_bf16_conv_sketches_take_the_bf16_micro_kernel():
    space = SearchSpace(make_task("bconv-26x26-128-64-3x3", AMX_TARGET), CONFIG)
    (step,) = _micro_kernels(space)
    # bf16: 32 input channels (64 bytes) per tile row, in pairs
    assert step.kernel == amx.MicroKernel(13, 2, 2, 32, 4, window=(3, 3), overwrite=True, dtype="bf16")


@needs_amx
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([8, 32, 96]), st.sampled_from([16, 32, 48]), st.sampled_from([(1, 1), (3, 1), (3, 2)]),
       st.integers(8, 30), st.integers(0, 2**16))
def test_any_amx_bf16_conv_equals_the_untuned_one_up_to_the_order_of_its_sums(cin, cout, window_and_stride, size, seed):
    k, stride = window_and_stride
    task = make_task(f"bconv-{size}x{size}-{cin}-{cout}-{k}x{k}" + (f"s{stride}" if stride > 1 else ""))
    space = SearchSpace(task, CONFIG)
    assert _micro_kernels(space)
    (applied,) = _valid(space, 1, seed)
    # A product of two bf16 values is exact in fp32; both programs add the same products in fp32,
    # in another order: each sum of n terms of size <= 1 may differ by n * 2^-24 per unit of its size.
    check = check_against_untuned(task, applied.mod, 0.0, 9 * cin * 2.0**-24, seed)
    assert check.ok, check.detail
    asm = tvm.compile(amx.with_permission(kernel(applied.mod)), target=task.target).mod.inspect_source("asm")
    assert "tdpbf16ps" in asm
