"""Running a generator on images of any size: pad to its size multiple, translate, crop back.

The ResNet generators need sides divisible by 4 and the U-Nets by ``2**num_downs``. Inference
(``translate``, ``predict``, the exported programs) pads the bottom and right edges up to the
next multiple, runs the generator and crops the output back to the input's size. One
implementation serves Python and the exported TorchScript / ONNX programs alike: the padding is
written as index gathers, so one graph covers every input size, without a Python branch.

The rule: reflection when the padding is smaller than both sides (it keeps the border
statistics close to the image's own), otherwise edge replication (reflection cannot pad more
than a side's length).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn


def _source_positions(size: int, padded: int) -> Tuple[Tensor, Tensor]:
    """Source index of each row/column after padding ``size`` to ``padded``: reflect, replicate."""
    positions = torch.arange(padded)
    reflect = torch.where(positions < size, positions, 2 * (size - 1) - positions)
    replicate = positions.clamp(max=size - 1)
    return reflect, replicate


def pad_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Pad (N, C, H, W) images on the bottom/right so both sides are multiples of ``multiple``.

    Args:
        images: the batch.
        multiple: the generator's ``size_multiple``.
    """
    height, width = images.shape[-2], images.shape[-1]
    padded_height = (height + multiple - 1) // multiple * multiple
    padded_width = (width + multiple - 1) // multiple * multiple
    reflect_rows, replicate_rows = _source_positions(height, padded_height)
    reflect_cols, replicate_cols = _source_positions(width, padded_width)
    # Reflection needs a source index >= 0 everywhere, i.e. padding smaller than the side.
    can_reflect = (reflect_rows.min() >= 0) & (reflect_cols.min() >= 0)
    rows = torch.where(can_reflect, reflect_rows, replicate_rows).to(images.device)
    cols = torch.where(can_reflect, reflect_cols, replicate_cols).to(images.device)
    return images.index_select(-2, rows).index_select(-1, cols)


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
