"""Does a config reproduce an earlier commit's search trial for trial? (An ablation switch that is
"off" must give back exactly the search it was added to.)

    python experiments/same_search.py --against 22d8365 --set transfer_programs=0 --set warmup_order=given --set warmup_trials=0

Runs the same small network (three conv and GEMM tasks, 48 trials, seed 1) twice: with this
checkout under the --set changes, and with commit --against (checked out into a temporary git
worktree) under its defaults. Both measure with a stand-in that answers each program with a
latency derived from a hash of its TIR, so the two searches see the same "hardware" and any
difference is the search's. Prints both sequences' digests and the first trial where they part;
writes experiments/results/same-search-<commit>.md. Takes a minute or two.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.ablate_network import commit_of_this_checkout  # noqa: E402
from experiments.compare_metaschedule import RESULTS, machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run inside each checkout (its own minansor on PYTHONPATH): prints one line per trial.
RUN = r'''
import dataclasses, sys, zlib
from minansor.config import SearchConfig
from minansor.measure.measurer import MeasureResult
from minansor.records import RecordStore
from minansor.tasks.workloads import make_task
from minansor.tune import tune_tasks
from minansor.validation import with_overrides


class HashedLatency:
    """A measurer whose 'latency' is a hash of the program's TIR: deterministic, the same for both checkouts."""
    last_split_s = {}
    outputs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def measure_programs(self, task, applied, seed=0):
        return [MeasureResult((1e-4 * (1 + zlib.crc32(a.mod.script().encode()) % 1000),), None) for a in applied]


config = dataclasses.replace(with_overrides(SearchConfig(), sys.argv[2:]), trials_per_round=8, population=48,
                             generations=2, min_fresh_random=16, model_min_samples=8)
tasks = [make_task(name) for name in ("conv-8x8-4-4-3x3", "conv-10x10-4-12-3x3", "gemm-32x32x32")]
tune_tasks(tasks, config, sys.argv[1], trials=48, seed=1, progress=False, measurer=HashedLatency())
for trial in RecordStore(sys.argv[1]).load():
    print(trial.task, trial.program.key())
'''


def run(checkout: str, changes: list[str], work_dir: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": checkout}
    out = subprocess.run([sys.executable, "-c", RUN, work_dir, *changes], capture_output=True, text=True, env=env,
                         cwd=checkout, timeout=1800)
    if out.returncode:
        raise SystemExit(f"the run in {checkout} failed:\n{out.stderr[-2000:]}")
    return out.stdout.splitlines()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", required=True, help="the earlier commit whose default search should come back")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="the changes that should restore it, in this checkout (repeatable)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        earlier = os.path.join(scratch, "earlier")
        added = subprocess.run(["git", "worktree", "add", "--detach", earlier, args.against], cwd=ROOT,
                               capture_output=True, text=True)
        if added.returncode:
            p.error(f"cannot check out {args.against!r}: {added.stderr.strip().splitlines()[-1]}")
        try:
            ours = run(ROOT, args.set, os.path.join(scratch, "ours"))
            theirs = run(earlier, [], os.path.join(scratch, "theirs"))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", earlier], cwd=ROOT, capture_output=True)

    def digest(lines: list[str]) -> str:
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    parted = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
    same = ours == theirs
    command = "python experiments/same_search.py " + " ".join(argv or sys.argv[1:])
    lines = [f"# Same search? This checkout with `{' '.join(args.set) or '(defaults)'}` against {args.against}", "",
             f"Command: `{command}` (at commit {commit_of_this_checkout()})", "", f"Machine: {machine()}", "",
             "Three tasks, 48 trials, seed 1, a stand-in measurer (latency from a hash of each program's TIR).", "",
             f"- this checkout: {len(ours)} trials, digest {digest(ours)}",
             f"- {args.against}: {len(theirs)} trials, digest {digest(theirs)}", "",
             "**The same search, trial for trial.**" if same else
             f"**Different**: they part at trial {parted if parted is not None else min(len(ours), len(theirs))}."]
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"same-search-{args.against}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
