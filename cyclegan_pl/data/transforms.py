"""Geometric preprocessing on image tensors of stored values (uint8 for 8-bit images).

The output conventions are the reference code's (bicubic resizes, random crop, random
horizontal flip, ``ToTensor`` then ``Normalize(0.5, 0.5)`` into ``[-1, 1]``), but the work is done
on uint8 ``(C, H, W)`` tensors: ``torchvision.transforms.v2.functional.resize`` with bicubic
interpolation and ``antialias=True`` uses PIL's bicubic kernel (a = -0.5) and its rounding, so a
resize matches PIL's ``Image.resize(..., BICUBIC)`` to within one grey level on a few pixels
(mean absolute difference about 4e-5 after normalisation; ``tests/data/test_transforms.py``
checks it against a PIL pipeline). Crops and flips are views, and only the final crop is
converted to float: in the worker with ``dtype="float32"`` (:func:`as_batch_dtype`), or, with
``dtype="uint8"`` (what the data modules hand out), by the module on its device (its intensity
mapping, :mod:`cyclegan_pl.data.intensity`, through ``ImageTranslationModule.prepare_images``; the
same numbers). Images read natively (16-bit, float, multi-band; :mod:`cyclegan_pl.data.native`)
go through the same geometry in their own dtype.

A preprocess mode is a function registered in :data:`PREPROCESS` under its config name. It maps
the image size to a :class:`Geometry` (resize target, crop box); the flip is drawn separately.
Random choices come from an explicit :class:`torch.Generator`, so a dataset can make them
depend only on (seed, epoch, index).

Training (``train=True``) versus evaluation (``train=False``; validation, test, sample grids):

* evaluation never flips and never crops at random; like the reference test options it uses
  ``load_size = crop_size``: ``resize_and_crop`` resizes straight to ``crop_size`` x
  ``crop_size``, ``scale_width`` and ``scale_width_and_crop`` scale the width to ``crop_size``,
  and the crops of ``crop`` and ``scale_width_and_crop`` are centre crops;
* ``crop`` on an image smaller than ``crop_size`` first scales it up (bicubic, keeping its aspect)
  until the short side equals ``crop_size``; the reference code would fail there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Tuple

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cyclegan_pl.errors import OptionError
from cyclegan_pl.registry import Registry

#: (top, left, height, width) of a crop, in the coordinates of the resized image.
CropBox = Tuple[int, int, int, int]


@dataclass(frozen=True)
class Geometry:
    """What to do with one image: resize to ``resize`` (H, W), then crop ``crop``, then flip."""

    resize: Optional[Tuple[int, int]] = None
    crop: Optional[CropBox] = None
    flip: bool = False


@dataclass(frozen=True)
class SizeOptions:
    """The size options a preprocess mode reads."""

    load_size: int
    crop_size: int
    train: bool


PreprocessFn = Callable[[int, int, SizeOptions, Optional[torch.Generator]], Geometry]

#: Preprocess modes by config name: ``fn(height, width, options, generator) -> Geometry``.
PREPROCESS: Registry[PreprocessFn] = Registry("preprocess mode")


def _randint(high: int, generator: Optional[torch.Generator]) -> int:
    """A uniform integer in ``[0, high]``."""
    if high <= 0:
        return 0
    return int(torch.randint(high + 1, (1,), generator=generator).item())


def _crop_box(height: int, width: int, size: int, train: bool, generator: Optional[torch.Generator]) -> CropBox:
    """A ``size`` x ``size`` box: random when training, centred otherwise."""
    if train:
        top, left = _randint(height - size, generator), _randint(width - size, generator)
    else:
        top, left = (height - size) // 2, (width - size) // 2
    return max(top, 0), max(left, 0), min(size, height), min(size, width)


def _scale_width(height: int, width: int, target_width: int, min_height: int) -> Tuple[int, int]:
    """The reference's ``__scale_width``: width to ``target_width``, height never below ``min_height``."""
    if width == target_width and height >= min_height:
        return height, width
    return max(int(target_width * height / width), min_height), target_width


@PREPROCESS.register("resize_and_crop")
def resize_and_crop(
    height: int, width: int, options: SizeOptions, generator: Optional[torch.Generator] = None
) -> Geometry:
    """Resize to ``load_size`` x ``load_size`` (bicubic), then crop ``crop_size`` at random."""
    if not options.train:
        side = options.crop_size
        return Geometry(resize=(side, side))
    side = options.load_size
    return Geometry(resize=(side, side), crop=_crop_box(side, side, options.crop_size, True, generator))


@PREPROCESS.register("crop")
def crop(height: int, width: int, options: SizeOptions, generator: Optional[torch.Generator] = None) -> Geometry:
    """Crop ``crop_size`` at the original scale (images smaller than that are scaled up first)."""
    size = options.crop_size
    resize = None
    if min(height, width) < size:
        scale = size / min(height, width)
        height, width = max(size, round(height * scale)), max(size, round(width * scale))
        resize = (height, width)
    return Geometry(resize=resize, crop=_crop_box(height, width, size, options.train, generator))


@PREPROCESS.register("scale_width")
def scale_width(height: int, width: int, options: SizeOptions, generator: Optional[torch.Generator] = None) -> Geometry:
    """Scale the width to ``load_size`` keeping the aspect ratio (height at least ``crop_size``)."""
    target = options.load_size if options.train else options.crop_size
    new = _scale_width(height, width, target, options.crop_size)
    return Geometry(resize=None if new == (height, width) else new)


@PREPROCESS.register("scale_width_and_crop")
def scale_width_and_crop(
    height: int, width: int, options: SizeOptions, generator: Optional[torch.Generator] = None
) -> Geometry:
    """``scale_width``, then crop ``crop_size`` x ``crop_size``."""
    scaled = scale_width(height, width, options, generator)
    new_height, new_width = scaled.resize or (height, width)
    box = _crop_box(new_height, new_width, options.crop_size, options.train, generator)
    return Geometry(resize=scaled.resize, crop=box)


@PREPROCESS.register("none")
def no_resize(height: int, width: int, options: SizeOptions, generator: Optional[torch.Generator] = None) -> Geometry:
    """Keep the size, only rounding each side to a multiple of 4 (bicubic) as the ResNet needs."""
    new = (_round_to_multiple(height, 4), _round_to_multiple(width, 4))
    return Geometry(resize=None if new == (height, width) else new)


def _round_to_multiple(value: int, base: int) -> int:
    return max(base, int(round(value / base) * base))


#: What the datasets hand out: ``uint8``, the stored values (uint8 for 8-bit images, a quarter of
#: the bytes of float between processes and to the device; int32 / float64 for native 16-bit /
#: float images), which the modules normalise on their device; or ``float32`` (8-bit images only),
#: already in [-1, 1].
BatchDtype = Literal["uint8", "float32"]

#: The batch keys that hold images.
IMAGE_KEYS = ("A", "B", "image")


def to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[-1, 1]``, i.e. ``ToTensor`` then ``Normalize(0.5, 0.5)``."""
    return image.to(torch.float32).mul_(2.0 / 255.0).sub_(1.0)


def as_batch_dtype(image: torch.Tensor, dtype: BatchDtype) -> torch.Tensor:
    """An image as a dataset hands it out: 8-bit images normalised for ``float32``; otherwise the
    stored values, contiguous (the modules map them to [-1, 1] on their device)."""
    return to_float(image) if dtype == "float32" and image.dtype == torch.uint8 else image.contiguous()


def apply_geometry(image: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Resize, crop and flip a ``(..., C, H, W)`` tensor of stored values; returns the same dtype.

    uint8 images are resized as they are (PIL's bicubic and rounding); the native dtypes
    (:mod:`cyclegan_pl.data.native`) in their float precision, ``int32`` (16-bit data) in float32
    and rounded back to whole numbers (bicubic overshoot near edges may leave the stored range by
    a few units; the writers clip).
    """
    if geometry.resize is not None and tuple(image.shape[-2:]) != tuple(geometry.resize):
        size = list(geometry.resize)
        if image.dtype == torch.uint8 or image.dtype.is_floating_point:
            image = TF.resize(image, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
        else:  # 16-bit integers are exact in float32, and its rounding error is far below one step
            resized = TF.resize(image.to(torch.float32), size, interpolation=InterpolationMode.BICUBIC, antialias=True)
            image = resized.round_().to(image.dtype)
    if geometry.crop is not None:
        top, left, height, width = geometry.crop
        image = image[..., top : top + height, left : left + width]
    if geometry.flip:
        image = image.flip(-1)
    return image


class ImageTransform:
    """Preprocess + flip + normalise, drawing its random choices from a given generator.

    Args:
        preprocess: a name in :data:`PREPROCESS`.
        load_size: resize target of ``resize_and_crop`` / ``scale_width*`` when training.
        crop_size: crop size (and, when evaluating, the resize target).
        flip: random horizontal flips when training.
        train: training (random crop and flip) or evaluation (deterministic; see module doc).
        dtype: ``float32`` returns images normalised to [-1, 1]; ``uint8`` returns them in
            [0, 255] for normalisation on the device (:func:`as_model_input`).
    """

    def __init__(
        self,
        preprocess: str = "resize_and_crop",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
        dtype: BatchDtype = "float32",
    ) -> None:
        if dtype not in ("uint8", "float32"):
            raise OptionError(f"dtype={dtype!r}: use 'uint8' or 'float32'.", option="dtype")
        self.dtype = dtype
        self.preprocess_name = preprocess
        self.preprocess = PREPROCESS.get(preprocess)
        if crop_size <= 0 or load_size <= 0:
            raise OptionError(
                f"load_size={load_size}, crop_size={crop_size}: both must be positive.",
                option=("load_size", "crop_size"),
            )
        if train and preprocess in ("resize_and_crop", "scale_width_and_crop") and load_size < crop_size:
            raise OptionError(
                f"load_size={load_size} must be >= crop_size={crop_size} for preprocess={preprocess}: the crop is "
                "taken from the image resized to load_size.",
                option=("load_size", "crop_size"),
            )
        self.options = SizeOptions(load_size=load_size, crop_size=crop_size, train=train)
        self.flip = flip and train
        self.train = train

    def sample(self, height: int, width: int, generator: Optional[torch.Generator] = None) -> Geometry:
        """Draw the geometry for an image of this size (crop first, then the flip)."""
        geometry = self.preprocess(height, width, self.options, generator)
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            geometry = Geometry(resize=geometry.resize, crop=geometry.crop, flip=True)
        return geometry

    def apply(self, image: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Apply a sampled geometry to a uint8 image (and normalise it to ``[-1, 1]`` for float32)."""
        return as_batch_dtype(apply_geometry(image, geometry), self.dtype)

    def __call__(self, image: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.apply(image, self.sample(image.shape[-2], image.shape[-1], generator))

    def apply_same(
        self, images: Sequence[torch.Tensor], generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, ...]:
        """Transform several images of the same size with one geometry (paired halves)."""
        geometry = self.sample(images[0].shape[-2], images[0].shape[-1], generator)
        return tuple(self.apply(image, geometry) for image in images)

    def __repr__(self) -> str:
        return (
            f"ImageTransform(preprocess={self.preprocess_name!r}, load_size={self.options.load_size}, "
            f"crop_size={self.options.crop_size}, flip={self.flip}, train={self.train}, dtype={self.dtype!r})"
        )
