"""minansor: the Ansor auto-scheduler's search, in readable Python over TVM TensorIR.

Map of the code. Folders are Ansor's concepts; a module imports only modules above it in this
map (tests/test_layout.py checks it), and nothing here imports the YOLO application.

    config.py, errors.py   SearchConfig: every choice of the search in one frozen object; UserError
    tir/                   TensorIR the search reads and writes
      analysis.py          read-only questions about TIR blocks and loops; the one statement walker
      layout_rewrite.py    constant weights packed in the order the tiles read them; the kernel that is timed
      vnni.py              the VNNI dot product (vpdpbusd) as a tensor intrinsic; which blocks it fits
      amx.py               AMX tiles: a register-blocked int8/bf16 micro-kernel as a tensor intrinsic; the runtime contract
      intrinsics.py        TVM's tensor intrinsics for the target at hand only; MetaSchedule's tuning context
    tasks/                 what is tuned, and where
      targets.py           target presets (cpu, jetson-nano, jetson-nano-cpu, cuda), JSON target dicts, cross compilers, threads
      task.py              Task: one PrimFunc + target + weight + FLOPs + argument specs
      workloads.py         named operator workloads (GEMM, YOLOv4-tiny conv layers, ...) -> Task
    space/                 the search space of a task
      steps.py             transform steps (the sketch language) and knobs (their open decisions)
      sketch.py            the derivation engine: sketches, derivations, the analyses rules ask  <- read first
      cpu_rules.py         the CPU rules (Ansor's + VNNI tiling); where annotation decides on a CPU
      gpu_rules.py         the GPU rules: SSSRRSRS tiles bound to blocks/threads, shared memory, cross-thread reduction
      program.py           Program = sketch + decisions; deterministic replay
      annotate.py          random annotation: tile factorizations and knob sampling
      search_space.py      SearchSpace: a task's sketches, random and replayed programs
    model/                 the learned cost model
      intervals.py         interval arithmetic over TIR index expressions
      stores.py            the stores of a scheduled PrimFunc with their loops, bindings, accesses, operations
      features.py          per-store program features (ours, each column named) or TVM's
      cost_model.py        XGBoost pack-sum on normalized throughput; a random model; rank correlation
    search/                search strategies over a space, guided by a model
      trace.py             the search trace: per-round population, validity, time split by phase
      strategy.py          the SearchStrategy interface, Proposal, fresh random sampling
      mutate.py            mutators (tile size, unroll, parallel, compute location, GPU threads/vector) and crossover
      evolve.py            the evolutionary search: population, roulette selection, eps-greedy  <- the heart
      random_search.py     the random-search strategy
      local_search.py      coordinate descent on hardware around the measured best, one knob one step at a time
      transfer.py          another task's best programs re-fitted to a task's shapes, lent to its first round
      strategies.py        every strategy by name
    measure/               running programs
      measurer.py          the Measurer interface and MeasureResult
      verify.py            the best program checked against the untuned PrimFunc
      local.py             build pool + local runner; failures become failed trials
      rpc.py               the RPC runner: devices behind a tracker, in parallel, lost ones replaced
      replay.py            the replay runner: answers from recorded measurements (exact or nearest)
      peak.py              this machine's peaks, measured: fp32 by an FMA-bound kernel, int8 by vpdpbusd, AMX tiles; STREAM bandwidth
    records.py             MetaSchedule JSON database + trials.jsonl, tasks.jsonl, rounds.jsonl; resume; replay_from
    records_library.py     earlier work dirs (--records) a run learns from: donors for matching tasks, pretraining data
    scheduler.py           the task scheduler: which task gets the next round (Ansor's gradient)
    relax_rewrite.py       graph rewrites over a module's Relax functions, each handed the matched call
    data_layout.py         a network's activations in NCHW as imported or NHWC (SearchConfig.data_layout)
    validation.py          a SearchConfig checked against every registry it names
    tune.py                the tuning loops: one task, or a network's tasks sharing one budget
  applications of the tuner:
    plots.py               matplotlib without a display
    network/               whole networks in TVM Relax
      int8.py              quantized (QDQ) convs rewritten into uint8 x int8 -> int32 arithmetic
      bf16.py              the bf16 precision: an fp32 network's convs on bf16 operands, fp32 accumulation
      fast_math.py         exp, sigmoid, softmax, tanh as TVM's vectorizable polynomials (SearchConfig.fast_math)
      pooling.py           a large max-pool as a 1 x k then a k x 1 pool (SearchConfig.separable_pools)
      graph.py             a network, and the graph pipeline that fuses it into PrimFuncs
      engines.py           the engines a user would otherwise run it with: PyTorch, onnxruntime, OpenVINO
      extract.py           task extraction: one task per distinct fused PrimFunc, weighted by its calls
      run.py               the build with tuned records, end-to-end timing, the check against the source
      tuning.py            the whole job: tune, build, export, time, check, plot
      models.py            networks from ONNX, torch.export (.pt2), PyTorch modules, built-ins (entry points)
    metaschedule.py        MetaSchedule's builder and runner under minansor's timeouts
    report.py              `minansor report`: plots and a summary of a work dir
    compare/               side by side with stock MetaSchedule, per task or per network
      results.py           what a comparison found: each tuner's run, per task and per network
      metaschedule_runs.py stock tune_tir under minansor's timeouts; its best program read back
      remeasure.py         best programs re-measured side by side; numpy's sgemm as a ceiling
      task.py              one task: both tuners from nothing, then the side-by-side re-measurement
      network.py           one network: tune_network against tune_relax, both builds timed alternately
      report.py            tables, geometric means and their intervals, plots
    explain.py             `minansor explain`: the best program, its decisions and its lineage
    emulated_device.py     an aarch64 device emulated by qemu-user behind an RPC tracker: setup, start, stop
    cli.py                 the `minansor` command
"""

from .tasks.targets import use_physical_cores

use_physical_cores()  # before any kernel runs: TVM's own default uses half the cores of this machine

from .config import SearchConfig  # noqa: E402
from .space.program import Program  # noqa: E402
from .space.search_space import SearchSpace  # noqa: E402
from .tasks.task import Task  # noqa: E402
from .tasks.workloads import make_task  # noqa: E402
from .tune import TasksResult, TuneResult, tune_task, tune_tasks  # noqa: E402

__all__ = ["Program", "SearchConfig", "SearchSpace", "Task", "TasksResult", "TuneResult", "make_task", "tune_task",
           "tune_tasks"]
