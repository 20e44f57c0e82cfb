"""Small helpers shared by test modules."""

import os
import signal
import subprocess
import sys
import time

from minansor.emulated_device import free_port, start_local_tracker  # noqa: F401 (free_port: for the tests)


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


def start_module(*args: str) -> subprocess.Popen:
    """`python -m ARGS` in its own process group (stopped with its children), output discarded."""
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def start_tracker() -> tuple[subprocess.Popen, int]:
    """An rpc_tracker on a free loopback port."""
    process, address = start_local_tracker()
    return process, int(address.rsplit(":", 1)[1])
