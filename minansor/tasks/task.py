"""A tuning task: one PrimFunc, the target it is tuned for, and what it weighs in a network."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import ml_dtypes
import numpy as np
import tvm
import tvm_ffi
from tvm import te, tirx
from tvm.s_tir import Schedule

from ..errors import UserError
from ..tir import analysis
from ..tir.layout_rewrite import layout_free_params, mark_layout_free
from .targets import resolve_target


@dataclass(frozen=True)
class ArgSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    is_output: bool

    def random(self, rng: np.random.Generator) -> np.ndarray:
        if self.dtype.startswith("float"):
            return rng.uniform(-1.0, 1.0, self.shape).astype(self.dtype)
        if self.dtype == "bfloat16":
            return rng.uniform(-1.0, 1.0, self.shape).astype(ml_dtypes.bfloat16)
        info = np.iinfo(self.dtype)
        if info.bits == 8:  # quantized data: the full range, where a saturating int8 kernel goes wrong
            return rng.integers(info.min, info.max, self.shape, dtype=self.dtype, endpoint=True)
        return rng.integers(max(info.min, -64), min(info.max, 64), self.shape, dtype=self.dtype)


@dataclass(frozen=True, eq=False)
class Task:
    name: str
    mod: tvm.IRModule  # a single PrimFunc named "main"
    target: tvm.target.Target
    weight: int
    flops: float
    args: tuple[ArgSpec, ...]

    @property
    def bytes(self) -> int:
        """The bytes every argument holds: what a program must at least read and write once."""
        return sum(math.prod(a.shape) * np.dtype(a.dtype).itemsize for a in self.args if a.dtype != "bfloat16") + \
            sum(2 * math.prod(a.shape) for a in self.args if a.dtype == "bfloat16")

    @cached_property
    def identity(self) -> str:
        """The PrimFunc's structural hash: tasks of equal identity are the same computation."""
        return f"{tvm_ffi.structural_hash(self.mod['main']) & (2 ** 64 - 1):016x}"

    @property
    def layout_free(self) -> tuple[int, ...]:
        """Indices of the arguments that are constants in a network: their layout is ours to choose."""
        return layout_free_params(self.mod["main"])

    def with_layout_free(self, params: tuple[int, ...]) -> "Task":
        """The same task with exactly `params` marked layout-free (e.g. none, to tune without rewrite)."""
        return Task.from_prim_func(self.name, mark_layout_free(self.mod["main"], params), self.target, self.weight)

    @classmethod
    def from_te(cls, name: str, tensors: list[te.Tensor], target="cpu", weight: int = 1) -> "Task":
        return cls.from_prim_func(name, te.create_prim_func(tensors), target, weight)

    @classmethod
    def from_prim_func(cls, name: str, func: tirx.PrimFunc, target="cpu", weight: int = 1) -> "Task":
        return cls.from_module(name, tvm.IRModule({"main": func}), target, weight)

    @classmethod
    def from_module(cls, name: str, mod: tvm.IRModule, target="cpu", weight: int = 1) -> "Task":
        funcs = [gv for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]
        if len(funcs) != 1:
            raise UserError(f"task {name}: expected one PrimFunc, found {len(funcs)}")
        func = mod[funcs[0]]
        if funcs[0].name_hint != "main":
            mod = tvm.IRModule({"main": func})
        args = _arg_specs(name, mod)
        flops = float(tvm.s_tir.analysis.estimate_tir_flops(mod))
        return cls(name, mod, resolve_target(target), weight, flops, args)


def _arg_specs(task_name: str, mod: tvm.IRModule) -> tuple[ArgSpec, ...]:
    func = mod["main"]
    sch = Schedule(mod)
    written = {buf for b in analysis.block_names(sch) for buf in analysis.written_buffers(sch, b)}
    specs = []
    for buf in func.params:  # TVM 0.27: PrimFunc parameters are the buffers themselves
        dims = []
        for dim in buf.shape:
            if not isinstance(dim, tirx.IntImm):
                raise UserError(f"task {task_name}: dynamic shape {dim} of {buf.name} is not supported; "
                                "give every dimension a number")
            dims.append(int(dim))
        specs.append(ArgSpec(buf.name, tuple(dims), str(buf.dtype), buf.name in written))
    return tuple(specs)
