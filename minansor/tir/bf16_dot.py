"""The AVX-512 BF16 dot product (`vdpbf16ps`) as a tensor intrinsic: bf16 where there is no AMX.

One `vdpbf16ps` on 512-bit registers multiplies 32 bf16 activations by 32 bf16 weights and adds
each pair of products into one of 16 fp32 accumulators: 32 multiply-adds per instruction, twice
an fp32 FMA's 16 (AMD Zen 4 has it, with no AMX; so do Intel's AMX CPUs). In TensorIR it is the
16 x 2 block

    C[i] += fp32(A[k]) * fp32(B[i, k])      i < 16 (output channels), k < 2 (reduction)

with A's pair broadcast to all 16 lanes and B a contiguous 16 x 2 tile of the weight, packed so
by the layout rewrite exactly as VNNI's 16 x 4 int8 tile is (vnni.py, the same sketch rule).
"""

from __future__ import annotations

import tvm
from tvm.s_tir import Schedule, TensorIntrin
from tvm.s_tir.schedule.analysis import get_tensorize_loop_mapping
from tvm.script import tirx as T
from tvm.target import codegen

from . import analysis

BF16_DOT_INTRIN = "minansor_dot_16x2_bf16bf16f32_avx512"
LANES, REDUCTION = 16, 2  # fp32 accumulators per instruction, products summed into each
VDPBF16PS = "llvm.x86.avx512bf16.dpbf16ps.512"


@T.prim_func(s_tir=True)
def dot_16x2_description(A: T.Buffer((2,), "bfloat16", offset_factor=1),
                         B: T.Buffer((16, 2), "bfloat16", offset_factor=1),
                         C: T.Buffer((16,), "float32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:2], B[0:16, 0:2])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 2):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "float32") * T.cast(B[vi, vk], "float32")


@T.prim_func(s_tir=True)
def dot_16x2_avx512_bf16(A: T.Buffer((2,), "bfloat16", offset_factor=1),
                         B: T.Buffer((16, 2), "bfloat16", offset_factor=1),
                         C: T.Buffer((16,), "float32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:2], B[0:16, 0:2])
        T.writes(C[0:16])
        pair = T.reinterpret(A.vload([0], "bfloat16x2"), dtype="int32")
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(VDPBF16PS), C.vload([0], dtype="float32x16"),
            T.reinterpret(T.broadcast(pair, 16), dtype="bfloat16x32"), B.vload([0, 0], dtype="bfloat16x32"),
            dtype="float32x16")


# Registered on import: `tile_with_tensor_intrin` and `tensorize` look the intrinsic up by name.
TensorIntrin.register(BF16_DOT_INTRIN, dot_16x2_description, dot_16x2_avx512_bf16, override=True)


def has_avx512_bf16(target: tvm.target.Target) -> bool:
    """Whether the target's CPU has the AVX-512 BF16 dot product."""
    return target.kind.name == "llvm" and bool(codegen.target_has_features("avx512bf16", target))


def is_bf16_dot_block(sch: Schedule, block: str) -> bool:
    """A bf16 x bf16 -> fp32 multiply-accumulate whose loops hold a 16 x 2 dot product."""
    if not analysis.block_info(sch, block).has_reduction or analysis.operand_dtypes(sch, block) != (
            ["float32"], ["bfloat16", "bfloat16"]):
        return False
    return get_tensorize_loop_mapping(sch, sch.get_sblock(block), dot_16x2_description) is not None
