"""The build with tuned records applied, end-to-end timing here or on a remote device, and the
numerical check against the source framework."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.s_tir import meta_schedule as ms

from ..config import SearchConfig
from ..measure.local import export_library, in_fresh_process, open_local
from ..measure.verify import CheckResult, compare_outputs
from ..tasks.targets import cross_compiler, resolve_target, settle_main_thread
from .graph import PACK_CONSTANTS, Network
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
    return tvm.compile(fused, target=target), tuned


def _flatten(value) -> list[np.ndarray]:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Array":
        return [array for item in value for array in _flatten(item)]
    return [value.numpy()]


OpenLibrary = Callable[[str, tvm.target.Target], tuple[Any, Any]]  # path, target -> (module, device)


@dataclass
class Timing:
    outputs: list[np.ndarray]
    median_s: float


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
        open_library: OpenLibrary = open_local) -> Timing:
    """`run_library` on a built executable, exported to a scratch library first."""
    target = resolve_target(target)
    with tempfile.TemporaryDirectory(prefix="minansor-network-") as scratch:
        path = os.path.join(scratch, "network.so")
        export_library(executable, path, cross_compiler(target))
        return run_library(path, inputs, repeats, target, open_library)


def run_library(path: str, inputs: list[np.ndarray], repeats: int, target: tvm.target.Target,
                open_library: OpenLibrary = open_local) -> Timing:
    """Run an exported network in the Relax VM on the target's device: this machine's by default
    (in a fresh process, as every candidate is timed: measure.in_fresh_process), or a remote one
    when `open_library` uploads there (rpc.RPCMeasurer.open_library). The median of `repeats`
    timed runs after one warm-up, and the outputs, fetched back."""
    if open_library is open_local:
        return in_fresh_process(_time_here, path, inputs, repeats, target.export())
    return time_network(*open_library(path, target), inputs, repeats)


def _time_here(path: str, inputs: list[np.ndarray], repeats: int, target_config: dict) -> Timing:
    settle_main_thread()
    return time_network(*open_local(path, tvm.target.Target(target_config)), inputs, repeats)


def time_network(library, dev, inputs: list[np.ndarray], repeats: int) -> Timing:
    """`run_library` on a loaded library and its device."""
    vm = relax.VirtualMachine(library, dev)
    # The stateful calls are the ones that work over RPC (the arguments travel as DLTensors).
    vm.set_input("main", *(tvm.runtime.tensor(x, dev) for x in inputs))
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=repeats)
    median_s = float(np.median(timer("main").results))
    return Timing(_flatten(vm.get_outputs("main")), median_s)


def vm_forward(executable) -> Callable[..., list[np.ndarray]]:
    """The built network as a function from numpy inputs to numpy outputs (Relax VM, CPU)."""
    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    return lambda *inputs: _flatten(vm["main"](*(tvm.runtime.tensor(x, dev) for x in inputs)))


def check_against_reference(network: Network, outputs: list[np.ndarray], inputs: list[np.ndarray],
                            config: SearchConfig) -> CheckResult:
    want = network.reference(inputs)
    names = [f"output {i}" for i in range(len(want))]
    atol = max(config.check_atol, QUANTIZED_ATOL) if is_quantized(network.mod) else config.check_atol
    return compare_outputs(names, want, outputs, config.check_rtol, atol, network.source)
