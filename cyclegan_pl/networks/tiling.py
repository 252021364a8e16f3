"""Translating an image in tiles, with the whole image's normalisation statistics, blended without seams.

A generator needs memory in proportion to the image's pixels; a 4000 px photograph does not fit.
:func:`translate_tiled` runs the generator on overlapping tiles and blends them. Done naively,
each tile's instance normalisation uses that tile's own statistics, so tiles come out in slightly
different colours and the seams show. Here every normalisation layer (instance norm, and batch
norm using batch statistics, i.e. the reference's test-time mode) uses the statistics of the
*whole image* instead (``statistics="whole_image"``), gathered over the tiles layer by layer: for
each normalisation layer in turn, one sweep over the tiles runs the generator up to that layer
(normalising the earlier ones with their whole-image statistics, already known) and sums, per
channel, the values and squares of the part of the layer's input that the tile is responsible
for (its *core*: the tiles' cores partition the image, so every position counts once). Each
layer's statistics are then exact (up to the context, below), at the cost of about half as many
full passes as the generator has normalisation layers (a ResNet-9: 23 layers, about 10 passes).
(Estimating all layers in one sweep and iterating does not work: a layer's statistics depend on
every layer before it, and the iteration diverges.) ``statistics="thumbnail"`` takes the
statistics of the whole image scaled down to about one tile instead: one cheap pass, an
approximation (a finer image has other statistics); ``per_tile`` lets each tile normalise itself.
A last sweep runs every tile with the chosen statistics and blends the outputs.

Blending: each tile's output is weighted by a ramp (``linear`` or ``cosine``) that falls to zero
across its overlap with a neighbour and is flat elsewhere. The ramps are divided by their sum
along each side first; a tile's weight is its row ramp times its column ramp, so the weights of
every position sum to one and a position covered by one tile takes that tile's value as it is.
Memory: one tile's activations, plus the input (as stored: ``prepare`` converts each tile, so an
8-bit photo is held in 8 bits) and the output at the image's size.

Tiles start at multiples of the generator's ``size_multiple``, so that every layer's grid lines
up with the image's. Outputs near a tile's edge lack the context beyond it; ``overlap`` should
cover much of the generator's receptive field (a ResNet-9's reaches about 100 px) for the tiled
image to match the whole-image translation. U-Nets see their whole input (their bottleneck is
1 x 1 at their native size), so their tiles translate independently and differ from a
whole-image translation by design. A program without normalisation layers to share (an exported
TorchScript or ONNX file) is tiled with ``statistics="per_tile"``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegan_pl.errors import OptionError
from cyclegan_pl.networks.padding import MIN_SIDE

Ramp = Literal["linear", "cosine"]
Statistics = Literal["whole_image", "thumbnail", "per_tile"]


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of an image lie along one side, and which part of it each is responsible for.

    Args:
        length: the side, in pixels.
        tile: the tile's side.
        overlap: the least overlap between neighbouring tiles.
        multiple: tiles start (and cores end) at multiples of this (the generator's size multiple).
    """

    length: int
    tile: int
    overlap: int
    multiple: int = 1

    def __post_init__(self) -> None:
        if self.tile <= 2 * self.overlap:
            raise OptionError(
                f"tile={self.tile}, overlap={self.overlap}: a tile must be more than twice the overlap.",
                option=("tile", "overlap"),
            )
        if self.tile % self.multiple:
            raise OptionError(
                f"tile={self.tile}: the generator takes sides that are multiples of {self.multiple}; use a "
                f"tile of {math.ceil(self.tile / self.multiple) * self.multiple}.",
                option="tile",
            )

    @property
    def starts(self) -> List[int]:
        """Tile starts: as few tiles as keep neighbours ``overlap`` apart, spread evenly."""
        if self.length <= self.tile:
            return [0]
        count = math.ceil((self.length - self.overlap) / (self.tile - self.overlap))
        last = self.length - self.tile
        return sorted({self._aligned(round(last * i / (count - 1)), last) for i in range(count)})

    def _aligned(self, start: int, last: int) -> int:
        return last if start >= last else start - start % self.multiple

    def spans(self) -> List[Tuple[int, int]]:
        """(start, end) of each tile."""
        return [(start, min(start + self.tile, self.length)) for start in self.starts]

    def cores(self) -> List[Tuple[int, int]]:
        """(start, end) of the part each tile is responsible for: the middle of each overlap
        (rounded to ``multiple``) splits it between the two tiles; together they cover the side once."""
        spans = self.spans()
        bounds = [0]
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            middle = (start + end) // 2
            bounds.append(max(start, min(end, middle - middle % self.multiple)))
        bounds.append(self.length)
        return list(zip(bounds, bounds[1:], strict=False))

    def ramp(self, index: int, shape: Ramp = "linear") -> Tensor:
        """The blending weight along the side of tile ``index``: 0 -> 1 across the overlap with the
        previous tile, 1 -> 0 across the overlap with the next one, 1 elsewhere (float64)."""
        spans = self.spans()
        start, end = spans[index]
        positions = torch.arange(start, end, dtype=torch.float64) + 0.5
        weight = torch.ones(end - start, dtype=torch.float64)
        if index > 0:
            previous_end = spans[index - 1][1]
            weight = torch.minimum(weight, (positions - start) / max(previous_end - start, 1))
        if index + 1 < len(spans):
            next_start = spans[index + 1][0]
            weight = torch.minimum(weight, (end - positions) / max(end - next_start, 1))
        weight = weight.clamp(0.0, 1.0)
        if shape == "cosine":
            weight = 0.5 - 0.5 * torch.cos(math.pi * weight)
        return weight

    def normalised_ramps(self, shape: Ramp = "linear") -> List[Tensor]:
        """Each tile's :meth:`ramp` divided by the sum of all ramps at each position, so they sum to
        one along the side. A tile's weight is its row ramp times its column ramp and the tiles
        form a full grid, so these products sum to one over the image: no image-sized weights."""
        ramps = [self.ramp(index, shape) for index in range(len(self.starts))]
        total = torch.zeros(self.length, dtype=torch.float64)
        for (start, end), ramp in zip(self.spans(), ramps, strict=True):
            total[start:end] += ramp
        return [ramp / total[start:end] for (start, end), ramp in zip(self.spans(), ramps, strict=True)]


def tiles_of(height: int, width: int, tile: int, overlap: int, multiple: int) -> Iterator[Tuple[Tuple, Tuple, Tuple]]:
    """Every tile of an image: ((top, bottom, left, right), its core, (row index, column index))."""
    rows, columns = TileGrid(height, tile, overlap, multiple), TileGrid(width, tile, overlap, multiple)
    for i, (row, row_core) in enumerate(zip(rows.spans(), rows.cores(), strict=True)):
        for j, (column, column_core) in enumerate(zip(columns.spans(), columns.cores(), strict=True)):
            yield (row[0], row[1], column[0], column[1]), (*row_core, *column_core), (i, j)


def blend_weights(height: int, width: int, tile: int, overlap: int, multiple: int = 1, ramp: Ramp = "linear") -> Tensor:
    """The summed blending weights of every position (1 everywhere once divided out; all > 0)."""
    rows, columns = TileGrid(height, tile, overlap, multiple), TileGrid(width, tile, overlap, multiple)
    total = torch.zeros(height, width, dtype=torch.float64)
    for (top, bottom, left, right), _, (i, j) in tiles_of(height, width, tile, overlap, multiple):
        total[top:bottom, left:right] += rows.ramp(i, ramp)[:, None] * columns.ramp(j, ramp)[None, :]
    return total


# --- shared normalisation statistics ---------------------------------------------------------------------


def _shared_layers(net: nn.Module) -> List[nn.Module]:
    """The layers whose statistics come from their input: instance norm, and batch norm in training mode."""
    return [
        layer
        for layer in net.modules()
        if isinstance(layer, nn.InstanceNorm2d)
        or (isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.training)
    ]


@dataclass
class _Sums:
    count: int = 0
    total: Optional[Tensor] = None
    squares: Optional[Tensor] = None

    def add(self, values: Tensor) -> None:
        values = values.detach().to(torch.float64)
        total, squares = values.sum(dim=(0, 2, 3)), values.square().sum(dim=(0, 2, 3))
        self.count += values.shape[0] * values.shape[2] * values.shape[3]
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares

    def statistics(self) -> Tuple[Tensor, Tensor]:
        mean = self.total / self.count
        return mean, (self.squares / self.count - mean.square()).clamp_min(0.0)


class _Recorded(Exception):
    """Raised by the layer being measured once it has its input: the rest of the forward is not needed."""


@dataclass
class SharedStatistics:
    """Per normalisation layer, the mean and (biased) variance of its input over the whole image.

    Attributes:
        layers: the network's layers whose statistics are shared, in the order they run.
        estimate: layer -> (mean, variance) per channel, used to normalise (None: the layer's own).
    """

    layers: List[nn.Module]
    estimate: Dict[nn.Module, Tuple[Tensor, Tensor]] = field(default_factory=dict)

    @contextlib.contextmanager
    def applied(self, measured: Optional[Tuple[nn.Module, _Sums]] = None, core=None, size=None):
        """Normalise with :attr:`estimate` while the block runs; with ``measured`` = (layer, sums),
        add that layer's input over the core to ``sums`` and stop the forward there.

        Args:
            measured: the layer to measure and where its sums go.
            core: (top, bottom, left, right) of the input's core, in the input's coordinates.
            size: the input's (height, width).
        """
        for layer in self.layers:
            layer.forward = functools.partial(self._forward, layer, measured, core, size)
        try:
            yield
        except _Recorded:
            pass
        finally:
            for layer in self.layers:
                del layer.forward

    def _forward(self, layer: nn.Module, measured, core, size, x: Tensor) -> Tensor:
        if measured is not None and measured[0] is layer:
            top, bottom, left, right = core
            scale_y, scale_x = size[0] / x.shape[-2], size[1] / x.shape[-1]
            rows = slice(round(top / scale_y), round(bottom / scale_y))
            columns = slice(round(left / scale_x), round(right / scale_x))
            measured[1].add(x[..., rows, columns])
            raise _Recorded
        if layer not in self.estimate:
            return type(layer).forward(layer, x)
        mean, variance = self.estimate[layer]
        shape = (1, -1, 1, 1)
        normalised = (x - mean.to(x.dtype).view(shape)) / torch.sqrt(variance.to(x.dtype).view(shape) + layer.eps)
        if getattr(layer, "affine", False) and layer.weight is not None:
            normalised = normalised * layer.weight.view(shape) + layer.bias.view(shape)
        return normalised


# --- the translation ---------------------------------------------------------------------------------------


def translate_tiled(
    generator: Callable[[Tensor], Tensor],
    image: Tensor,
    tile: int,
    overlap: int,
    multiple: int = 1,
    ramp: Ramp = "cosine",
    statistics: Statistics = "whole_image",
    network: Optional[nn.Module] = None,
    context: Optional[int] = None,
    prepare: Optional[Callable[[Tensor], Tensor]] = None,
) -> Tensor:
    """Translate one (1, C, H, W) image in tiles (see the module doc); returns (1, C_out, H, W).

    Args:
        generator: maps a (1, C, h, w) input (sides multiples of ``multiple``) to its translation.
        image: the image, sides multiples of ``multiple`` (pad it first).
        tile: the side of the tiles the output is assembled from (a multiple of ``multiple``).
        overlap: the least overlap of neighbouring tiles; their blend spans it.
        multiple: the generator's size multiple.
        ramp: the blending ramp's shape.
        statistics: ``whole_image`` (the whole image's normalisation statistics, gathered layer by
            layer; needs ``network``), ``thumbnail`` (those of the image scaled down to a tile: one
            pass, approximate) or ``per_tile`` (each tile normalises itself: for programs whose
            layers cannot be reached, such as exported files).
        network: the module whose normalisation layers are shared (usually ``generator`` itself).
        context: pixels of the image around each tile that its translation sees (cut off
            afterwards), so that positions near the tile's edge have their neighbours; default
            ``overlap``. Memory grows with ``(tile + 2 * context) ** 2``.
        prepare: maps a region of ``image`` to the generator's input (stored 8-bit values to
            [-1, 1], say), applied to each tile, so the whole image is never converted at once;
            it must act on each pixel alone. Default: the image is the generator's input.
    """
    if image.shape[0] != 1:
        raise ValueError(f"translate_tiled takes one image at a time, got a batch of {image.shape[0]}")
    height, width = image.shape[-2:]
    context = overlap if context is None else context
    context -= context % multiple
    tiles = list(tiles_of(height, width, tile, overlap, multiple))
    prepare = prepare or (lambda region: region)

    def run(span: Tuple[int, int, int, int], measured: Optional[Tuple[nn.Module, _Sums]], core) -> Optional[Tensor]:
        """The translation of ``span`` computed with ``context`` around it, cut back to the span
        (None when ``measured`` stops the forward at the layer it measures)."""
        top, bottom, left, right = span
        outer = (
            max(0, top - context),
            min(height, bottom + context),
            max(0, left - context),
            min(width, right + context),
        )
        size = (outer[1] - outer[0], outer[3] - outer[2])
        local = (core[0] - outer[0], core[1] - outer[0], core[2] - outer[2], core[3] - outer[2])
        translated = None
        with shared.applied(measured, local, size) if shared else contextlib.nullcontext():
            translated = generator(prepare(image[..., outer[0] : outer[1], outer[2] : outer[3]]))
        if translated is None:
            return None
        return translated[..., top - outer[0] : bottom - outer[0], left - outer[2] : right - outer[2]]

    shared = None
    if statistics != "per_tile":
        if network is None:
            raise ValueError(f"statistics={statistics!r} needs the network whose normalisation layers it shares")
        shared = SharedStatistics(_shared_layers(network))
        if not shared.layers:
            shared = None
        elif statistics == "thumbnail":
            shared.estimate = _thumbnail_estimate(generator, shared, image, tile, multiple, prepare)
        else:
            # Layer by layer: each layer's input is exact once the layers before it are.
            for layer in shared.layers:
                sums = _Sums()
                for span, core, _ in tiles:
                    run(span, (layer, sums), core)
                shared.estimate[layer] = sums.statistics()
    row_ramps = TileGrid(height, tile, overlap, multiple).normalised_ramps(ramp)
    column_ramps = TileGrid(width, tile, overlap, multiple).normalised_ramps(ramp)
    output: Optional[Tensor] = None
    for span, _, (i, j) in tiles:
        translated = run(span, None, (0, 0, 0, 0))
        if output is None:
            output = torch.zeros(1, translated.shape[1], height, width, dtype=translated.dtype, device=image.device)
        top, bottom, left, right = span
        weight = row_ramps[i][:, None] * column_ramps[j][None, :]
        output[..., top:bottom, left:right] += translated * weight.to(image.device, translated.dtype)
    assert output is not None
    return output


def _thumbnail_estimate(
    generator: Callable[[Tensor], Tensor],
    shared: SharedStatistics,
    image: Tensor,
    tile: int,
    multiple: int,
    prepare: Callable[[Tensor], Tensor],
) -> Dict[nn.Module, Tuple[Tensor, Tensor]]:
    """The statistics of the whole image scaled down to about one tile's pixels (an approximation)."""
    height, width = image.shape[-2:]
    scale = min(1.0, tile / max(height, width))
    # No side under MIN_SIDE: a long, narrow image's thumbnail would otherwise be too thin to run.
    least = -(-MIN_SIDE // multiple) * multiple
    small = [min(side, max(least, round(side * scale / multiple) * multiple)) for side in (height, width)]
    thumbnail = area_scaled(image, small, prepare)
    estimate: Dict[nn.Module, Tuple[Tensor, Tensor]] = {}
    for layer in shared.layers:
        sums = _Sums()
        with shared.applied((layer, sums), (0, small[0], 0, small[1]), (small[0], small[1])):
            generator(thumbnail)
        shared.estimate[layer] = estimate[layer] = sums.statistics()
    shared.estimate = {}
    return estimate


def area_scaled(image: Tensor, size: List[int], prepare: Callable[[Tensor], Tensor], band: int = 256) -> Tensor:
    """``F.interpolate(prepare(image), size, mode="area")`` without converting the whole image at once.

    An area average is separable: the columns are averaged in bands of ``band`` rows (each band
    prepared on its own), then the rows of that narrow result.
    """
    height, width = image.shape[-2:]
    if list(size) == [height, width]:
        return prepare(image)
    columns = torch.cat(
        [
            F.adaptive_avg_pool2d(prepare(image[..., top : top + band, :]), (min(band, height - top), size[1]))
            for top in range(0, height, band)
        ],
        dim=-2,
    )
    return F.adaptive_avg_pool2d(columns, tuple(size))


@dataclass(frozen=True)
class Tiling:
    """When and how images are translated in tiles (see the module doc).

    Args:
        tile: the tiles' side in pixels; None translates every image whole.
        overlap: the least overlap of neighbouring tiles, across which they are blended.
        context: pixels around each tile that its translation sees and cuts off afterwards
            (default: ``overlap``); a ResNet-9's outputs match the whole image's from about 64.
        statistics: the normalisation statistics of the tiles: ``whole_image`` (exact, about ten
            passes for a ResNet-9), ``thumbnail`` (of the image scaled down to one tile: one
            pass, approximate) or ``per_tile`` (each tile its own: seams show).
        ramp: the blend's shape across an overlap: ``cosine`` or ``linear``.
        above: translate whole images up to this many pixels, in tiles above (None: always tile
            when ``tile`` is set).
    """

    tile: Optional[int] = None
    overlap: int = 64
    context: Optional[int] = None
    statistics: Statistics = "whole_image"
    ramp: Ramp = "cosine"
    above: Optional[int] = None

    def applies(self, height: int, width: int) -> bool:
        """Whether an image of this size is translated in tiles."""
        return (
            self.tile is not None
            and (self.above is None or height * width > self.above)
            and max(height, width) > self.tile
        )

    def check(self, multiple: int) -> None:
        """Refuse options that cannot work with a generator of this size multiple, in one line."""
        if self.tile is not None:
            TileGrid(self.tile + 1, self.tile, self.overlap, multiple)

    def to_dict(self) -> Dict[str, object]:
        """A plain dict (what a data loader can carry in its batches; None fields are left out:
        they are the defaults)."""
        fields = {key: getattr(self, key) for key in self.__dataclass_fields__}
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_batch(cls, value: object) -> Optional[Tiling]:
        """The tiling a batch carries (a dict, collated: each entry one value or one per image)."""
        if not isinstance(value, dict):
            return None

        def first(entry: object) -> object:
            entry = entry[0] if isinstance(entry, (list, tuple)) else entry
            return entry.item() if isinstance(entry, Tensor) else entry

        return cls(**{key: first(entry) for key, entry in value.items()})


#: What ``translate`` and the app do by default: whole images up to 4 megapixels, tiles of 512 above.
AUTO_TILING = Tiling(tile=512, above=4 * 1024 * 1024)
