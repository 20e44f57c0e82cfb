"""The VOC-layout reader, the synthetic set and the augmentations on tiny data."""

import os

import numpy as np
import pytest

from yolo.data import (COLORS, SYNTHETIC_CLASSES, VOC_CLASSES, VOCDataset, augment, horizontal_flip, hsv_jitter,
                       letterbox, make_synthetic_voc, mosaic, read_annotation, unletterbox)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("voc"))
    make_synthetic_voc(root, images=20, seed=3)
    return root


def test_synthetic_set_has_the_voc_layout_and_partitioned_splits(synthetic):
    splits = {s: VOCDataset(synthetic, s) for s in ("train", "val", "test", "trainval")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert set(splits["trainval"].ids) == set(splits["train"].ids) | set(splits["val"].ids)
    assert not set(splits["train"].ids) & set(splits["test"].ids)
    sample = splits["train"][0]
    assert sample.image.dtype == np.uint8 and sample.image.shape[2] == 3
    assert splits["train"].classes == SYNTHETIC_CLASSES and len(SYNTHETIC_CLASSES) == 20
    boxes = sample.truth.boxes
    assert len(boxes) >= 1 and np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert np.all(boxes[:, 2] < sample.image.shape[1]) and np.all(boxes[:, 3] < sample.image.shape[0])
    objects = sum(len(splits["train"][i].truth.boxes) for i in range(len(splits["train"])))
    assert objects >= 16 and len({int(c) for i in range(16) for c in splits["train"][i].truth.classes}) >= 5
    # the objects are really drawn where their boxes say, in their class's colour: the centre of
    # the top-most (last drawn) filled shape of every image shows that colour, not the background
    checked = 0
    for i in range(len(splits["train"])):
        sample = splits["train"][i]
        color, shape = SYNTHETIC_CLASSES[int(sample.truth.classes[-1])].split("-")
        x1, y1, x2, y2 = (int(v) for v in sample.truth.boxes[-1])
        if shape == "ring" or min(x2 - x1, y2 - y1) < 12:
            continue
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        centre = sample.image[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(axis=0)
        assert np.abs(centre - np.array(COLORS[color])).max() < 45, (i, color, shape, centre)
        checked += 1
    assert checked >= 5


def test_reader_handles_difficult_one_based_pixels_and_unknown_classes(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text("<annotation><object><name>dog</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin>"
                   "<xmax>11</xmax><ymax>12</ymax></bndbox></object><object><name>unicorn</name><bndbox><xmin>1"
                   "</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>")
    truth = read_annotation(str(xml), VOC_CLASSES)
    assert truth.boxes.tolist() == [[0, 1, 10, 11]] and truth.classes.tolist() == [VOC_CLASSES.index("dog")]
    assert truth.difficult.tolist() == [True]


def test_missing_split_is_a_clear_error(synthetic):
    with pytest.raises(FileNotFoundError, match="no split"):
        VOCDataset(synthetic, "nosuchsplit")


def test_letterbox_round_trip_and_flip_involution():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 60, 90], [150, 5, 199, 119]], np.float32)
    boxed, moved, transform = letterbox(image, boxes, 416)
    assert boxed.shape == (416, 416, 3) and boxed[0, 0].tolist() == [128, 128, 128]  # padded at the top
    assert np.allclose(unletterbox(moved, transform, 200, 120), boxes, atol=0.01)
    flipped, flipped_boxes = horizontal_flip(*horizontal_flip(image, boxes))
    assert np.array_equal(flipped, image) and np.allclose(flipped_boxes, boxes)
    jittered = hsv_jitter(image, rng)
    assert jittered.shape == image.shape and jittered.dtype == np.uint8 and not np.array_equal(jittered, image)


def test_mosaic_and_augment_keep_boxes_on_the_canvas(synthetic):
    data = VOCDataset(synthetic, "train")
    rng = np.random.default_rng(1)
    image, boxes, classes = mosaic([data[i] for i in range(4)], 416, rng)
    assert image.shape == (416, 416, 3) and len(boxes) == len(classes) > 0
    assert np.all(boxes >= 0) and np.all(boxes <= 415) and np.all(boxes[:, 2] > boxes[:, 0])
    for i in range(6):
        image, boxes, classes = augment(data[i], 416, rng, [data[(i + k) % len(data)] for k in (1, 2, 3)])
        assert image.shape == (416, 416, 3) and np.all(boxes >= 0) and np.all(boxes <= 415)
        assert classes.dtype == np.int64 and len(classes) == len(boxes)


def test_synthetic_generation_is_deterministic(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    make_synthetic_voc(a, images=3, seed=5)
    make_synthetic_voc(b, images=3, seed=5)
    for name in sorted(os.listdir(os.path.join(a, "Annotations"))):
        with open(os.path.join(a, "Annotations", name)) as fa, open(os.path.join(b, "Annotations", name)) as fb:
            assert fa.read() == fb.read()
