"""A whole network tuned for the Jetson Nano's CPU and run on an emulated aarch64 device over a tracker.

    python experiments/aarch64_device.py                       # convnet, 32 trials
    python experiments/aarch64_device.py --model convnet --trials 64

1. the emulated device (`minansor device setup`: qemu-user, an arm64 Python, the aarch64 wheels
   of this TVM; once per machine, in its cache folder);
2. an rpc_tracker on loopback, and one rpc_server on the device registered under a key;
3. `minansor tune-model MODEL --target jetson-nano-cpu --rpc 127.0.0.1:PORT:KEY`: every candidate
   cross-compiled here, uploaded and timed on the device, every task's best program checked
   there, the untuned and the tuned network exported, uploaded, run in the Relax VM on the
   device and their outputs checked against the source framework;
4. experiments/results/aarch64-device-<model>.{md,json}: tasks, trials, every check, the
   libraries' ELF machine.

The latencies are qemu's (user-mode emulation of an aarch64 CPU on this x86 host), not a
Cortex-A57's: the run proves that what minansor builds for the board runs and is right there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.ablate_network import commit_of_this_checkout  # noqa: E402
from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor import emulated_device as emulated  # noqa: E402
from minansor.report import markdown_table  # noqa: E402

TARGET, KEY = "jetson-nano-cpu", "a57"
EMULATED = ("**Latencies are emulated**: qemu-user running an aarch64 CPU on this x86 host, not a Cortex-A57; "
            "they say that the programs run there, not how fast a Jetson Nano runs them.")


def elf_machine(path: str) -> str:
    with open(path, "rb") as f:
        header = f.read(20)
    return {183: "AArch64", 62: "x86-64"}.get(int.from_bytes(header[18:20], "little"), "other")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="convnet", help="a built-in model, .onnx or .pt2 (default convnet)")
    p.add_argument("--trials", type=int, default=32, help="tuning trials (default 32)")
    p.add_argument("--work-dir", help="default work_dirs/aarch64-device-<model>")
    args = p.parse_args(argv)
    name = os.path.splitext(os.path.basename(args.model))[0]
    work_dir = args.work_dir or f"work_dirs/aarch64-device-{name}"
    device = emulated.setup(emulated.EmulatedDevice(emulated.default_cache()))
    tracker, address = emulated.start_local_tracker()
    pid = None
    try:
        while emulated.registered(address, KEY) < 0:
            time.sleep(0.5)
        pid = emulated.start_server(device, address, KEY, port=emulated.free_port())
        print("waiting for the emulated device to register (tvm imports under qemu) ...", flush=True)
        emulated.wait_registered(device, pid, address, KEY, before=0)
        command = ["tune-model", args.model, "--target", TARGET, "--rpc", f"{address}:{KEY}", "--trials",
                   str(args.trials), "--work-dir", work_dir, "--json", "--no-progress"]
        print("minansor " + " ".join(command), flush=True)
        done = subprocess.run([sys.executable, "-m", "minansor.cli", *command], capture_output=True, text=True)
        print(done.stdout, done.stderr, sep="\n")
    finally:
        if pid:
            emulated.stop_server(pid)
        tracker.kill()
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [[r["task"], next(t["weight"] for t in summary["tasks"] if t["name"] == r["task"]), r["trials"],
             r["failed"], f"{r['best_ms']:.4f}", "ok" if r["check_ok"] else "FAILED"] for r in summary["results"]]
    checks = [r["check_ok"] for r in summary["results"]] + [summary["tuned_check_ok"], done.returncode == 0]
    reproduce = f"python experiments/aarch64_device.py {' '.join(argv)}".strip()
    lines = [f"# {summary['network']} tuned for `{TARGET}` and run on an emulated aarch64 device", "",
             f"Command: `{reproduce}` (commit {commit_of_this_checkout()}, {time.strftime('%Y-%m-%d')}), which ran "
             f"`minansor {' '.join(command).replace(address, 'TRACKER')}`. Host: {machine()}.", "", EMULATED, "",
             f"{len(rows)} tasks, {summary['trials']} trials, each measured on the device; every task's best program "
             "checked on the device against its untuned PrimFunc; the untuned and the tuned network uploaded, run in "
             "the Relax VM on the device and their outputs checked against the source framework "
             f"(tune-model exits 1 on any failed check: it exited {done.returncode}).", "",
             *markdown_table(["task", "calls", "trials", "failed", "best ms (emulated)", "check on the device"], rows),
             "", *markdown_table(["network", "ms (emulated)", "check vs source framework"],
                                 [["TVM untuned", f"{summary['untuned_ms']:.2f}", "ok" if done.returncode == 0 else "?"],
                                  ["TVM + minansor", f"{summary['tuned_ms']:.2f}",
                                   "ok" if summary["tuned_check_ok"] else "FAILED"]]),
             "", f"Library: `{os.path.basename(summary['library'])}`, ELF machine {elf_machine(summary['library'])}.",
             "", f"Every check: {'ok' if all(checks) else 'FAILED'}."]
    base = os.path.join(RESULTS, f"aarch64-device-{name}")
    with open(base + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump({"command": reproduce, "commit": commit_of_this_checkout(), "host": machine(), "target": TARGET,
                   "emulated": True, "exit_status": done.returncode, "elf_machine": elf_machine(summary["library"]),
                   "summary": summary}, f, indent=1)
    print("\n".join(lines) + f"\nwrote {base}.md, .json")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
