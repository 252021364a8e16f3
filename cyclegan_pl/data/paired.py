"""Aligned image pairs: the pix2pix training data (side-by-side files or A/ and B/ folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch

from cyclegan_pl.data.base import BadImageSkipper, EpochDataset, Key, format_names, item_generator
from cyclegan_pl.data.image import match_channels, require_images, split_halves
from cyclegan_pl.data.readers import ImageReader, as_reader
from cyclegan_pl.data.transforms import Geometry, ImageTransform, apply_geometry
from cyclegan_pl.directions import check_direction
from cyclegan_pl.errors import DataLayoutError

PathLike = Union[str, Path]


class PairedDataset(EpochDataset):
    """Aligned pairs (pix2pix): side-by-side ``A|B`` files, or ``A/`` and ``B/`` sub-folders.

    The layout is detected per split folder: when ``folder/A`` and ``folder/B`` both exist, files
    are paired by their path relative to those folders (the extension may differ); otherwise
    every image in ``folder`` holds A on its left half and B on its right half. Both halves get
    the same crop and flip. After ``direction``, ``A`` is the network input and ``B`` the target.

    Args:
        folder: the split folder (e.g. ``data/facades/train``).
        transform: preprocessing applied identically to both halves.
        direction: ``"AtoB"`` or ``"BtoA"`` (swap the halves / sub-folders).
        input_nc: how inputs are read: 3 (RGB) or 1 (gray) 8-bit photos, or an
            :class:`~cyclegan_pl.data.readers.ImageReader` (native reading; side-by-side files then
            give both halves the same bands and dtype).
        output_nc: likewise for targets.
        max_size: keep only the first ``max_size`` pairs.
        seed: base seed of the per-item random draws.
        skip_bad_images: skip unreadable files instead of raising (see module doc).
    """

    def __init__(
        self,
        folder: PathLike,
        transform: ImageTransform,
        direction: str = "AtoB",
        input_nc: Union[int, ImageReader] = 3,
        output_nc: Union[int, ImageReader] = 3,
        max_size: Optional[int] = None,
        seed: int = 0,
        skip_bad_images: bool = False,
    ) -> None:
        super().__init__(seed)
        check_direction(direction)
        self.folder = Path(folder)
        self.direction = direction
        self.separate = is_separate_pair_layout(self.folder)
        self.skipper = BadImageSkipper(skip_bad_images)
        if self.separate:
            files_a, files_b = pair_files(self.folder / "A", self.folder / "B")
            files_a, files_b = self.skipper.drop_unreadable([files_a, files_b], f"folder '{self.folder}'")
        else:
            (files_a,) = self.skipper.drop_unreadable(
                [require_images(self.folder, "side-by-side A|B images")], f"folder '{self.folder}'"
            )
            files_b = files_a
        if not files_a:
            raise DataLayoutError(f"Folder '{self.folder}' has no readable image files left.")
        if max_size is not None:
            files_a, files_b = files_a[:max_size], files_b[:max_size]
        self.files_a, self.files_b = files_a, files_b
        self.transform = transform
        self.read_input = as_reader(input_nc, f"inputs of '{self.folder}'")
        self.read_target = as_reader(output_nc, f"targets of '{self.folder}'")

    def __len__(self) -> int:
        return len(self.files_a)

    def _load(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(input, target) uint8 images of pair ``index``, after the direction."""
        if self.separate:
            swap = self.direction == "BtoA"
            source_path = self.files_b[index] if swap else self.files_a[index]
            target_path = self.files_a[index] if swap else self.files_b[index]
            return sized_like_source(self.read_input(source_path), self.read_target(target_path))
        if self.read_input.native:
            both = self.read_input(self.files_a[index])  # one file: both halves have its bands
            left, right = split_halves(both, self.files_a[index])
            return (right, left) if self.direction == "BtoA" else (left, right)
        input_nc, output_nc = self.read_input.channels, self.read_target.channels
        both = as_reader(side_by_side_channels(input_nc, output_nc))(self.files_a[index])
        return split_side_by_side(both, self.files_a[index], self.direction, input_nc, output_nc)

    def paths(self, index: int) -> Tuple[str, str]:
        """(input, target) file paths of pair ``index`` after the direction."""
        a, b = str(self.files_a[index]), str(self.files_b[index])
        return (b, a) if self.direction == "BtoA" and self.separate else (a, b)

    def __getitem__(self, key: Key) -> Dict[str, object]:
        epoch, index = self._split_key(key)
        index, (source, target) = self.skipper.first_readable("pairs", len(self), index, lambda i: (i, self._load(i)))
        image_a, image_b = self.transform.apply_same([source, target], item_generator(self.seed, epoch, index))
        path_a, path_b = self.paths(index)
        return {"A": image_a, "B": image_b, "A_paths": path_a, "B_paths": path_b}


def is_separate_pair_layout(folder: PathLike) -> bool:
    """Whether a paired split folder uses ``A/`` + ``B/`` sub-folders."""
    folder = Path(folder)
    return (folder / "A").is_dir() and (folder / "B").is_dir()


def pair_files(dir_a: Path, dir_b: Path) -> Tuple[List[Path], List[Path]]:
    """A and B files matched by relative path without extension; unmatched files are an error."""
    files_a = require_images(dir_a, "paired A images")
    files_b = require_images(dir_b, "paired B images")

    def stem(path: Path, root: Path) -> str:
        return path.relative_to(root).with_suffix("").as_posix()

    by_stem_b = {stem(p, dir_b): p for p in files_b}
    missing = [str(p) for p in files_a if stem(p, dir_a) not in by_stem_b]
    if missing:
        raise DataLayoutError(
            f"{len(missing)} file(s) in '{dir_a}' have no file of the same name in '{dir_b}': "
            f"{format_names(missing)}. Paired A/B folders must hold files with matching names."
        )
    return files_a, [by_stem_b[stem(p, dir_a)] for p in files_a]


def sized_like_source(source: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """A pair of separate files: the target resized (bicubic) to the source's size when they differ."""
    if target.shape[-2:] != source.shape[-2:]:
        target = apply_geometry(target, Geometry(resize=tuple(source.shape[-2:])))
    return source, target


def side_by_side_channels(input_nc: int, output_nc: int) -> int:
    """The channels a side-by-side A|B file is decoded with: 1 only when both halves are gray."""
    return 1 if max(input_nc, output_nc) == 1 else 3


def split_side_by_side(
    both: torch.Tensor, path: object, direction: str, input_nc: int, output_nc: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(input, target) of a decoded side-by-side A|B image after ``direction``, at their channels.

    Args:
        both: the whole image, decoded with :func:`side_by_side_channels` channels.
        path: where it comes from, named in the error for an image too narrow to split.
        direction: ``AtoB`` (the left half is the input) or ``BtoA``.
        input_nc: channels of the input.
        output_nc: channels of the target.
    """
    left, right = split_halves(both, path)
    source, target = (right, left) if direction == "BtoA" else (left, right)
    return match_channels(source, input_nc), match_channels(target, output_nc)
