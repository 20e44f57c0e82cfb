"""A network in TVM Relax, and the graph-level pipeline that turns it into fused PrimFuncs.

Weights are bound as constants, so the pipeline can fold them; with int8 the quantized convs
become integer arithmetic (int8.py), padded to whole VNNI tiles where the target has VNNI; an
fp32 network asked to run in bf16 gets its convolutions on bf16 operands (bf16.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tvm
from tvm import relax, tirx

from ..config import SearchConfig
from ..data_layout import DATA_LAYOUTS, convert_data_layout
from ..tasks.targets import resolve_target
from ..tir import amx
from ..tir.amx import has_amx
from ..tir.vnni import LANES, REDUCTION, has_vnni
from .bf16 import BF16_LEGALIZATIONS, PRECISIONS, bf16_conv2d
from .fast_math import FAST_MATH
from .pooling import separable_max_pools
from .int8 import decompose_qdq, integer_conv2d, integer_glue


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    def random(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.0, 1.0, self.shape).astype(self.dtype)


@dataclass
class Network:
    """An imported model: its Relax module (weights bound as constants), its inputs, and the
    source framework's forward function for the numerical check."""

    name: str
    mod: tvm.IRModule
    inputs: tuple[InputSpec, ...]
    reference: Callable[[list[np.ndarray]], list[np.ndarray]]
    source: str  # "onnx" | "pytorch"
    precision: str = "as imported"  # or "bf16": the convolutions of an fp32 network on bf16 operands (bf16.py)
    onnx: bytes | None = None  # the ONNX model it was imported from, for the other engines (engines.py)
    to_onnx: Callable[[], bytes] | None = None  # a PyTorch model exported to ONNX on demand, for the same


Passes = list[tuple[str, Callable[[], tvm.transform.Pass]]]


def graph_passes(data_layout: str = "NHWC", layout_free: bool = True,
                 channel_multiples: tuple[int, int] = (1, 1), precision: str = "as imported",
                 fast_math: bool = True, separable_pools: bool = True) -> Passes:
    """The graph-level pipeline, as (what it does, the pass), in order."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    bf16 = precision == "bf16"
    legalizations = {**(BF16_LEGALIZATIONS if bf16 else {}), **(FAST_MATH if fast_math else {})}
    return [
        # First: folding constants would turn the int8 weights of a QDQ model back into float.
        ("run quantized convolutions in integer arithmetic", lambda: integer_conv2d(channel_multiples)),
        ("run max-pools, concatenations and resizes of quantized values on the integers", lambda: integer_glue),
        *([("max-pool large windows as a 1 x k then a k x 1 pool", lambda: separable_max_pools)]
          if separable_pools else []),
        ("write the quantizes and dequantizes left as elementwise arithmetic", lambda: decompose_qdq),
        ("fold batch norm into the preceding conv", relax.transform.FoldBatchnormToConv2D),
        ("decompose what batch norm is left", relax.transform.DecomposeOpsForInference),
        ("fold constants", relax.transform.FoldConstant),
        *([(f"convert the activations to {data_layout}", lambda: convert_data_layout(data_layout))]
          if DATA_LAYOUTS[data_layout] else []),
        *([("run the convolutions on bf16 operands, bf16 between them", lambda: bf16_conv2d(channel_multiples[0])),
           ("round the weights to bf16", relax.transform.FoldConstant)] if bf16 else []),
        ("legalize operators to TIR" + (", exp as a vectorizable polynomial (fast_math.py)" if fast_math else ""),
         lambda: relax.transform.LegalizeOps(customize_legalize_map=legalizations)),
        ("annotate operator patterns", relax.transform.AnnotateTIROpPattern),
        ("fold constants", relax.transform.FoldConstant),
        ("fuse operators", relax.transform.FuseOps),
        ("fuse TIR", relax.transform.FuseTIR),
        ("remove dead code", relax.transform.DeadCodeElimination),
        # Every PrimFunc argument that is a constant at its call marked layout-free, so a schedule
        # may store it packed (layout_rewrite.py). A function called with constants at one site and
        # not at another is duplicated; every function gets a new name.
        *([("mark constant arguments layout-free", relax.transform.AttachAttrLayoutFreeBuffers)]
          if layout_free else []),
    ]


# After the records are applied: each packing stage split out of its kernel, run on the
# constants at compile time and dropped, so the deployed network carries packed weights.
PACK_CONSTANTS: Passes = [
    ("split packing stages from their kernels", relax.transform.SplitLayoutRewritePreproc),
    ("pack the constants", relax.transform.FoldConstant),
    ("remove the packing functions", relax.transform.DeadCodeElimination),
]


def optimize(mod: tvm.IRModule, data_layout: str = "NHWC", layout_free: bool = True,
             channel_multiples: tuple[int, int] = (1, 1), precision: str = "as imported",
             fast_math: bool = True, separable_pools: bool = True) -> tvm.IRModule:
    """The graph-level pipeline (`graph_passes`): quantized convs made integer (their channels
    rounded up to `channel_multiples`), BN folded into conv, constants folded, activations in
    `data_layout`, operators lowered to TIR and fused into one PrimFunc per fused group; with
    `layout_free`, constant arguments marked as such; in `precision` bf16, the convolutions on bf16
    operands; with `fast_math`, exp and what calls it vectorizable (fast_math.py); with
    `separable_pools`, large max-pool windows in two thin passes (pooling.py)."""
    passes = graph_passes(data_layout, layout_free, channel_multiples, precision, fast_math, separable_pools)
    return tvm.transform.Sequential([make() for _, make in passes])(mod)


def optimize_for(mod: tvm.IRModule, config: SearchConfig, target="cpu", precision: str = "as imported") -> tvm.IRModule:
    """`optimize` with the data layout and layout rewrite `config` asks for, and the channels of
    int8 convolutions padded to whole VNNI tiles where `config` asks for it and the search will use
    VNNI on `target`; in bf16, the output channels to whole AMX tile columns where it will use AMX."""
    target = resolve_target(target)
    if precision == "bf16":
        multiples = (amx.TILE_COLUMNS, 1) if config.amx and has_amx(target, "bf16") else (1, 1)
    else:
        multiples = (LANES, REDUCTION) if config.vnni and config.vnni_padding and has_vnni(target) else (1, 1)
    return optimize(mod, config.data_layout, layout_free=config.layout_rewrite != "off",
                    channel_multiples=multiples, precision=precision, fast_math=config.fast_math,
                    separable_pools=config.separable_pools)


def main_bindings(mod: tvm.IRModule):
    for block in mod["main"].body.blocks:
        yield from block.bindings


def callee(call: relax.Call) -> str | None:
    """The PrimFunc a call_tir calls, or None for any other call."""
    if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.call_tir":
        return call.args[0].name_hint
    return None


def graph_summary(mod: tvm.IRModule) -> dict[str, int]:
    """Counts that show what graph optimization did: operators called by main, calls of
    PrimFuncs, and the PrimFuncs themselves."""
    ops: Counter = Counter()
    tir_calls = 0
    for binding in main_bindings(mod):
        value = binding.value
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
            if callee(value) is None:
                ops[value.op.name] += 1
            else:
                tir_calls += 1
    prim_funcs = sum(isinstance(f, tirx.PrimFunc) for f in mod.functions.values())
    return {"operator calls": sum(ops.values()), "distinct operators": len(ops), "PrimFunc calls": tir_calls,
            "PrimFuncs": prim_funcs, "transposes between layers": len(inner_transposes(mod))}


def inner_transposes(mod: tvm.IRModule) -> list[str]:
    """The fused PrimFuncs main calls that transpose a tensor between two layers: a transpose in a
    call that neither reads main's inputs nor computes one of its outputs (those convert the
    caller's layout once, at the edges) is a pass over memory the layout conversion left behind."""
    main = mod["main"]
    output = main.body.body
    output = relax.analysis.get_var2val(main).get(output, output)  # the tuple bound to main's result
    outputs = list(output.fields) if isinstance(output, relax.Tuple) else [output]
    inner = []
    for binding in main_bindings(mod):
        value = binding.value
        name = callee(value) if isinstance(value, relax.Call) else None
        if name is None or "transpose" not in name:
            continue
        reads_input = any(arg.same_as(param) for arg in value.args[1].fields for param in main.params)
        if not reads_input and not any(binding.var.same_as(out) for out in outputs):
            inner.append(name)
    return inner
