"""Fixtures of the data tests: image folders built on the fly (no image files are checked in).

Tests reach the builders through the ``helpers`` fixture (the suite runs with
``--import-mode=importlib``, so test modules cannot import this file).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Dict

import numpy as np
import pytest
from PIL import Image

EXIF_ORIENTATION = 0x0112


def gradient_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with some noise: resamples like a photo, no flat areas."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack(
        [255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1), 128 + 60 * np.sin(x / 5.0 + y / 7.0)],
        axis=-1,
    )
    image += rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def save_rgb(path: Path, height: int, width: int, seed: int = 0, **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient_rgb(height, width, seed)).save(path, **save_args)
    return path


def make_unpaired(root: Path, n_a: int, n_b: int, size: int = 40, splits=("train", "test")) -> Path:
    """A small unpaired dataset; file names say domain and index."""
    for split in splits:
        for domain, count in (("A", n_a), ("B", n_b)):
            for i in range(count):
                path = root / f"{split}{domain}" / f"{domain}_{i:03d}.png"
                save_rgb(path, size, size, seed=i + 100 * (domain == "B"))
    return root


def asymmetric_pair(height: int = 40, width: int = 40) -> np.ndarray:
    """A|B side by side where each half has a distinct, left-right asymmetric pattern.

    A (left) is a horizontal ramp dark -> bright in red; B (right) is the same ramp in green, so
    a flip of one half but not the other, or swapped halves, are easy to detect.
    """
    ramp = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    a = np.zeros((height, width, 3))
    a[..., 0] = ramp
    b = np.zeros((height, width, 3))
    b[..., 1] = ramp
    return np.concatenate([a, b], axis=1).astype(np.uint8)


def make_paired(root: Path, count: int = 4, size: int = 40, splits=("train", "test")) -> Path:
    for split in splits:
        for i in range(count):
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(asymmetric_pair(size, size)).save(root / split / f"{i:03d}.png")
    return root


def make_awkward_folder(folder: Path) -> Dict[str, Path]:
    """One file per awkward case; returns name -> path. See test_image.py for what each checks."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = gradient_rgb(30, 50)
    base = Image.fromarray(rgb)
    files: Dict[str, Path] = {}

    def save(name: str, image: Image.Image, **kwargs) -> None:
        files[name] = folder / name
        image.save(files[name], **kwargs)

    save("gray.png", base.convert("L"))
    la = base.convert("LA")
    save("gray_alpha.png", la)
    save("palette.png", base.convert("P", palette=Image.Palette.ADAPTIVE))
    alpha = np.full((30, 50), 255, np.uint8)
    alpha[:, :10] = 0  # transparent left strip, stored colour black
    rgba_array = np.dstack([np.zeros_like(rgb), alpha])
    rgba_array[:, 10:, :3] = rgb[:, 10:]
    save("rgba.png", Image.fromarray(rgba_array))
    save("cmyk.jpg", base.convert("CMYK"), quality=95)
    sixteen = np.zeros((30, 50), np.uint16)
    sixteen[:, :25] = 65535
    sixteen[:, 25:] = 32768
    save("sixteen.png", Image.fromarray(sixteen))
    save("int32.tif", Image.fromarray(sixteen.astype(np.int32)))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # rotate 90 degrees clockwise to display
    save("rotated.jpg", base, quality=95, exif=exif.tobytes())
    save("tiny.png", Image.fromarray(gradient_rgb(5, 7)))
    save("upper.JPG", base, quality=90)
    save("upper.PNG", base)
    save("upper.TIF", base)
    save("upper.WEBP", base, lossless=True)
    save("upper.BMP", base)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    return files


def write_truncated_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_rgb(path, 40, 40, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The builders above: helpers.save_rgb(...), helpers.make_unpaired(...), ..."""
    return SimpleNamespace(
        gradient_rgb=gradient_rgb,
        save_rgb=save_rgb,
        make_unpaired=make_unpaired,
        asymmetric_pair=asymmetric_pair,
        make_paired=make_paired,
        make_awkward_folder=make_awkward_folder,
        write_truncated_jpeg=write_truncated_jpeg,
    )


@pytest.fixture
def awkward_folder(tmp_path: Path) -> Dict[str, Path]:
    return make_awkward_folder(tmp_path / "awkward")
