"""Tiny generated datasets for demos and smoke tests (no download needed).

Unpaired (:func:`make_demo_dataset`, CycleGAN "orange2stripes"): both domains show one to three
discs on a light green, slightly noisy field. Domain A discs are plain orange/red/yellow; domain B
discs are blue with white stripes at a random angle. The background statistics are shared, so a
generator must learn to change the discs only: their colour changes within a few hundred
iterations at 32-64 px on a CPU, the stripes follow later.

Paired (:func:`make_demo_paired_dataset`, pix2pix "labels2shapes"): A is a flat label map (discs
and squares in class colours on a flat background), B the matching "photo": shaded discs, squares
with a vertical gradient, a textured background. Files hold A|B side by side.

Multi-band (:func:`make_demo_multiband_dataset`, "stains"): 16-bit, 4-band TIFFs of round
"cells" on a dim background, as a fluorescence microscope might record them. Both domains show
the same kind of cells, with another spectral profile (how bright each band is) and background;
every image also carries detail in its two lowest bits, which an 8-bit pipeline would lose.

All writers are deterministic in ``seed``, atomic (the dataset is written into a temporary
folder beside ``root`` and renamed into place) and idempotent (a complete dataset with the same
parameters, recognised by its ``.demo_dataset.json`` marker, is left as it is).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Tuple, Union

import numpy as np
from PIL import Image

from cyclegan_pl.data.native import write_native
from cyclegan_pl.errors import OptionError
from cyclegan_pl.files import atomic_folder

MARKER = ".demo_dataset.json"

_FIELD = np.array([150.0, 190.0, 120.0])
_WARM = np.array([[235.0, 120.0, 40.0], [220.0, 50.0, 40.0], [240.0, 200.0, 50.0]])
_BLUE = np.array([40.0, 80.0, 200.0])
_LABEL_BACKGROUND = np.array([20.0, 20.0, 120.0])
_LABEL_DISC = np.array([230.0, 60.0, 60.0])
_LABEL_SQUARE = np.array([60.0, 220.0, 90.0])


def _grid(size: int):
    coords = np.arange(size, dtype=np.float64) + 0.5
    return np.meshgrid(coords, coords, indexing="ij")  # y, x


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Anti-aliased inside-ness (1 inside, 0 outside, a one-pixel ramp on the edge)."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)[..., None]


def _field(rng: np.random.Generator, size: int) -> np.ndarray:
    tint = _FIELD + rng.uniform(-15, 15, size=3)
    return tint + rng.normal(0, 6, size=(size, size, 3))


def _discs(rng: np.random.Generator, size: int):
    for _ in range(int(rng.integers(1, 4))):
        radius = rng.uniform(0.12, 0.22) * size
        cy, cx = rng.uniform(radius, size - radius, size=2)
        yield cy, cx, radius


def _unpaired_image(rng: np.random.Generator, size: int, domain: str) -> np.ndarray:
    y, x = _grid(size)
    image = _field(rng, size)
    for cy, cx, radius in _discs(rng, size):
        inside = _coverage(np.hypot(y - cy, x - cx) - radius)
        if domain == "A":
            colour = _WARM[int(rng.integers(len(_WARM)))] + rng.uniform(-15, 15, size=3)
            paint = np.broadcast_to(colour, image.shape)
        else:
            angle = rng.uniform(0, np.pi)
            period = rng.uniform(0.08, 0.12) * size
            phase = (x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / period)
            stripe = np.clip(np.sin(phase) * 2.0 + 0.5, 0.0, 1.0)[..., None]
            paint = _BLUE * (1 - stripe) + 245.0 * stripe
        image = image * (1 - inside) + paint * inside
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _paired_image(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    label = np.broadcast_to(_LABEL_BACKGROUND, (size, size, 3)).copy()
    photo = _field(rng, size) * 0.6 + rng.normal(0, 10, size=(size, size, 1))
    for _ in range(int(rng.integers(1, 4))):
        half = rng.uniform(0.1, 0.2) * size
        cy, cx = rng.uniform(half, size - half, size=2)
        if rng.random() < 0.5:
            distance = np.hypot(y - cy, x - cx)
            inside = _coverage(distance - half)
            label = label * (1 - inside) + _LABEL_DISC * inside
            shade = np.clip(1.2 - 0.8 * np.hypot(y - cy + half / 2, x - cx + half / 2) / (2 * half), 0.3, 1.2)
            photo = photo * (1 - inside) + (np.array([200.0, 70.0, 50.0]) * shade[..., None]) * inside
        else:
            inside = _coverage(np.maximum(np.abs(y - cy), np.abs(x - cx)) - half)
            label = label * (1 - inside) + _LABEL_SQUARE * inside
            ramp = ((y - cy + half) / (2 * half)).clip(0, 1)[..., None]
            photo = photo * (1 - inside) + (np.array([90.0, 160.0, 220.0]) * (1.1 - 0.5 * ramp)) * inside
    side_by_side = np.concatenate([label, photo], axis=1)
    return np.clip(np.rint(side_by_side), 0, 255).astype(np.uint8)


def _make_dataset(root: Path, params: Dict[str, object], write: Callable[[Path], None]) -> Path:
    """Write a demo dataset with ``write(folder)`` unless ``root`` already holds this one."""
    marker = root / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == params:
                return root
        except (OSError, ValueError):
            pass  # a damaged marker: ours to replace
    elif root.exists() and any(root.iterdir()):
        raise OptionError(
            f"'{root}' exists and is not a demo dataset made by cyclegan_pl (no {MARKER}); "
            "choose another folder or remove it."
        )
    with atomic_folder(root, replace=True) as staging:
        write(staging)
        (staging / MARKER).write_text(json.dumps(params, sort_keys=True))
    return root


def _unpaired_writer(
    n_train: int,
    n_test: int,
    seed: int,
    size: int,
    draw: Callable[[np.random.Generator, int, str], np.ndarray],
    save: Callable[[np.ndarray, Path], None],
    salt: Tuple[int, ...] = (),
) -> Callable[[Path], None]:
    """What writes an unpaired demo set: ``draw(rng, size, domain)`` images saved by ``save(pixels,
    path without extension)`` into trainA, trainB, testA, testB, each from its own seeded generator."""

    def write(folder: Path) -> None:
        for split_id, (split, count) in enumerate((("train", n_train), ("test", n_test))):
            for domain_id, domain in enumerate("AB"):
                out = folder / f"{split}{domain}"
                out.mkdir()
                for i in range(count):
                    rng = np.random.default_rng([seed, split_id, domain_id, i, *salt])
                    save(draw(rng, size, domain), out / f"{domain}_{i:05d}")

    return write


def make_demo_dataset(
    root: Union[str, Path],
    n_train: int = 200,
    n_test: int = 20,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write the unpaired demo dataset (trainA, trainB, testA, testB PNGs) into ``root``.

    Args:
        root: the dataset folder to create (e.g. ``data/demo``).
        n_train: images per training domain.
        n_test: images per test domain.
        size: side of the square images in pixels.
        seed: generates the same images for the same seed.

    Returns:
        ``root``, as a Path.
    """
    params = {"kind": "unpaired", "n_train": n_train, "n_test": n_test, "size": size, "seed": seed}

    def save(pixels: np.ndarray, path: Path) -> None:
        Image.fromarray(pixels).save(path.with_suffix(".png"))

    return _make_dataset(Path(root), params, _unpaired_writer(n_train, n_test, seed, size, _unpaired_image, save))


def make_demo_paired_dataset(
    root: Union[str, Path],
    n_train: int = 200,
    n_test: int = 20,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write the paired demo dataset (train, test; label map | photo side by side) into ``root``.

    Args:
        root: the dataset folder to create (e.g. ``data/demo_pix2pix``).
        n_train: training pairs.
        n_test: test pairs.
        size: side of each half in pixels (files are ``2 * size`` wide).
        seed: generates the same images for the same seed.

    Returns:
        ``root``, as a Path.
    """
    params = {"kind": "paired", "n_train": n_train, "n_test": n_test, "size": size, "seed": seed}

    def write(folder: Path) -> None:
        for split_id, (split, count) in enumerate((("train", n_train), ("test", n_test))):
            out = folder / split
            out.mkdir()
            for i in range(count):
                rng = np.random.default_rng([seed, split_id, 7, i])
                Image.fromarray(_paired_image(rng, size)).save(out / f"{i:05d}.png")

    return _make_dataset(Path(root), params, write)


# Per domain, how bright the cells (and the background) are in each of the four bands, of 65535.
_CELL_PROFILE = {"A": np.array([0.70, 0.35, 0.10, 0.55]), "B": np.array([0.15, 0.60, 0.75, 0.30])}
_BACKGROUND_PROFILE = {"A": np.array([0.04, 0.03, 0.02, 0.05]), "B": np.array([0.08, 0.05, 0.06, 0.03])}


def _multiband_image(rng: np.random.Generator, size: int, domain: str) -> np.ndarray:
    y, x = _grid(size)
    brightness = np.zeros((size, size))
    for cy, cx, radius in _discs(rng, size):
        falloff = np.clip(1.0 - (np.hypot(y - cy, x - cx) / radius) ** 2, 0.0, 1.0)
        brightness = np.maximum(brightness, falloff * rng.uniform(0.7, 1.0))
    cells = brightness[..., None] * _CELL_PROFILE[domain] + _BACKGROUND_PROFILE[domain]
    fine = rng.integers(0, 4, size=cells.shape)  # the two lowest bits
    return np.clip(np.rint(cells * 60000) + fine, 0, 65535).astype(np.uint16)


def make_demo_multiband_dataset(
    root: Union[str, Path],
    n_train: int = 100,
    n_test: int = 10,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write the multi-band demo dataset (trainA, trainB, testA, testB of 16-bit 4-band TIFFs) into ``root``.

    Args:
        root: the dataset folder to create (e.g. ``data/demo_multiband``).
        n_train: images per training domain.
        n_test: images per test domain.
        size: side of the square images in pixels.
        seed: generates the same images for the same seed.

    Returns:
        ``root``, as a Path.
    """
    params = {"kind": "multiband", "n_train": n_train, "n_test": n_test, "size": size, "seed": seed}

    def save(pixels: np.ndarray, path: Path) -> None:
        write_native(pixels, path.with_suffix(".tif"), "uint16")

    return _make_dataset(
        Path(root), params, _unpaired_writer(n_train, n_test, seed, size, _multiband_image, save, salt=(4,))
    )
