"""Run an exported model on images and write colour masks with the dataset's palette.

Backends: ONNX Runtime on ``model.onnx`` (the image read and normalized as mmseg's test
pipeline and data preprocessor do: BGR file, ``bgr_to_rgb``, ``(x - mean) / std``, padded to a
multiple of 32 and cropped back), or PyTorch through mmseg's own ``inference_model`` on
``subnet.py`` + ``subnet.pth``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from raynas.core.errors import InvalidValueError, MissingInputError

__all__ = ["colorize", "predict", "predict_onnx"]


def colorize(labels: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    """An RGB image of a label map, one palette colour per class (255: black)."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    return table[labels]


def predict_onnx(session: object, image: Path, meta: dict) -> np.ndarray:
    """The label map of one image through an ONNX Runtime session of an exported model."""
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MissingInputError(f"{image} is not an image that OpenCV reads")
    x = (bgr[..., ::-1] if meta["bgr_to_rgb"] else bgr).astype(np.float32)
    x = (x - np.asarray(meta["mean"], np.float32)) / np.asarray(meta["std"], np.float32)
    h, w = x.shape[:2]
    pad = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), np.float32)
    pad[:h, :w] = x
    logits = session.run(None, {"image": pad.transpose(2, 0, 1)[None]})[0]
    return logits[0, :, :h, :w].argmax(0).astype(np.uint8)


def predict(
    model: str | os.PathLike, images: list[Path], out: str | os.PathLike, backend: str
) -> list[Path]:
    """Writes ``out/<image stem>.png``, the colour mask of each image; returns the files.

    Raises:
        InvalidValueError: An unknown backend.
        MissingInputError: The model's files or an image are not there.
    """
    model, out = Path(model), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if backend == "onnxruntime":
        import onnxruntime as ort

        from raynas.onnx_export import onnx_file

        session = ort.InferenceSession(str(onnx_file(model)), providers=["CPUExecutionProvider"])
        raw = session.get_modelmeta().custom_metadata_map
        meta = {k: json.loads(v) for k, v in raw.items()}
        labels = (predict_onnx(session, img, meta) for img in images)
        palette = meta["palette"]
    elif backend == "torch":
        from mmseg.apis import inference_model, init_model

        from raynas.onnx_export import export_files

        config, checkpoint = export_files(model)
        seg = init_model(str(config), str(checkpoint), device="cpu")
        labels = (inference_model(seg, str(img)).pred_sem_seg.data[0].numpy().astype(np.uint8)
                  for img in images)  # fmt: skip
        palette = list(seg.dataset_meta["palette"])
    else:
        raise InvalidValueError(f"--backend must be 'onnxruntime' or 'torch', got {backend!r}")
    written = []
    for image, label in zip(images, labels, strict=True):
        target = out / f"{Path(image).stem}.png"
        cv2.imwrite(str(target), colorize(label, palette)[..., ::-1])
        written.append(target)
    return written
