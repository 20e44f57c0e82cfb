"""The build with tuned records applied, end-to-end timing here or on a remote device, and the
numerical check against the source framework."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.s_tir import meta_schedule as ms

from ..config import SearchConfig
from ..measure.local import export_library, flatten_outputs, time_network_here
from ..measure.measurer import Measurer, NetworkTiming
from ..measure.verify import CheckResult, compare_outputs
from ..tasks.targets import cross_compiler, resolve_target
from ..tir import amx
from .graph import PACK_CONSTANTS, Network
from .bf16 import BF16_ATOL
from .int8 import QUANTIZED_ATOL, is_quantized


def build(fused: tvm.IRModule, target="cpu", database: ms.database.Database | None = None):
    """Compile the fused module; with a database, every PrimFunc that has a record is replaced
    by its best scheduled version first, and the constants its schedule packs are packed here,
    once (PACK_CONSTANTS). Returns (executable, names of the PrimFuncs tuned)."""
    target = resolve_target(target)
    tuned: list[str] = []
    if database is not None:
        with target, database:
            applied = relax.transform.MetaScheduleApplyDatabase()(fused)
        tuned = sorted(gv.name_hint for gv, f in applied.functions.items()
                       if isinstance(f, tirx.PrimFunc) and f.attrs and f.attrs.get("tirx.is_scheduled"))
        fused = tvm.transform.Sequential([make() for _, make in PACK_CONSTANTS])(applied)
    return tvm.compile(amx.with_permission(fused), target=target), tuned


def median_time(call: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> tuple[float, Any]:
    """(median wall seconds of `repeats` calls after `warmup`, the last call's value)."""
    value = None
    for _ in range(warmup):
        value = call()
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        value = call()
        runs.append(time.perf_counter() - began)
    return float(np.median(runs)), value


def run(executable, inputs: list[np.ndarray], repeats: int = 5, target="cpu",
        measurer: Measurer | None = None) -> NetworkTiming:
    """`run_library` on a built executable, exported to a scratch library first."""
    target = resolve_target(target)
    with tempfile.TemporaryDirectory(prefix="minansor-network-") as scratch:
        path = os.path.join(scratch, "network.so")
        export_library(executable, path, cross_compiler(target))
        return run_library(path, inputs, repeats, target, measurer)


def run_library(path: str, inputs: list[np.ndarray], repeats: int, target: tvm.target.Target,
                measurer: Measurer | None = None) -> NetworkTiming:
    """Run an exported network in the Relax VM where `measurer` runs programs (a device behind
    an RPC tracker, say), or on this machine in a fresh process, as every candidate is timed:
    the median of `repeats` timed runs after one warm-up, and the outputs, fetched back."""
    if measurer is None:
        return time_network_here(path, inputs, repeats, target)
    return measurer.time_network(path, inputs, repeats, target)


def vm_forward(library: str) -> Callable[..., list[np.ndarray]]:
    """An exported network (a library path) as a function from numpy inputs to numpy outputs
    (Relax VM, this machine's CPU). Loading the library reuses the machine code of its export;
    an executable still in memory would be compiled again by LLVM (18 s for YOLOv4-tiny here)."""
    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(library), dev)
    return lambda *inputs: flatten_outputs(vm["main"](*(tvm.runtime.tensor(x, dev) for x in inputs)))


def check_against_reference(network: Network, outputs: list[np.ndarray], inputs: list[np.ndarray],
                            config: SearchConfig) -> CheckResult:
    want = network.reference(inputs)
    names = [f"output {i}" for i in range(len(want))]
    atol = (max(config.check_atol, QUANTIZED_ATOL) if is_quantized(network.mod)
            else max(config.check_atol, BF16_ATOL) if network.precision == "bf16" else config.check_atol)
    return compare_outputs(names, want, outputs, config.check_rtol, atol, network.source)
