"""An emulated aarch64 device: a TVM rpc_server on an arm64 Python under qemu-user, behind a tracker.

The study measured on a Jetson Nano; without one, the same path (cross-compiled libraries
uploaded over a real tracker and run on an aarch64 CPU) runs here under emulation:

    minansor device setup                                      # once: host packages, arm64 Python, aarch64 wheels
    python -m tvm.exec.rpc_tracker --host 127.0.0.1 --port 9190
    minansor device start --tracker 127.0.0.1:9190 --key nano  # prints the server's pid
    minansor tune-op yolo-conv-13x13-512-256-1x1 --target jetson-nano-cpu --rpc 127.0.0.1:9190:nano
    minansor device stop PID

What setup builds, in a cache folder outside git (default ~/.cache/minansor/aarch64-device,
or $MINANSOR_DEVICE_CACHE), each step skipped when already done:

1. host packages (Debian, as root): qemu-user, and the aarch64 cross compiler the jetson-nano
   presets link with;
2. an arm64 Python 3.11 root: Debian's arm64 packages, downloaded and unpacked with `dpkg -x`
   (nothing installed into the host's system);
3. the aarch64 wheels of the very TVM, TVM FFI and numpy versions this Python runs, into a site
   folder;
4. a two-line wrapper that starts that Python under qemu and names itself argv[0]: these machines
   have no binfmt_misc, so a child the server spawns (sys.executable) would otherwise be an
   "Exec format error".

Emulated timings are qemu's, not a Cortex-A57's: the device proves that what we build for aarch64
runs and computes the right thing there, not how fast a Nano runs it.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from .errors import UserError

#: Debian 12's arm64 packages a bare python3.11 needs (its stdlib's C extensions included).
ARM64_PACKAGES = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libgcc-s1",
                  "libstdc++6", "libexpat1", "zlib1g", "libffi8", "libssl3", "libbz2-1.0", "liblzma5",
                  "libsqlite3-0", "libncursesw6", "libtinfo6", "libreadline8", "libuuid1", "libcrypt1", "libdb5.3",
                  "libgdbm6", "libnsl2", "libtirpc3", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3",
                  "libkrb5support0", "libcom-err2", "libkeyutils1")
#: Host tools: the emulator, and the cross compiler that links libraries for aarch64.
HOST_PACKAGES = {"qemu-aarch64": "qemu-user", "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu"}
#: What the rpc_server needs on the device, pinned to this Python's versions where the two meet.
DEVICE_WHEELS = ("apache-tvm", "apache-tvm-ffi", "numpy")
DEVICE_PURE = ("cloudpickle", "psutil")  # the server's popen worker; installed without dependencies
AARCH64_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")


def default_cache() -> str:
    return os.environ.get("MINANSOR_DEVICE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minansor",
                                                                     "aarch64-device")


@dataclass(frozen=True)
class EmulatedDevice:
    """The folders of one emulated device (all under `cache`)."""

    cache: str

    @property
    def root(self) -> str:  # the arm64 file system qemu resolves the interpreter's libraries in
        return os.path.join(self.cache, "root")

    @property
    def site(self) -> str:  # the aarch64 wheels
        return os.path.join(self.cache, "site")

    @property
    def python(self) -> str:  # the wrapper: an aarch64 python3.11 under qemu
        return os.path.join(self.cache, "python3")

    @property
    def stamp(self) -> str:
        return os.path.join(self.cache, "ready.json")

    def wheels(self) -> dict[str, str]:
        """The pinned versions: those this (host) Python runs."""
        return {name: metadata.version(name) for name in DEVICE_WHEELS}

    def ready(self) -> bool:
        if not os.path.exists(self.stamp):
            return False
        with open(self.stamp, encoding="utf-8") as f:
            return json.load(f).get("wheels") == self.wheels()

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": self.site, "TVM_NUM_THREADS": "1"}

    def run_python(self, code: str, timeout: float = 300) -> str:
        """Run `code` on the device's Python; its stdout."""
        done = subprocess.run([self.python, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=self.environment())
        if done.returncode:
            raise UserError(f"the emulated device's Python failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        return done.stdout


# ------------------------------------------------------------------ setup


def setup(device: EmulatedDevice, log: Callable[[str], None] = print) -> EmulatedDevice:
    """Build the device in its cache folder, step by step, each skipped when done; a step that
    cannot be done is a UserError of one line."""
    if device.ready():
        return device
    check_host()
    steps = [("host packages: " + ", ".join(HOST_PACKAGES.values()), install_host_packages),
             ("an arm64 Python 3.11 root from Debian's packages", unpack_arm64_root),
             ("aarch64 wheels: " + ", ".join(f"{k} {v}" for k, v in device.wheels().items()), install_wheels),
             ("the qemu wrapper, and a first import of tvm on the device", write_wrapper)]
    os.makedirs(device.cache, exist_ok=True)
    for number, (what, step) in enumerate(steps, 1):
        start = time.perf_counter()
        log(f"device setup [{number}/{len(steps)}] {what} ...")
        step(device)
        log(f"device setup [{number}/{len(steps)}] done in {time.perf_counter() - start:.0f} s")
    with open(device.stamp, "w", encoding="utf-8") as f:
        json.dump({"wheels": device.wheels(), "qemu": shutil.which("qemu-aarch64")}, f, indent=1)
    return device


def check_host() -> None:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise UserError(f"the emulated aarch64 device needs an x86-64 Linux host (qemu-user); this is "
                        f"{sys.platform} on {platform.machine()}")


def _apt(*args: str) -> None:
    done = subprocess.run(["apt-get", *args], capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"apt-get {args[0]} failed ({last}): is there a network path to Debian's registry?")


def _can_apt() -> bool:
    return shutil.which("apt-get") is not None and shutil.which("dpkg") is not None and os.geteuid() == 0


def install_host_packages(device: EmulatedDevice) -> None:
    missing = [package for tool, package in HOST_PACKAGES.items() if shutil.which(tool) is None]
    if not missing:
        return
    if not _can_apt():
        raise UserError(f"missing {', '.join(missing)}: install them (apt-get install {' '.join(missing)}) "
                        "or run this as root on Debian")
    _apt("update", "-qq")
    _apt("install", "-y", "-qq", *missing)


def unpack_arm64_root(device: EmulatedDevice) -> None:
    if os.path.exists(os.path.join(device.root, "usr", "bin", "python3.11")):
        return
    if not _can_apt():
        raise UserError("the arm64 Python root needs Debian's apt-get and dpkg, as root")
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout.split()
    if "arm64" not in foreign:
        subprocess.run(["dpkg", "--add-architecture", "arm64"], check=True)
        _apt("update", "-qq")
    with tempfile.TemporaryDirectory(dir=device.cache) as debs:
        done = subprocess.run(["apt-get", "download", "-qq", *(f"{p}:arm64" for p in ARM64_PACKAGES), "media-types"],
                              cwd=debs, capture_output=True, text=True)
        if done.returncode:
            raise UserError(f"apt-get download of the arm64 packages failed: "
                            f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        staging = os.path.join(debs, "root")
        for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
            subprocess.run(["dpkg", "-x", deb, staging], check=True)
        shutil.rmtree(device.root, ignore_errors=True)
        os.replace(staging, device.root)  # whole or absent: a killed setup starts this step over


def install_wheels(device: EmulatedDevice) -> None:
    pinned = [f"{name}=={version}" for name, version in device.wheels().items()]
    platforms = [arg for p in AARCH64_PLATFORMS for arg in ("--platform", p)]
    staging = device.site + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    for packages, extra in ((pinned, ["--only-binary=:all:"]), (list(DEVICE_PURE), ["--no-deps", "--only-binary=:all:"])):
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--target", staging, "--python-version", "3.11", "--implementation", "cp",
                               *platforms, *extra, *packages], capture_output=True, text=True)
        if done.returncode:
            raise UserError(f"pip could not fetch the aarch64 wheels of {' '.join(packages)}: "
                            f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    shutil.rmtree(device.site, ignore_errors=True)
    os.replace(staging, device.site)


def write_wrapper(device: EmulatedDevice) -> None:
    qemu = shutil.which("qemu-aarch64")
    with open(device.python, "w", encoding="utf-8") as f:
        # -0: argv[0] is the wrapper, so the device's sys.executable starts its children under qemu too
        f.write(f'#!/bin/sh\nexec {qemu} -L {device.root} -0 "$0" {device.root}/usr/bin/python3.11 "$@"\n')
    os.chmod(device.python, 0o755)
    seen = device.run_python("import platform, tvm; print(platform.machine(), tvm.__version__)").split()
    if not seen or seen[0] != "aarch64":
        raise UserError(f"the device's Python reports {' '.join(seen) or 'nothing'}, not aarch64")


# ------------------------------------------------------------------ the server


def start_server(device: EmulatedDevice, tracker: str, key: str, host: str = "127.0.0.1", port: int = 9090) -> int:
    """An rpc_server on the device, registered at `tracker` (HOST:PORT) under `key`, in its own
    process group; returns its pid. Its output goes to CACHE/servers/PID.log."""
    if not device.ready():
        raise UserError(f"no emulated device in {device.cache}: run `minansor device setup` first")
    os.makedirs(os.path.join(device.cache, "servers"), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=os.path.join(device.cache, "servers"), suffix=".log",
                                     delete=False) as log:
        process = subprocess.Popen([device.python, "-m", "tvm.exec.rpc_server", "--tracker", tracker, "--key", key,
                                    "--host", host, "--port", str(port), "--port-end", str(port + 50)],
                                   stdout=log, stderr=subprocess.STDOUT, env=device.environment(),
                                   start_new_session=True)
    os.replace(log.name, server_log(device, process.pid))
    return process.pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_tracker() -> tuple[subprocess.Popen, str]:
    """An rpc_tracker on a free loopback port, in its own process group; (process, HOST:PORT)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                                str(port), "--port-end", str(port + 1)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    return process, f"127.0.0.1:{port}"


def server_log(device: EmulatedDevice, pid: int) -> str:
    return os.path.join(device.cache, "servers", f"{pid}.log")


def registered(tracker: str, key: str) -> int:
    """Free devices under `key` at the tracker (-1: no tracker answers)."""
    from tvm import rpc

    host, _, port = tracker.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"malformed tracker {tracker!r}: give HOST:PORT, e.g. 127.0.0.1:9190")
    try:  # TVM's own connect retries for a minute when nothing listens
        socket.create_connection((host, int(port)), timeout=5).close()
        summary = rpc.connect_tracker(host, int(port)).summary()
    except Exception:  # TVM raises plain errors for every refused or broken connection
        return -1
    return int(summary["queue_info"].get(key, {}).get("free", 0))


def wait_registered(device: EmulatedDevice, pid: int, tracker: str, key: str, before: int, timeout: float = 300,
                    tick: Callable[[float], None] = lambda elapsed: None) -> None:
    """Until one more device than `before` is free under `key`; a server that exits first, or a
    wait past `timeout`, is a UserError naming its log."""
    start = time.perf_counter()
    while registered(tracker, key) <= before:
        if not alive(pid):
            raise UserError(f"the device's server exited before it registered; see {server_log(device, pid)}")
        if time.perf_counter() - start > timeout:
            stop_server(pid)
            raise UserError(f"no registration at {tracker} under {key!r} within {timeout:.0f} s; "
                            f"see {server_log(device, pid)}")
        tick(time.perf_counter() - start)
        time.sleep(1.0)


def alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it if it exited
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_server(pid: int) -> bool:
    """Stop a server started by start_server and its children (its process group); False if no
    such process runs."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(50):
        if not alive(pid):
            return True
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
