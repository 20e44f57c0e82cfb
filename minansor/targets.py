"""Target presets and parsing. TVM 0.27 takes targets only as dicts; a user may name a preset
or pass a JSON dict."""

from __future__ import annotations

import json
import os

import tvm
from tvm.target import codegen

from .errors import UserError


def cpu_preset() -> dict:
    """The local CPU with its real instruction set (without `mcpu` LLVM emits baseline SSE2)."""
    return {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": os.cpu_count() or 1}


PRESETS = {"cpu": cpu_preset}


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
    cores = target.attrs.get("num-cores") if "num-cores" in target.attrs else None
    return int(cores) if cores else (os.cpu_count() or 1)
