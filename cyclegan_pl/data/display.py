"""Images shown to people (sample grids, results pages, wandb): always RGB in [0, 1], whatever the bands.

A model's images have as many bands as its data. To show them, :func:`display_rgb` picks bands:
by default one band shows as gray, three as RGB, and other counts show their first three bands
(the first band as gray for two); ``bands`` chooses others (one index for gray, three for RGB).
Images of other than 1 or 3 bands are also stretched by default, each shown band on its own:
its 1st..99th percentile spans the display range, since such bands rarely share a scale.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from cyclegan_pl.data.image import to_unit_range
from cyclegan_pl.errors import OptionError

_STRETCH_PERCENTILES = (0.01, 0.99)


def check_bands(bands: Optional[Sequence[int]], what: str = "bands") -> Optional[tuple]:
    """``bands`` as a tuple of one or three non-negative indices (or None).

    Raises:
        OptionError: another count, or a negative index.
    """
    if bands is None:
        return None
    bands = tuple(int(band) for band in bands)
    if len(bands) not in (1, 3) or min(bands) < 0:
        raise OptionError(
            f"{what}={list(bands)}: give one band index (gray) or three (red, green, blue), each >= 0.", option=what
        )
    return bands


def shown_bands(channels: int, bands: Optional[Sequence[int]] = None, what: str = "bands") -> tuple:
    """The bands shown of an image with ``channels`` bands (see the module doc).

    Raises:
        OptionError: ``bands`` names a band the image does not have.
    """
    chosen = check_bands(bands, what)
    if chosen is None:
        return (0,) if channels < 3 else (0, 1, 2)
    if max(chosen) >= channels:
        raise OptionError(f"{what}={list(chosen)}, but the images have {channels} band(s) (0..{channels - 1}).")
    return chosen


def display_rgb(image: Tensor, bands: Optional[Sequence[int]] = None, stretch: Optional[bool] = None) -> Tensor:
    """A (C, H, W) image in [-1, 1] as a (3, H, W) float image in [0, 1] to show.

    Args:
        image: the image (any band count).
        bands: the bands to show (see the module doc); None for the default.
        stretch: stretch each shown band to its 1st..99th percentile; None: only for images of
            other than 1 or 3 bands.
    """
    channels = image.shape[0]
    chosen = image[list(shown_bands(channels, bands))]
    if stretch if stretch is not None else channels not in (1, 3):
        flat = chosen.detach().float().flatten(1)
        low, high = torch.quantile(flat, torch.tensor(_STRETCH_PERCENTILES, device=flat.device), dim=1)
        span = (high - low).clamp_min(1e-6).view(-1, 1, 1)
        shown = ((chosen.float() - low.view(-1, 1, 1)) / span).clamp_(0.0, 1.0)
    else:
        shown = to_unit_range(chosen)
    return shown.expand(3, -1, -1) if shown.shape[0] == 1 else shown
