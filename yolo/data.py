"""Detection data in the PASCAL VOC layout: a reader, a generator of a synthetic set in the same
layout, and the training augmentations (letterbox, flips, HSV jitter, mosaic).

    ROOT/Annotations/<id>.xml        one <object> per box: name, difficult, bndbox (1-based pixels)
    ROOT/JPEGImages/<id>.jpg
    ROOT/ImageSets/Main/<split>.txt  image ids, one per line
    ROOT/classes.txt                 optional: class names, one per line (default: the 20 VOC ones)

A real VOC2007 or VOC2012 directory of a VOCdevkit reads as it is. Images are RGB uint8 arrays
(H, W, 3); boxes are float (x1, y1, x2, y2) in 0-based pixels.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .metrics import GroundTruth

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")

PAD_VALUE = 128  # gray, as the reference letterbox


@dataclass(frozen=True)
class Sample:
    image_id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    truth: GroundTruth


def read_classes(root: str) -> tuple[str, ...]:
    path = os.path.join(root, "classes.txt")
    if not os.path.exists(path):
        return VOC_CLASSES
    with open(path, encoding="utf-8") as f:
        return tuple(line.strip() for line in f if line.strip())


def read_annotation(path: str, classes: tuple[str, ...]) -> GroundTruth:
    """A VOC XML file; objects of classes not in `classes` are left out."""
    root = ET.parse(path).getroot()
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = obj.findtext("name", "").strip()
        if name not in classes:
            continue
        box = obj.find("bndbox")
        x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x1 - 1, y1 - 1, x2 - 1, y2 - 1))  # VOC pixels are 1-based
        labels.append(classes.index(name))
        difficult.append(obj.findtext("difficult", "0").strip() == "1")
    return GroundTruth(np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64),
                       np.array(difficult, bool))


class VOCDataset:
    """The images of one split of a VOC-layout directory."""

    def __init__(self, root: str, split: str = "trainval"):
        ids_path = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
        if not os.path.exists(ids_path):
            raise FileNotFoundError(f"{root} has no split {split!r} (expected {ids_path})")
        with open(ids_path, encoding="utf-8") as f:
            self.ids = [line.split()[0] for line in f if line.strip()]
        self.root, self.split = root, split
        self.classes = read_classes(root)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.ids[index]
        truth = read_annotation(os.path.join(self.root, "Annotations", f"{image_id}.xml"), self.classes)
        with Image.open(os.path.join(self.root, "JPEGImages", f"{image_id}.jpg")) as im:
            image = np.asarray(im.convert("RGB"))
        return Sample(image_id, image, truth)


# ------------------------------------------------------------------ a synthetic set in VOC layout

SHAPES = ("rectangle", "ellipse", "triangle", "cross", "ring")
# Hues a quarter turn apart, so the training hue jitter (+-0.1 turn) never turns one class into another.
COLORS = {"red": (230, 30, 30), "lime": (130, 230, 30), "cyan": (30, 230, 230), "violet": (130, 30, 230)}
SYNTHETIC_CLASSES: tuple[str, ...] = tuple(f"{color}-{shape}" for shape in SHAPES for color in COLORS)


def _draw_object(draw: ImageDraw.ImageDraw, shape: str, color: tuple[int, int, int], box: tuple[int, ...]) -> None:
    x1, y1, x2, y2 = box
    if shape == "rectangle":
        draw.rectangle(box, fill=color)
    elif shape == "ellipse":
        draw.ellipse(box, fill=color)
    elif shape == "triangle":
        draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=color)
    elif shape == "cross":
        w, h = (x2 - x1) // 3, (y2 - y1) // 3
        draw.rectangle((x1 + w, y1, x2 - w, y2), fill=color)
        draw.rectangle((x1, y1 + h, x2, y2 - h), fill=color)
    else:  # ring
        draw.ellipse(box, outline=color, width=max(2, (x2 - x1) // 6))


def _annotation_xml(image_id: str, size: tuple[int, int], objects: list[tuple[str, tuple[int, ...], bool]]) -> str:
    parts = [f"<annotation><folder>synthetic</folder><filename>{image_id}.jpg</filename>",
             f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"]
    for name, (x1, y1, x2, y2), difficult in objects:
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>{int(difficult)}</difficult><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
                     f"<xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def draw_random_objects(image: Image.Image, count: int, rng: np.random.Generator,
                        min_side: int = 8) -> list[tuple[str, tuple[int, int, int, int], bool]]:
    """Draw `count` synthetic objects onto `image` in place: (class name, box, difficult) each,
    difficult when under 12 px."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(count):
        side = int(np.exp(rng.uniform(np.log(min_side), np.log(min(width, height) * 0.6))))
        aspect = float(np.exp(rng.uniform(-0.5, 0.5)))
        w, h = max(4, int(side * aspect)), max(4, int(side / aspect))
        x1, y1 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        name = SYNTHETIC_CLASSES[int(rng.integers(len(SYNTHETIC_CLASSES)))]
        color, shape = name.split("-")
        _draw_object(draw, shape, COLORS[color], (x1, y1, x1 + w, y1 + h))
        objects.append((name, (x1, y1, x1 + w, y1 + h), max(w, h) < 12))
    return objects


def make_synthetic_voc(root: str, images: int = 200, seed: int = 0, min_size: int = 240, max_size: int = 480,
                       max_objects: int = 6, splits: dict[str, float] | None = None) -> VOCDataset:
    """Write a detection set in VOC layout: JPEG photos of noisy textured backgrounds with up to
    `max_objects` shapes of 20 (shape, colour) classes at varied sizes and positions; small
    objects (under 12 px) are marked difficult. Returns the train split."""
    rng = np.random.default_rng(seed)
    splits = splits or {"train": 0.8, "val": 0.1, "test": 0.1}
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    with open(os.path.join(root, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(SYNTHETIC_CLASSES) + "\n")
    ids = []
    for index in range(images):
        image_id = f"{index:06d}"
        width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
        base = rng.integers(60, 200, 3)
        pixels = np.clip(base + rng.normal(0, 18, (height, width, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        objects = draw_random_objects(image, int(rng.integers(1, max_objects + 1)), rng)
        image.save(os.path.join(root, "JPEGImages", f"{image_id}.jpg"), quality=90)
        with open(os.path.join(root, "Annotations", f"{image_id}.xml"), "w", encoding="utf-8") as f:
            f.write(_annotation_xml(image_id, (width, height), objects))
        ids.append(image_id)
    order = rng.permutation(len(ids))
    start = 0
    written = {}
    for split, share in splits.items():
        count = int(round(share * len(ids))) if split != list(splits)[-1] else len(ids) - start
        written[split] = sorted(ids[i] for i in order[start:start + count])
        start += count
    if "train" in written and "val" in written:
        written["trainval"] = sorted(written["train"] + written["val"])
    for split, members in written.items():
        with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(members) + "\n")
    return VOCDataset(root, "train")


# ------------------------------------------------------------------ augmentations


def letterbox(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, tuple[float, int, int]]:
    """Resize keeping the aspect ratio and pad to size x size; returns the image, the boxes in
    its pixels, and (scale, pad_x, pad_y) to map predictions back."""
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = np.asarray(
        Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))
    moved = boxes * scale + np.array([pad_x, pad_y, pad_x, pad_y], np.float32)
    return canvas, moved.astype(np.float32), (scale, pad_x, pad_y)


def unletterbox(boxes: np.ndarray, transform: tuple[float, int, int], width: int, height: int) -> np.ndarray:
    """Boxes in letterboxed pixels back to the original image's pixels (clipped to it)."""
    scale, pad_x, pad_y = transform
    out = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
    return np.clip(out, 0, [width - 1, height - 1, width - 1, height - 1]).astype(np.float32)


def horizontal_flip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, [0, 2]] = width - 1 - boxes[:, [2, 0]]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hue: float = 0.1, saturation: float = 1.5,
               value: float = 1.5) -> np.ndarray:
    """Shift hue by up to +-hue (of a turn) and scale saturation and value by up to x or 1/x."""
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).astype(np.float32)
    gains = [rng.uniform(-hue, hue) * 255, rng.uniform(1, saturation) ** rng.choice([-1, 1]),
             rng.uniform(1, value) ** rng.choice([-1, 1])]
    hsv[..., 0] = (hsv[..., 0] + gains[0]) % 256
    hsv[..., 1:] = np.clip(hsv[..., 1:] * np.array(gains[1:], np.float32), 0, 255)
    return np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"))


def clip_boxes(boxes: np.ndarray, classes: np.ndarray, size: int, min_side: float = 2.0):
    """Clip to the canvas and drop boxes that became thinner than `min_side` pixels."""
    boxes = np.clip(boxes, 0, size - 1)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_side) & ((boxes[:, 3] - boxes[:, 1]) >= min_side)
    return boxes[keep], classes[keep]


def mosaic(samples: list[Sample], size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four images, each scaled 0.4-1x and randomly flipped, around a random cut point
    (0.25-0.75 of the side); returns (image, boxes, classes). Difficult objects are dropped."""
    if len(samples) != 4:
        raise ValueError("mosaic takes four samples")
    cut_x, cut_y = (int(size * rng.uniform(0.25, 0.75)) for _ in range(2))
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    all_boxes, all_classes = [], []
    regions = [(0, 0, cut_x, cut_y), (cut_x, 0, size, cut_y), (0, cut_y, cut_x, size), (cut_x, cut_y, size, size)]
    for sample, (rx1, ry1, rx2, ry2) in zip(samples, regions):
        keep = ~sample.truth.difficult
        image, boxes = sample.image, sample.truth.boxes[keep]
        if rng.random() < 0.5:
            image, boxes = horizontal_flip(image, boxes)
        scale = rng.uniform(0.4, 1.0) * size / max(image.shape[:2])
        new_w, new_h = max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))
        resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))
        # anchor each image at the corner of its region that touches the cut point
        ox = rx2 - new_w if rx1 == 0 else rx1
        oy = ry2 - new_h if ry1 == 0 else ry1
        x1, y1, x2, y2 = max(ox, rx1), max(oy, ry1), min(ox + new_w, rx2), min(oy + new_h, ry2)
        if x2 > x1 and y2 > y1:
            canvas[y1:y2, x1:x2] = resized[y1 - oy:y2 - oy, x1 - ox:x2 - ox]
        moved = boxes * scale + np.array([ox, oy, ox, oy], np.float32)
        moved = np.clip(moved, [rx1, ry1, rx1, ry1], [rx2 - 1, ry2 - 1, rx2 - 1, ry2 - 1])
        moved, classes = clip_boxes(moved, sample.truth.classes[keep], size)
        all_boxes.append(moved)
        all_classes.append(classes)
    return canvas, np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_classes)


def augment(sample: Sample, size: int, rng: np.random.Generator, extra: list[Sample] | None = None,
            mosaic_probability: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training view of a sample: mosaic with `extra` (three more samples) with probability
    `mosaic_probability`, else letterbox + flip; then HSV jitter. Returns (image, boxes, classes)."""
    if extra and len(extra) == 3 and rng.random() < mosaic_probability:
        image, boxes, classes = mosaic([sample] + extra, size, rng)
    else:
        keep = ~sample.truth.difficult
        image, boxes, _ = letterbox(sample.image, sample.truth.boxes[keep], size)
        classes = sample.truth.classes[keep]
        if rng.random() < 0.5:
            image, boxes = horizontal_flip(image, boxes)
        boxes, classes = clip_boxes(boxes, classes, size)
    return hsv_jitter(image, rng), boxes, classes
