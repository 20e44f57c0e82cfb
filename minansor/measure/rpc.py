"""Measurement on remote devices through a TVM RPC tracker (a Jetson Nano in the study).

Candidates are built here, cross-compiled for the device's host (targets.cross_compiler), and
timed on the devices registered under one key: one worker thread per device, each holding its
own session from the tracker, so N devices measure N candidates at once. A device that drops
its connection mid-measurement is replaced by a fresh session from the tracker and the candidate
goes back into the queue; after `retries` such losses it is recorded as a failed trial. Every
candidate gets exactly one result, in order, so nothing is recorded twice or lost.

On the device:   python -m tvm.exec.rpc_server --tracker HOST:9190 --key nano
On the host:     python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190
                 minansor tune-op ... --target jetson-nano --rpc HOST:9190:nano
                 minansor tune-model ... --target jetson-nano --rpc HOST:9190:nano
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

import tvm
from tvm import rpc

from ..config import SearchConfig
from ..errors import UserError
from ..tasks.targets import cross_compiler, device_type
from ..tasks.task import Task
from .local import Built, LocalMeasurer, Run, build_module, error_text, time_library, time_network_on
from .measurer import NetworkTiming
from .verify import call_outputs


@dataclass(frozen=True)
class RPCSettings:
    tracker_host: str
    tracker_port: int
    key: str
    priority: int = 1
    session_timeout_s: float = 120.0  # the server drops a session (a hung kernel) after this
    devices: int = 1  # sessions held at once: devices measuring in parallel
    retries: int = 3  # lost connections tolerated per candidate before it counts as failed

    @classmethod
    def parse(cls, spec: str, **options) -> "RPCSettings":
        """From "HOST:PORT:KEY" (the --rpc option)."""
        host, _, rest = spec.partition(":")
        port, _, key = rest.partition(":")
        if not (host and port.isdigit() and key):
            raise UserError(f"--rpc expects HOST:PORT:KEY (e.g. 127.0.0.1:9190:nano), got {spec!r}")
        return cls(host, int(port), key, **options)


def _is_lost(session: rpc.RPCSession, err: Exception) -> bool:
    """Whether `err` came from a dropped session rather than from the candidate itself: a socket
    error, or a session that no longer answers a function lookup."""
    if isinstance(err, (OSError, ConnectionError)):
        return True
    try:
        session.get_function("tvm.rpc.server.upload")
    except Exception:
        return True
    return False


class RPCMeasurer(LocalMeasurer):
    """Builds locally like LocalMeasurer; runs on the tracker's devices under `settings.key`.

    Sessions live for one batch: each worker requests a device for its first candidate and gives
    it back when the queue is empty, so other users of the tracker get their turn between batches."""

    def __init__(self, config: SearchConfig, settings: RPCSettings):
        self.settings = settings
        super().__init__(config)
        self.reconnects = 0  # devices lost mid-batch (their candidates were requeued)
        self._lock = threading.Lock()

    def _make_run_pool(self) -> None:
        return None  # runs happen on the devices

    def _request(self) -> rpc.RPCSession:
        s = self.settings
        try:
            tracker = rpc.connect_tracker(s.tracker_host, s.tracker_port)
            return tracker.request(s.key, priority=s.priority, session_timeout=s.session_timeout_s)
        except Exception as err:
            raise UserError(f"RPC tracker {s.tracker_host}:{s.tracker_port} gave no device for key {s.key!r}: "
                            f"{error_text(err)}") from None

    @staticmethod
    def _load(session: rpc.RPCSession, target: tvm.target.Target, path: str):
        """(the uploaded library, the device it runs on)."""
        session.upload(path)
        return session.load_module(os.path.basename(path)), session.device(device_type(target))

    def open_library(self, path: str, target: tvm.target.Target):
        """(the library at `path` uploaded to a device from the tracker, that device); the device
        is given back when both are dropped. The remote counterpart of measure.open_local."""
        return self._load(self._request(), target, path)

    def time_network(self, path: str, inputs: list, repeats: int, target: tvm.target.Target) -> NetworkTiming:
        """The network run on a device from the tracker."""
        return time_network_on(*self.open_library(path, target), inputs, repeats)

    def _time_on(self, session: rpc.RPCSession, task: Task, built: Built, seed: int) -> tuple[float, ...]:
        c = self.config
        lib, dev = self._load(session, task.target, built.path)
        latencies = tuple(time_library(lib, dev, built.args, c.number, c.repeat, c.min_repeat_ms, seed))
        session.remove(os.path.basename(built.path))
        return latencies

    def outputs(self, task: Task, mod, inputs: list) -> list:
        """One call of `mod` on a device: the output arguments, for the numerical check."""
        path = os.path.join(self._scratch, "check.so")
        build_module(tvm.ir.save_json(mod), task.target.export(), path, cross_compiler(task.target))
        return call_outputs(*self.open_library(path, task.target), task, inputs)

    def _device_worker(self, task: Task, work: queue.Queue, results: list, seed: int) -> None:
        """Measure from `work` on one device until it is empty. A lost device puts its candidate
        back and asks the tracker for another (which waits until some device is free)."""
        session = None
        while True:
            try:
                index, built, losses = work.get_nowait()
            except queue.Empty:
                return  # dropping the session gives the device back to the tracker
            start = time.perf_counter()
            try:
                session = session or self._request()
                results[index] = (self._time_on(session, task, built, seed), None, time.perf_counter() - start)
            except UserError as err:  # the tracker has no device to give
                results[index] = (None, f"run: {err}", time.perf_counter() - start)
            except Exception as err:
                if session is None or not _is_lost(session, err):
                    results[index] = (None, "run: " + error_text(err), time.perf_counter() - start)
                    continue
                session = None
                with self._lock:
                    self.reconnects += 1
                if losses < self.settings.retries:
                    work.put((index, built, losses + 1))
                else:
                    results[index] = (None, f"run: device lost {losses + 1} times: {error_text(err)}",
                                      time.perf_counter() - start)

    def run_all(self, task: Task, built: list[Built], seed: int) -> list[Run]:
        work: queue.Queue = queue.Queue()
        for index, candidate in enumerate(built):
            work.put((index, candidate, 0))
        results: list[Run | None] = [None] * len(built)
        threads = [threading.Thread(target=self._device_worker, args=(task, work, results, seed), daemon=True)
                   for _ in range(min(self.settings.devices, max(1, len(built))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results
