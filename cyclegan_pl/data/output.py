"""How translated images are written: 8-bit as always for 8-bit data, the data's own units otherwise.

A model's output is in [-1, 1]; its output domain's intensity mapping
(:mod:`cyclegan_pl.data.intensity`) gives the values back in the data's units. ``depth`` chooses
what is written:

* ``auto``: 8-bit images for 8-bit data (truncated as the reference's ``tensor2im``, byte for byte
  what the package always wrote); the stored dtype otherwise (``uint16`` for 16-bit data, ``int16``,
  ``float32`` for float data), in the data's units;
* ``uint8``: an 8-bit rendering of the [-1, 1] range, whatever the data;
* ``uint16`` / ``float32``: the data's units in that dtype (integers rounded and clipped).

The file type follows ``extension`` (``png``, ``tif``, ``npy``, or any type PIL writes for 8-bit
gray/RGB); by default PNG where it can hold the result (8/16-bit, 1 or 3 bands), TIFF otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Tuple

import numpy as np
from torch import Tensor

from cyclegan_pl.data.image import pil_format_for, to_uint8, write_image
from cyclegan_pl.data.intensity import IntensityMapping
from cyclegan_pl.data.native import WRITABLE, check_writable, write_native
from cyclegan_pl.errors import OptionError

OutputDepth = Literal["auto", "uint8", "uint16", "float32"]
# What the stored dtypes are written as when depth is auto.
_AUTO_DTYPE = {"uint8": "uint8", "uint16": "uint16", "int16": "int16"}


@dataclass(frozen=True)
class OutputFormat:
    """The dtype and file type translated images are written in (see the module doc).

    Args:
        depth: ``auto``, ``uint8``, ``uint16`` or ``float32``.
        extension: the file type (``png``, ``tif``, ``npy``, ``jpg``...); None chooses PNG where it
            can hold the image, else TIFF.
    """

    depth: OutputDepth = "auto"
    extension: Optional[str] = None

    def __post_init__(self) -> None:
        if self.extension is not None:
            suffix = "." + self.extension.lower().lstrip(".")
            if suffix not in WRITABLE:
                pil_format_for(self.extension)  # raises for a type nothing here writes
                if self.depth not in ("auto", "uint8"):
                    check_writable(suffix, self.depth, 1)

    def resolve(self, mapping: IntensityMapping) -> Tuple[str, str, bool]:
        """(dtype, extension with its dot, 8-bit rendering?) for images of ``mapping``'s domain.

        Raises:
            OptionError: ``extension`` cannot hold that dtype or that many bands.
        """
        rendering = self.depth == "uint8" or (self.depth == "auto" and mapping.is_8bit)
        if rendering:
            dtype = "uint8"
        elif self.depth == "auto":
            dtype = _AUTO_DTYPE.get(mapping.dtype, "float32")
        else:
            dtype = self.depth
        channels = mapping.channels
        if self.extension is None:
            suffix = ".png" if dtype in WRITABLE[".png"] and channels in (1, 3) else ".tif"
        else:
            suffix = "." + self.extension.lower().lstrip(".")
        if suffix in WRITABLE:
            check_writable(suffix, dtype, channels)
        elif dtype != "uint8" or channels not in (1, 3):
            raise OptionError(
                f"extension={suffix.lstrip('.')} holds 8-bit gray or RGB images; these are {channels} band(s) of "
                f"{dtype}: use png, tif or npy (or depth=uint8 for an 8-bit rendering of 1 or 3 bands).",
                option="extension",
            )
        return dtype, suffix, rendering

    def write(self, image: Tensor, mapping: IntensityMapping, path: Path) -> Path:
        """Write one (C, H, W) image in [-1, 1] of ``mapping``'s domain to ``path`` with the resolved
        extension (replacing ``path``'s), atomically; returns the file."""
        dtype, suffix, rendering = self.resolve(mapping)
        target = Path(path).with_suffix(suffix)
        if rendering and suffix not in (".tif", ".tiff", ".npy"):
            write_image(to_uint8(image), target, pil_format_for(suffix))
            return target
        if rendering:
            values = np.atleast_3d(to_uint8(image)).astype(np.float64)
        else:
            values = mapping.denormalize(image.detach().cpu()).permute(1, 2, 0).numpy()
        write_native(values, target, dtype)
        return target
