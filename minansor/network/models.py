"""Where networks come from: an ONNX file, a saved `torch.export` program (.pt2), a PyTorch
module in memory, or a built-in model by name (`convnet` here; YOLOv4-tiny and YOLOX-s, fp32 and
int8, from yolo/networks.py, registered as entry points). Each becomes a `Network` whose reference
forward is the source framework's own (onnxruntime, PyTorch), for the numerical check.

Weights are bound into the Relax module as constants, so graph optimization can fold them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import os
import warnings
from typing import Callable

import numpy as np
from ..errors import UserError
from .graph import InputSpec, Network
from .int8 import is_quantized


@contextlib.contextmanager
def _quiet_torch():
    """Hide a FutureWarning torch raises about its own internals on every export."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        yield


def _torch_outputs(value) -> list[np.ndarray]:
    if isinstance(value, (list, tuple)):
        return [array for item in value for array in _torch_outputs(item)]
    return [value.detach().numpy()]


def from_torch(module, example_inputs: list[np.ndarray], name: str) -> Network:
    """A PyTorch module, exported with `torch.export` and imported into Relax."""
    import torch

    module = module.eval()
    tensors = tuple(torch.from_numpy(x) for x in example_inputs)
    with torch.no_grad(), _quiet_torch():
        exported = torch.export.export(module, tensors)
    return _from_exported(exported, module, name)


def _from_exported(exported, module, name: str) -> Network:
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    with _quiet_torch():
        mod = from_exported_program(exported)
    specs = [InputSpec(f"input{i}", tuple(int(d) for d in v.ty.shape), str(v.ty.dtype))
             for i, v in enumerate(mod["main"].params)]

    def reference(inputs: list[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            return _torch_outputs(module(*(torch.from_numpy(x) for x in inputs)))

    return Network(name, mod, tuple(specs), reference, "pytorch", to_onnx=functools.partial(_to_onnx, exported))


def _to_onnx(exported) -> bytes:
    """The exported program as an ONNX model (torch's dynamo exporter)."""
    import torch

    with _quiet_torch():
        return torch.onnx.export(exported, dynamo=True, opset_version=18, verbose=False).model_proto.SerializeToString()


def from_pt2(path: str) -> Network:
    """A program saved with `torch.export.save`."""
    import torch

    try:
        exported = torch.export.load(path)
    except Exception as err:  # a missing, truncated or foreign file
        raise UserError(f"cannot read {path!r} as a torch.export program: {str(err).splitlines()[0]}") from None
    return _from_exported(exported, exported.module(), os.path.splitext(os.path.basename(path))[0])


def from_onnx(path: str) -> Network:
    """An ONNX file with static input shapes."""
    import onnx
    import onnxruntime
    from tvm.relax.frontend.onnx import from_onnx as import_onnx

    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as err:
        raise UserError(f"cannot read {path!r} as an ONNX model: {str(err).splitlines()[0]}") from None
    initializers = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value for d in tensor.shape.dim]
        if any(d <= 0 for d in dims):
            raise UserError(f"{path}: input {value.name} has a dynamic shape; export it with a fixed shape")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        specs.append(InputSpec(value.name, tuple(dims), dtype))
    mod = import_onnx(model, {s.name: list(s.shape) for s in specs}, {s.name: s.dtype for s in specs})
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def reference(inputs: list[np.ndarray]) -> list[np.ndarray]:
        return list(session.run(None, {s.name: x for s, x in zip(specs, inputs)}))

    return Network(os.path.splitext(os.path.basename(path))[0], mod, tuple(specs), reference, "onnx",
                   onnx=model.SerializeToString())


# ------------------------------------------------------------------ built-in models


def randomize_batchnorm(module, seed: int) -> None:
    """Give every BatchNorm non-trivial statistics, so folding it into the conv is exercised."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            n = layer.num_features
            with torch.no_grad():
                layer.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                layer.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                layer.weight.copy_(0.5 + torch.rand(n, generator=generator))
                layer.bias.copy_(0.1 * torch.randn(n, generator=generator))


def convnet(seed: int = 0) -> Network:
    """A small YOLO-like net (conv + BN + leaky ReLU, a repeated conv shape, concat, max pool,
    a linear 1x1 head) on 1x3x32x32: tunes in minutes, for tests and demos."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, k: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                             nn.LeakyReLU(0.1))

    class ConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = block(3, 16, 3)
            self.a = block(16, 16, 3)
            self.b = block(16, 16, 3)  # the same shape as `a`: one task, weight 2
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Conv2d(32, 8, 1)

        def forward(self, x):
            x = self.stem(x)
            a = self.a(x)
            b = self.b(a)
            return self.head(self.pool(torch.cat([a, b], 1)))

    torch.manual_seed(seed)
    model = ConvNet()
    randomize_batchnorm(model, seed)
    return from_torch(model, [np.zeros((1, 3, 32, 32), np.float32)], "convnet")


# Packages add built-in models under this entry-point group (name -> a function of the seed that
# returns a Network): the YOLO application registers its networks in pyproject.toml, so the
# library never imports the application.
MODELS_ENTRY_POINTS = "minansor.models"


def builtin_models() -> dict[str, Callable[[int], Network]]:
    """Every built-in model by name: `convnet`, and those installed packages register."""
    found = {entry.name: entry for entry in importlib.metadata.entry_points(group=MODELS_ENTRY_POINTS)}
    return {"convnet": convnet, **{name: (lambda seed, e=entry: e.load()(seed)) for name, entry in found.items()}}


def load_model(spec: str, seed: int = 0, precision: str = "as imported") -> Network:
    """A built-in name, an .onnx file or a .pt2 file, to be run in `precision` ("as imported",
    or "bf16": its fp32 convolutions on bf16 operands). A built-in fp32 model's name with
    `-bf16` appended is that model in bf16."""
    builtins = builtin_models()
    base = spec.removesuffix("-bf16")
    if spec not in builtins and base != spec and base in builtins:
        spec, precision = base, "bf16"
    network = _load(spec, seed, builtins)
    if precision == "bf16" and (network.source == "onnx" and is_quantized(network.mod)):
        raise UserError(f"model {spec!r} is quantized (int8): --precision bf16 applies to fp32 models")
    return dataclasses.replace(network, name=f"{network.name}-bf16", precision="bf16") if precision == "bf16" else network


def _load(spec: str, seed: int, builtins: dict[str, Callable[[int], Network]]) -> Network:
    if spec in builtins:
        return builtins[spec](seed)
    if not os.path.isfile(spec):
        raise UserError(f"model {spec!r} is neither a file nor a built-in model ({', '.join(builtins)}; "
                        "an fp32 one with -bf16 appended runs in bf16)")
    if spec.endswith(".onnx"):
        return from_onnx(spec)
    if spec.endswith(".pt2"):
        return from_pt2(spec)
    raise UserError(f"model {spec!r}: expected an .onnx or .pt2 file")
