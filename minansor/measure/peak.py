"""This machine's fp32 peak, measured: an FMA-bound kernel that TVM compiles for the target.

Every core runs `chains` independent chains of vector fused multiply-adds on registers,
`acc = acc * a + b`, with no memory traffic at all. A conv or GEMM kernel does nothing but
multiply-adds in its inner loop, and needs loads besides, so no program of the search space
can run more floating-point operations per second than this one: it is the ceiling "% of peak"
refers to. Enough chains keep every FMA pipe busy despite the FMA latency (two pipes x four
cycles = 8 chains on Zen 4 and 5; 12 leave a margin). The vector width is LLVM's for the
target's CPU (16 floats with AVX-512). The accumulators stay in registers only as a stack
array: TVM allocates a buffer of scope "local", or of 1 KiB or more, from a heap workspace,
and then every FMA stores to memory (measured: 2.7x slower).

numpy's sgemm (OpenBLAS, compare/remeasure.py) is the other yardstick: a vendor GEMM, what a hand-tuned
library reaches in practice.

On an NVIDIA GPU the same experiment runs as CUDA threads: every thread of enough blocks to
fill every multiprocessor several times over keeps `chains` independent scalar FMA chains in
registers (the hardware hides FMA latency across the warps of a multiprocessor, so fewer chains
per thread are needed than on a CPU core).

The int8 peak is the same experiment with VNNI's `vpdpbusd` (vnni.py) in place of the FMA: 64
multiply-adds of 8-bit integers into 16 int32 lanes per instruction, counted as 2 operations
each, as for fp32.

On a CPU with AMX (amx.py) the matrix engine has its own peak: every core holds four
accumulator tiles (16 x 16 int32 or fp32) and repeats `tdpbusd` (16 x 16 x 64 uint8 x int8
multiply-adds per instruction) or `tdpbf16ps` (16 x 16 x 32 bf16 products) on tiles loaded
once, with no memory traffic.
"""

from __future__ import annotations

import functools

import numpy as np
import tvm
from tvm.script import tirx as T
from tvm.target import codegen

from ..tasks.targets import resolve_target, settle_main_thread, target_cores
from ..tir import amx
from ..tir.vnni import VPDPBUSD
from .local import in_fresh_process


def fma_kernel(cores: int, lanes: int, chains: int, steps: int) -> tvm.IRModule:
    """`out[core] = (a * (a * (... x ...) + b) + b)`, `steps` deep, for `chains` x `lanes` values
    of `x` at once per core; `a`, `b` and `x` are inputs, so the compiler cannot fold the chains."""

    @T.prim_func
    def main(x: T.Buffer((chains, lanes), "float32"), ab: T.Buffer((2,), "float32"),
             out: T.Buffer((cores, chains, lanes), "float32")):
        for core in T.parallel(cores):
            acc = T.decl_buffer((chains, lanes), "float32", scope="global")  # < 1 KiB: on the stack
            for j in T.unroll(chains):
                for lane in T.vectorized(lanes):
                    acc[j, lane] = x[j, lane]
            for _ in range(steps):
                for j in T.unroll(chains):
                    for lane in T.vectorized(lanes):
                        acc[j, lane] = T.fma(acc[j, lane], ab[0], ab[1])
            for j in T.unroll(chains):
                for lane in T.vectorized(lanes):
                    out[core, j, lane] = acc[j, lane]

    return tvm.IRModule({"main": main})


def vector_lanes(target: tvm.target.Target) -> int:
    """fp32 lanes of the target CPU's widest vector register."""
    return max(1, int(codegen.llvm_get_vector_width(target)) // 32)


def fp32_peak_gflops(target="cpu", chains: int = 12, steps: int = 1 << 16, repeat: int = 25) -> float:
    """Best of `repeat` timings (each at least 20 ms) of the FMA kernel on all of the target's cores, in GFLOPS,
    measured in a fresh process like every candidate (measure.in_fresh_process). A CUDA target
    is measured on this machine's GPU (`cuda_fp32_peak_gflops`)."""
    target = resolve_target(target)
    if target.kind.name == "cuda":
        return cuda_fp32_peak_gflops(target)
    return in_fresh_process(_peak_gflops, target.export(), chains, steps, repeat)


def cuda_fma_kernel(blocks: int, threads: int, chains: int, steps: int, unroll: int = 8) -> tvm.IRModule:
    """The GPU form of `fma_kernel`: each of `blocks` x `threads` CUDA threads runs `chains`
    independent chains `acc = acc * a + b`, `steps` deep (unrolled `unroll` at a time), in registers."""

    @T.prim_func
    def main(x: T.Buffer((blocks * threads, chains), "float32"), ab: T.Buffer((2,), "float32"),
             out: T.Buffer((blocks * threads, chains), "float32")):
        for block in T.thread_binding(blocks, thread="blockIdx.x"):
            for thread in T.thread_binding(threads, thread="threadIdx.x"):
                acc = T.decl_buffer((chains,), "float32", scope="local")
                a = T.decl_buffer((2,), "float32", scope="local")
                a[0] = ab[0]
                a[1] = ab[1]
                for j in T.unroll(chains):
                    acc[j] = x[block * threads + thread, j]
                for _ in range(steps // unroll):
                    for _u in T.unroll(unroll):
                        for j in T.unroll(chains):
                            acc[j] = acc[j] * a[0] + a[1]
                for j in T.unroll(chains):
                    out[block * threads + thread, j] = acc[j]

    return tvm.IRModule({"main": main})


def cuda_fp32_peak_gflops(target="cuda", chains: int = 8, steps: int = 1 << 14, threads: int = 256,
                          blocks_per_multiprocessor: int = 8, repeat: int = 25) -> float:
    """Best of `repeat` timings of `cuda_fma_kernel` on this machine's GPU, in GFLOPS, measured
    in a fresh process like every candidate."""
    return in_fresh_process(_cuda_peak_gflops, resolve_target(target).export(), chains, steps, threads,
                            blocks_per_multiprocessor, repeat)


def _cuda_peak_gflops(target_config: dict, chains: int, steps: int, threads: int, blocks_per_multiprocessor: int,
                      repeat: int) -> float:
    dev = tvm.cuda()
    blocks = blocks_per_multiprocessor * int(dev.multi_processor_count)
    lib = tvm.compile(cuda_fma_kernel(blocks, threads, chains, steps), target=tvm.target.Target(target_config))
    args = [tvm.runtime.tensor(np.ones((blocks * threads, chains), "float32"), dev),
            tvm.runtime.tensor(np.array([0.999, 0.001], "float32"), dev),
            tvm.runtime.tensor(np.zeros((blocks * threads, chains), "float32"), dev)]
    timer = lib.mod.time_evaluator("main", dev, number=3, repeat=repeat, min_repeat_ms=20)
    seconds = min(timer(*args).results)
    return 2 * blocks * threads * chains * steps / seconds / 1e9


def _peak_gflops(target_config: dict, chains: int, steps: int, repeat: int) -> float:
    settle_main_thread()
    target = tvm.target.Target(target_config)
    cores, lanes = target_cores(target), vector_lanes(target)
    lib = tvm.compile(fma_kernel(cores, lanes, chains, steps), target=target)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.ones((chains, lanes), "float32"), dev),
            tvm.runtime.tensor(np.array([0.999, 0.001], "float32"), dev),
            tvm.runtime.tensor(np.zeros((cores, chains, lanes), "float32"), dev)]
    timer = lib.mod.time_evaluator("main", dev, number=3, repeat=repeat, min_repeat_ms=20)
    seconds = min(timer(*args).results)
    return 2 * cores * chains * lanes * steps / seconds / 1e9


def vnni_kernel(cores: int, chains: int, steps: int) -> tvm.IRModule:
    """`chains` independent int32x16 accumulators per core, each taking `steps` vpdpbusd in a
    row on registers, with no memory traffic: the int8 counterpart of `fma_kernel`."""
    intrinsic = T.llvm_lookup_intrinsic_id(VPDPBUSD)

    @T.prim_func
    def main(a: T.Buffer((64,), "uint8"), b: T.Buffer((64,), "int8"), out: T.Buffer((cores, chains, 16), "int32")):
        for core in T.parallel(cores):
            acc = T.decl_buffer((chains, 16), "int32", scope="global")  # < 1 KiB: on the stack
            for j in T.unroll(chains):
                acc[j, T.ramp(0, 1, 16)] = T.broadcast(T.int32(j), 16)
            for _ in range(steps):
                for j in T.unroll(chains):
                    acc[j, T.ramp(0, 1, 16)] = T.call_llvm_pure_intrin(
                        intrinsic, acc[j, T.ramp(0, 1, 16)], a.vload([0], "uint8x64"), b.vload([0], "int8x64"),
                        dtype="int32x16")
            for j in T.unroll(chains):
                out[core, j, T.ramp(0, 1, 16)] = acc[j, T.ramp(0, 1, 16)]

    return tvm.IRModule({"main": main})


def int8_peak_gops(target="cpu", chains: int = 12, steps: int = 1 << 16, repeat: int = 25) -> float:
    """Best of `repeat` timings of the VNNI kernel on all of the target's cores, in GOPS,
    measured in a fresh process. The target's CPU must have VNNI (vnni.has_vnni)."""
    return in_fresh_process(_int8_peak_gops, resolve_target(target).export(), chains, steps, repeat)


def _int8_peak_gops(target_config: dict, chains: int, steps: int, repeat: int) -> float:
    settle_main_thread()
    target = tvm.target.Target(target_config)
    cores = target_cores(target)
    lib = tvm.compile(vnni_kernel(cores, chains, steps), target=target)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.ones(64, "uint8"), dev), tvm.runtime.tensor(np.ones(64, "int8"), dev),
            tvm.runtime.tensor(np.zeros((cores, chains, 16), "int32"), dev)]
    timer = lib.mod.time_evaluator("main", dev, number=3, repeat=repeat, min_repeat_ms=20)
    seconds = min(timer(*args).results)
    return 2 * 64 * cores * chains * steps / seconds / 1e9


AMX_PRODUCTS = {"int8": ("llvm.x86.tdpbusd", 64), "bf16": ("llvm.x86.tdpbf16ps", 32)}  # instruction, K per tile


def amx_kernel(cores: int, steps: int, dtype: str) -> tvm.IRModule:
    """Four accumulator tiles per core (tiles 0-3), each taking `steps` tile products in a row
    from two A tiles (4, 5) and two B tiles (6, 7) loaded once: `tdpbusd` for int8, `tdpbf16ps`
    for bf16. The tile configuration is loaded inside the parallel loop: it is per thread."""
    product = T.llvm_lookup_intrinsic_id(AMX_PRODUCTS[dtype][0])
    lookup = T.llvm_lookup_intrinsic_id
    call = functools.partial(T.call_llvm_intrin, "void")
    config = amx.tile_config([(amx.TILE_ROWS, amx.TILE_BYTES)] * amx.TILE_REGISTERS)

    @T.prim_func
    def main(a: T.Buffer((16, 64), "uint8"), out: T.Buffer((cores, 4, 16, 16), "int32")):
        for core in T.parallel(cores):
            amx.load_tile_config(config)
            for t in T.unroll(4):
                T.evaluate(call(lookup("llvm.x86.tilezero"), T.uint8(t)))
            for t in T.unroll(4):
                T.evaluate(call(lookup("llvm.x86.tileloadd64"), T.uint8(4 + t), T.address_of(a[0, 0]), T.int64(64)))
            for _ in range(steps):
                for t in T.unroll(4):
                    T.evaluate(call(product, T.uint8(t), T.uint8(4 + t // 2), T.uint8(6 + t % 2)))
            for t in T.unroll(4):
                T.evaluate(call(lookup("llvm.x86.tilestored64"), T.uint8(t), T.address_of(out[core, t, 0, 0]),
                                T.int64(64)))

    return amx.with_permission(tvm.IRModule({"main": main}))


def amx_peak_gops(target="cpu", dtype: str = "int8", steps: int = 1 << 14, repeat: int = 25) -> float:
    """Best of `repeat` timings of the AMX kernel (`dtype` int8 or bf16) on all of the target's
    cores, in GOPS (one multiply-add = 2 operations), measured in a fresh process. The
    target's CPU must have AMX (amx.has_amx)."""
    return in_fresh_process(_amx_peak_gops, resolve_target(target).export(), dtype, steps, repeat)


def _amx_peak_gops(target_config: dict, dtype: str, steps: int, repeat: int) -> float:
    settle_main_thread()
    target = tvm.target.Target(target_config)
    cores = target_cores(target)
    lib = tvm.compile(amx_kernel(cores, steps, dtype), target=target)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.zeros((16, 64), "uint8"), dev),
            tvm.runtime.tensor(np.zeros((cores, 4, 16, 16), "int32"), dev)]
    timer = lib.mod.time_evaluator("main", dev, number=3, repeat=repeat, min_repeat_ms=20)
    seconds = min(timer(*args).results)
    return 2 * 16 * 16 * AMX_PRODUCTS[dtype][1] * 4 * cores * steps / seconds / 1e9


# ---------------------------------------------------------------- memory bandwidth

# STREAM's kernels (McCalpin), as TVM builds them, with STREAM's byte counts: copy reads one
# array and writes one, triad reads two and writes one (a store's cache-line read is not counted).
STREAM_KERNELS = {"copy": 2, "triad": 3}


def stream_kernel(cores: int, lanes: int, size: int, kind: str) -> tvm.IRModule:
    """`a = b` (copy) or `a = b + 3 c` (triad) over `size` floats, each core one contiguous
    slice, `lanes` floats per vector; `size` a multiple of cores x lanes."""
    per_core = size // cores

    @T.prim_func
    def main(b: T.Buffer((size,), "float32"), c: T.Buffer((size,), "float32"), a: T.Buffer((size,), "float32")):
        for core in T.parallel(cores):
            for i in range(per_core // lanes):
                for lane in T.vectorized(lanes):
                    if kind == "copy":
                        a[core * per_core + i * lanes + lane] = b[core * per_core + i * lanes + lane]
                    else:
                        a[core * per_core + i * lanes + lane] = (b[core * per_core + i * lanes + lane]
                                                                 + T.float32(3) * c[core * per_core + i * lanes + lane])

    return tvm.IRModule({"main": main})


def memory_bandwidth_gbs(target="cpu", kind: str = "triad", megabytes: float = 128, repeat: int = 10) -> float:
    """Best of `repeat` timings (each at least 20 ms) of STREAM's `kind` kernel on all of the
    target's cores over arrays of `megabytes` each, in GB/s, in a fresh process. The default
    size is far beyond any cache: main memory's bandwidth. A copy of as many bytes as an operator
    reads and writes, timed like it (its arrays stay in whatever cache they fit), is the
    yardstick a memory-bound operator is held to."""
    return memory_bandwidths_gbs(target, kind, [megabytes], repeat)[0]


def memory_bandwidths_gbs(target="cpu", kind: str = "triad", megabytes: list[float] = (128,),
                          repeat: int = 10) -> list[float]:
    """memory_bandwidth_gbs at each of several sizes, all in one fresh process (a network's
    memory-bound tasks come in dozens of sizes; a process each spent seconds starting TVM)."""
    return in_fresh_process(_memory_bandwidths_gbs, resolve_target(target).export(), kind, list(megabytes), repeat)


def _memory_bandwidths_gbs(target_config: dict, kind: str, sizes: list[float], repeat: int) -> list[float]:
    settle_main_thread()
    return [_stream_gbs(target_config, kind, megabytes, repeat) for megabytes in sizes]


def _stream_gbs(target_config: dict, kind: str, megabytes: float, repeat: int) -> float:
    target = tvm.target.Target(target_config)
    cores, lanes = target_cores(target), vector_lanes(target)
    size = max(1, int(megabytes * (1 << 20) / 4) // (cores * lanes)) * (cores * lanes)
    lib = tvm.compile(stream_kernel(cores, lanes, size, kind), target=target)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.full(size, value, "float32"), dev) for value in (1.0, 2.0, 0.0)]
    timer = lib.mod.time_evaluator("main", dev, number=1, repeat=repeat, min_repeat_ms=20)
    seconds = min(timer(*args).results)
    return STREAM_KERNELS[kind] * 4 * size / seconds / 1e9
