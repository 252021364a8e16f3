"""Image conversion and atomic file writing shared by the callbacks that write images."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_unit_range(images: Tensor) -> Tensor:
    """Map images from the networks' [-1, 1] to [0, 1] (float32, clamped)."""
    return ((images.detach().float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def to_uint8(image: Tensor) -> np.ndarray:
    """One (C, H, W) image in [-1, 1] -> (H, W, C) or (H, W) uint8 array for PIL.

    The scaling truncates like the reference code's ``tensor2im`` (``(x + 1) / 2 * 255`` cast
    to uint8), so equal network outputs give byte-identical files.
    """
    if image.dim() != 3:
        raise ValueError(f"expected one (C, H, W) image, got shape {tuple(image.shape)}")
    scaled = ((image.detach().float().cpu() + 1.0) / 2.0 * 255.0).clamp_(0.0, 255.0)
    array = scaled.to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        return array[:, :, 0]
    return array


def atomic_save_image(array: np.ndarray, path: Union[str, Path], image_format: str) -> None:
    """Write an image array to ``path`` through a temporary file in the same folder.

    ``os.replace`` within one folder is atomic: readers (and a rerun after a crash) see either
    the previous file or the complete new one, never a truncated image.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            Image.fromarray(array).save(handle, format=image_format)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def pil_format_for(extension: str) -> str:
    """PIL's format name for a file extension such as ``png`` or ``.jpg``; ValueError if unknown."""
    suffix = "." + extension.lower().lstrip(".")
    formats = Image.registered_extensions()
    writable = {ext: fmt for ext, fmt in formats.items() if fmt in Image.SAVE}
    if suffix not in writable:
        known = sorted(ext.lstrip(".") for ext in writable)
        raise ValueError(f"extension={extension!r} is not an image type PIL can write; use one of {known}")
    return writable[suffix]
