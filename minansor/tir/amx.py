"""AMX: the CPU's matrix engine (`tdpbusd`, uint8 x int8 -> int32) as a register-blocked tensor intrinsic.

An AMX core holds eight tile registers of up to 16 rows x 64 bytes. One `tdpbusd` multiplies a
tile of activations A (rows x 64 uint8) by a tile of weights B (16 rows x 64 int8, i.e. 64 x 16
in groups of 4) into an accumulator tile C (rows x 16 int32): 16,384 multiply-adds per
instruction, 256 times a `vpdpbusd`. Fed from memory one product at a time the engine waits on
loads, so the unit of computation here is a *micro-kernel*, as in oneDNN's brgemm:

    C[M, N] += A[M, K] . W[K, N]     M = rows x mt, N = 16 x nt, K = k_tile x kb

holding mt x nt accumulator tiles in registers across the whole K block, each loaded once at
the start and stored once at the end (2 x 2 accumulators, 2 A tiles and 2 B tiles fill the eight
registers). In TensorIR it is the block

    for i, k4, j, k1 in grid(M, K/4, N, 4):  C[i, j] += int32(A[i, 4 k4 + k1]) * int32(B[k4, j, k1])

whose loop order is what packs the weight: the layout rewrite (layout_rewrite.py) stores a
constant in the order its loops read it, which for this nest is `[K/4, N, 4]`, the layout a B
tile is loaded in (`B[k4, 4 n + j] = W[4 k4 + j, n]`). A's rows are output pixels along a row
of the image: one tileloadd reads them at any stride, so the data stays NHWC; `rows` divides the
image width (13 for 416-pixel YOLO layers, whose widths 208 ... 13 share no factor of 16).

The runtime contract, kept by the kernel itself:
- a thread's tile configuration (`ldtilecfg`: rows and bytes per row of each tile) is register
  state: the micro-kernel reads the thread's (`sttilecfg`) at every call and loads its own where
  it differs, so any thread of any pool may run it, after any other kernel;
- a process may use AMX only after asking Linux (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), or its
  first tile instruction dies of SIGILL, and the permission is lost on exec: every function that
  uses AMX asks on entry (`with_permission`, applied wherever minansor builds), so a library runs
  in any process (measurement workers, an RPC server, a user's own loader) and fails with one
  clear line, not a SIGILL, where the CPU or the kernel has no AMX.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import tvm
from tvm import tirx
from tvm.s_tir import Schedule, TensorIntrin
from tvm.s_tir.schedule.analysis import get_tensorize_loop_mapping
from tvm.script import tirx as T
from tvm.target import codegen

from . import analysis

TILE_ROWS, TILE_BYTES, TILE_REGISTERS = 16, 64, 8
TILE_COLUMNS = TILE_BYTES // 4  # the 32-bit accumulator columns of a C tile: output channels per tile
ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18  # x86-64 Linux


@dataclass(frozen=True)
class Product:
    """One tile product instruction: its operand types, and how many consecutive reduction
    elements (`group`) a B tile row holds per output column."""

    a: str
    b: str
    c: str
    group: int
    instruction: str
    feature: str  # LLVM's name for the CPU feature

    @property
    def element_bytes(self) -> int:
        return 4 // self.group  # a group fills the 4 bytes of one int32 / fp32 column


PRODUCTS = {"int8": Product("uint8", "int8", "int32", 4, "llvm.x86.tdpbusd", "amx-int8"),
            "bf16": Product("bfloat16", "bfloat16", "float32", 2, "llvm.x86.tdpbf16ps", "amx-bf16")}


def has_amx(target: tvm.target.Target, dtype: str = "int8") -> bool:
    """Whether the target's CPU has AMX tiles for `dtype` (its `mattr` or `mcpu` must say so)."""
    return target.kind.name == "llvm" and bool(codegen.target_has_features(PRODUCTS[dtype].feature, target))


@dataclass(frozen=True)
class MicroKernel:
    """C[M, N] += A[M, K] . W[K, N] on mt x nt accumulator tiles of `rows` rows (M = rows x mt,
    N = 16 x nt), over kb steps of `k_tile` reduction elements each (a multiple of the product's
    group, at most 64 bytes: K = k_tile x kb), and over a conv's kernel window where it has one.
    `dtype`: int8 (uint8 x int8 -> int32, `tdpbusd`) or bf16 (bf16 x bf16 -> fp32, `tdpbf16ps`).

    `overwrite`: the kernel covers the block's whole reduction, so its accumulators start from
    zero (`tilezero`) instead of loading C, and the reduction's initialization is skipped
    (`skip_init`). Measured on this project's Xeon (a kernel of 72 tile products per call):
    loading and storing the accumulators at every call costs 20 % of the engine."""

    rows: int
    mt: int
    nt: int
    k_tile: int
    kb: int
    window: tuple[int, int] = (1, 1)  # a conv's kernel window, KH x KW, walked inside the kernel
    overwrite: bool = False
    dtype: str = "int8"
    stride: int = 1  # with a window: a strided conv's output pixels read input pixels this far apart

    def __post_init__(self):
        group = PRODUCTS[self.dtype].group
        if not (1 <= self.rows <= TILE_ROWS and self.k_tile % group == 0
                and group <= self.k_tile <= TILE_BYTES // PRODUCTS[self.dtype].element_bytes
                and self.kb >= 1 and self.mt >= 1 and self.nt >= 1):
            raise ValueError(f"no AMX tiles for {self}")
        if self.mt * self.nt + self.mt + min(self.nt, 2) > TILE_REGISTERS:
            raise ValueError(f"{self.mt} x {self.nt} accumulators do not fit the tile registers")
        if self.stride != 1 and self.window == (1, 1):
            raise ValueError("a stride needs a window: a strided 1 x 1 conv is not written")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.rows * self.mt, 16 * self.nt, self.k_tile * self.kb

    @property
    def product(self) -> Product:
        return PRODUCTS[self.dtype]

    @property
    def has_window(self) -> bool:
        return self.window != (1, 1)

    @property
    def intrinsic(self) -> str:
        """Its tensor intrinsic's name, registered on first use in this process."""
        return _register(self)

    @property
    def skip_init(self) -> str | None:
        """For an `overwrite` kernel: the intrinsic that replaces the reduction's initialization
        (C = 0 over the kernel's M x N) by nothing, since the kernel starts from zeroed tiles."""
        return f"{_register(self)}_skip_init" if self.overwrite else None

    @property
    def loops(self) -> str:
        """The name of its plain loop nest (C[i, j] += A[i, k] W[k, j], the reduction not yet
        split in groups), in which TVM's loop mapping finds it in a block."""
        return f"{_register(self)}_loops"


@functools.cache
def _register(kernel: MicroKernel) -> str:
    product = kernel.product
    name = (f"minansor_amx_{product.a}_{product.b}_{product.c}_{kernel.rows}x{kernel.mt}_16x{kernel.nt}"
            f"_{kernel.k_tile}x{kernel.kb}")
    if kernel.has_window:
        name += f"_window{kernel.window[0]}x{kernel.window[1]}" + (f"_stride{kernel.stride}" if kernel.stride > 1 else "")
    name += "_overwrite" if kernel.overwrite else ""
    TensorIntrin.register(name, *_functions(kernel), override=True)
    loops = _loops(*kernel.shape, product)
    TensorIntrin.register(f"{name}_loops", loops, loops, override=True)
    if kernel.overwrite:
        TensorIntrin.register(f"{name}_skip_init", *_skip_init(*kernel.shape[:2], product.c), override=True)
    return name


def _skip_init(M: int, N: int, dtype: str):
    @T.prim_func(s_tir=True)
    def zero(c: T.handle) -> None:
        C = T.match_buffer(c, (M, N), dtype, strides=[T.int32(), 1], offset_factor=1)
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:M, 0:N])
            for i, j in T.grid(M, N):
                with T.sblock("init"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    C[vi, vj] = T.cast(0, dtype)

    @T.prim_func(s_tir=True)
    def nothing(c: T.handle) -> None:
        C = T.match_buffer(c, (M, N), dtype, strides=[T.int32(), 1], offset_factor=1)
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:M, 0:N])
            T.evaluate(0)

    return zero, nothing


def product_of(sch: Schedule, block: str) -> str | None:
    """"int8" for a uint8 x int8 -> int32 multiply-accumulate block, "bf16" for bf16 x bf16 ->
    fp32, else None."""
    if not analysis.block_info(sch, block).has_reduction:
        return None
    written, read = analysis.operand_dtypes(sch, block)
    return next((name for name, p in PRODUCTS.items() if written == [p.c] and read == sorted([p.a, p.b])), None)


def fit(sch: Schedule, block: str, dtypes: tuple[str, ...] = tuple(PRODUCTS)) -> MicroKernel | None:
    """The micro-kernel for a multiply-accumulate `block` of one of `dtypes`, or None where none
    fits: the largest that divides the block's loops. Rows: the largest divisor of the output
    rows' loop up to 16 (at least 4, or the engine idles); two row tiles and two column tiles
    where the loops hold them; the whole reduction loop as one K block of at least two groups
    (a reduction of one group, e.g. an image's 3 channels padded to 4, leaves most of a tile
    idle: VNNI's); a 2-D window inside."""
    dtype = product_of(sch, block)
    if dtype not in dtypes:
        return None
    group, largest = PRODUCTS[dtype].group, TILE_BYTES // PRODUCTS[dtype].element_bytes
    mapped = _mapped_loops(sch, block, dtype)
    if mapped is None:
        return None
    (m, n, k), k_var = [extent for extent, _ in mapped], mapped[2][1]
    rows = max(d for d in range(1, TILE_ROWS + 1) if m % d == 0)
    if rows < 4 or n % 16 or k % group or k < 2 * group:
        return None
    k_tile = max(d for d in range(group, largest + 1, group) if k % d == 0)
    loops = sch.get_loops(sch.get_sblock(block))
    window = tuple(int(sch.get(loop).extent) for loop, kind in zip(loops, analysis.loop_kinds(sch, block, loops))
                   if kind == analysis.REDUCTION and sch.get(loop).loop_var.name != k_var)
    inside = len(window) == 2 and min(window) > 1
    stride = _row_stride(sch, block, mapped[0][1])
    if stride != 1 and not inside:
        return None
    return MicroKernel(rows, 2 if (m // rows) % 2 == 0 else 1, 2 if n % 32 == 0 else 1, k_tile, k // k_tile,
                       window if inside else (1, 1), overwrite=inside or all(w == 1 for w in window), dtype=dtype,
                       stride=stride)


def _row_stride(sch: Schedule, block: str, m_loop: str) -> int:
    """How far apart (in pixels) the activations of consecutive M rows are: the step of the
    activations' index (the operand the M iterator indexes, besides the output) when the M
    iterator steps by one (2 for a stride-2 conv)."""
    info = analysis.block_info(sch, block)
    m_iter = next(name for name, loops in zip(info.iter_names, info.bound_loop_vars) if m_loop in loops)
    written = {region.source.name for region in analysis.realize(sch, block).block.writes}
    (indices,) = [indices for name, indices in analysis.read_indices(sch, block) if name not in written
                  and any(v.name == m_iter for index in indices for v in tirx.analysis.undefined_vars(index))]
    variables = {v.name for index in indices for v in tirx.analysis.undefined_vars(index)}
    at = {name: 0 for name in variables}
    steps = [int(analysis.evaluate(index, {**at, m_iter: 1}) - analysis.evaluate(index, at)) for index in indices]
    return max(steps)


def _mapped_loops(sch: Schedule, block: str, dtype: str) -> list[tuple[int, str]] | None:
    """(extent, loop variable) of the block's loops that map onto the micro-kernel's M, N and K,
    found with the smallest micro-kernel (1 row, 16 columns, one group)."""
    smallest = MicroKernel(1, 1, 1, PRODUCTS[dtype].group, 1, dtype=dtype)
    mapping = get_tensorize_loop_mapping(sch, sch.get_sblock(block), tvm.s_tir.TensorIntrin.get(smallest.loops).desc)
    if mapping is None:
        return None
    found = {int(mapping.desc_loop_indexer[desc_loop]): (int(loop.stmt.extent), loop.stmt.loop_var.name)
             for loop, desc_loop in mapping.loop_map.items()}
    return [found[0], found[1], found[2]] if len(found) == 3 else None


def _loops(M: int, N: int, K: int, product: Product):
    a_dtype, b_dtype, c_dtype = product.a, product.b, product.c

    @T.prim_func(s_tir=True)
    def loops(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (M, K), a_dtype, offset_factor=1)
        B = T.match_buffer(b, (K, N), b_dtype, offset_factor=1)
        C = T.match_buffer(c, (M, N), c_dtype, offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:M, 0:N], A[0:M, 0:K], B[0:K, 0:N])
            T.writes(C[0:M, 0:N])
            for i, j, k in T.grid(M, N, K):
                with T.sblock("update"):
                    vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                    C[vi, vj] = C[vi, vj] + T.cast(A[vi, vk], c_dtype) * T.cast(B[vk, vj], c_dtype)

    return loops


def tile_config(shapes: list[tuple[int, int]]) -> list[int]:
    """The 64-byte tile configuration of tiles 0, 1, ... of `shapes` (rows, bytes per row), as 8
    little-endian uint64: palette 1, then per tile its bytes per row (uint16 at 16 + 2t) and rows
    (byte 48 + t)."""
    config = bytearray(64)
    config[0] = 1
    for t, (tile_rows, row_bytes) in enumerate(shapes):
        config[16 + 2 * t:18 + 2 * t] = row_bytes.to_bytes(2, "little")
        config[48 + t] = tile_rows
    return [int.from_bytes(config[8 * i:8 * i + 8], "little") for i in range(8)]


def _tile_config(kernel: MicroKernel) -> list[int]:
    """The kernel's tiles: C, then A, then B."""
    rows, mt, nt, product = kernel.rows, kernel.mt, kernel.nt, kernel.product
    return tile_config([(rows, TILE_BYTES)] * (mt * nt) + [(rows, kernel.k_tile * product.element_bytes)] * mt
                       + [(kernel.k_tile // product.group, TILE_BYTES)] * min(nt, 2))


@T.macro
def load_tile_config(config):
    """Load the 8-word tile configuration `config` (`tile_config`) into this thread's tile registers."""
    cfg = T.decl_buffer((8,), "uint64", scope="local")  # 64 bytes: on the stack
    cfg[0] = T.uint64(config[0])
    cfg[1] = T.uint64(config[1])
    cfg[2] = T.uint64(config[2])
    cfg[3] = T.uint64(config[3])
    cfg[4] = T.uint64(config[4])
    cfg[5] = T.uint64(config[5])
    cfg[6] = T.uint64(config[6])
    cfg[7] = T.uint64(config[7])
    T.evaluate(T.call_llvm_intrin("void", T.llvm_lookup_intrinsic_id("llvm.x86.ldtilecfg"), T.address_of(cfg[0])))


def _functions(kernel: MicroKernel):
    """The description and implementation of `kernel`. With a window, A is the input's
    [KH, M + KW - 1, K] slice and B the weight's [KH, KW, K/4, N, 4] tile: the accumulators stay
    in their tiles across the whole window and the input channels. (The `if window` branches
    are decided when the functions are parsed.)"""
    rows, mt, nt, k_tile, kb = kernel.rows, kernel.mt, kernel.nt, kernel.k_tile, kernel.kb
    (M, N, K), (KH, KW), window = kernel.shape, kernel.window, kernel.has_window
    overwrite, product, S = kernel.overwrite, kernel.product, kernel.stride
    a_dtype, b_dtype, c_dtype, g = product.a, product.b, product.c, product.group
    a_bytes = product.element_bytes
    call = functools.partial(T.call_llvm_intrin, "void")
    lookup = T.llvm_lookup_intrinsic_id

    @T.prim_func(s_tir=True)
    def description(a: T.handle, b: T.handle, c: T.handle) -> None:
        sa0, sa1, sb0, sb1, sb2, sb3, sc = T.int32(), T.int32(), T.int32(), T.int32(), T.int32(), T.int32(), T.int32()
        C = T.match_buffer(c, (M, N), c_dtype, strides=[sc, 1], offset_factor=1)
        if window:
            A = T.match_buffer(a, (KH, S * (M - 1) + KW, K), a_dtype, strides=[sa0, sa1, 1], offset_factor=1)
            B = T.match_buffer(b, (KH, KW, K // g, N, g), b_dtype, strides=[sb0, sb1, sb2, sb3, 1], offset_factor=1)
            with T.sblock("root"):
                T.reads(C[0:M, 0:N], A[0:KH, 0:S * (M - 1) + KW, 0:K], B[0:KH, 0:KW, 0:K // g, 0:N, 0:g])
                T.writes(C[0:M, 0:N])
                for r, s, i, k4, j, k1 in T.grid(KH, KW, M, K // g, N, g):
                    with T.sblock("update"):
                        vi, vj, vr, vs = T.axis.remap("SSRR", [i, j, r, s])
                        vk = T.axis.reduce(K, k4 * g + k1)
                        C[vi, vj] = C[vi, vj] + T.cast(A[vr, vi * S + vs, vk], c_dtype) * T.cast(
                            B[vr, vs, vk // g, vj, vk % g], c_dtype)
        else:
            A = T.match_buffer(a, (M, K), a_dtype, strides=[sa1, 1], offset_factor=1)
            B = T.match_buffer(b, (K // g, N, g), b_dtype, strides=[sb2, sb3, 1], offset_factor=1)
            with T.sblock("root"):
                T.reads(C[0:M, 0:N], A[0:M, 0:K], B[0:K // g, 0:N, 0:g])
                T.writes(C[0:M, 0:N])
                for i, k4, j, k1 in T.grid(M, K // g, N, g):
                    with T.sblock("update"):
                        vi, vj = T.axis.remap("SS", [i, j])
                        vk = T.axis.reduce(K, k4 * g + k1)
                        C[vi, vj] = C[vi, vj] + T.cast(A[vi, vk], c_dtype) * T.cast(B[vk // g, vj, vk % g], c_dtype)

    config = _tile_config(kernel)
    c_tile = lambda x, y: x * nt + y  # noqa: E731
    a_tile = lambda x: mt * nt + x  # noqa: E731
    b_tile = lambda y: mt * nt + mt + (y % 2)  # noqa: E731  two B registers, reused beyond nt = 2

    @T.prim_func(s_tir=True)
    def implementation(a: T.handle, b: T.handle, c: T.handle) -> None:
        sa0, sa1, sb0, sb1, sb2, sb3, sc = T.int32(), T.int32(), T.int32(), T.int32(), T.int32(), T.int32(), T.int32()
        C = T.match_buffer(c, (M, N), c_dtype, strides=[sc, 1], offset_factor=1)
        if window:
            A = T.match_buffer(a, (KH, S * (M - 1) + KW, K), a_dtype, strides=[sa0, sa1, 1], offset_factor=1)
            B = T.match_buffer(b, (KH, KW, K // g, N, g), b_dtype, strides=[sb0, sb1, sb2, sb3, 1], offset_factor=1)
        else:
            A = T.match_buffer(a, (M, K), a_dtype, strides=[sa1, 1], offset_factor=1)
            B = T.match_buffer(b, (K // g, N, g), b_dtype, strides=[sb2, sb3, 1], offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:M, 0:N], A[0:M, 0:K] if not window else A[0:KH, 0:S * (M - 1) + KW, 0:K], B[0:K // g, 0:N, 0:g] if not window else B[0:KH, 0:KW, 0:K // g, 0:N, 0:g])
            T.writes(C[0:M, 0:N])
            # The tile configuration is per-thread state: load ours unless the thread has it
            # already (storing and comparing it costs nothing measurable; loading it at every
            # call of a 72-product kernel cost 15 %).
            current = T.decl_buffer((8,), "uint64", scope="local")
            T.evaluate(call(lookup("llvm.x86.sttilecfg"), T.address_of(current[0])))
            if (current[0] != T.uint64(config[0]) or current[1] != T.uint64(config[1])
                    or current[2] != T.uint64(config[2]) or current[3] != T.uint64(config[3])
                    or current[4] != T.uint64(config[4]) or current[5] != T.uint64(config[5])
                    or current[6] != T.uint64(config[6]) or current[7] != T.uint64(config[7])):
                load_tile_config(config)
            for x in T.unroll(mt):
                for y in T.unroll(nt):
                    if overwrite:
                        T.evaluate(call(lookup("llvm.x86.tilezero"), T.uint8(c_tile(x, y))))
                    else:
                        T.evaluate(call(lookup("llvm.x86.tileloadd64"), T.uint8(c_tile(x, y)),
                                        T.address_of(C[x * rows, y * 16]), T.int64(sc * 4)))
            for r, s, kk in T.grid(KH, KW, kb):
                for x in T.unroll(mt):
                    if window:
                        T.evaluate(call(lookup("llvm.x86.tileloadd64"), T.uint8(a_tile(x)),
                                        T.address_of(A[r, x * rows * S + s, kk * k_tile]),
                                        T.int64(sa1 * S * a_bytes)))
                    else:
                        T.evaluate(call(lookup("llvm.x86.tileloadd64"), T.uint8(a_tile(x)),
                                        T.address_of(A[x * rows, kk * k_tile]), T.int64(sa1 * a_bytes)))
                for y in T.unroll(nt):
                    if window:
                        T.evaluate(call(lookup("llvm.x86.tileloadd64"), T.uint8(b_tile(y)),
                                        T.address_of(B[r, s, kk * (k_tile // g), y * 16, 0]), T.int64(sb2 * (4 // g))))
                    else:
                        T.evaluate(call(lookup("llvm.x86.tileloadd64"), T.uint8(b_tile(y)),
                                        T.address_of(B[kk * (k_tile // g), y * 16, 0]), T.int64(sb2 * (4 // g))))
                    for x in T.unroll(mt):
                        T.evaluate(call(lookup(product.instruction), T.uint8(c_tile(x, y)), T.uint8(a_tile(x)),
                                        T.uint8(b_tile(y))))
            for x in T.unroll(mt):
                for y in T.unroll(nt):
                    T.evaluate(call(lookup("llvm.x86.tilestored64"), T.uint8(c_tile(x, y)),
                                    T.address_of(C[x * rows, y * 16]), T.int64(sc * 4)))

    return description, implementation


AMX_INTRINSICS = ("llvm.x86.ldtilecfg", "llvm.x86.tdpbusd", "llvm.x86.tdpbf16ps")
PERMISSION_MESSAGE = ("AMX: Linux refused this process the CPU's tile registers (arch_prctl "
                      "ARCH_REQ_XCOMP_PERM): the CPU or the kernel has no AMX")


def uses_amx(func: tirx.PrimFunc) -> bool:
    """Whether `func` calls a tile instruction (after tensorization)."""
    ids = {int(T.llvm_lookup_intrinsic_id(name)) for name in AMX_INTRINSICS}
    return any(isinstance(stmt, tirx.Evaluate) and isinstance(stmt.value, tvm.ir.Call)
               and stmt.value.op.name == "tirx.call_llvm_intrin" and isinstance(stmt.value.args[0], tvm.ir.prim.expr.IntImm)
               and int(stmt.value.args[0].value) in ids for stmt in analysis.walk(func.body))


def with_permission(mod: tvm.IRModule) -> tvm.IRModule:
    """`mod` with every function that uses AMX asking Linux for the tile registers on entry
    (a system call of a few hundred nanoseconds), and failing with one clear line where it may
    not, instead of dying of SIGILL: the library runs in any process."""
    updates = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc) and uses_amx(func):
            granted = tirx.call_extern("int64", "syscall", tirx.const(ARCH_PRCTL, "int64"),
                                       tirx.const(ARCH_REQ_XCOMP_PERM, "int64"), tirx.const(XFEATURE_XTILEDATA, "int64"))
            # condition first: TVM 0.27's Python signature names (kind, condition) but its
            # constructor takes (condition, kind), and the arguments go through in order
            check = tirx.AssertStmt(granted == tirx.const(0, "int64"), tvm.ir.StringImm("RuntimeError"),
                                    [tvm.ir.StringImm(PERMISSION_MESSAGE)])
            updates[gv] = func.with_body(tirx.SeqStmt([check, func.body]))
    if not updates:
        return mod
    mod = mod.clone()
    for gv, func in updates.items():
        mod.update_func(gv, func)
    return mod
