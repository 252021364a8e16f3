"""Running a generator on images of any size: pad to its size multiple, translate, crop back.

The ResNet generators need sides divisible by 4 and the U-Nets by ``2**num_downs``. Inference
(``translate``, ``predict``, the exported programs) pads the bottom and right edges up to the
next multiple, runs the generator and crops the output back to the input's size. One
implementation serves Python and the exported TorchScript / ONNX programs alike: the padding is
written as index gathers, so one graph covers every input size, without a Python branch.

The rule: reflection when the padding is smaller than both sides (it keeps the border
statistics close to the image's own), otherwise edge replication (reflection cannot pad more
than a side's length).

Tiny images: a side under :data:`MIN_SIDE` (8 px) is padded to at least 8. The ResNet generators
(size multiple 4) halve the image twice, and their residual blocks need a 2 x 2 bottleneck for
their reflection padding and instance norm, so a side of 4 px or less would fail there; the
U-Nets' multiples (32 and more) are larger anyway. Sides of 8 px and more are padded exactly as
before, so ordinary images translate bit-identically.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

#: The smallest side a generator is run on: every generator of the package works from 8 px.
MIN_SIDE = 8


def _padded_side(size: int, multiple: int, min_side: int) -> int:
    """The next multiple of ``multiple`` from ``size``, at least ``min_side``."""
    padded = (size + multiple - 1) // multiple * multiple
    smallest = (min_side + multiple - 1) // multiple * multiple
    # max(padded, smallest) in integer arithmetic only: a comparison would become a Python branch
    # when the ONNX exporters trace the sides, fixing the example's choice into the graph.
    # (smallest - 1) // padded is 0 exactly when padded >= smallest, and 1 - 1 // (x + 1) maps
    # 0 to 0 and every x >= 1 to 1.
    too_small = 1 - 1 // ((smallest - 1) // padded + 1)
    return padded + (smallest - padded) * too_small


def _source_positions(size: int, padded: int) -> Tuple[Tensor, Tensor]:
    """Source index of each row/column after padding ``size`` to ``padded``: reflect, replicate."""
    positions = torch.arange(padded)
    reflect = torch.where(positions < size, positions, 2 * (size - 1) - positions)
    replicate = positions.clamp(max=size - 1)
    return reflect, replicate


def pad_to_multiple(images: Tensor, multiple: int, min_side: int = MIN_SIDE) -> Tensor:
    """Pad (N, C, H, W) images on the bottom/right so both sides are multiples of ``multiple``
    (and at least :data:`MIN_SIDE`).

    Args:
        images: the batch.
        multiple: the generator's ``size_multiple``.
        min_side: the smallest side to pad to (default :data:`MIN_SIDE`).
    """
    height, width = images.shape[-2], images.shape[-1]
    padded_height = _padded_side(height, multiple, min_side)
    padded_width = _padded_side(width, multiple, min_side)
    reflect_rows, replicate_rows = _source_positions(height, padded_height)
    reflect_cols, replicate_cols = _source_positions(width, padded_width)
    # Reflection needs a source index >= 0 everywhere, i.e. padding smaller than the side.
    can_reflect = (reflect_rows.min() >= 0) & (reflect_cols.min() >= 0)
    rows = torch.where(can_reflect, reflect_rows, replicate_rows).to(images.device)
    cols = torch.where(can_reflect, reflect_cols, replicate_cols).to(images.device)
    return images.index_select(-2, rows).index_select(-1, cols)


def pad_if_needed(images: Tensor, multiple: int) -> Tensor:
    """:func:`pad_to_multiple` for eager code: the images themselves, not a copy, when their sides
    need no padding (a large image is not duplicated). Traced programs use ``pad_to_multiple``."""
    height, width = images.shape[-2], images.shape[-1]
    if (height, width) == (_padded_side(height, multiple, MIN_SIDE), _padded_side(width, multiple, MIN_SIDE)):
        return images
    return pad_to_multiple(images, multiple)


def crop_to(images: Tensor, height: int, width: int) -> Tensor:
    """The top-left ``height`` x ``width`` of (N, C, H, W) images (undoes :func:`pad_to_multiple`)."""
    return images[..., :height, :width]


class PaddedGenerator(nn.Module):
    """A generator's layers behind :func:`pad_to_multiple` and :func:`crop_to`: any input size.

    This is the program ``export`` writes. It holds the generator's layers (its ``model``
    attribute) rather than the generator: the generator's own ``forward`` adds an input-size
    check and gradient checkpointing, which inference after padding never needs and TorchScript
    cannot compile.

    Args:
        layers: the generator's layers.
        size_multiple: the generator's ``size_multiple``.
    """

    def __init__(self, layers: nn.Module, size_multiple: int) -> None:
        super().__init__()
        self.layers = layers
        self.size_multiple = size_multiple

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2], images.shape[-1]
        return crop_to(self.layers(pad_to_multiple(images, self.size_multiple)), height, width)
