"""The bf16 precision: an fp32 network's convolutions on bf16 operands with fp32 accumulation,
checked against fp32 PyTorch within bf16's rounding."""

import json

import numpy as np
import pytest

from minansor.cli import main
from minansor.config import SearchConfig
from minansor.network.bf16 import BF16_ATOL, count_bf16_conv2d
from minansor.network.extract import extract_tasks
from minansor.network.graph import graph_passes, optimize_for
from minansor.network.models import load_model
from minansor.network.run import build, check_against_reference, run


@pytest.fixture(scope="module")
def convnet_bf16():
    return load_model("convnet", precision="bf16")


def _until_legalized(mod, precision: str):
    import tvm

    passes = graph_passes(precision=precision)
    stop = next(i for i, (what, _) in enumerate(passes) if what.startswith("legalize"))
    return tvm.transform.Sequential([make() for _, make in passes[:stop]])(mod)


def test_the_convolutions_of_even_channel_counts_take_bf16_operands(convnet_bf16):
    assert convnet_bf16.name == "convnet-bf16" and load_model("convnet-bf16").precision == "bf16"
    # the stem reads the 3 channels of an image: an odd reduction, left in fp32
    assert count_bf16_conv2d(_until_legalized(convnet_bf16.mod, "bf16")) == (3, 1)
    assert count_bf16_conv2d(_until_legalized(convnet_bf16.mod, "as imported")) == (0, 4)
    fused = optimize_for(convnet_bf16.mod, SearchConfig(), precision="bf16")
    convs = [t for t in extract_tasks(fused) if "conv2d_bf16" in t.name]
    # each reads its bf16 input as a parameter (no padding stage inside: TVM would make it fp32)
    assert convs and all(t.task is not None and [str(a.dtype) for a in t.task.args][:2] == ["bfloat16", "bfloat16"]
                         for t in convs)


def test_the_bf16_build_matches_fp32_pytorch_within_bf16_rounding(convnet_bf16):
    fused = optimize_for(convnet_bf16.mod, SearchConfig(), precision="bf16")
    inputs = [spec.random(np.random.default_rng(0)) for spec in convnet_bf16.inputs]
    timing = run(build(fused)[0], inputs, 1, "cpu")
    check = check_against_reference(convnet_bf16, timing.outputs, inputs, SearchConfig())
    assert check.ok, check.detail
    # and it is not fp32: the rounding of the operands shows, far below the tolerance
    want = convnet_bf16.reference(inputs)[0]
    assert 0 < check.max_abs_error < BF16_ATOL * max(1.0, float(np.abs(want).max()))


def test_tune_model_bf16_tunes_builds_and_checks(tmp_path, capsys):
    args = ["tune-model", "convnet", "--precision", "bf16", "--work-dir", str(tmp_path), "--trials", "8",
            "--repeats", "1", "--skip-untuned", "--no-progress", "--json",
            "--set", "build_timeout_s=60", "--set", "repeat=1", "--set", "min_repeat_ms=1"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tuned_check_ok"] and any("conv2d_bf16" in r["task"] for r in summary["results"])


def _small_network(out_channels: int):
    """conv -> leaky ReLU -> max-pool, split, concat, nearest resize -> two convs: every operator
    between the convolutions commutes with rounding to bf16."""
    import tvm
    from tvm import relax

    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8, 8, 4), "float32"))

    def conv(data, channels_in, channels_out, padding):
        w = relax.const(rng.normal(size=(3, 3, channels_in, channels_out)).astype("float32"))
        return relax.op.nn.conv2d(data, w, padding=padding, data_layout="NHWC", kernel_layout="HWIO")

    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(conv(x, 4, 8, 1))
            y = bb.emit(relax.op.maximum(y, relax.op.multiply(y, relax.const(0.1, "float32"))))
            pooled = bb.emit(relax.op.nn.max_pool2d(y, pool_size=2, strides=2, layout="NHWC"))
            part = bb.emit(relax.TupleGetItem(bb.emit(relax.op.split(pooled, 2, axis=3)), 1))
            joined = bb.emit(relax.op.concat([part, pooled], axis=3))
            up = bb.emit(relax.op.image.resize2d(joined, (8, 8), layout="NHWC", method="nearest_neighbor"))
            a = bb.emit(conv(up, 12, out_channels, 1))
            b = bb.emit(conv(joined, 12, out_channels, 0))
            out = bb.emit_output(relax.Tuple([a, b]))
        bb.emit_func_output(out)
    return bb.get(), [rng.normal(size=(1, 8, 8, 4)).astype("float32")]


def _passes_until_legalized(mod, out_multiple: int):
    import tvm
    from tvm import relax

    from minansor.network.bf16 import bf16_conv2d

    return tvm.transform.Sequential([bf16_conv2d(out_multiple), relax.transform.FoldConstant()])(mod)


def _vm_outputs(mod, inputs):
    import tvm
    from tvm import relax

    from minansor.network.bf16 import BF16_LEGALIZATIONS

    executable = tvm.compile(relax.transform.LegalizeOps(customize_legalize_map=BF16_LEGALIZATIONS)(mod), target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    return [o.numpy() for o in vm["main"](*[tvm.runtime.tensor(i) for i in inputs])]


def test_bf16_flows_between_layers_rounded_where_produced_bit_for_bit():
    from tvm import relax

    from minansor.network.int8 import relax_calls

    mod, inputs = _small_network(out_channels=6)
    rounded = _passes_until_legalized(mod, out_multiple=1)
    casts = relax_calls(rounded, "relax.astype")
    # two roundings: the image, and the first conv's result (its epilogue stores bf16); pool,
    # split, concat and resize run on bf16
    assert len(casts) == 2 and all(cast.ty.dtype == "bfloat16" for cast in casts)
    assert "x" in [str(cast.args[0]) for cast in casts]
    assert all(call.ty.dtype == "bfloat16" for op in ("relax.nn.max_pool2d", "relax.concat", "relax.image.resize2d")
               for call in relax_calls(rounded, op))
    # the same numbers as rounding at each convolution's input, which is where the pass started from
    at_inputs = relax.transform.FoldConstant()(relax.transform.DeadCodeElimination()(
        relax.transform.EliminateCommonSubexpr()(_rounded_at_conv_inputs(mod))))
    for want, got in zip(_vm_outputs(at_inputs, inputs), _vm_outputs(rounded, inputs)):
        np.testing.assert_array_equal(got, want)


def _rounded_at_conv_inputs(mod):
    import tvm
    from tvm import relax

    from minansor.network import bf16

    functions = {gv: bf16._rewrite(f, 1) if isinstance(f, relax.Function) else f for gv, f in mod.functions_items()}
    return tvm.IRModule(functions)


def test_bf16_output_channels_padded_to_whole_tiles_and_sliced_off_exactly():
    from minansor.network.int8 import relax_calls

    mod, inputs = _small_network(out_channels=6)
    padded = _passes_until_legalized(mod, out_multiple=16)
    assert [int(c.args[1].ty.shape[3]) for c in relax_calls(padded, "relax.nn.conv2d")] == [16, 16, 16]
    assert [tuple(int(d) for d in o.shape) for o in _vm_outputs(padded, inputs)] == [(1, 8, 8, 6), (1, 2, 2, 6)]
    for want, got in zip(_vm_outputs(_passes_until_legalized(mod, 1), inputs), _vm_outputs(padded, inputs)):
        np.testing.assert_array_equal(got, want)


def test_a_bf16_output_may_differ_from_the_untuned_program_by_one_unit_in_the_last_place():
    import ml_dtypes

    from minansor.measure.verify import compare_outputs

    want = np.array([1.0, -3.0, 200.0], ml_dtypes.bfloat16)
    one_ulp = np.array([1.0078125, -3.0, 201.0], ml_dtypes.bfloat16)
    two_ulp = np.array([1.0, -3.0, 202.0], ml_dtypes.bfloat16)
    assert compare_outputs(["y"], [want], [one_ulp], 1e-3, 1e-3, "ref").ok
    assert not compare_outputs(["y"], [want], [two_ulp], 1e-3, 1e-3, "ref").ok
    # fp32 outputs keep the tolerance asked for
    assert not compare_outputs(["y"], [want.astype(np.float32)], [one_ulp.astype(np.float32)], 1e-3, 1e-3, "ref").ok
