"""Procedural semantic segmentation dataset ("synthseg"), written in mmseg's standard layout.

Classes differ by shape and texture, never by colour alone: every object draws its two colours
from the same distribution. ``window`` is defined by context: a small plain square is a window
only inside a ``square`` (a building); the same square elsewhere is background clutter.
Objects span about 4 px to half the image, overlap (occlusion follows drawing order) and sit on
a noisy, cluttered background.

Every image is generated from ``SeedSequence([seed, split, index])``, so the output is
byte-identical for a given seed whatever the order or parallelism of generation.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from raynas.core.errors import ExistingOutputError, InvalidValueError

CLASSES = ("background", "disk", "square", "triangle", "ring", "bar", "cross", "window")
PALETTE = [
    [0, 0, 0],
    [220, 20, 60],
    [70, 130, 180],
    [250, 170, 30],
    [107, 142, 35],
    [152, 251, 152],
    [255, 0, 255],
    [0, 255, 255],
]
SPLITS = ("train", "val")
FORMAT_VERSION = 1
MIN_SIZE = 32  # the smallest image that holds the generator's objects (24 px fails)
_DONE = "synthseg.json"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthSpec:
    """What to generate.

    Attributes:
        seed: Master seed; the same seed gives the same bytes.
        size: Height and width of the square images in pixels.
        num_train: Number of training images.
        num_val: Number of validation images.
    """

    seed: int = 0
    size: int = 128
    num_train: int = 2000
    num_val: int = 300

    def __post_init__(self) -> None:
        for name, minimum in (("size", MIN_SIZE), ("num_train", 1), ("num_val", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise InvalidValueError(
                    f"synthseg {name} must be an integer >= {minimum}, got {value!r}"
                )

    def count(self, split: str) -> int:
        return self.num_train if split == "train" else self.num_val


Frame = tuple[np.ndarray, np.ndarray]  # object-frame coordinates (u, v)


def _frame(grid: Frame, cx: float, cy: float, angle: float) -> Frame:
    x, y = grid
    c, s = np.cos(angle), np.sin(angle)
    return (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    if kind == "disk":
        return u * u + v * v <= r * r
    if kind in ("square", "window"):
        return (np.abs(u) <= r) & (np.abs(v) <= r)
    if kind == "triangle":
        return (v >= -r) & (v <= 0.5 * r) & (np.abs(u) <= (v + r) * 0.577)
    if kind == "ring":
        d2 = u * u + v * v
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if kind == "bar":
        return (np.abs(u) <= r) & (np.abs(v) <= max(1.5, 0.18 * r))
    if kind == "cross":
        arm = max(1.2, 0.3 * r)
        return ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm))
    if kind == "blob":
        return (u / r) ** 2 + (v / (0.6 * r)) ** 2 <= 1.0
    raise ValueError(f"unknown shape {kind!r}")


def _texture(kind: str, u: np.ndarray, v: np.ndarray, r: float, rng: np.random.Generator):
    period = rng.uniform(3.0, 6.0)
    if kind == "stripes":
        return (np.sin(u * 2 * np.pi / period) > 0).astype(np.float32)
    if kind == "checker":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if kind == "dots":
        du, dv = np.mod(u, period) - period / 2, np.mod(v, period) - period / 2
        return (du * du + dv * dv < (period / 3) ** 2).astype(np.float32)
    if kind == "gradient":
        return np.clip(0.5 + u / (2 * r + 1e-6), 0, 1).astype(np.float32)
    if kind == "noise":
        return rng.random(u.shape, dtype=np.float32)
    if kind == "plain":
        return np.ones_like(u, dtype=np.float32)
    raise ValueError(f"unknown texture {kind!r}")


# class index -> (shape, texture, radius range as a fraction of the image size)
_OBJECTS = {
    1: ("disk", "stripes", (0.03, 0.25)),
    2: ("square", "checker", (0.12, 0.25)),
    3: ("triangle", "dots", (0.03, 0.25)),
    4: ("ring", "gradient", (0.05, 0.25)),
    5: ("bar", "noise", (0.06, 0.25)),
    6: ("cross", "stripes", (0.04, 0.25)),
}
_WINDOW = 7


def _paint(img, lbl, mask, texture, rng, label):
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = texture[mask][:, None]
    img[mask] = c1 * t + c2 * (1 - t)
    if label is not None:
        lbl[mask] = label


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)


def _windows(img, lbl, grid, cx, cy, angle, r, rng):
    """Paints plain small squares inside a building (label ``window``)."""
    n = rng.integers(1, 4)
    for _ in range(n):
        w = rng.uniform(max(1.5, 0.1 * r), max(2.0, 0.22 * r))
        ou, ov = rng.uniform(-r + w, r - w, 2)
        c, s = np.cos(angle), np.sin(angle)
        u, v = _frame(grid, cx + ou * c - ov * s, cy + ou * s + ov * c, angle)
        mask = _shape_mask("window", u, v, w)
        _paint(img, lbl, mask, _texture("plain", u, v, w, rng), rng, _WINDOW)


def render(spec: SynthSpec, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Renders one image and its label map.

    Args:
        spec: Dataset specification.
        split: ``'train'`` or ``'val'``.
        index: Image index within the split.

    Returns:
        A ``(H, W, 3)`` uint8 BGR image and a ``(H, W)`` uint8 label map.
    """
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), index])
    size = spec.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = (xx, yy)
    img = _background(size, rng)
    lbl = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(2, 6)):  # clutter: background-labelled blobs and decoy squares
        kind = "blob" if rng.random() < 0.6 else "window"
        r = rng.uniform(2, 0.08 * size)
        u, v = _frame(grid, *rng.uniform(0, size, 2), rng.uniform(0, np.pi))
        tex = "noise" if kind == "blob" else "plain"
        _paint(img, lbl, _shape_mask(kind, u, v, r), _texture(tex, u, v, r, rng), rng, None)
    for _ in range(rng.integers(3, 8)):
        label = int(rng.integers(1, len(_OBJECTS) + 1))
        shape, tex, (lo, hi) = _OBJECTS[label]
        r = max(2.0, rng.uniform(lo, hi) * size)
        cx, cy = rng.uniform(0, size, 2)
        angle = rng.uniform(0, np.pi)
        u, v = _frame(grid, cx, cy, angle)
        _paint(img, lbl, _shape_mask(shape, u, v, r), _texture(tex, u, v, r, rng), rng, label)
        if label == 2:
            _windows(img, lbl, grid, cx, cy, angle, r, rng)
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), lbl


def _write_split(spec: SynthSpec, root: Path, split: str) -> None:
    img_dir, ann_dir = root / "img_dir" / split, root / "ann_dir" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    for i in range(spec.count(split)):
        img, lbl = render(spec, split, i)
        name = f"{split}_{i:05d}.png"
        if not (cv2.imwrite(str(img_dir / name), img) and cv2.imwrite(str(ann_dir / name), lbl)):
            raise OSError(f"could not write {img_dir / name}")


def generate(
    out: str | os.PathLike, spec: SynthSpec = SynthSpec(), overwrite: bool = False
) -> Path:
    """Writes the dataset to ``out`` atomically (a temporary folder renamed at the end).

    Args:
        out: Destination folder (mmseg layout: ``img_dir/{train,val}``, ``ann_dir/{train,val}``).
        spec: What to generate.
        overwrite: Replace an existing dataset at ``out``.

    Returns:
        The dataset root.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false.
    """
    out = Path(out).resolve()
    if out.exists() and not overwrite:
        raise ExistingOutputError(
            f"{out} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for split in SPLITS:
            _write_split(spec, tmp, split)
        meta = dict(format=FORMAT_VERSION, classes=list(CLASSES), palette=PALETTE, **asdict(spec))
        (tmp / _DONE).write_text(json.dumps(meta, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_spec(root: str | os.PathLike) -> SynthSpec | None:
    """Returns the spec of a complete dataset at ``root``, or None if there is none."""
    meta_file = Path(root) / _DONE
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    return SynthSpec(**{k: meta[k] for k in ("seed", "size", "num_train", "num_val")})


def ensure_synth_dataset(
    root: str | os.PathLike,
    spec: SynthSpec = SynthSpec(),
    log: Callable[[str], None] = logger.warning,
) -> Path:
    """Generates the dataset at ``root`` if it is missing; safe when called concurrently.

    Args:
        root: Dataset root.
        spec: What to generate when missing.
        log: Where to say that the dataset is being generated.

    Returns:
        The dataset root.

    Raises:
        ValueError: ``root`` holds a synthseg dataset with another spec.
    """
    root = Path(root).resolve()
    found = read_spec(root)
    if found == spec:
        return root
    if found is not None:
        raise InvalidValueError(
            f"{root} holds a synthseg dataset generated with {found}, but {spec} was asked "
            "for; point data_root elsewhere or regenerate with "
            f"`raynas data synth --out {root} --overwrite`"
        )
    if root.exists() and any(root.iterdir()):
        raise InvalidValueError(
            f"{root} exists but is not a complete synthseg dataset; remove it first"
        )
    log(f"synthseg dataset missing at {root}: generating {spec} ...")
    start = time.perf_counter()
    try:
        generate(root, spec, overwrite=root.exists())
    except (FileExistsError, OSError):
        if read_spec(root) != spec:  # another process won the race with the same spec: fine
            raise
    log(f"synthseg dataset ready at {root} ({time.perf_counter() - start:.1f} s)")
    return root
