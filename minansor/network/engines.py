"""The engines a user would otherwise run a model with, on this machine's CPU: the source
framework (PyTorch eager for a model imported from PyTorch), onnxruntime, and OpenVINO, which on a
CPU with AMX runs an fp32 model in bf16 unless told otherwise (its `INFERENCE_PRECISION_HINT`),
and a QDQ int8 model on the CPU's int8 instructions.

Each engine is a name, the precision it computes in and a forward function over a list of
inputs, timed beside the tuned build (tune-model, experiments/reproduce_study.py); a model from
PyTorch is exported to ONNX for onnxruntime and OpenVINO. OpenVINO is
optional: where it is not installed, `onnx_engines` says so in one line and leaves it out.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .graph import Network
from .int8 import is_quantized

Forward = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class Engine:
    name: str  # "onnxruntime", "OpenVINO" (a precision forced or quantized), "OpenVINO default"
    precision: str  # what it computes in: fp32, int8, bf16 (OpenVINO's default on a CPU with bf16)
    forward: Forward


def onnxruntime_engine(path: str, precision: str) -> Engine:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return Engine("onnxruntime", precision, lambda inputs: list(session.run(None, dict(zip(names, inputs)))))


OPENVINO_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def openvino_engine(path: str, hint: str | None = None) -> Engine:
    """OpenVINO on the CPU, with its own default inference precision (None) or the one `hint`
    forces ("f32"); the engine's precision is what the compiled model reports."""
    import openvino

    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": hint} if hint else {})
    request = compiled.create_infer_request()
    chosen = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def forward(inputs: list[np.ndarray]) -> list[np.ndarray]:
        request.infer(dict(enumerate(inputs)))
        return [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]

    return Engine("OpenVINO" if hint else "OpenVINO default", OPENVINO_PRECISIONS.get(chosen, chosen), forward)


def onnx_engines(path: str, quantized: bool, log: Callable[[str], None] = print) -> list[Engine]:
    """onnxruntime and OpenVINO on the ONNX file at `path`. A QDQ model: both in int8. A float
    model: onnxruntime in fp32, OpenVINO with fp32 forced and, where its default is another
    precision (bf16 on a CPU with AMX or AVX-512 BF16), with its default as well."""
    engines = [onnxruntime_engine(path, "int8" if quantized else "fp32")]
    try:
        import openvino  # noqa: F401
    except ImportError:
        log("OpenVINO is not installed (pip install openvino): its rows are left out")
        return engines
    if quantized:
        return engines + [dataclasses.replace(openvino_engine(path), name="OpenVINO", precision="int8")]
    default = openvino_engine(path)
    return engines + [openvino_engine(path, "f32")] + ([default] if default.precision != "fp32" else [])


def network_engines(network: Network, log: Callable[[str], None] = print) -> list[Engine]:
    """The engines of `network` as imported: PyTorch eager (its reference) for a model from
    PyTorch, and onnxruntime and OpenVINO on its ONNX form: the file it was imported from, or
    a PyTorch model's export (where the export fails, one line says so and those are left out)."""
    engines = [Engine("PyTorch eager", "fp32", network.reference)] if network.source == "pytorch" else []
    onnx = network.onnx
    if onnx is None and network.to_onnx is not None:
        try:
            onnx = network.to_onnx()
        except Exception as err:  # the exporter does not cover every model
            log(f"{network.name}: no ONNX export ({str(err).splitlines()[0][:200]}): onnxruntime and OpenVINO left out")
    if onnx is None:
        return engines
    with tempfile.TemporaryDirectory(prefix="minansor-engines-") as scratch:
        path = os.path.join(scratch, "model.onnx")
        with open(path, "wb") as f:
            f.write(onnx)
        return engines + onnx_engines(path, quantized=is_quantized(network.mod), log=log)
