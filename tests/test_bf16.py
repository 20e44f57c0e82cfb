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
