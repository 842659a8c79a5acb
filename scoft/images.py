"""Image helpers shared by the dataset, the negatives and the data checks: RGB conversion and the training crop."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to a new, loaded RGB image, compositing transparency over white."""
    from PIL import Image

    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return image if new == (w, h) else image.resize(new, Image.Resampling.BILINEAR)


def crop_box(width: int, height: int, size: int, fx: float, fy: float) -> tuple[int, int, int, int]:
    """A ``size`` square at relative offset (fx, fy) in [0, 1] of the free space (0.5, 0.5 = centre)."""
    left = round((width - size) * fx)
    top = round((height - size) * fy)
    return left, top, left + size, top + size


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 CHW tensor in [-1, 1]."""
    import numpy as np
    import torch

    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def training_crop(image: Image.Image, size: int, offset: tuple[float, float] = (0.5, 0.5)) -> Image.Image:
    """The ``size`` square training sees: shorter side resized to ``size``, then cropped at ``offset`` (centre)."""
    image = resize_shorter_side(to_rgb(image), size)
    return image.crop(crop_box(*image.size, size, *offset))
