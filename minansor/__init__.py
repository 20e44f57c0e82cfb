"""minansor: the Ansor auto-scheduler's search, in readable Python over TVM TensorIR.

Map of the code, in the order a program is born, measured and recorded:

    workloads.py      named operator workloads (GEMM, YOLOv4-tiny conv layers, ...) -> Task
    task.py           Task: one PrimFunc + target + weight + FLOPs + argument specs
    targets.py        target presets (cpu, jetson-nano, cuda), JSON target dicts, cross compilers, threads
    analysis.py       read-only questions about TIR blocks and loops
    steps.py          transform steps (the sketch language) and knobs (their open decisions)
    layout_rewrite.py constant weights packed in the order the tiles read them; the kernel that is timed
    vnni.py           the VNNI dot product (vpdpbusd) as a tensor intrinsic; which blocks it fits
    sketch.py         derivation rules -> sketches; where annotation decides   <- read first
    gpu_sketch.py     the GPU rules: SSSRRSRS tiles bound to blocks/threads, shared memory, cross-thread reduction
    annotate.py       random annotation: tile factorizations and knob sampling
    program.py        Program = sketch + decisions; deterministic replay
    space.py          SearchSpace: a task's sketches, random and replayed programs
    random_search.py  the random-search strategy
    evolve.py         the evolutionary search: population, roulette selection, eps-greedy  <- the heart
    mutate.py         mutators (tile size, unroll, parallel, compute location) and crossover
    features.py       per-store program features (ours, named and versioned) or TVM's
    cost_model.py     XGBoost pack-sum on normalized throughput; a random model; rank correlation
    measure.py        build pool + local runner; failures become failed trials
    rpc.py            the RPC runner: devices behind a tracker, in parallel, lost ones replaced
    replay.py         the replay runner: answers from recorded measurements (exact or nearest)
    records.py        MetaSchedule JSON database + trials.jsonl, tasks.jsonl, rounds.jsonl; resume
    trace.py          the search trace: per-round population, validity, time split by phase
    verify.py         the best program checked against the untuned PrimFunc
    tune.py           the tuning loops: one task, or a network's tasks sharing one budget
    scheduler.py      the task scheduler: which task gets the next round (Ansor's gradient)
    models.py         networks from ONNX, torch.export (.pt2), PyTorch modules, built-ins
    int8.py           quantized (QDQ) convs rewritten into int8 x int8 -> int32 arithmetic
    network.py        graph optimization, task extraction, tuned build, end-to-end timing
    compare.py        side by side with stock MetaSchedule, per task or per network
    metaschedule.py   MetaSchedule's builder and runner under minansor's timeouts
    peak.py           this machine's peaks, measured: fp32 by an FMA-bound kernel, int8 by vpdpbusd
    report.py         `minansor report`: plots and a summary of a work dir
    explain.py        `minansor explain`: the best program, its decisions and its lineage
    config.py         SearchConfig: every choice of the search in one frozen object
    cli.py            the `minansor` command; errors.py: UserError, the one-line error for bad input
"""

from .targets import use_physical_cores

use_physical_cores()  # before any kernel runs: TVM's own default uses half the cores of this machine

from .config import SearchConfig  # noqa: E402
from .program import Program  # noqa: E402
from .space import SearchSpace  # noqa: E402
from .task import Task  # noqa: E402
from .tune import TasksResult, TuneResult, tune_task, tune_tasks  # noqa: E402
from .workloads import make_task  # noqa: E402

__all__ = ["Program", "SearchConfig", "SearchSpace", "Task", "TasksResult", "TuneResult", "make_task", "tune_task",
           "tune_tasks"]
