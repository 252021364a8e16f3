"""Finding and decoding image files into uint8 tensors.

:func:`read_image` returns a ``(C, H, W)`` uint8 tensor with ``C`` = 3 (RGB) or 1 (grayscale)
whatever the file holds, with its EXIF orientation applied:

* JPEG and 8-bit gray/RGB PNG files (nearly every dataset) are decoded by ``torchvision.io``
  straight into a tensor, which is several times faster than PIL + ``ToTensor``. CMYK JPEGs and
  EXIF orientation are handled by torchvision identically to PIL.
* Everything else goes through PIL (:func:`pil_to_tensor`): BMP, TIFF, WebP, palette and alpha
  PNGs, 16-bit images, CMYK TIFFs, and any file the fast path fails on (so the error that reaches
  the user is PIL's, naming the file).

Conversion rules (documented choices):

* 16-bit images (PIL modes ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) are scaled to 8 bits,
  ``round(v / 257)``, so 65535 is white and 32768 mid-gray; they are never clipped at 255. Mode
  ``I`` (32-bit integer, which is how PIL often represents 16-bit data) is read the same way:
  values are clipped to 0..65535 and scaled by 1/257.
* Alpha (``RGBA``, ``LA``, ``PA``, palette images with a transparent colour) is composited on a
  white background, so transparent areas have a defined colour instead of whatever RGB happens
  to be stored under them (the reference code's ``convert("RGB")`` just drops alpha).
* Grayscale output (``channels=1``) uses ITU-R 601 luma, like PIL's ``convert("L")``. JPEGs are
  decoded to gray by libjpeg directly (their luma channel), which can differ from PIL's
  RGB-then-gray by a couple of levels.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from cyclegan_pl.data.native import native_info
from cyclegan_pl.errors import BadImageError, DataLayoutError, ImageTooLargeError, OptionError
from cyclegan_pl.files import atomic_file

# torchvision 0.29 deprecates its decoders in favour of TorchCodec (a DeprecationWarning on every
# call, silenced below); they remain the fastest way to get a uint8 tensor from a JPEG/PNG today.
# Without them everything goes through PIL.
try:
    from torchvision.io import ImageReadMode, decode_jpeg, decode_png
except ImportError:  # a torchvision without image decoders
    decode_jpeg = decode_png = None  # type: ignore[assignment]

PathLike = Union[str, "os.PathLike[str]"]

#: File name endings read as images (compared case-insensitively).
IMAGE_EXTENSIONS: Tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".gif",
    ".npy",
)

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# ITU-R 601 luma weights, the ones PIL's convert("L") uses.
_LUMA = (0.299, 0.587, 0.114)


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` has an image extension (any letter case); hidden files are not images."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: PathLike, recursive: bool = True, exclude: Sequence[PathLike] = ()) -> List[Path]:
    """Image files under ``folder``, sorted by their path relative to it.

    Non-image files and hidden entries are ignored. The order is deterministic (sorted relative
    paths), so the same folder always gives the same indices. Folder links are followed, but each
    real folder is read once: a link back into the tree (``trainA/loop -> .``) would otherwise
    repeat every image, or never end; such links are skipped with one warning.

    Args:
        folder: the folder to search.
        recursive: also search sub-folders.
        exclude: folders left out with everything below them (e.g. an output folder that lies
            inside the input folder).
    """
    folder = Path(folder)
    excluded = {os.path.realpath(path) for path in exclude}
    found: List[Path] = []
    if not recursive:
        found = [p for p in folder.iterdir() if p.is_file() and is_image_file(p.name)]
    else:
        visited: Set[str] = set()
        repeated: List[str] = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in visited:
                repeated.append(dirpath)
                dirnames[:] = []
                continue
            visited.add(real)
            dirnames[:] = [
                d
                for d in dirnames
                if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) not in excluded
            ]
            found.extend(Path(dirpath, f) for f in filenames if is_image_file(f))
        if repeated:
            warnings.warn(
                f"Skipped {len(repeated)} folder link(s) under '{folder}' leading to folders already read "
                f"(e.g. '{repeated[0]}'): each folder's images are listed once.",
                stacklevel=2,
            )
    found.sort(key=lambda p: p.relative_to(folder).as_posix())
    return found


def read_image(path: PathLike, channels: int = 3) -> torch.Tensor:
    """Decode an image file into a ``(channels, H, W)`` uint8 tensor.

    Args:
        path: the image file.
        channels: 3 for RGB or 1 for grayscale.

    Raises:
        BadImageError: the file is missing, corrupt, truncated or not an image.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise BadImageError(path, str(error)) from error
    fast = _decode_fast(data, channels)
    if fast is not None:
        return fast
    return _decode_pil(path, channels)


def decode_image(data: bytes, channels: int = 3, name: PathLike = "image") -> torch.Tensor:
    """Decode the bytes of an image file as :func:`read_image` decodes the file (same rules).

    Args:
        data: the whole content of an image file.
        channels: 3 for RGB or 1 for grayscale.
        name: what the bytes are (e.g. where they were stored), named in errors.

    Raises:
        BadImageError: the bytes are corrupt, truncated or not an image.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    fast = _decode_fast(data, channels)
    if fast is not None:
        return fast
    return _decode_pil(name, channels, source=io.BytesIO(data))


def read_image_size(path: PathLike) -> Tuple[int, int]:
    """``(height, width)`` of an image after EXIF orientation, read from its header only.

    Raises:
        ImageTooLargeError: the image has more than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels.
        BadImageError: the file is missing, corrupt or not an image.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if _orientation(image) in (5, 6, 7, 8):
                width, height = height, width
    except Exception as error:  # PIL raises many types for bad files
        raise _image_error(path, error) from error
    return height, width


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation of an opened image, from what precedes its pixel data.

    A PNG's eXIf chunk counts only before the image data, as libpng (torchvision's decoder) and
    browsers read it: looking for one after would decode the whole image (PIL loads it to reach
    the later chunks), which reading a size from a header must never do.
    """
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(_EXIF_ORIENTATION, 1)


_BOMB_NUMBERS = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


def _image_error(path: PathLike, error: Exception) -> BadImageError:
    """The error to raise for what PIL raised on ``path``: too large, or unreadable."""
    if isinstance(error, Image.DecompressionBombError):
        numbers = _BOMB_NUMBERS.search(str(error))
        reason = f"{numbers[1]} pixels, over the limit of {numbers[2]} pixels" if numbers else str(error).rstrip(".")
        return ImageTooLargeError(path, reason)
    return BadImageError(path, f"{type(error).__name__}: {error}")


def quick_check(path: PathLike) -> Optional[str]:
    """A cheap integrity check without decoding pixels; returns the problem or ``None``.

    Parses the header with PIL, runs PIL's ``verify`` (chunk CRCs for PNG), and checks that a
    JPEG ends with its end-of-image marker, which catches truncated downloads. ``.npy`` arrays get
    their header read. Corruption inside compressed data is only found when the file is decoded.
    """
    if Path(path).suffix.lower() == ".npy":
        try:
            native_info(path)
        except BadImageError as error:
            return error.reason
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if data.startswith(_JPEG_MAGIC) and not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            return "truncated JPEG (no end-of-image marker)"
        with Image.open(path) as image:
            image.verify()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _decode_fast(data: bytes, channels: int) -> Optional[torch.Tensor]:
    """torchvision decoding for JPEG and 8-bit gray/RGB PNG; ``None`` means "use PIL"."""
    if decode_jpeg is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _decode_torchvision(data, channels)


def _decode_torchvision(data: bytes, channels: int) -> Optional[torch.Tensor]:
    try:
        if data.startswith(_JPEG_MAGIC):
            mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
            return decode_jpeg(_as_tensor(data), mode=mode, apply_exif_orientation=True)
        if data.startswith(_PNG_MAGIC) and len(data) > 26:
            bit_depth, colour_type = data[24], data[25]
            # colour type 0 = gray, 2 = RGB; palette and alpha PNGs take the PIL path.
            if bit_depth == 8 and colour_type in (0, 2):
                image = decode_png(_as_tensor(data), mode=ImageReadMode.UNCHANGED, apply_exif_orientation=True)
                return match_channels(image, channels)
    except RuntimeError:
        # Let PIL try: it reads some files libjpeg/libpng reject, and otherwise raises the
        # error that names the problem.
        return None
    return None


def _as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _decode_pil(path: PathLike, channels: int, source: Optional[io.BytesIO] = None) -> torch.Tensor:
    try:
        with Image.open(path if source is None else source) as image:
            _note_first_frame_only(path, image)
            if _orientation(image) != 1:  # the orientation read_image_size saw, and no other
                image = ImageOps.exif_transpose(image)
            return pil_to_tensor(image, channels)
    except BadImageError:
        raise
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for bad files
        raise _image_error(path, error) from error


_ANIMATED_NOTED: Set[str] = set()


def _note_first_frame_only(path: PathLike, image: Image.Image) -> None:
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and str(path) not in _ANIMATED_NOTED:
        _ANIMATED_NOTED.add(str(path))
        warnings.warn(
            f"'{path}' holds {frames} frames (an animation or a multi-page file): using the first.", stacklevel=4
        )


def pil_to_tensor(image: Image.Image, channels: int = 3) -> torch.Tensor:
    """Convert a PIL image of any mode to a ``(channels, H, W)`` uint8 tensor (rules above)."""
    image.load()
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image).astype(np.float64)
        if values.ndim == 3:  # e.g. multi-band 16-bit TIFF
            values = values[..., :3]
        gray = np.clip(np.rint(np.clip(values, 0, 65535) / 257.0), 0, 255).astype(np.uint8)
        tensor = torch.from_numpy(gray)
        tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
        return match_channels(tensor, channels)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        image = _composite_on_white(image)
    elif mode == "L" or mode == "RGB":
        pass
    elif mode in ("1", "F", "I;16S") or mode.startswith("I;"):
        image = image.convert("L")
    else:  # CMYK, P, YCbCr, LAB, HSV ...
        image = image.convert("RGB")
    if channels == 1 and image.mode != "L":
        image = image.convert("L")
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8))
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
    return match_channels(tensor, channels)


def _composite_on_white(image: Image.Image) -> Image.Image:
    gray = image.mode in ("LA", "La")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat = Image.alpha_composite(background, rgba).convert("RGB")
    return flat.convert("L") if gray else flat


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Turn a ``(1 or 3, H, W)`` uint8 tensor into ``channels`` channels (gray <-> RGB)."""
    have = image.shape[0]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return image.expand(3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=torch.float32).view(3, 1, 1)
        luma = (image.float() * weights).sum(0, keepdim=True)
        return luma.round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert a {have}-channel image to {channels} channels")


def split_halves(image: torch.Tensor, path: Optional[PathLike] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Left and right halves of a side-by-side ``A|B`` image (``(C, H, 2W)`` -> two ``(C, H, W)``).

    Args:
        image: the whole image.
        path: its file, named in the error for an image too narrow to split.

    Raises:
        DataLayoutError: the image is less than 2 pixels wide.
    """
    half = image.shape[-1] // 2
    if half == 0:
        raise DataLayoutError(
            f"Image '{path or 'given'}' is {image.shape[-1]} pixel wide: a side-by-side A|B pair needs "
            "A on the left half and B on the right half; remove it or use A/ and B/ sub-folders."
        )
    return image[..., :half], image[..., half : 2 * half]


def require_images(
    folder: PathLike,
    what: str = "images",
    expected: Optional[str] = None,
    hint: Optional[str] = None,
    max_size: Optional[int] = None,
    exclude: Sequence[PathLike] = (),
) -> List[Path]:
    """The sorted image files under ``folder`` (recursive), or a :class:`DataLayoutError`.

    Args:
        folder: the folder to list (a single image file is returned as a one-item list).
        what: what the folder should hold, for the message (e.g. "domain A training images").
        expected: the expected layout, appended to the message.
        hint: how to get the data (e.g. the download command), appended to the message.
        max_size: keep only the first ``max_size`` files.
        exclude: folders left out (see :func:`list_images`).
    """
    folder = Path(folder)
    if folder.is_file():
        files = [folder]
    elif not folder.is_dir():
        raise DataLayoutError(_layout_message(f"Folder '{folder}' ({what}) does not exist.", expected, hint))
    else:
        files = list_images(folder, exclude=exclude)
        if not files:
            raise DataLayoutError(
                _layout_message(
                    f"Folder '{folder}' ({what}) holds no image files ({', '.join(IMAGE_EXTENSIONS)}).",
                    expected,
                    hint,
                )
            )
    return files[:max_size] if max_size is not None else files


def _layout_message(problem: str, expected: Optional[str], hint: Optional[str]) -> str:
    parts = [problem]
    if expected:
        parts.append(f"Expected layout: {expected}.")
    if hint:
        parts.append(hint)
    return " ".join(parts)


# --- writing ------------------------------------------------------------------------------------


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Map images from the networks' [-1, 1] to [0, 1] (float32, clamped)."""
    return ((images.detach().float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """One (C, H, W) image in [-1, 1] (or already uint8) -> (H, W, C) or (H, W) uint8 array for PIL.

    The scaling truncates like the reference code's ``tensor2im`` (``(x + 1) / 2 * 255`` cast
    to uint8), so equal network outputs give byte-identical files.
    """
    if image.dim() != 3:
        raise ValueError(f"expected one (C, H, W) image, got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:  # already 8-bit (a data module's batch): written as it is
        return image.detach().cpu().permute(1, 2, 0).squeeze(2).numpy()
    channels, height, width = image.shape
    array = np.empty((height, width, channels), dtype=np.uint8)
    # In bands of rows, so a huge image needs no float copies of its own size.
    for top in range(0, height, _ROWS_AT_ONCE):
        rows = image[:, top : top + _ROWS_AT_ONCE].detach().float().cpu()
        scaled = ((rows + 1.0) / 2.0 * 255.0).clamp_(0.0, 255.0)
        array[top : top + _ROWS_AT_ONCE] = scaled.to(torch.uint8).permute(1, 2, 0).numpy()
    if channels == 1:
        return array[:, :, 0]
    return array


_ROWS_AT_ONCE = 256


def write_image(array: np.ndarray, path: PathLike, image_format: Optional[str] = None) -> None:
    """Write an (H, W) or (H, W, C) uint8 array as an image file, atomically.

    Args:
        array: the pixels.
        path: the file; its folder is created.
        image_format: PIL's format name (default: from the extension, see :func:`pil_format_for`).
    """
    image_format = image_format or pil_format_for(Path(path).suffix)
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        Image.fromarray(array).save(handle, format=image_format)


def pil_format_for(extension: str) -> str:
    """PIL's format name for a file extension such as ``png`` or ``.jpg``.

    Raises:
        OptionError: PIL cannot write that type; the message lists the types it can.
    """
    suffix = "." + extension.lower().lstrip(".")
    writable = {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}
    if suffix not in writable:
        known = ", ".join(sorted(ext.lstrip(".") for ext in writable))
        raise OptionError(f"extension {extension!r} is not an image type that can be written; use one of: {known}.")
    return writable[suffix]
