"""Small helpers shared by test modules."""

import subprocess
import sys
import time


def wait_for(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.1)


def run_in_own_process(script: str, args: list[str]) -> str:
    """Run a Python script in a fresh interpreter and return its stdout. For anything that calls
    MetaSchedule's tune_tir, which leaves loggers bound to its log dir behind in the process."""
    done = subprocess.run([sys.executable, script] + args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
