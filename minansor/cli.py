"""`minansor` command line. Bad input ends with one line on stderr and exit status 2; a tuning run
that found no valid program, with one line and exit status 1 (its records are kept)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .config import SearchConfig
from .errors import NoValidProgram, UserError
from .search.strategies import STRATEGIES
from .tasks.workloads import CATALOGUE, DEFAULT_WORKLOAD, FAMILIES, YOLO_LAYERS, make_task, parse
from .validation import with_overrides


def format_table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _config(args) -> SearchConfig:
    config = SearchConfig()
    if getattr(args, "search", None):
        config = with_overrides(config, [f"search={args.search}"])
    return with_overrides(config, getattr(args, "set", None) or [])


def _measurer(args, config: SearchConfig):
    """An RPCMeasurer when --rpc names a tracker; None measures on this machine."""
    if not getattr(args, "rpc", None):
        return None
    from .measure.rpc import RPCMeasurer, RPCSettings

    settings = RPCSettings.parse(args.rpc, priority=args.rpc_priority, session_timeout_s=args.rpc_session_timeout,
                                 devices=args.rpc_devices)
    return RPCMeasurer(config, settings)


# ---------------------------------------------------------------- subcommands


def cmd_workloads(args) -> int:
    rows = []
    for name in CATALOGUE:
        task = make_task(name, args.target)
        family, _ = parse(name)
        shapes = " ".join("x".join(map(str, a.shape)) for a in task.args)
        rows.append([name, FAMILIES[family].describe, shapes, f"{task.flops / 1e9:.4f}", YOLO_LAYERS.get(name, "")])
    print(format_table(["workload", "computation", "argument shapes", "GFLOP", "YOLO uses"], rows))
    print("\nAny shape works through the name patterns: conv-HxW-CIN-COUT-KxK[sS][-nhwc], head-HxW-CIN-COUT-KxK[sS][-nhwc], "
          "qconv-HxW-CIN-COUT-KxK[sS] (int8), bconv-HxW-CIN-COUT-KxK[sS] (bf16), gemm-MxNxK, maxpool-HxW-C, rowsum-RxC, "
          "add-NxM")
    return 0


def cmd_sketches(args) -> int:
    from .space.search_space import SearchSpace

    space = SearchSpace(make_task(args.workload, args.target), _config(args))
    rng = np.random.default_rng(args.seed)
    print(f"{args.workload}: {len(space.sketches)} sketch(es)")
    for index, sketch in enumerate(space.sketches):
        print(f"\nsketch {index}:")
        for line in sketch.describe():
            print(f"  - {line}")
        print("  open decisions: " + ", ".join(s.describe() for s in sketch.annotations))
        valid = [a for a in (space.random(rng, index) for _ in range(args.samples)) if a is not None]
        print(f"  valid random programs: {len(valid)}/{args.samples}")
        if valid:
            knobs = ", ".join(f"{k.name}" for k in valid[0].knobs)
            print(f"  knobs: {knobs}")
            if args.script:
                print(f"  one random program (decisions {dict(valid[0].program.decisions)}):")
                print(valid[0].mod.script())
    print(f"\nvalid rate: {space.valid_rate:.1%} of {space.sampled} random programs")
    return 0


def cmd_tune_op(args) -> int:
    from .tune import tune_task

    task = make_task(args.workload, args.target)
    if args.trials < 1:
        raise UserError("--trials must be at least 1")
    config = _config(args)
    result = tune_task(task, config, args.work_dir, args.trials, args.seed, progress=not args.no_progress,
                       measurer=_measurer(args, config))
    if result.skipped_lines:
        print(f"note: skipped {result.skipped_lines} unreadable line(s) of {args.work_dir}/trials.jsonl",
              file=sys.stderr)
    check = result.check
    rows = [[task.name, f"{result.best_ms:.4f}", f"{result.gflops:.1f}", result.trials, result.new_trials,
             result.failed, f"{result.valid_rate:.1%}", f"{result.search_s_per_round:.2f}", f"{result.wall_s:.1f}",
             ("ok" if check.ok else "FAILED") if check else "-"]]
    print(format_table(["task", "best ms", "GFLOPS", "trials", "new", "failed", "valid rate", "search s/round",
                        "wall s", "check"], rows))
    if check and not check.ok:
        print(f"error: the best program is wrong: {check.detail}", file=sys.stderr)
    if result.best is None:
        print("no trial succeeded; see the errors in trials.jsonl", file=sys.stderr)
    if args.json:
        print(json.dumps(result.summary()))
    return 0 if (result.best and check and check.ok) else 1


def cmd_compare(args) -> int:
    from .compare.report import table_rows
    from .compare.task import compare_task

    task = make_task(args.workload, args.target)
    if args.trials < 1:
        raise UserError("--trials must be at least 1")
    result = compare_task(task, args.trials, _config(args), args.work_dir, args.seed, progress=not args.no_progress,
                          fresh=args.fresh)
    headers, rows = table_rows([result])
    print(format_table(headers, rows))
    print(f"ratio minansor / MetaSchedule best latency: {result.ratio:.3f} (below 1: minansor faster)")
    return 0 if result.minansor.check_ok and result.metaschedule.check_ok else 1


def cmd_tune_model(args) -> int:
    from .network.models import load_model
    from .network.tuning import tune_network

    if args.trials < 1:
        raise UserError("--trials must be at least 1")
    config = _config(args)
    library = None
    if args.records:  # read (and refused) before anything is written to the work dir
        from .records_library import read_library
        from .tasks.targets import resolve_target

        library = read_library(args.records, resolve_target(args.target), config,
                               log=lambda line: print(line, flush=True), progress=not args.no_progress)
    network = load_model(args.model, args.seed, args.precision.replace("-", " "))
    result = tune_network(network, config, args.work_dir, args.trials, args.seed, args.target,
                          progress=not args.no_progress, repeats=args.repeats,
                          measure_untuned=not args.skip_untuned, log=lambda line: print(line, flush=True),
                          measurer=_measurer(args, config), library=library)
    headers, rows = result.task_rows()
    print(format_table(headers, rows))
    checks = [result.tuned_check] + ([result.untuned_check] if result.untuned_check else [])
    lines = [("TVM untuned", result.untuned, result.untuned_check), ("TVM + minansor", result.tuned, result.tuned_check)]
    precision = "bf16" if network.precision == "bf16" else "as imported"
    rows = [[name, precision, f"{t.median_s * 1e3:.2f}", f"{c.max_abs_error:.2g}", "ok" if c.ok else "FAILED"]
            for name, t, c in lines if t is not None]
    rows += [[name, engine_precision, f"{seconds * 1e3:.2f}", "", ""] for name, engine_precision, seconds in result.engines]
    print(format_table(["runtime", "precision", "median ms", f"max abs error vs {network.source}", "check"], rows))
    if result.engines:
        name, engine_precision, seconds = min(result.engines, key=lambda e: e[2])
        ratio = seconds / result.tuned.median_s
        print(f"fastest other engine: {name} ({engine_precision}), {seconds * 1e3:.2f} ms; the tuned build is "
              f"{ratio:.2f}x its speed ({'faster' if ratio > 1 else 'slower'})")
    if result.untuned:
        print(f"speedup {result.speedup:.2f}x after {result.tuning.trials} trials "
              f"({len(result.tuned_functions)} tuned PrimFuncs)")
    print(f"library: {result.library}\nplot: {result.plot}")
    failed = [c.detail for c in checks if not c.ok]
    for detail in failed:
        print(f"error: {detail}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.summary()))
    return 1 if failed else 0


def cmd_report(args) -> int:
    from .report import write_report

    path, summaries = write_report(args.work_dir)
    print(format_table(["task", "trials", "failed", "best ms", "rank corr."],
                       [[s.task, s.trials, s.failed, f"{s.best_ms:.4f}", f"{s.rank_correlation:.2f}"]
                        for s in summaries]))
    print(f"report: {path} (plots beside it)")
    return 0


def cmd_explain(args) -> int:
    from .explain import explain, render
    from .records import RecordStore

    recorded = RecordStore(args.work_dir).load_config() if os.path.isdir(args.work_dir) else None
    config = with_overrides(recorded or SearchConfig(), args.set) if args.set else None  # None: as recorded
    explanation = explain(args.work_dir, args.task, config)
    print(render(explanation))
    return 0 if explanation.check is None or explanation.check.ok else 1


# ---------------------------------------------------------------- parser


def add_rpc_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc", metavar="HOST:PORT:KEY",
                   help="measure on the devices registered under KEY at the RPC tracker HOST:PORT")
    p.add_argument("--rpc-devices", type=int, default=1, help="devices measuring in parallel (default 1)")
    p.add_argument("--rpc-priority", type=int, default=1, help="priority of the tracker requests (default 1)")
    p.add_argument("--rpc-session-timeout", type=float, default=120.0,
                   help="seconds after which a device drops a session, e.g. a hung kernel (default 120)")


def add_set_option(p: argparse.ArgumentParser, help_text: str = "override a SearchConfig field (repeatable)") -> None:
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help=help_text)


def add_run_options(p: argparse.ArgumentParser, trials: int, trials_help: str, work_dir: str, work_dir_help: str,
                    set_example: str, json: bool = True) -> None:
    """The options every tuning command takes: budget, seed, work dir, output, config overrides."""
    p.add_argument("--trials", type=int, default=trials, help=f"{trials_help} (default {trials})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--work-dir", default=work_dir, help=f"{work_dir_help} (default {work_dir})")
    if json:
        p.add_argument("--json", action="store_true", help="end with one JSON object of the result")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_set_option(p, f"override a SearchConfig field, e.g. --set {set_example} (repeatable)")


def cmd_device(args) -> int:
    from . import emulated_device as emulated

    device = emulated.EmulatedDevice(args.cache or emulated.default_cache())
    if args.action == "setup":
        emulated.setup(device)
        print(f"emulated aarch64 device ready in {device.cache}")
        return 0
    if args.action == "stop":
        if args.pid is None:
            raise UserError("device stop: give the server's PID (printed by `minansor device start`)")
        if not emulated.stop_server(args.pid):
            raise UserError(f"device stop: no process {args.pid} runs")
        print(f"stopped the emulated device {args.pid}")
        return 0
    if not args.tracker:
        raise UserError("device start: give --tracker HOST:PORT (start one with python -m tvm.exec.rpc_tracker)")
    before = emulated.registered(args.tracker, args.key)
    if before < 0:
        raise UserError(f"device start: no RPC tracker answers at {args.tracker}")
    emulated.setup(device)
    pid = emulated.start_server(device, args.tracker, args.key, args.host, args.port)
    from tqdm import tqdm

    with tqdm(desc="device registering (tvm imports under qemu)", unit="s", disable=args.no_progress,
              bar_format="{desc}: {elapsed}") as bar:
        emulated.wait_registered(device, pid, args.tracker, args.key, before, tick=lambda _: bar.update())
    print(f"{pid}: an emulated aarch64 device under key {args.key!r} at {args.tracker} (timings are qemu's, not a "
          f"board's); log {emulated.server_log(device, pid)}; stop it with `minansor device stop {pid}`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minansor",
        description="A readable Ansor: sketch generation, random annotation and search over TVM TensorIR.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, func, target: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if target:  # commands that read a work dir take the target from its records
            p.add_argument("--target", default="cpu",
                           help="a preset (cpu, jetson-nano, jetson-nano-cpu, cuda) or a JSON target dict, e.g. "
                                "'{\"kind\": \"llvm\", \"num-cores\": 2}' (default: cpu, the local CPU)")
        return p

    add("workloads", "List the workload catalogue (GEMMs, YOLOv4-tiny layers, ...) and the name patterns.",
        cmd_workloads)

    p = add("sketches", "Print the sketches derived for a workload and the valid rate of random programs.",
            cmd_sketches)
    p.add_argument("workload", help="a catalogue name or pattern (see `minansor workloads`)")
    p.add_argument("--samples", type=int, default=50, help="random programs drawn per sketch (default 50)")
    p.add_argument("--script", action="store_true", help="also print one random program per sketch as TVMScript")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_set_option(p)

    p = add("tune-op", "Tune one operator on the target (this machine, or the devices behind an RPC tracker) "
                       "and print the best program's latency.", cmd_tune_op)
    p.add_argument("workload", nargs="?", default=DEFAULT_WORKLOAD,
                   help=f"a catalogue name or pattern (default {DEFAULT_WORKLOAD})")
    add_run_options(p, 64, "total trials in the work dir; re-running continues up to this count",
                    "work_dirs/tune-op", "where records go: MetaSchedule's database + trials.jsonl",
                    "trials_per_round=32")
    p.add_argument("--search", choices=tuple(STRATEGIES), default=None, help="search strategy (default evolutionary)")
    add_rpc_options(p)

    p = add("compare", "Tune a workload with minansor, then with stock MetaSchedule (tune_tir), at equal trials "
                       "and measurements per round; re-measure both best programs side by side.", cmd_compare)
    p.add_argument("workload", nargs="?", default=DEFAULT_WORKLOAD,
                   help=f"a catalogue name or pattern (default {DEFAULT_WORKLOAD})")
    add_run_options(p, 64, "trials for each tuner", "work_dirs/compare-cli", "records of both tuners",
                    "population=96", json=False)
    p.add_argument("--fresh", action="store_true",
                   help="delete the records of an earlier comparison in --work-dir (both tuners start from nothing)")

    p = add("tune-model", "Tune a whole network: graph optimization, task extraction, the task scheduler over "
                          "all tasks, the tuned build (exported as a library), and its end-to-end latency "
                          "untuned vs tuned (on this machine or the devices behind an RPC tracker), checked "
                          "against the source framework.", cmd_tune_model)
    p.add_argument("model", help="an .onnx file, a .pt2 file (torch.export.save) or a built-in model: "
                                 "convnet (small, minutes); yolov4-tiny, yolox-s (416x416, 20 classes, seeded random "
                                 "weights), their int8 quantizations yolov4-tiny-int8, yolox-s-int8, and in bf16 "
                                 "yolov4-tiny-bf16, yolox-s-bf16, convnet-bf16")
    p.add_argument("--precision", choices=["as-imported", "bf16"], default="as-imported",
                   help="bf16: run an fp32 model's convolutions on bf16 operands with fp32 accumulation "
                        "(weights rounded at compile time, activations where they enter a convolution; "
                        "on the CPU's AMX tiles or AVX-512 BF16); default: as imported")
    add_run_options(p, 200, "total trials over all tasks in the work dir; re-running continues up to this count",
                    "work_dirs/tune-model", "records of all tasks", "task_scheduler=round_robin")
    p.add_argument("--repeats", type=int, default=5, help="timed end-to-end runs; the median is reported (default 5)")
    p.add_argument("--skip-untuned", action="store_true", help="do not time the untuned build (slow for big models)")
    p.add_argument("--records", nargs="+", metavar="DIR",
                   help="work dirs of earlier runs (another network, budget or seed) on the same target to learn "
                        "from: their measurements pretrain the cost model and their best programs start matching "
                        "tasks (docs/concepts/records.md)")
    add_rpc_options(p)

    p = add("report", "Plot a tuning run from its records (best latency vs trials, predicted vs measured, time "
                      "split per round) and write a markdown summary into the work dir.", cmd_report,
            target=False)
    p.add_argument("work_dir", help="the --work-dir of a tune-op, tune-model or compare run")

    p = add("explain", "Show the best program of a run: its sketch, decisions, lineage (which sketch, mutations "
                       "and crossovers produced it) and TVMScript, checked against the untuned program.", cmd_explain,
            target=False)
    p.add_argument("work_dir", help="the --work-dir of a tune-op or tune-model run")
    p.add_argument("--task", help="which task, when the work dir holds several (a network)")
    add_set_option(p, "change a field of the config the run recorded (to see its best program under other rules)")

    p = add("device", "An emulated aarch64 device (qemu-user, an arm64 Python and TVM) behind an RPC tracker: "
                      "`setup` builds it once in a cache folder, `start` runs an rpc_server on it registered "
                      "under --key and prints its pid, `stop PID` stops it. Emulated timings are not a board's.",
            cmd_device, target=False)
    p.add_argument("action", choices=["setup", "start", "stop"])
    p.add_argument("pid", nargs="?", type=int, help="stop: the pid `start` printed")
    p.add_argument("--tracker", help="start: the RPC tracker's HOST:PORT")
    p.add_argument("--key", default="jetson-nano", help="start: the key to register under (default jetson-nano)")
    p.add_argument("--host", default="127.0.0.1", help="start: the address the server listens on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9090, help="start: the first port the server tries (default 9090)")
    p.add_argument("--cache", help="the device's folder (default $MINANSOR_DEVICE_CACHE or "
                                   "~/.cache/minansor/aarch64-device)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"minansor: error: {err}", file=sys.stderr)
        return 2
    except NoValidProgram as err:
        print(f"minansor: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minansor: interrupted; records so far are kept, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
