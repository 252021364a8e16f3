"""How a domain's stored values map to the networks' [-1, 1], band by band, and back.

An :class:`IntensityMapping` holds, per band, the stored value that becomes -1 (``low``) and the one
that becomes +1 (``high``), and the stored dtype. Three ways to choose them (``normalization``):

* ``dtype``: the dtype's full range (0..255 for 8-bit data, the photo path's mapping; 0..65535 for
  ``uint16``; -32768..32767 for ``int16``). Float data has no such range: use one of the others.
* ``range``: one fixed ``(low, high)`` for every band, e.g. ``(0, 4095)`` for 12-bit cameras or
  ``(-1000, 3000)`` Hounsfield units.
* ``percentile``: per band, the ``(p_low, p_high)`` percentiles (e.g. 0.5 and 99.5) of every
  value of the training images, computed once (:func:`percentile_mapping`): exactly, from value
  histograms, for integer data; exactly for float data up to :data:`MAX_FLOAT_VALUES` values per
  band, above that from evenly spaced values of each image (an approximation, bounded in memory).

Values outside ``(low, high)`` are not clipped on the way in (they map beyond [-1, 1]); on the way
out :meth:`IntensityMapping.denormalize` gives values in the data's units, which the writers round
and clip to the output dtype. The mapping is part of a trained model: modules keep one per domain
(``A`` and ``B``) in their checkpoints and saved folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Literal, Optional, Sequence, Tuple

import numpy as np
import torch

from cyclegan_pl.data.transforms import to_float
from cyclegan_pl.errors import OptionError

Normalization = Literal["dtype", "range", "percentile"]

#: Float bands with more values than this get their percentiles from evenly spaced values.
MAX_FLOAT_VALUES = 1 << 24


@dataclass(frozen=True)
class IntensityMapping:
    """Per band: stored value ``low`` -> -1, ``high`` -> +1 (see the module doc).

    Attributes:
        dtype: the stored dtype (numpy name: ``uint8``, ``uint16``, ``int16``, ``float32``...).
        low: per band, the value that maps to -1.
        high: per band, the value that maps to +1.
    """

    dtype: str
    low: Tuple[float, ...]
    high: Tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError(f"low and high need one value per band, got {self.low} and {self.high}")
        for low, high in zip(self.low, self.high, strict=True):
            if not (np.isfinite(low) and np.isfinite(high) and high > low):
                raise OptionError(
                    f"an intensity range ({low}, {high}) is empty or not finite: low must be below high "
                    "(a band holding one value everywhere has no percentile range; use normalization=range).",
                    option="normalization",
                )

    @property
    def channels(self) -> int:
        return len(self.low)

    @property
    def is_8bit(self) -> bool:
        """The photo path's mapping: 8-bit data over 0..255 in every band."""
        return self.dtype == "uint8" and all(lo == 0 and hi == 255 for lo, hi in zip(self.low, self.high, strict=True))

    @classmethod
    def of_dtype(cls, dtype: str, channels: int) -> IntensityMapping:
        """The dtype's full range for every band (``normalization=dtype``).

        Raises:
            OptionError: float data, which has no range of its own.
        """
        kind = np.dtype(dtype)
        if kind.kind not in "ui":
            raise OptionError(
                f"normalization=dtype maps an integer dtype's full range; {dtype} data has none: use "
                "normalization=range with value_range, or normalization=percentile.",
                option="normalization",
            )
        limits = np.iinfo(kind)
        return cls(dtype, (float(limits.min),) * channels, (float(limits.max),) * channels)

    @classmethod
    def of_range(cls, dtype: str, channels: int, value_range: Sequence[float]) -> IntensityMapping:
        """One fixed ``(low, high)`` for every band (``normalization=range``)."""
        low, high = (float(value) for value in value_range)
        return cls(dtype, (low,) * channels, (high,) * channels)

    def bounds(self, device: Any = "cpu", dtype: torch.dtype = torch.float64) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-band ``low`` and ``high`` as (C, 1, 1) tensors."""
        low = torch.tensor(self.low, dtype=dtype, device=device).view(-1, 1, 1)
        high = torch.tensor(self.high, dtype=dtype, device=device).view(-1, 1, 1)
        return low, high

    def scale_offset(self, device: Any = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-band ``scale`` and ``offset`` (C, 1, 1) float64 with ``normalized = value * scale + offset``."""
        low, high = self.bounds(device)
        scale = 2.0 / (high - low)
        return scale, -1.0 - low * scale

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """Stored values (..., C, H, W) of any dtype -> float32 in [-1, 1] (beyond it outside ``low..high``)."""
        if self.is_8bit and values.dtype == torch.uint8:
            # The photo path, with exactly the numbers it always had (ToTensor, Normalize(0.5, 0.5)).
            return to_float(values)
        if values.dtype in (torch.uint8, torch.int16, torch.int32):
            # Integers of up to 16 bits are exact in float32, and so is their distance from ``low``
            # to within a hundredth of a level: float64 (slow on CPUs and most GPUs) would add nothing.
            low, high = self.bounds(values.device, torch.float32)
            return values.to(torch.float32).sub_(low).mul_(2.0 / (high - low)).sub_(1.0)
        scale, offset = self.scale_offset(values.device)
        return (values.to(torch.float64) * scale + offset).to(torch.float32)

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images (..., C, H, W) in [-1, 1] -> float64 values in the data's units (not rounded or clipped)."""
        scale, offset = self.scale_offset(images.device)
        return (images.to(torch.float64) - offset) / scale

    def to_dict(self) -> Dict[str, Any]:
        return {"dtype": self.dtype, "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, state: Dict[str, Any]) -> IntensityMapping:
        return cls(str(state["dtype"]), tuple(float(v) for v in state["low"]), tuple(float(v) for v in state["high"]))


def percentile_mapping(
    images: Sequence[Any],
    load: Callable[[Any], torch.Tensor],
    dtype: str,
    channels: int,
    percentiles: Sequence[float],
) -> IntensityMapping:
    """Per band, the ``percentiles`` (low, high) of every value of ``images`` (``normalization=percentile``).

    Integer data is counted into one histogram per band, so the result equals
    ``numpy.percentile(all_values, q)`` exactly (its default linear interpolation) whatever the
    number of images; float data is kept whole up to :data:`MAX_FLOAT_VALUES` values per band
    (each image then gives evenly spaced values, its share of that budget).

    Args:
        images: what to load (file paths).
        load: ``load(item)`` -> the stored values (C, H, W) of one image.
        dtype: the stored dtype.
        channels: the bands.
        percentiles: ``(p_low, p_high)``, each in 0..100.
    """
    q_low, q_high = (float(q) for q in percentiles)
    if not 0 <= q_low < q_high <= 100:
        raise OptionError(f"percentiles={tuple(percentiles)}: need 0 <= low < high <= 100.", option="percentiles")
    if np.dtype(dtype).kind in "ui":
        counts = _histograms(images, load, dtype, channels)
        offset = float(np.iinfo(np.dtype(dtype)).min)
        low = [_histogram_percentile(band, q_low, offset) for band in counts]
        high = [_histogram_percentile(band, q_high, offset) for band in counts]
    else:
        values = _float_values(images, load, channels)
        low = [float(np.percentile(band, q_low)) for band in values]
        high = [float(np.percentile(band, q_high)) for band in values]
    return IntensityMapping(dtype, tuple(low), tuple(high))


def _histograms(images: Sequence[Any], load: Callable[[Any], torch.Tensor], dtype: str, channels: int) -> np.ndarray:
    limits = np.iinfo(np.dtype(dtype))
    bins = int(limits.max) - int(limits.min) + 1
    counts = np.zeros((channels, bins), dtype=np.int64)
    for item in images:
        values = load(item).numpy().reshape(channels, -1).astype(np.int64) - int(limits.min)
        for band in range(channels):
            counts[band] += np.bincount(values[band], minlength=bins)
    return counts


def _histogram_percentile(counts: np.ndarray, q: float, offset: float) -> float:
    """numpy.percentile(values, q) (method "linear") of the values a histogram counts (bin ``i``
    holds value ``i + offset``), computed the way numpy computes it (position, then its two-sided
    interpolation), so it is equal."""
    total = int(counts.sum())
    position = np.float64(q / 100.0) * (total - 1)
    below = int(np.floor(position))
    t = position - below
    cumulative = np.cumsum(counts)
    a = np.float64(np.searchsorted(cumulative, below, side="right") + offset)
    b = np.float64(np.searchsorted(cumulative, min(below + 1, total - 1), side="right") + offset)
    return float(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)


def _float_values(images: Sequence[Any], load: Callable[[Any], torch.Tensor], channels: int) -> list:
    # Each image gives at most its share of the budget (evenly spaced values), so the memory
    # spent is bounded whatever the images' sizes; under the budget every value is kept.
    share = max(1, MAX_FLOAT_VALUES // max(1, len(images)))
    parts = [[] for _ in range(channels)]
    for item in images:
        values = load(item).numpy().reshape(channels, -1)
        step = int(np.ceil(values.shape[1] / share))
        for band in range(channels):
            parts[band].append(values[band, ::step].copy())
    return [np.concatenate(band) for band in parts]


def default_mapping(channels: int, dtype: Optional[str] = None) -> IntensityMapping:
    """The mapping of a model that has seen no data yet: 8-bit (or ``dtype``'s) full range."""
    return IntensityMapping.of_dtype(dtype or "uint8", channels)


def load_intensity(state: Any) -> Dict[str, IntensityMapping]:
    """Intensity mappings from what a checkpoint or folder recorded (``{domain: {dtype, low, high}}``).

    Raises:
        ValueError, KeyError, TypeError: the record is malformed (callers name the file).
    """
    if not isinstance(state, dict):
        raise TypeError(f"intensity must be a mapping of domains, got {type(state).__name__}")
    return {str(domain): IntensityMapping.from_dict(entry) for domain, entry in state.items()}
