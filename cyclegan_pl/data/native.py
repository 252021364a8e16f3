"""Images at their stored precision and band count: 8/16-bit PNG, TIFF (any bands, integer or float), NumPy ``.npy``.

The photo path (:func:`~cyclegan_pl.data.image.read_image`) turns every file into 8-bit gray or
RGB, which is what photographs need. Scientific images (16-bit microscopy, float CT slices,
multispectral bands) must keep their values: :func:`read_native` returns a ``(C, H, W)`` tensor of
the stored numbers, in the dtype that holds them exactly and tells what they are:

* ``uint8`` for 8-bit data (the photo path's dtype: the modules map 0..255 the same way);
* ``int32`` for 16-bit integers (``uint16``, ``int16``);
* ``float64`` for float data (``float16``, ``float32``, ``float64``).

Every dtype but ``float32`` means "values in the data's own units", which a module maps to [-1, 1]
on its device (:mod:`cyclegan_pl.data.intensity`); ``float32`` batches are already in [-1, 1].

Layouts read: PNG gray or RGB at 8 or 16 bits (decoded by ``torchvision.io``, which keeps 16 bits
where PIL would reduce RGB to 8); TIFF through ``tifffile`` with axes ``YX``, ``YXS`` (samples
contiguous), ``SYX`` (planar) or one leading page axis (a stack of pages, one band each); ``.npy``
arrays of shape ``(H, W)`` or ``(H, W, C)`` (channels last, like images), read without pickle.
Sizes come from headers (:func:`native_info`) and are checked before any pixel is read.

:func:`write_native` writes ``(H, W, C)`` values as PNG (uint8 or uint16, 1 or 3 channels; 16-bit
RGB PNGs are encoded here, since neither PIL nor torchvision writes them), TIFF (any dtype and
band count) or ``.npy``, atomically.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image

from cyclegan_pl.errors import BadImageError, DataLayoutError, ImageTooLargeError, OptionError, UserError
from cyclegan_pl.files import atomic_file

PathLike = Union[str, "os.PathLike[str]"]

#: The stored dtypes read natively, by numpy name, and the tensor dtype that holds each exactly.
RAW_DTYPES = {
    "uint8": torch.uint8,
    "uint16": torch.int32,
    "int16": torch.int32,
    "float16": torch.float64,
    "float32": torch.float64,
    "float64": torch.float64,
}
#: What ``write_native`` can write: file ending -> dtypes.
WRITABLE = {
    ".png": ("uint8", "uint16"),
    ".tif": ("uint8", "uint16", "int16", "float32"),
    ".tiff": ("uint8", "uint16", "int16", "float32"),
    ".npy": ("uint8", "uint16", "int16", "float32"),
}
NATIVE_EXTENSIONS = (".png", ".tif", ".tiff", ".npy")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The most pixels an image may have (per band): PIL's decompression-bomb limit, doubled, as for photos.
_MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
_MAX_BANDS = 512


@dataclass(frozen=True)
class NativeInfo:
    """What a file holds, from its header: the stored dtype (numpy name), bands, height and width."""

    dtype: str
    channels: int
    height: int
    width: int


def native_info(path: PathLike) -> NativeInfo:
    """The stored dtype, band count and size of an image file, from its header only.

    Raises:
        ImageTooLargeError: more pixels or bands than the limits (checked before reading pixels).
        BadImageError: not a readable PNG, TIFF or ``.npy`` file, or a layout that is not an image.
    """
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".npy":
            info = _npy_info(path)
        elif suffix in (".tif", ".tiff"):
            info = _tiff_info(path)
        else:
            info = _pil_info(path)
    except (BadImageError, OptionError):
        raise
    except Exception as error:  # noqa: BLE001 - a bad file makes the readers raise many types
        raise BadImageError(path, f"{type(error).__name__}: {error}") from error
    return _checked_info(path, info)


def _checked_info(path: PathLike, info: NativeInfo) -> NativeInfo:
    if info.height * info.width > _MAX_PIXELS or info.channels > _MAX_BANDS:
        raise ImageTooLargeError(
            path,
            f"{info.height}x{info.width} pixels with {info.channels} bands, over the limit of {_MAX_PIXELS} "
            f"pixels and {_MAX_BANDS} bands",
        )
    if info.dtype not in RAW_DTYPES:
        raise BadImageError(path, f"its values are {info.dtype}; images are read natively as {', '.join(RAW_DTYPES)}")
    return info


def read_native(path: PathLike, expect: Optional[Callable[[NativeInfo], None]] = None) -> torch.Tensor:
    """The stored values of an image file as a ``(C, H, W)`` tensor (``uint8``, ``int32`` or ``float64``).

    Args:
        path: the file.
        expect: called with the file's :func:`native_info` before any pixel is read (it raises
            for a file that is not what the caller reads, e.g. another band count).

    Raises:
        BadImageError: unreadable, over the size limits, or float values that are NaN or infinite.
    """
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            info, array = _read_tiff(path, expect)  # one parse of the file for both
        else:
            info = native_info(path)
            if expect is not None:
                expect(info)
            if suffix == ".npy":
                array = np.load(path, allow_pickle=False)
                array = array[:, :, None] if array.ndim == 2 else array
            else:
                array = _read_png_or_pil(path)
    except (BadImageError, UserError):
        raise
    except Exception as error:  # noqa: BLE001 - as above
        raise BadImageError(path, f"{type(error).__name__}: {error}") from error
    if array.shape != (info.height, info.width, info.channels) or str(array.dtype) != info.dtype:
        raise BadImageError(path, f"its pixels do not match its header ({array.dtype} {array.shape})")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise BadImageError(path, f"{bad} of its values are NaN or infinite; replace them with numbers first")
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor.to(RAW_DTYPES[info.dtype])


def _npy_info(path: PathLike) -> NativeInfo:
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        # The header only: a literal dict parsed without eval of code, and no pickle.
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    if dtype.hasobject:
        raise BadImageError(path, "it holds Python objects, not numbers (such arrays are never loaded)")
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise BadImageError(path, f"its array has shape {shape}; an image array is (H, W) or (H, W, C)")
    return NativeInfo(str(dtype.newbyteorder("=")), int(shape[2]), int(shape[0]), int(shape[1]))


def _tiff_axes(series) -> Tuple[int, int, int]:
    """(bands, height, width) of a tifffile series, for the layouts read (see the module doc)."""
    axes, shape = series.axes, series.shape
    if axes == "YX":
        return 1, shape[0], shape[1]
    if axes == "YXS":
        return shape[2], shape[0], shape[1]
    if len(axes) == 3 and axes.endswith("YX"):
        return shape[0], shape[1], shape[2]
    raise ValueError(f"its axes are {axes} {tuple(shape)}; images are YX, YXS, SYX or one page axis before YX")


def _tiff_info(path: PathLike) -> NativeInfo:
    import tifffile

    with tifffile.TiffFile(path) as handle:
        series = handle.series[0]
        bands, height, width = _tiff_axes(series)
        return NativeInfo(str(series.dtype), int(bands), int(height), int(width))


def _read_tiff(path: PathLike, expect: Optional[Callable[[NativeInfo], None]]) -> Tuple[NativeInfo, np.ndarray]:
    import tifffile

    with tifffile.TiffFile(path) as handle:
        series = handle.series[0]
        bands, height, width = _tiff_axes(series)
        info = _checked_info(path, NativeInfo(str(series.dtype), int(bands), int(height), int(width)))
        if expect is not None:
            expect(info)
        array = series.asarray()
    if series.axes == "YX":
        return info, array[:, :, None]
    if series.axes == "YXS":
        return info, array
    return info, np.moveaxis(array, 0, -1)


def _pil_info(path: PathLike) -> NativeInfo:
    with open(path, "rb") as handle:
        head = handle.read(26)
    if head.startswith(_PNG_MAGIC) and len(head) == 26:
        width, height = struct.unpack(">II", head[16:24])
        bit_depth, colour_type = head[24], head[25]
        channels = {0: 1, 2: 3}.get(colour_type)
        if channels is None or bit_depth not in (8, 16):
            raise BadImageError(
                path,
                "it is a palette, alpha or low-bit PNG; read it as a photo (image_mode 8bit) or save it as "
                "8/16-bit gray or RGB",
            )
        return NativeInfo("uint16" if bit_depth == 16 else "uint8", channels, height, width)
    with Image.open(path) as image:
        width, height = image.size
        mode = image.mode
    modes = {"L": ("uint8", 1), "RGB": ("uint8", 3), "I;16": ("uint16", 1), "I;16B": ("uint16", 1), "F": ("float32", 1)}
    if mode not in modes:
        raise BadImageError(path, f"its mode {mode} has no native reading; read it as a photo (image_mode 8bit)")
    dtype, channels = modes[mode]
    return NativeInfo(dtype, channels, height, width)


def _read_png_or_pil(path: PathLike) -> np.ndarray:
    data = Path(path).read_bytes()
    if data.startswith(_PNG_MAGIC):
        from torchvision.io import ImageReadMode, decode_png

        decoded = decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
        array = decoded.permute(1, 2, 0).numpy()
        return array.astype(np.uint16) if decoded.dtype == torch.uint16 else array
    with Image.open(path) as image:
        array = np.asarray(image)
    return array[:, :, None] if array.ndim == 2 else array


def write_native(values: np.ndarray, path: PathLike, dtype: str) -> None:
    """Write ``(H, W, C)`` values (any numeric dtype) as a PNG, TIFF or ``.npy`` of ``dtype``, atomically.

    Integer dtypes round and clip to their range; ``float32`` keeps the values.

    Raises:
        OptionError: the file type cannot hold ``dtype`` or that many bands (the message says which can).
    """
    suffix = Path(path).suffix.lower()
    channels = values.shape[2]
    check_writable(suffix, dtype, channels)
    array = as_stored(values, dtype)
    with atomic_file(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, array if channels > 1 else array[:, :, 0], allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            photometric = "rgb" if channels == 3 and dtype in ("uint8", "uint16") else "minisblack"
            # Bands as contiguous samples of one page (axes YXS), not one page per row.
            options = {"planarconfig": "contig"} if channels > 1 else {}
            tifffile.imwrite(tmp, array if channels > 1 else array[:, :, 0], photometric=photometric, **options)
        elif dtype == "uint16":
            tmp.write_bytes(encode_png16(array))
        else:
            Image.fromarray(array if channels > 1 else array[:, :, 0]).save(tmp, format="PNG")


def check_writable(suffix: str, dtype: str, channels: int) -> None:
    """Whether a file type can hold ``channels`` bands of ``dtype``.

    Raises:
        OptionError: it cannot; the message names the file types that can.
    """
    suffix = "." + suffix.lower().lstrip(".")
    if suffix not in WRITABLE or dtype not in WRITABLE[suffix] or (suffix == ".png" and channels not in (1, 3)):
        able = [ext for ext, dtypes in WRITABLE.items() if dtype in dtypes and (ext != ".png" or channels in (1, 3))]
        raise OptionError(
            f"extension={suffix.lstrip('.')}: a {suffix} file cannot hold {channels} band(s) of {dtype}; use "
            f"{' or '.join(ext.lstrip('.') for ext in able)}.",
            option="extension",
        )


def as_stored(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` as ``dtype``: integers rounded to nearest and clipped to the dtype's range."""
    target = np.dtype(dtype)
    if target.kind in "ui":
        limits = np.iinfo(target)
        return np.clip(np.rint(values), limits.min, limits.max).astype(target)
    return values.astype(target)


def encode_png16(array: np.ndarray) -> bytes:
    """A 16-bit gray or RGB PNG of an ``(H, W, 1 or 3)`` uint16 array (filter 0, zlib level 6)."""
    height, width, channels = array.shape
    colour_type = {1: 0, 3: 2}[channels]
    rows = array.astype(">u2").reshape(height, width * channels).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return _PNG_MAGIC + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def require_native(path: PathLike, info: NativeInfo, dtype: str, channels: int, folder: str) -> None:
    """Every image of a domain read natively has the domain's dtype and band count.

    Raises:
        DataLayoutError: naming the file, what it holds and what the domain holds.
    """
    if info.dtype != dtype or info.channels != channels:
        raise DataLayoutError(
            f"'{path}' holds {info.channels} band(s) of {info.dtype}, but the {folder} images hold {channels} "
            f"band(s) of {dtype}: every image of a domain must have the same bands and dtype."
        )
