"""A whole network in TVM Relax: graph optimization, task extraction, the build with tuned
records applied, end-to-end timing, and the numerical check against the source framework.

Import is in models.py (ONNX files, exported PyTorch programs, built-in models). Tasks come
from the *fused* module (one per distinct fused PrimFunc) and the records are applied to that
same fused module, PrimFunc by PrimFunc, the way MetaSchedule's own pass looks them up: by the
structural hash of the PrimFunc normalized to a one-function module. (Applying records to the
raw module instead only works through a pipeline that fuses it again the same way.)
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tvm
import tvm_ffi
from tvm import relax, tirx
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms

from .config import SearchConfig
from .data_layout import DATA_LAYOUTS, convert_data_layout
from .errors import UserError
from .int8 import QUANTIZED_ATOL, integer_conv2d, is_quantized
from .measure.local import LocalMeasurer, export_library, in_fresh_process, open_local
from .measure.verify import CheckResult, compare_outputs
from .plots import pyplot, save
from .records import RecordStore, Trial
from .tasks.targets import cross_compiler, resolve_target, settle_main_thread
from .tasks.task import Task
from .tir import analysis
from .tir.vnni import LANES, REDUCTION, has_vnni
from .tune import TasksResult, tune_tasks

# MetaSchedule's own normalization, so our workloads are exactly the modules its
# MetaScheduleApplyDatabase pass queries.
normalize_prim_func: Callable[[tirx.PrimFunc], tvm.IRModule] = tvm.get_global_func(
    "tvm.s_tir.meta_schedule.normalize_mod")


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


# ------------------------------------------------------------------ graph optimization

Passes = list[tuple[str, Callable[[], tvm.transform.Pass]]]


def graph_passes(data_layout: str = "NHWC", layout_free: bool = True,
                 channel_multiples: tuple[int, int] = (1, 1)) -> Passes:
    """The graph-level pipeline, as (what it does, the pass), in order."""
    return [
        # First: folding constants would turn the int8 weights of a QDQ model back into float.
        ("run quantized convolutions in integer arithmetic", lambda: integer_conv2d(channel_multiples)),
        ("fold batch norm into the preceding conv", relax.transform.FoldBatchnormToConv2D),
        ("decompose what batch norm is left", relax.transform.DecomposeOpsForInference),
        ("fold constants", relax.transform.FoldConstant),
        *([(f"convert the activations to {data_layout}", lambda: convert_data_layout(data_layout))]
          if DATA_LAYOUTS[data_layout] else []),
        ("legalize operators to TIR", relax.transform.LegalizeOps),
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
             channel_multiples: tuple[int, int] = (1, 1)) -> tvm.IRModule:
    """The graph-level pipeline (`graph_passes`): quantized convs made integer (their channels
    rounded up to `channel_multiples`), BN folded into conv, constants folded, activations in
    `data_layout`, operators lowered to TIR and fused into one PrimFunc per fused group; with
    `layout_free`, constant arguments marked as such."""
    passes = graph_passes(data_layout, layout_free, channel_multiples)
    return tvm.transform.Sequential([make() for _, make in passes])(mod)


def optimize_for(mod: tvm.IRModule, config: SearchConfig, target="cpu") -> tvm.IRModule:
    """`optimize` with the data layout and layout rewrite `config` asks for, and int8 channels
    padded to whole VNNI tiles where `config` asks for it and the search will use VNNI on `target`."""
    vnni = config.vnni and config.vnni_padding and has_vnni(resolve_target(target))
    return optimize(mod, config.data_layout, layout_free=config.layout_rewrite != "off",
                    channel_multiples=(LANES, REDUCTION) if vnni else (1, 1))


def _main_bindings(mod: tvm.IRModule):
    for block in mod["main"].body.blocks:
        yield from block.bindings


def _callee(call: relax.Call) -> str | None:
    """The PrimFunc a call_tir calls, or None for any other call."""
    if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.call_tir":
        return call.args[0].name_hint
    return None


def graph_summary(mod: tvm.IRModule) -> dict[str, int]:
    """Counts that show what graph optimization did: operators called by main, calls of
    PrimFuncs, and the PrimFuncs themselves."""
    ops: Counter = Counter()
    tir_calls = 0
    for binding in _main_bindings(mod):
        value = binding.value
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
            if _callee(value) is None:
                ops[value.op.name] += 1
            else:
                tir_calls += 1
    prim_funcs = sum(isinstance(f, tirx.PrimFunc) for f in mod.functions.values())
    return {"operator calls": sum(ops.values()), "distinct operators": len(ops), "PrimFunc calls": tir_calls,
            "PrimFuncs": prim_funcs}


# ------------------------------------------------------------------ task extraction


@dataclass
class NetworkTask:
    """One distinct fused PrimFunc of the network."""

    name: str  # the first fused function of this structure
    functions: tuple[str, ...]  # every fused function with this structure
    weight: int  # calls in the network
    flops: float
    task: Task | None  # None when there is nothing to tune
    skipped: str = ""  # why it is not tuned


def _has_iterations(task: Task) -> bool:
    """Whether some block runs more than once: a PrimFunc of single-iteration blocks (scalar
    work) has nothing a schedule could change."""
    sch = Schedule(task.mod)
    return any(math.prod(analysis.loop_extents(sch, sch.get_loops(sch.get_sblock(block)))) > 1
               for block in analysis.block_names(sch))


def extract_tasks(fused: tvm.IRModule, target="cpu") -> list[NetworkTask]:
    """One task per distinct fused PrimFunc (structural hash), weighted by its calls."""
    target = resolve_target(target)
    calls = Counter(name for b in _main_bindings(fused)
                    if isinstance(b.value, relax.Call) and (name := _callee(b.value)))
    groups: dict[int, list[tuple[tvm.IRModule, list[str]]]] = {}  # structural hash -> (module, names)
    for gv, func in fused.functions.items():
        if not (isinstance(func, tirx.PrimFunc) and calls[gv.name_hint]):
            continue
        mod = normalize_prim_func(func)
        same_hash = groups.setdefault(tvm_ffi.structural_hash(mod), [])
        group = next((g for g in same_hash if tvm_ffi.structural_equal(mod, g[0])), None)
        if group is None:
            same_hash.append((mod, [gv.name_hint]))
        else:
            group[1].append(gv.name_hint)
    tasks = []
    for mod, names in (group for same_hash in groups.values() for group in same_hash):
        names = tuple(sorted(names))
        name = names[0]
        weight = sum(calls[n] for n in names)
        flops = float(tvm.s_tir.analysis.estimate_tir_flops(mod))
        try:
            task = Task.from_module(name, mod, target, weight)
        except UserError as err:
            tasks.append(NetworkTask(name, names, weight, flops, None, f"cannot be a task: {err}"))
            continue
        if not _has_iterations(task):
            tasks.append(NetworkTask(name, names, weight, flops, None, "nothing to tune: every block runs once"))
            continue
        tasks.append(NetworkTask(name, names, weight, flops, task))
    return sorted(tasks, key=lambda t: (-t.flops * t.weight, t.name))


# ------------------------------------------------------------------ build and run


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


# ------------------------------------------------------------------ the whole job


@dataclass
class NetworkResult:
    network: str
    fused: tvm.IRModule  # the optimized module the tasks came from and the records apply to
    executable: Any  # the tuned build
    graph_before: dict[str, int]
    graph_after: dict[str, int]
    tasks: list[NetworkTask]
    tuning: TasksResult
    untuned: Timing | None
    tuned: Timing
    untuned_check: CheckResult | None
    tuned_check: CheckResult
    tuned_functions: list[str]  # PrimFuncs that got a tuned schedule in the build
    library: str  # the exported deployable library
    plot: str  # estimated and measured latency vs trials (PNG)

    @property
    def speedup(self) -> float:
        return self.untuned.median_s / self.tuned.median_s if self.untuned else math.nan

    def summary(self) -> dict:
        return {"network": self.network, "trials": self.tuning.trials, "new_trials": self.tuning.new_trials,
                "tuning_wall_s": self.tuning.wall_s, "graph_before": self.graph_before, "graph_after": self.graph_after,
                "untuned_ms": self.untuned.median_s * 1e3 if self.untuned else None,
                "tuned_ms": self.tuned.median_s * 1e3, "speedup": self.speedup,
                "estimated_ms": self.tuning.estimated_s * 1e3, "tuned_check_ok": self.tuned_check.ok,
                "tuned_max_abs_error": self.tuned_check.max_abs_error, "library": self.library, "plot": self.plot,
                "tuned_functions": self.tuned_functions,
                "tasks": [{"name": t.name, "weight": t.weight, "flops": t.flops, "skipped": t.skipped}
                          for t in self.tasks],
                "results": [r.summary() for r in self.tuning.results]}

    def task_rows(self) -> tuple[list[str], list[list]]:
        """Per task: weight, trials, best latency and its share of the estimated total."""
        by_name = {r.task.name: r for r in self.tuning.results}
        total = sum(r.task.weight * r.best_ms for r in self.tuning.results if r.best)
        progress = {p.name: p for p in self.tuning.progress}
        rows = []
        for t in self.tasks:
            result = by_name.get(t.name)
            if result is None:
                rows.append([t.name, t.weight, f"{t.flops / 1e6:.1f}", "-", "-", "-", t.skipped])
                continue
            share = t.weight * result.best_ms / total if result.best and total else math.nan
            status = progress[t.name].stopped or ("" if result.check and result.check.ok else "check FAILED")
            rows.append([t.name, t.weight, f"{t.flops / 1e6:.1f}", result.trials,
                         f"{result.best_ms:.4f}" if result.best else "-", f"{share:.1%}", status])
        return ["task", "weight", "MFLOP", "trials", "best ms", "share", "note"], rows


def estimated_latency_curve(trials: list[Trial], weights: dict[str, int]) -> list[tuple[int, float]]:
    """(trials so far, sum of weight x best latency in seconds) after every trial, in recorded
    order, from the first trial at which every task has a valid program."""
    best: dict[str, float] = {}
    curve = []
    for count, trial in enumerate((t for t in trials if t.task in weights), start=1):
        if trial.ok:
            best[trial.task] = min(best.get(trial.task, math.inf), trial.median_s)
        if len(best) == len(weights):
            curve.append((count, sum(weights[name] * best[name] for name in weights)))
    return curve


def plot_network(curve: list[tuple[int, float]], untuned_s: float | None, tuned_s: float, title: str,
                 path: str) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    if curve:
        ax.plot([c for c, _ in curve], [1e3 * s for _, s in curve], label="sum of weight x best task latency")
    ax.axhline(1e3 * tuned_s, color="tab:green", linestyle="--", label=f"tuned network, measured ({1e3 * tuned_s:.2f} ms)")
    if untuned_s:
        ax.axhline(1e3 * untuned_s, color="tab:red", linestyle=":", label=f"untuned ({1e3 * untuned_s:.1f} ms)")
    ax.set_yscale("log")
    ax.set_xlim(left=0)  # the curve starts once every task has a valid program
    ax.set_xlabel("trials")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    save(fig, path)


def tune_network(network: Network, config: SearchConfig, work_dir: str, trials: int, seed: int = 0,
                 target="cpu", progress: bool = True, repeats: int = 5, measure_untuned: bool = True,
                 log: Callable[[str], None] = lambda line: None, measurer: LocalMeasurer | None = None) -> NetworkResult:
    """Optimize the graph, extract tasks, tune them with the task scheduler until `trials` are
    recorded in `work_dir`, build with the best records, export the library, time the network
    untuned and tuned, and check the outputs against the source framework. A `measurer` with
    devices behind an RPC tracker (rpc.RPCMeasurer) measures the candidates and the network there."""
    target = resolve_target(target)
    fused = optimize_for(network.mod, config, target)
    before, after = graph_summary(network.mod), graph_summary(fused)
    log(f"graph: {before['operator calls']} operator calls ({before['distinct operators']} distinct) -> "
        f"{after['PrimFunc calls']} calls of {after['PrimFuncs']} fused PrimFuncs")
    tasks = extract_tasks(fused, target)
    tunable = [t.task for t in tasks if t.task is not None]
    log(f"tasks: {len(tunable)} to tune, {len(tasks) - len(tunable)} not")
    for t in tasks:
        log(f"  {t.name}: {t.weight} call(s), {t.flops / 1e6:.2f} MFLOP" + (f"; {t.skipped}" if t.skipped else ""))
    if not tunable:
        raise UserError(f"{network.name}: nothing to tune")
    inputs = [spec.random(np.random.default_rng(seed)) for spec in network.inputs]
    open_library = measurer.open_library if measurer is not None else open_local
    untuned = untuned_check = None
    if measure_untuned:
        log("timing the untuned network")
        untuned = run(build(fused, target)[0], inputs, repeats, target, open_library)
        untuned_check = check_against_reference(network, untuned.outputs, inputs, config)
    tuning = tune_tasks(tunable, config, work_dir, trials, seed, progress, measurer)
    store = RecordStore(work_dir)
    executable, tuned_functions = build(fused, target, store.database)
    library = os.path.join(work_dir, f"{network.name}.so")
    export_library(executable, library, cross_compiler(target))
    tuned = run_library(library, inputs, repeats, target, open_library)
    weights = {t.name: t.weight for t in tunable}
    plot = os.path.join(work_dir, f"{network.name}.png")
    plot_network(estimated_latency_curve(store.load(), weights),
                 untuned.median_s if untuned else None, tuned.median_s, f"{network.name}: {tuning.trials} trials", plot)
    return NetworkResult(network.name, fused, executable, before, after, tasks, tuning, untuned, tuned, untuned_check,
                         check_against_reference(network, tuned.outputs, inputs, config), tuned_functions, library,
                         plot)
