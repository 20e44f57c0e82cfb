"""YOLOv4-tiny model, complexity figures, darknet cfg and .weights I/O."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from yolo import darknet  # noqa: E402
from yolo.info import main as info_main  # noqa: E402
from yolo.model import (  # noqa: E402
    ANCHORS,
    MASKS,
    ConvBlock,
    YoloV4Tiny,
    complexity,
    fuse_batchnorm,
)


def randomize_batchnorm(model: nn.Module, seed: int) -> None:
    """Give every BN non-trivial statistics so that BN-dependent bugs show up in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


def make_model(num_classes: int = 20, seed: int = 0) -> YoloV4Tiny:
    torch.manual_seed(seed)
    model = YoloV4Tiny(num_classes)
    randomize_batchnorm(model, seed)
    return model.eval()


def image(size: int, batch: int = 1, seed: int = 123) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --- model -----------------------------------------------------------------------------------


def test_output_shapes_416() -> None:
    with torch.no_grad():
        out32, out16 = YoloV4Tiny(20).eval()(image(416))
    assert out32.shape == (1, 75, 13, 13)
    assert out16.shape == (1, 75, 26, 26)


@pytest.mark.parametrize("num_classes", [1, 80])
def test_output_shapes_small_input(num_classes: int) -> None:
    with torch.no_grad():
        out32, out16 = YoloV4Tiny(num_classes).eval()(image(128, batch=2))
    channels = 3 * (5 + num_classes)
    assert out32.shape == (2, channels, 4, 4)
    assert out16.shape == (2, channels, 8, 8)


def test_conv_layers_follow_darknet_order() -> None:
    model = YoloV4Tiny(20)
    blocks = model.conv_layers()
    assert len(blocks) == 21
    assert sum(block.bn is not None for block in blocks) == 19
    # Registration order is the order state_dict and most tools see: it must be darknet's too.
    registered = [m for m in model.modules() if isinstance(m, ConvBlock)]
    assert [id(b) for b in blocks] == [id(b) for b in registered]
    heads = [i for i, block in enumerate(blocks) if block.bn is None]
    assert heads == [17, 20]  # darknet layers 29 and 36
    assert all(blocks[i].conv.bias is not None and not blocks[i].leaky for i in heads)


def test_anchor_constants() -> None:
    assert len(ANCHORS) == 6
    assert MASKS == ((3, 4, 5), (1, 2, 3))


def test_grouped_route_takes_second_half() -> None:
    """Darknet layer 3 (groups=2 group_id=1) must pass channels 32..63 of layer 2 to layer 4."""
    model = make_model()
    seen: list[torch.Tensor] = []
    model.csp1.conv2.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))

    def run(zero: slice | None) -> torch.Tensor:
        hook = None
        if zero is not None:

            def zero_channels(_m: nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor:
                output = output.clone()
                output[:, zero] = 0
                return output

            hook = model.csp1.conv1.register_forward_hook(zero_channels)
        with torch.no_grad():
            out32, _ = model(image(128))
        if hook is not None:
            hook.remove()
        return out32

    baseline = run(None)
    first_half_zeroed = run(slice(0, 32))
    run(slice(32, 64))
    assert seen[0].shape[1] == 32
    torch.testing.assert_close(seen[1], seen[0], rtol=0, atol=0)
    assert not torch.equal(seen[2], seen[0])
    # The first half still reaches the output through route -6,-1 (darknet layer 8).
    assert not torch.equal(first_half_zeroed, baseline)


def test_fused_batchnorm_matches() -> None:
    model = make_model()
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert all(block.conv.bias is not None for block in fused.conv_layers())
    x = image(128, batch=2)
    with torch.no_grad():
        for expected, actual in zip(model(x), fused(x)):
            torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "original must be untouched"


@pytest.mark.parametrize(
    ("num_classes", "params", "gflops"),
    [(20, 5_918_006, 6.81), (80, 6_056_606, 6.91)],
)
def test_complexity_matches_reference(num_classes: int, params: int, gflops: float) -> None:
    size = complexity(YoloV4Tiny(num_classes))
    assert size.params == params
    assert size.gflops == pytest.approx(gflops, abs=0.01)


def test_cfg_table_flops_match_model() -> None:
    layers = darknet.describe_layers(darknet.cfg_sections(20))
    assert sum(layer.flops for layer in layers) == complexity(YoloV4Tiny(20)).flops


# --- cfg -------------------------------------------------------------------------------------


def test_write_cfg_parses_and_matches(tmp_path: Path) -> None:
    path = tmp_path / "yolov4-tiny-20.cfg"
    darknet.write_cfg(path, 20)
    sections = darknet.parse_cfg(path)
    assert sections == darknet.cfg_sections(20)
    darknet.check_cfg(YoloV4Tiny(20), sections)
    layers = darknet.describe_layers(sections)
    assert len(layers) == 38
    assert layers[23].output_shape == (256, 26, 26)
    assert [layer.output_shape for layer in layers if layer.kind == "yolo"] == [(75, 13, 13), (75, 26, 26)]
    yolo = [s for s in sections if s["type"] == "yolo"]
    assert [s["mask"] for s in yolo] == ["3,4,5", "1,2,3"]
    assert yolo[0]["scale_x_y"] == "1.05"


def test_parse_cfg_ignores_comments_and_spacing() -> None:
    text = "# comment\n[net]\n width = 416 \nheight=416 # trailing\n\n[route]\nlayers = -1, 23\n"
    assert darknet.parse_cfg_text(text) == [
        {"type": "net", "width": "416", "height": "416"},
        {"type": "route", "layers": "-1, 23"},
    ]


def test_cfg_with_wrong_filters_rejected() -> None:
    sections = darknet.cfg_sections(20)
    convs = [s for s in sections if s["type"] == "convolutional"]
    convs[4]["filters"] = "48"  # darknet layer 5
    with pytest.raises(darknet.CfgMismatchError, match="layer 5 .*filters is 48, the model has 32"):
        darknet.check_cfg(YoloV4Tiny(20), sections)


def test_cfg_for_other_class_count_rejected() -> None:
    with pytest.raises(darknet.CfgMismatchError, match="filters is 255, the model has 75"):
        darknet.check_cfg(YoloV4Tiny(20), darknet.cfg_sections(80))


def test_cfg_with_missing_conv_rejected() -> None:
    sections = darknet.cfg_sections(20)
    del sections[-2]  # the last head conv
    with pytest.raises(darknet.CfgMismatchError, match="20 \\[convolutional\\] sections.* 21 convs"):
        darknet.check_cfg(YoloV4Tiny(20), sections)


def test_cfg_with_wrong_route_group_rejected() -> None:
    sections = darknet.cfg_sections(20)
    del sections[4]["groups"]  # darknet layer 3 now routes all 64 channels
    with pytest.raises(darknet.CfgMismatchError, match="layer 4 .*input channels is 64, the model has 32"):
        darknet.check_cfg(YoloV4Tiny(20), sections)


# --- .weights --------------------------------------------------------------------------------


def test_expected_weights_size_80_classes() -> None:
    assert darknet.expected_weights_size(YoloV4Tiny(80)) == 24_251_276


def test_weights_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "model.weights"
    source = make_model(seed=1)
    header = darknet.WeightsHeader(seen=123_456_789_012)
    darknet.save_weights(source, path, header)
    assert path.stat().st_size == darknet.expected_weights_size(source)

    target = make_model(seed=2)
    assert not torch.equal(target.stem1.conv.weight, source.stem1.conv.weight)
    assert darknet.load_weights(target, path) == header

    source_state, target_state = source.state_dict(), target.state_dict()
    assert source_state.keys() == target_state.keys()
    for key, value in source_state.items():
        assert torch.equal(value, target_state[key]), key
    x = image(128)
    with torch.no_grad():
        for expected, actual in zip(source(x), target.eval()(x)):
            assert torch.equal(actual, expected)


def test_weights_layout_is_darknet_order(tmp_path: Path) -> None:
    """First record: beta, gamma, mean, var of layer 0, then its OIHW weights; last: head bias, weights."""
    path = tmp_path / "model.weights"
    model = make_model()
    darknet.save_weights(model, path)
    data = path.read_bytes()
    assert struct.unpack_from("<3iQ", data) == (0, 2, 5, 0)
    floats = torch.frombuffer(bytearray(data[20:]), dtype=torch.float32)
    bn, conv = model.stem1.bn, model.stem1.conv
    first = torch.cat([bn.bias, bn.weight, bn.running_mean, bn.running_var, conv.weight.flatten()])
    assert torch.equal(floats[: first.numel()], first.detach())
    head = model.head16.conv
    last = torch.cat([head.bias, head.weight.flatten()])
    assert torch.equal(floats[-last.numel() :], last.detach())


def test_load_weights_with_32bit_seen(tmp_path: Path) -> None:
    """Files older than format 0.2 store ``seen`` as int32, four bytes shorter."""
    new_path, old_path = tmp_path / "new.weights", tmp_path / "old.weights"
    source = make_model(seed=3)
    darknet.save_weights(source, new_path)
    darknet.save_weights(source, old_path, darknet.WeightsHeader(major=0, minor=1, revision=0, seen=7))
    assert old_path.stat().st_size == new_path.stat().st_size - 4
    target = make_model(seed=4)
    assert darknet.load_weights(target, old_path).seen == 7
    assert torch.equal(target.head32.conv.weight, source.head32.conv.weight)


def test_wrong_sized_weights_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.weights"
    model = YoloV4Tiny(20)
    darknet.save_weights(model, path)
    expected = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-4])
    before = model.stem1.conv.weight.clone()
    with pytest.raises(ValueError, match=f"expected {expected:,} bytes .* got {expected - 4:,}") as error:
        darknet.load_weights(model, path)
    assert "\n" not in str(error.value)
    assert torch.equal(model.stem1.conv.weight, before)


def test_weights_for_other_class_count_rejected(tmp_path: Path) -> None:
    path = tmp_path / "voc.weights"
    darknet.save_weights(YoloV4Tiny(20), path)
    with pytest.raises(ValueError, match="expected 24,251,276 bytes for YOLOv4-tiny with 80 classes"):
        darknet.load_weights(YoloV4Tiny(80), path)


# --- command line ----------------------------------------------------------------------------


def test_info_prints_table_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    info_main(["--classes", "20"])
    out = capsys.readouterr().out
    assert "params: 5,918,006" in out
    assert "GFLOPs: 6.814" in out
    assert "mask 1,2,3" in out and "2 (group 2/2)" in out
