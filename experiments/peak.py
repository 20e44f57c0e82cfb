"""This machine's fp32 ceilings: the FMA-bound kernel of minansor/measure/peak.py on one thread, on
TVM's default number of threads, and on one thread per core; and numpy's sgemm.

    python experiments/peak.py

TVM's runtime, unless TVM_NUM_THREADS says otherwise, runs parallel loops on half the hardware
threads of an x86 machine (it assumes two per core); minansor sets one thread per physical core
when it is imported (targets.use_physical_cores). Each count is measured in a fresh interpreter
with that TVM_NUM_THREADS. Writes experiments/results/peak.{md,json}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402
from minansor.cli import format_table  # noqa: E402
from minansor.compare.remeasure import numpy_sgemm_gflops  # noqa: E402
from minansor.report import markdown_table  # noqa: E402
from minansor.tasks.targets import physical_cores  # noqa: E402

def peak_with_threads(threads: int) -> float:
    """The FMA kernel's GFLOPS with TVM's runtime on `threads` threads (the target's cores too)."""
    env = {**os.environ, "TVM_NUM_THREADS": str(threads)}
    code = ("import tvm; from minansor.measure.peak import fp32_peak_gflops; print(fp32_peak_gflops({'kind': 'llvm', "
            f"'mcpu': tvm.target.codegen.llvm_get_system_cpu(), 'num-cores': {threads}}}))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> int:
    cores, hardware_threads = physical_cores(), os.cpu_count() or 1
    rows = [("one thread", 1), (f"TVM's default on x86 (hardware threads / 2 = {max(1, hardware_threads // 2)})",
                                max(1, hardware_threads // 2)), (f"one per physical core ({cores}, minansor)", cores)]
    measured = [(label, threads, peak_with_threads(threads)) for label, threads in rows]
    sgemm = numpy_sgemm_gflops()
    table = [[label, threads, f"{gflops:.0f}"] for label, threads, gflops in measured]
    table.append(["numpy sgemm 1024³ (OpenBLAS, its own threads)", "-", f"{sgemm:.0f}"])
    headers = ["TVM runtime threads", "threads", "GFLOPS"]
    print(format_table(headers, table))
    lines = ["# fp32 ceilings of this machine", "", "Command: `python experiments/peak.py`", "", f"Machine: {machine()}",
             "", "The FMA-bound kernel of `minansor/measure/peak.py` (independent vector FMA chains on registers, every "
             "core; best of 25 timings), compiled by TVM for this CPU, with TVM's runtime on the given number of "
             "threads; numpy's sgemm for comparison.", "",
             *markdown_table(headers, table)]
    stem = os.path.join(RESULTS, "peak")
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"peak": [{"label": l, "threads": t, "gflops": g} for l, t, g in measured], "numpy_sgemm_gflops": sgemm},
                  f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
