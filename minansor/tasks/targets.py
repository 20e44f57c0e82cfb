"""Target presets and parsing. TVM 0.27 takes targets only as dicts; a user may name a preset
or pass a JSON dict.

    cpu          this machine's CPU (the default)
    jetson-nano  the study's device: a Maxwell GPU (CUDA sm_53) with a 4-core Cortex-A57 host;
                 libraries are cross-compiled with Debian's aarch64-linux-gnu-g++ and measured
                 over RPC (see rpc.py)
    jetson-nano-cpu  the same board's CPU alone: a 4-core Cortex-A57 (NEON, 128-bit vectors),
                 cross-compiled and measured over RPC like jetson-nano (an emulated one:
                 emulated_device.py)
    cuda         this machine's NVIDIA GPU, its architecture read from nvidia-smi
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading

import tvm
from tvm.target import codegen

from ..errors import UserError


def physical_cores() -> int:
    """Cores this process may run on, a core's hyper-threads counted once (from the kernel's
    CPU topology; every CPU it may use when the topology is not there to read)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id") as core, \
                    open(f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id") as package:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def use_physical_cores() -> None:
    """Run TVM kernels on one thread per core. Left alone, TVM's runtime takes half the hardware
    threads of an x86 machine, assuming every core has two: on a machine without SMT (this
    project's 2-core VMs) that is half the cores, and every kernel ran on one core of two while
    PyTorch and onnxruntime used both. Set before any kernel runs; worker processes inherit it.
    An explicit TVM_NUM_THREADS wins."""
    os.environ.setdefault("TVM_NUM_THREADS", str(physical_cores()))


def settle_main_thread() -> None:
    """Keep the calling thread off the cores TVM's thread pool pinned its workers to. TVM pins
    each pool worker to a core and leaves free the thread that launches a parallel loop (and
    runs one share of it); on this project's VMs the OS can leave that thread on a worker's core
    for seconds, and every parallel kernel then runs at half speed (the FMA kernel of peak.py:
    230 instead of 460 GFLOPS, in about one timing of three). Call it in the process that times,
    before timing."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        return
    tvm.runtime.num_threads()  # creates this thread's pool, which pins its workers
    me = threading.get_native_id()
    pinned: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        if int(task) != me:
            cpus = os.sched_getaffinity(int(task))
            if len(cpus) == 1:
                pinned |= cpus
    free = os.sched_getaffinity(0) - pinned
    if free:
        os.sched_setaffinity(0, free)


# /proc/cpuinfo flags LLVM's guess of the CPU name can miss (a hypervisor that masks the model
# turns a Sapphire Rapids into a "rocketlake", without AMX or AVX-512 BF16), with LLVM's names.
CPU_FLAG_FEATURES = {"amx_tile": "amx-tile", "amx_int8": "amx-int8", "amx_bf16": "amx-bf16",
                     "avx512_bf16": "avx512bf16"}


def cpu_flags() -> set[str]:
    """The flags /proc/cpuinfo lists for this machine's CPU (none where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return set(next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []))
    except OSError:
        return set()


def cpu_preset() -> dict:
    """The local CPU with its real instruction set (without `mcpu` LLVM emits baseline SSE2): the
    CPU name LLVM guesses, plus the features /proc/cpuinfo lists that the name does not imply."""
    preset = {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": physical_cores()}
    guessed = tvm.target.Target({"kind": "llvm", "mcpu": preset["mcpu"]})
    missing = [feature for flag, feature in CPU_FLAG_FEATURES.items()
               if flag in cpu_flags() and not codegen.target_has_features(feature, guessed)]
    return {**preset, "mattr": ["+" + f for f in missing]} if missing else preset


def jetson_nano_cpu_preset() -> dict:
    """The Jetson Nano's CPU: four Cortex-A57 cores."""
    return {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a57", "num-cores": 4}


def jetson_nano_preset() -> dict:
    """The limits of TVM's `nvidia/jetson-nano` tag, with the board's CPU as host."""
    return {"kind": "cuda", "arch": "sm_53", "max_shared_memory_per_block": 49152, "max_threads_per_block": 1024,
            "thread_warp_size": 32, "registers_per_block": 32768, "host": jetson_nano_cpu_preset()}


def cuda_preset() -> dict:
    """The local NVIDIA GPU (the first one nvidia-smi lists), with this machine's CPU as host."""
    try:
        capability = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                                    capture_output=True, text=True, check=True, timeout=30).stdout.split()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        raise UserError("target cuda: no NVIDIA GPU here (nvidia-smi found none); "
                        "give a JSON dict such as '{\"kind\": \"cuda\", \"arch\": \"sm_80\"}'") from None
    return {"kind": "cuda", "arch": "sm_" + capability.replace(".", ""), "max_shared_memory_per_block": 49152,
            "max_threads_per_block": 1024, "thread_warp_size": 32, "host": cpu_preset()}


PRESETS = {"cpu": cpu_preset, "jetson-nano": jetson_nano_preset, "jetson-nano-cpu": jetson_nano_cpu_preset,
           "cuda": cuda_preset}


def resolve_target(spec: str | dict | tvm.target.Target) -> tvm.target.Target:
    """A preset name (`cpu`), a JSON dict (`{"kind": "llvm", "num-cores": 2}`) or a Target."""
    if isinstance(spec, tvm.target.Target):
        return spec
    if isinstance(spec, str):
        if spec in PRESETS:
            spec = PRESETS[spec]()
        else:
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError:
                raise UserError(f"unknown target {spec!r}: name a preset ({', '.join(PRESETS)}) "
                                "or give a JSON dict such as '{\"kind\": \"llvm\"}'") from None
    if not isinstance(spec, dict) or "kind" not in spec:
        raise UserError(f"malformed target {spec!r}: a target dict needs a \"kind\"")
    if spec["kind"] == "llvm" and "mcpu" in spec and not codegen.llvm_is_valid_cpu(spec["mcpu"], spec.get("mtriple", "")):
        raise UserError(f"malformed target: LLVM does not know the CPU {spec['mcpu']!r}")
    try:
        return tvm.target.Target(spec)
    except Exception as err:  # TVM reports every malformed field as a generic error
        raise UserError(f"malformed target {json.dumps(spec)}: {str(err).splitlines()[0]}") from None


def target_cores(target: tvm.target.Target) -> int:
    attrs = host_of(target).attrs
    cores = attrs.get("num-cores") if "num-cores" in attrs else None
    return int(cores) if cores else (os.cpu_count() or 1)


def host_of(target: tvm.target.Target) -> tvm.target.Target:
    """The CPU target that runs the host side (the target itself for a CPU target)."""
    return target.host if target.host is not None else target


def cross_compiler(target: tvm.target.Target) -> str | None:
    """The C++ compiler that links libraries for `target` when its host is another architecture
    (Debian's cross compiler naming), or None to link with the local one."""
    triple = str(host_of(target).attrs.get("mtriple", "")) if "mtriple" in host_of(target).attrs else ""
    arch = triple.split("-")[0]
    if not arch or arch == platform.machine():
        return None
    return f"{arch}-linux-gnu-g++"


def device_type(target: tvm.target.Target) -> str:
    """The kind of device a built library runs on: "cuda" or "cpu"."""
    return "cuda" if target.kind.name == "cuda" else "cpu"
