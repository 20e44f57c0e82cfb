"""The engines a user would otherwise run an ONNX model with, on this machine's CPU: onnxruntime,
and OpenVINO, which on a CPU with AMX or AVX-512 BF16 runs an fp32 model in bf16 unless told
otherwise (its `INFERENCE_PRECISION_HINT`), and a QDQ int8 model on the CPU's int8 instructions.

Each engine is a name and a forward function over a list of inputs, timed beside the tuned
build (tune-model, experiments/reproduce_study.py). OpenVINO is optional: where it is not
installed, `onnx_engines` says so in one line and leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Forward = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class Engine:
    name: str  # e.g. "onnxruntime", "OpenVINO fp32", "OpenVINO default (bf16)"
    forward: Forward


def onnxruntime_engine(path: str) -> Engine:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return Engine("onnxruntime", lambda inputs: list(session.run(None, dict(zip(names, inputs)))))


def openvino_engine(path: str, precision: str | None = None, name: str | None = None) -> Engine:
    """OpenVINO on the CPU: with its own default precision (None), or forced (`"f32"`). Unless
    `name` is given, the name says which precision it runs in (what OpenVINO chose, read back
    from the compiled model)."""
    import openvino

    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": precision} if precision else {})
    request = compiled.create_infer_request()
    chosen = str(compiled.get_property("INFERENCE_PRECISION_HINT")).replace("<Type: '", "").replace("'>", "")
    chosen = {"float32": "fp32", "f32": "fp32", "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16"}.get(chosen, chosen)

    def forward(inputs: list[np.ndarray]) -> list[np.ndarray]:
        request.infer(dict(enumerate(inputs)))
        return [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]

    return Engine(name or (f"OpenVINO {chosen}" if precision else f"OpenVINO default ({chosen})"), forward)


def onnx_engines(path: str, quantized: bool, log: Callable[[str], None] = print) -> list[Engine]:
    """onnxruntime and OpenVINO on the ONNX file at `path`: for a QDQ model "OpenVINO int8"; for a
    float model OpenVINO's default and, where the default is not fp32, fp32 forced as well."""
    engines = [onnxruntime_engine(path)]
    try:
        default = openvino_engine(path, name="OpenVINO int8" if quantized else None)
    except ImportError:
        log("OpenVINO is not installed (pip install openvino): its rows are left out")
        return engines
    engines.append(default)
    if not quantized and not default.name.endswith("(fp32)"):
        engines.append(openvino_engine(path, "f32"))
    return engines
