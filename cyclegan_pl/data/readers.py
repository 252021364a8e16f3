"""How a domain's image files are read: as 8-bit photos, or natively (stored precision and bands).

Which one (``image_mode``):

* ``8bit``: every file becomes 8-bit gray or RGB (:func:`~cyclegan_pl.data.image.read_image`: EXIF
  orientation, alpha on white, 16-bit scaled to 8 bits, gray <-> RGB as asked). Photographs.
* ``native``: every file's stored values and bands (:func:`~cyclegan_pl.data.native.read_native`),
  which must be the same dtype and band count for every file of the domain.
* ``auto``: ``native`` when the domain's first file is not 8-bit, has other than 1 or 3 bands, or
  is a ``.npy`` array; ``8bit`` otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence, Tuple, Union

import torch

from cyclegan_pl.data.image import read_image, read_image_size
from cyclegan_pl.data.intensity import IntensityMapping
from cyclegan_pl.data.native import native_info, read_native, require_native
from cyclegan_pl.errors import BadImageError, OptionError

ImageMode = Literal["auto", "8bit", "native"]
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ImageReader:
    """Reads a domain's files into ``(channels, H, W)`` tensors of stored values.

    Args:
        channels: bands per image (1 or 3 for 8-bit photos; any count natively).
        dtype: None for 8-bit photos; the stored dtype every file must have, for native reading.
        what: the domain's images, named in errors (e.g. "domain A").
    """

    channels: int = 3
    dtype: Optional[str] = None
    what: str = "images"

    def __post_init__(self) -> None:
        if self.dtype is None and self.channels not in (1, 3):
            raise OptionError(
                f"channels={self.channels}: 8-bit photos are read as 1 (gray) or 3 (RGB) channels; other band "
                "counts are read natively (image_mode=native).",
                option="image_mode",
            )

    @property
    def native(self) -> bool:
        return self.dtype is not None

    def __call__(self, path: PathLike) -> torch.Tensor:
        if self.dtype is None:
            return read_image(path, self.channels)
        return read_native(path, lambda info: require_native(path, info, self.dtype, self.channels, self.what))

    def size(self, path: PathLike) -> Tuple[int, int]:
        """(height, width) from the header."""
        if self.dtype is None:
            return read_image_size(path)
        info = native_info(path)
        return info.height, info.width

    def check_all(self, files: Sequence[PathLike]) -> None:
        """Native reading: every file has the domain's dtype and bands (one line naming the first that has not)."""
        if self.dtype is None:
            return
        for path in files:
            require_native(path, native_info(path), self.dtype, self.channels, self.what)


def choose_reader(
    mode: ImageMode, first_file: PathLike, channels: int, what: str, option: str = "channels"
) -> ImageReader:
    """The reader of a domain whose first file is ``first_file`` (see the module doc).

    Args:
        mode: ``auto``, ``8bit`` or ``native``.
        first_file: the domain's first image.
        channels: the bands the model takes.
        what: the domain's images, named in errors.
        option: the argument that sets ``channels`` (``input_nc``...), named in errors.

    Raises:
        OptionError: native reading, and the first file has another band count than ``channels``.
    """
    if mode == "8bit":
        return ImageReader(channels, None, what)
    if mode == "auto" and Path(first_file).suffix.lower() != ".npy":
        try:
            info = native_info(first_file)
        except BadImageError:
            return ImageReader(channels, None, what)  # a photo format native reading does not take
        if info.dtype == "uint8" and info.channels in (1, 3) and channels in (1, 3):
            return ImageReader(channels, None, what)
    info = native_info(first_file)
    if info.channels != channels:
        raise OptionError(
            f"{option}={channels}, but '{first_file}' ({what}) holds {info.channels} band(s) of {info.dtype}: set "
            f"{option}={info.channels} on the data module and the model.",
            option=option,
        )
    return ImageReader(channels, info.dtype, what)


def as_reader(channels_or_reader: Union[int, ImageReader], what: str = "images") -> ImageReader:
    """A reader: given, or the 8-bit photo reader of that many channels."""
    if isinstance(channels_or_reader, ImageReader):
        return channels_or_reader
    return ImageReader(int(channels_or_reader), None, what)


def reader_for(mapping: IntensityMapping, what: str = "images") -> ImageReader:
    """The reader of images of a model's domain, from its intensity mapping: 8-bit photos for 8-bit
    gray/RGB data, native reading of the mapping's dtype and bands otherwise."""
    photo = mapping.dtype == "uint8" and mapping.channels in (1, 3)
    return ImageReader(mapping.channels, None if photo else mapping.dtype, what)


def image_size(path: PathLike) -> Tuple[int, int]:
    """(height, width) of any image file read here (a photo format's or a native one's), from its header."""
    if Path(path).suffix.lower() == ".npy":
        info = native_info(path)
        return info.height, info.width
    try:
        return read_image_size(path)
    except BadImageError:
        info = native_info(path)  # e.g. a float or multi-band TIFF PIL cannot open
        return info.height, info.width
