"""Golden tests of the derivation rules: which sketches each kind of workload gets."""

import dataclasses
import inspect

import pytest

from minansor.config import SearchConfig
from minansor.space.search_space import generate_sketches
from minansor.space.steps import (CacheWrite, ComputeLocation, DecomposeReduction, FuseConsumer, Inline, MultiLevelTile, Parallel,
                            RewriteLayout, Rfactor, Unroll, Vectorize, VectorizeUnderReduction)
from minansor.tasks.workloads import make_task


def sketches(name, **config):
    """The sketches on a 2-core CPU, whatever this machine has (the parallel extent and the
    rfactor threshold scale with the cores)."""
    task = make_task(name)
    return generate_sketches(task.mod, dataclasses.replace(SearchConfig(), num_cores=2, **config), task.target)


def test_the_cores_come_from_the_target_unless_the_config_names_them():
    task = make_task("conv-16x16-8-8-3x3", '{"kind": "llvm", "num-cores": 3}')
    bounds = {s.min_extent for sketch in generate_sketches(task.mod, SearchConfig(), task.target)
              for s in sketch.annotations if isinstance(s, Parallel)}
    assert bounds == {3 * SearchConfig.parallel_extent_per_core}
    named = generate_sketches(task.mod, dataclasses.replace(SearchConfig(), num_cores=5), task.target)
    assert {s.min_extent for sketch in named for s in sketch.annotations if isinstance(s, Parallel)} == {80}
    with pytest.raises(ValueError, match="resolve the config"):
        SearchConfig().parallel_extent  # a config not resolved for a target has no parallel extent


def kinds(sketch):
    return [type(s).__name__ for s in sketch.steps]


def test_gemm_gets_plain_tiling_cache_write_and_fused_variants():
    found = sketches("gemm-64x64x64")
    assert sorted(kinds(s) for s in found) == sorted([
        ["MultiLevelTile"],
        ["CacheWrite", "MultiLevelTile", "FuseConsumer"],
        ["CacheWrite", "MultiLevelTile", "FuseConsumer"],
        ["CacheWrite", "MultiLevelTile"],
    ])
    fused = [s.steps[-1] for s in found if isinstance(s.steps[-1], FuseConsumer)]
    assert sorted(f.level for f in fused) == [1, 2]
    assert all(f.consumer == "C_local" and f.block == "C" for f in fused)
    assert all(t.structure == "SSRSRS" for s in found for t in s.steps if isinstance(t, MultiLevelTile))


def test_conv_inlines_bias_fuses_activation_and_leaves_padding_to_annotation():
    found = sketches("conv-16x16-8-8-3x3", layout_rewrite="off")
    assert len(found) == 3
    for s in found:
        assert s.steps[0] == Inline("T_add")
        assert s.steps[1] == MultiLevelTile("conv2d_nchw", "SSRSRS", 64)
        assert ComputeLocation("pad_temp") in s.annotations  # if_then_else: not strictly inlinable
        assert Unroll("conv2d_nchw", (0, 16, 64, 512)) in s.annotations
    assert sorted(s.steps[2].level for s in found if len(s.steps) == 3) == [1, 2]
    assert any(len(s.steps) == 2 for s in found)  # the unfused sketch is kept
    assert not any(isinstance(t, CacheWrite) for s in found for t in s.steps)


def test_a_tiled_conv_packs_its_constant_weight_after_the_tiling():
    packed = sketches("conv-16x16-8-8-3x3")
    unpacked = sketches("conv-16x16-8-8-3x3", layout_rewrite="off")
    assert [s.steps for s in packed] == [u.steps + (RewriteLayout("conv2d_nchw", "weight"),) for u in unpacked]
    assert [s.annotations for s in packed] == [u.annotations for u in unpacked]  # nothing to decide about packing
    both = sketches("conv-16x16-8-8-3x3", layout_rewrite="optional")
    assert sorted(map(repr, both)) == sorted(map(repr, packed + unpacked))
    # the bias is a constant too, but no tiled block reads it; a task without constants is unchanged
    assert sketches("gemm-64x64x64") == sketches("gemm-64x64x64", layout_rewrite="off")


@pytest.mark.parametrize("field, value", [("max_innermost_tile", 8), ("unroll_steps", (0, 16)),
                                          ("max_vector_length", 16), ("vector_preferred_loops", 2),
                                          ("parallel_extent_per_core", 4)])
def test_the_fingerprint_of_every_sketch_names_the_bounds_of_its_knobs(field, value):
    base = sketches("conv-16x16-8-8-3x3")
    other = sketches("conv-16x16-8-8-3x3", **{field: value})
    assert [s.describe() for s in other] == [s.describe() for s in base]  # the same structures
    assert all(o.fingerprint() != b.fingerprint() for o, b in zip(other, base))


def test_a_step_needs_nothing_but_the_schedule_and_the_decisions():
    for sketch in sketches("conv-16x16-8-8-3x3") + sketches("rowsum-8x4096"):
        for step in sketch.all_steps:
            assert list(inspect.signature(step.apply).parameters) == ["sch", "decide"], step


def test_row_reduction_gets_both_rfactor_sketches_and_the_plain_one():
    found = sketches("rowsum-8x4096")
    assert {tuple(s.steps) for s in found} == {(Rfactor("S", "outer", 64),), (Rfactor("S", "inner", 64),), ()}
    assert len(found) == 3


@pytest.mark.parametrize("name", ["add-64x64", "maxpool-16x16-4"])
def test_no_reuse_means_no_tiling(name):
    (only,) = sketches(name)
    assert only.steps == ()
    assert all(isinstance(s, (Vectorize, VectorizeUnderReduction, Parallel, Unroll, DecomposeReduction))
               for s in only.annotations)


def test_sketch_generation_is_deterministic():
    assert sketches("conv-16x16-8-8-3x3") == sketches("conv-16x16-8-8-3x3")
