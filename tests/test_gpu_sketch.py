"""GPU sketches: valid CUDA source for a conv and a GEMM, cross-thread reduction, thread-bound
simple blocks, and the target's limits enforced, all without a GPU."""

import dataclasses

import numpy as np
import pytest
import tvm

from minansor.config import SearchConfig
from minansor.search.mutate import MUTATORS
from minansor.space.program import materialize
from minansor.space.gpu_rules import check_gpu_limits
from minansor.space.search_space import SearchSpace
from minansor.space.steps import InvalidProgram
from minansor.tasks.workloads import make_task

CUDA = '{"kind": "cuda", "arch": "sm_80", "max_shared_memory_per_block": 49152, "max_threads_per_block": 1024, ' \
       '"thread_warp_size": 32, "registers_per_block": 65536}'


def _cuda_source(mod, target) -> str:
    executable = tvm.compile(mod, target=target)
    return "\n".join(m.inspect_source() for m in executable.mod.imports if m.kind == "cuda")


def _valid_programs(name: str, count: int, seed: int = 0):
    space = SearchSpace(make_task(name, CUDA), SearchConfig())
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(200):
        applied = space.random(rng)
        if applied is not None:
            found.append(applied)
        if len(found) == count:
            return space, found
    raise AssertionError(f"{name}: {len(found)} valid programs in 200 draws (valid rate {space.valid_rate:.0%})")


@pytest.mark.parametrize("name", ["gemm-256x256x256", "yolo-conv-52x52-128-128-3x3"])
def test_tiled_programs_compile_to_cuda_with_shared_memory(name):
    space, programs = _valid_programs(name, 2)
    assert any("multi-level tile" in line for line in space.sketches[0].describe())
    for applied in programs:
        source = _cuda_source(applied.mod, space.task.target)
        for marker in ("__global__", "__shared__", "threadIdx.x", "blockIdx.x", "__syncthreads"):
            assert marker in source, marker
        assert space.apply(applied.program).mod.script() == applied.mod.script()  # replay is exact


def test_long_reduction_is_reduced_across_threads_and_pooling_is_bound():
    space, (applied,) = _valid_programs("rowsum-64x16384", 1)
    assert "reduce" in " ".join(space.sketches[0].describe())
    source = _cuda_source(applied.mod, space.task.target)
    assert "__shfl" in source or "red_buf" in source  # the allreduce TVM lowers it to
    space, (applied,) = _valid_programs("maxpool-26x26-256", 1)
    assert "threadIdx.x" in _cuda_source(applied.mod, space.task.target)


def test_programs_beyond_the_limits_are_invalid():
    task = make_task("gemm-256x256x256", CUDA)
    space = SearchSpace(task, SearchConfig())
    applied = next(a for a in (space.random(np.random.default_rng(i)) for i in range(100)) if a is not None)
    check_gpu_limits(applied.mod, task.target)  # a valid one passes
    tight = tvm.target.Target({**task.target.export(), "max_threads_per_block": 1, "max_num_threads": 1})
    with pytest.raises(InvalidProgram, match="limits"):
        check_gpu_limits(applied.mod, tight)


def test_thread_counts_are_drawn_from_the_configured_choices_and_mutated_among_them():
    config = dataclasses.replace(SearchConfig(), gpu_thread_choices=(32, 64, 128, 512))
    space = SearchSpace(make_task("rowsum-64x16384", CUDA), config)
    rng = np.random.default_rng(0)
    drawn = [a for a in (space.random(rng) for _ in range(40)) if a is not None]
    threads = {value for a in drawn for name, value in a.program.decisions if name.startswith("threads")}
    assert len(threads) > 1 and threads <= {32, 64, 128, 512}, threads
    program, knobs = drawn[0].program, drawn[0].knobs
    child = MUTATORS["threads"](program, knobs, rng)
    changed = dict(child.decisions).items() - dict(program.decisions).items()
    assert [name for name, _ in changed] == [k.name for k in knobs if k.kind == "threads"]
    space.apply(child)  # a valid program of the same space


def test_a_shared_memory_fetch_is_vectorized_only_along_whole_rows_of_its_region():
    """Seen on an H200: conv programs whose weight rows (3 floats) were fetched 2 or 4 wide failed
    to build in TVM's vectorizer. With those tiles the weight fetch now offers width 1 only, the
    padded input (rows of 28) every width, and the program builds."""
    space = SearchSpace(make_task("yolo-conv-26x26-256-256-3x3", CUDA), SearchConfig())
    tiles = {"ff": (8, 4, 1, 1, 8), "nn": (1, 1, 1, 1, 1), "rc": (16, 4, 4), "rx": (1, 3, 1), "ry": (3, 1, 1),
             "xx": (1, 13, 1, 2, 1), "yy": (2, 13, 1, 1, 1)}
    offered = {}

    def decide(knob, preferred):
        if knob.is_tile:
            return tiles[knob.name.rsplit(".", 1)[1]]
        offered[knob.name] = knob.choices
        return knob.choices[-1]

    applied = materialize(space.task.mod, space.sketches, 0, decide)
    assert offered["vector conv2d_nchw.read1"] == (1,)
    assert offered["vector conv2d_nchw.read0"] == (1, 2, 4)
    assert "__global__" in _cuda_source(applied.mod, space.task.target)
