"""The VNNI dot product (`vpdpbusd`) as a tensor intrinsic.

One `vpdpbusd` on a 512-bit register multiplies 64 unsigned 8-bit activations by 64 signed 8-bit
weights and adds each group of 4 products into one of 16 int32 accumulators: 64 multiply-adds per
instruction, four times an fp32 FMA's 16. In TensorIR it is the 16x4 block

    C[i] += int32(A[k]) * int32(B[i, k])      i < 16 (output channels), k < 4 (reduction)

with A uint8 (4 activations, broadcast to all 16 lanes) and B int8 (a contiguous 16x4 tile of the
weight: the weight must be packed so, see the `TileForIntrinsic` step and layout_rewrite.py).

TVM registers this intrinsic as `dot_16x4_vnni`, but its implementation passes the operands as
`int32x16`, and LLVM 22 (this TVM's) declares `llvm.x86.avx512.vpdpbusd.512` on `<64 x i8>`:
every program tensorized with it fails LLVM's verifier. The implementation
below passes the broadcast activations as `uint8x64` and the weights as `int8x64`; its
description is TVM's. (The other x86 intrinsic, `dot_16x4_avx512`, goes through `pmaddubsw`,
which saturates its int16 pair sums: wrong on full-range data, so it is not offered.)
"""

from __future__ import annotations

import tvm
from tvm.s_tir import Schedule, TensorIntrin
from tvm.s_tir.schedule.analysis import get_tensorize_loop_mapping
from tvm.script import tirx as T
from tvm.target import codegen

from . import analysis

VNNI_INTRIN = "minansor_dot_16x4_u8i8i32_vnni"
LANES, REDUCTION = 16, 4  # int32 accumulators per instruction, products summed into each
VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"


@T.prim_func(s_tir=True)
def dot_16x4_description(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((16, 4), "int8", offset_factor=1),
                         C: T.Buffer((16,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def dot_16x4_vnni(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((16, 4), "int8", offset_factor=1),
                  C: T.Buffer((16,), "int32", offset_factor=1)) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        four = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(VPDPBUSD), C.vload([0], dtype="int32x16"),
            T.reinterpret(T.broadcast(four, 16), dtype="uint8x64"), B.vload([0, 0], dtype="int8x64"),
            dtype="int32x16")


# Registered on import: `tile_with_tensor_intrin` and `tensorize` look the intrinsic up by name.
TensorIntrin.register(VNNI_INTRIN, dot_16x4_description, dot_16x4_vnni, override=True)


def has_vnni(target: tvm.target.Target) -> bool:
    """Whether the target's CPU has AVX-512 VNNI (its `mcpu` must name it: "native" reports nothing)."""
    return target.kind.name == "llvm" and bool(codegen.target_has_features("avx512vnni", target))


def is_vnni_block(sch: Schedule, block: str) -> bool:
    """A uint8 x int8 -> int32 multiply-accumulate whose loops hold a 16 x 4 dot product
    (16 output values along one spatial loop, 4 products along one reduction loop)."""
    if not analysis.block_info(sch, block).has_reduction or analysis.operand_dtypes(sch, block) != (
            ["int32"], ["int8", "uint8"]):
        return False
    return get_tensorize_loop_mapping(sch, sch.get_sblock(block), dot_16x4_description) is not None
