"""Every image of a folder at its own size: what `predict`, `translate` and evaluation read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from cyclegan_pl.data.base import BadImageSkipper
from cyclegan_pl.data.image import require_images, split_halves
from cyclegan_pl.data.readers import ImageReader, as_reader
from cyclegan_pl.data.samplers import SizeGroupedBatchSampler
from cyclegan_pl.data.transforms import BatchDtype, as_batch_dtype
from cyclegan_pl.directions import Direction
from cyclegan_pl.errors import DataLayoutError

PathLike = Union[str, Path]


class ImageFolderDataset(Dataset):
    """Every image of a folder (recursively) or one image file, at its own size (prediction).

    Items are ``{"image": (C, H, W) float in [-1, 1], "path": str, "relpath": str}`` and, when
    ``direction`` is given, ``"direction"``: the translation the images are read for, which the
    modules' ``predict_step`` applies. ``relpath`` is relative to the folder (the file name for a
    single file), so outputs can mirror the input tree. Only normalisation is applied.

    Args:
        path: a folder or an image file.
        channels: 3 (RGB) or 1 (grayscale) 8-bit photos, or an
            :class:`~cyclegan_pl.data.readers.ImageReader` (native reading: any bands and dtype).
        half: ``"left"`` or ``"right"`` to keep one half of side-by-side A|B images, else None.
        skip_bad_images: drop files that fail the quick check, with one warning (a prediction
            has no substitute for a file that then fails to decode: that still raises).
        max_size: keep only the first ``max_size`` files.
        what: what the folder holds, for error messages.
        expected: expected layout, for error messages.
        hint: how to get the data, for error messages.
        exclude: folders under ``path`` left out (e.g. the output folder of a translation that
            writes inside its input folder).
        dtype: ``float32`` images in [-1, 1], or ``uint8`` images for normalisation on the device.
        direction: the translation the images are read for (``AtoB``: they are domain A images).
    """

    def __init__(
        self,
        path: PathLike,
        channels: Union[int, ImageReader] = 3,
        half: Optional[Literal["left", "right"]] = None,
        skip_bad_images: bool = False,
        max_size: Optional[int] = None,
        what: str = "images to predict",
        expected: Optional[str] = None,
        hint: Optional[str] = None,
        exclude: Sequence[PathLike] = (),
        dtype: BatchDtype = "float32",
        direction: Optional[Direction] = None,
    ) -> None:
        self.dtype = dtype
        self.direction = direction
        if half not in (None, "left", "right"):
            raise ValueError(f"half must be None, 'left' or 'right', got {half!r}")
        self.root = Path(path)
        files = require_images(self.root, what, expected, hint, exclude=exclude)
        (files,) = BadImageSkipper(skip_bad_images).drop_unreadable([files], f"'{self.root}'")
        if not files:
            raise DataLayoutError(f"'{self.root}' has no readable image files left.")
        self.files = files[:max_size] if max_size is not None else files
        self.read = as_reader(channels, f"'{self.root}'")
        self.half = half
        self._sizes: Optional[List[Tuple[int, int]]] = None

    def __len__(self) -> int:
        return len(self.files)

    def relpath(self, index: int) -> str:
        if self.root.is_file():
            return self.root.name
        return self.files[index].relative_to(self.root).as_posix()

    def sizes(self) -> List[Tuple[int, int]]:
        """(height, width) of every item, from the file headers (computed once)."""
        if self._sizes is None:
            sizes = [self.read.size(p) for p in self.files]
            if self.half is not None:
                sizes = [(h, w // 2) for h, w in sizes]
            self._sizes = sizes
        return self._sizes

    def __getitem__(self, index: int) -> Dict[str, object]:
        image = self.read(self.files[index])
        if self.half is not None:
            left, right = split_halves(image, self.files[index])
            image = left if self.half == "left" else right
        item = {
            "image": as_batch_dtype(image, self.dtype),
            "path": str(self.files[index]),
            "relpath": self.relpath(index),
        }
        if self.direction is not None:
            item["direction"] = self.direction
        return item


def image_folder_loader(
    dataset: ImageFolderDataset, batch_size: int = 1, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """A loader over ``dataset`` in file order, batching only images of equal size.

    Args:
        dataset: the images.
        batch_size: images per batch (of one size; the last batch of each size may be smaller).
        num_workers: loading processes.
        pin_memory: page-locked batches (used only when CUDA is available).
    """
    batch_sampler = SizeGroupedBatchSampler(
        SequentialSampler(dataset), batch_size, drop_last=False, sizes=dataset.sizes()
    )
    options: Dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory and torch.cuda.is_available()}
    return DataLoader(dataset, batch_sampler=batch_sampler, **options)
