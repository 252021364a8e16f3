"""Image-to-image generators: the ResNet (CycleGAN) and U-Net (pix2pix) networks.

Layer order and module nesting reproduce the reference implementation exactly, so its
checkpoints load with ``strict=True``:

* ResNet: one ``nn.Sequential`` named ``model`` (keys ``model.<i>...``); residual blocks keep
  their layers in ``conv_block``.
* U-Net: blocks nested from the outermost inwards (keys ``model.model.1.model.3...``).

Generators are looked up by name in :data:`GENERATORS`. Besides the registered names
(``resnet_9blocks``, ``resnet_6blocks``, ``unet_256``, ``unet_128``), two name patterns resolve to
a builder: ``resnet_<N>blocks`` (any N >= 0) and ``unet_<side>`` (side a power of two >= 32, with
``num_downs = log2(side)``).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable, List, Optional, Protocol, Sequence, Tuple

import torch
from torch import nn

from ..errors import OptionError
from ..registry import PatternRegistry, Registry
from .antialias import Downsample, Upsample
from .checkpointing import checkpointed_run
from .norms import NORMS

__all__ = [
    "GENERATORS",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "check_input_size",
    "resnet_6blocks",
    "resnet_9blocks",
    "unet_128",
    "unet_256",
]


class GeneratorBuilder(Protocol):
    def __call__(
        self,
        *,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        antialias: bool = False,
    ) -> nn.Module: ...


GENERATORS: PatternRegistry[GeneratorBuilder] = PatternRegistry("generator")


def check_input_size(x: torch.Tensor, multiple: int, network: str) -> None:
    """Raise an ``OptionError`` unless the height and width of ``x`` are multiples of ``multiple``.

    Args:
        x: input batch (..., H, W).
        multiple: required divisor of both sides.
        network: name of the network, for the message.
    """
    height, width = x.shape[-2], x.shape[-1]
    if height % multiple or width % multiple:
        raise OptionError(
            f"{network} needs input height and width that are multiples of {multiple}, got "
            f"{height}x{width}. Pad or resize the image to a multiple of {multiple} (the models' "
            f"translate() pads and crops back), or use preprocess settings that produce such sizes."
        )


class ResnetBlock(nn.Module):
    """Residual block: ``x + conv_block(x)``, with no activation after the sum.

    Args:
        dim: channel count (unchanged by the block).
        norm: normalization name (``NORMS``).
        dropout: insert Dropout(0.5) between the two convolutions.
        padding: ``reflect``, ``replicate`` or ``zero`` padding for the 3x3 convolutions.
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False, padding: str = "reflect") -> None:
        super().__init__()
        norm_layer = NORMS.get(norm)
        layers = _padded_conv3x3(dim, padding, norm_layer.conv_bias)
        layers += [norm_layer(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += _padded_conv3x3(dim, padding, norm_layer.conv_bias)
        layers.append(norm_layer(dim))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


#: Where a recomputed part of a checkpointed ResNet generator begins.
_UNIT_STARTS = (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.Conv2d, nn.ConvTranspose2d, Upsample, ResnetBlock)

PADDINGS: Registry[Optional[Callable[[int], nn.Module]]] = Registry("padding")
PADDINGS.add("reflect", nn.ReflectionPad2d)
PADDINGS.add("replicate", nn.ReplicationPad2d)
# Zero padding lives inside the convolution, so no separate layer (and the reference's indices).
PADDINGS.add("zero", None)


def _padded_conv3x3(dim: int, padding: str, bias: bool) -> List[nn.Module]:
    pad_layer = PADDINGS.get(padding)
    if pad_layer is None:
        return [nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=bias)]
    return [pad_layer(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias)]


class ResnetGenerator(nn.Module):
    """ResNet generator of CycleGAN: two stride-2 downsamplings, residual blocks at 4*ngf
    channels, two transposed-convolution upsamplings, Tanh output in [-1, 1].

    Attributes:
        size_multiple: input sides must be multiples of this (4).
        gradient_checkpointing: when True and gradients are enabled, each residual block, and
            each convolution with its norm, activation and resampling, is recomputed during
            backward instead of keeping its activations (less memory, same numbers and running
            statistics).

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the first convolution; later layers use 2*ngf and 4*ngf.
        norm: normalization name (``instance``, ``batch``, ``none``).
        dropout: Dropout(0.5) inside each residual block.
        n_blocks: number of residual blocks.
        padding: padding of the residual blocks' convolutions: ``reflect``, ``replicate``,
            ``zero``.
        antialias: CUT's anti-aliased layout (docs/method.md#cut-and-fastcut): each stride-2
            convolution becomes a stride-1 one followed by a blur :class:`Downsample`, each
            transposed convolution a blur :class:`Upsample` followed by a stride-1 convolution.
            Same parameters, three more ``model`` entries per resolution step. False (the
            default) is CycleGAN's network.
    """

    n_downsampling = 2

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        n_blocks: int = 9,
        padding: str = "reflect",
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise OptionError(f"n_blocks={n_blocks}: a ResnetGenerator needs n_blocks >= 0.", option="n_blocks")
        norm_layer = NORMS.get(norm)
        bias = norm_layer.conv_bias
        layers: List[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(self.n_downsampling):
            if antialias:
                layers += [
                    nn.Conv2d(channels, channels * 2, kernel_size=3, stride=1, padding=1, bias=bias),
                    norm_layer(channels * 2),
                    nn.ReLU(True),
                    Downsample(channels * 2),
                ]
            else:
                layers += [
                    nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                    norm_layer(channels * 2),
                    nn.ReLU(True),
                ]
            channels *= 2
        layers += [ResnetBlock(channels, norm, dropout, padding) for _ in range(n_blocks)]
        for _ in range(self.n_downsampling):
            if antialias:
                layers += [
                    Upsample(channels),
                    nn.Conv2d(channels, channels // 2, kernel_size=3, stride=1, padding=1, bias=bias),
                    norm_layer(channels // 2),
                    nn.ReLU(True),
                ]
                channels //= 2
                continue
            layers += [
                nn.ConvTranspose2d(
                    channels,
                    channels // 2,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=bias,
                ),
                norm_layer(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, output_nc, kernel_size=7, padding=0),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)
        self.input_nc = input_nc
        self.antialias = antialias
        self.size_multiple: int = 2**self.n_downsampling
        self.gradient_checkpointing: bool = False

    def _checkpointing(self) -> bool:
        return self.gradient_checkpointing and torch.is_grad_enabled()

    def _units(self, end: int, kept: Sequence[int]) -> List[Tuple[int, int]]:
        """``model[:end]`` cut into the parts recomputed as one: each starts at a padding,
        convolution, blur upsampling or residual block, and a part also ends after every entry
        in ``kept`` (whose output the caller needs)."""
        starts = {0, end} | {index + 1 for index in kept if index + 1 < end}
        starts |= {index for index, layer in enumerate(self.model[:end]) if isinstance(layer, _UNIT_STARTS)}
        bounds = sorted(starts)
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.size_multiple, type(self).__name__)
        if not self._checkpointing():
            return self.model(x)
        for start, stop in self._units(len(self.model), ()):
            x = checkpointed_run(self.model[start:stop], x)
        return x

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> List[torch.Tensor]:
        """The outputs of the ``model`` entries numbered ``layers``, in that order.

        Only the entries up to the largest index run (CUT's feature extractor, whose
        ``nce_layers`` 0, 4, 8, 12, 16 are, in the anti-aliased network, the padded input, the two
        stride-1 convolutions before their norms, and residual blocks 1 and 5).

        Args:
            x: input batch (N, C, H, W), sides multiples of ``size_multiple``.
            layers: indices into ``model``.
        """
        check_input_size(x, self.size_multiple, type(self).__name__)
        self._check_layers(layers)
        wanted, end = set(layers), max(layers) + 1
        found = {}
        if not self._checkpointing():
            for index, layer in enumerate(self.model[:end]):
                x = layer(x)
                if index in wanted:
                    found[index] = x
        else:
            for start, stop in self._units(end, layers):
                x = checkpointed_run(self.model[start:stop], x)
                if stop - 1 in wanted:
                    found[stop - 1] = x
        return [found[index] for index in layers]

    def feature_channels(self, layers: Sequence[int]) -> List[int]:
        """The channels of the outputs :meth:`encode` returns for ``layers``."""
        self._check_layers(layers)
        channels, per_layer = self.input_nc, []
        for layer in self.model:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                channels = layer.out_channels
            per_layer.append(channels)
        return [per_layer[index] for index in layers]

    def _check_layers(self, layers: Sequence[int]) -> None:
        bad = [index for index in layers if not 0 <= index < len(self.model)]
        if not layers or bad:
            raise OptionError(
                f"Feature layers {list(layers)}: each must index the generator's {len(self.model)} `model` "
                f"entries (0 to {len(self.model) - 1}), and at least one is needed."
            )


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: downsample, run ``submodule``, upsample, and (except at the
    outermost level) concatenate the block's input with its output along channels.

    Args:
        outer_nc: channels this block returns (before the skip concatenation).
        inner_nc: channels after the downsampling convolution.
        input_nc: channels this block receives; defaults to ``outer_nc``.
        submodule: the next inner block (None for the innermost one).
        outermost: first/last level: no activation before the down convolution, no norm, a
            biased up convolution followed by Tanh, no skip concatenation.
        innermost: deepest level: no submodule, no norm after the down convolution.
        norm: normalization name (``NORMS``).
        dropout: Dropout(0.5) after the up path (only used by middle blocks).
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: Optional[int] = None,
        submodule: Optional[nn.Module] = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "instance",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer = NORMS.get(norm)
        bias = norm_layer.conv_bias
        if input_nc is None:
            input_nc = outer_nc

        def down_conv() -> nn.Conv2d:
            return nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)

        def up_conv(in_channels: int, up_bias: bool) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(in_channels, outer_nc, kernel_size=4, stride=2, padding=1, bias=up_bias)

        layers: List[nn.Module]
        if outermost:
            layers = [down_conv(), _required(submodule), nn.ReLU(True)]
            layers += [up_conv(inner_nc * 2, up_bias=True), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down_conv(), nn.ReLU(True)]
            layers += [up_conv(inner_nc, bias), norm_layer(outer_nc)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down_conv(), norm_layer(inner_nc)]
            layers += [_required(submodule), nn.ReLU(True)]
            layers += [up_conv(inner_nc * 2, bias), norm_layer(outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)
        self.gradient_checkpointing: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # exported files run without gradients, so without checkpointing
            inner = self.model(x)
        elif self.gradient_checkpointing and torch.is_grad_enabled():
            inner = self._checkpointed(x)
        else:
            inner = self.model(x)
        if self.outermost:
            return inner
        return torch.cat([x, inner], 1)

    def _checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        # The layers before and after the inner level are recomputed; the inner level checkpoints its own.
        layers = list(self.model)
        split = next((i for i, layer in enumerate(layers) if isinstance(layer, UnetSkipConnectionBlock)), len(layers))
        x = checkpointed_run(layers[:split], x)
        if split == len(layers):
            return x
        return checkpointed_run(layers[split + 1 :], layers[split](x))


def _required(submodule: Optional[nn.Module]) -> nn.Module:
    if submodule is None:
        raise ValueError("Only the innermost UnetSkipConnectionBlock may have no submodule.")
    return submodule


class UnetGenerator(nn.Module):
    """U-Net generator of pix2pix, built from the innermost block outwards.

    Channel widths from the outside in: ngf, 2*ngf, 4*ngf, then 8*ngf for every deeper level.

    Attributes:
        size_multiple: input sides must be multiples of this (``2**num_downs``).
        gradient_checkpointing: see the property.

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        num_downs: number of stride-2 downsamplings (>= 5); 8 for 256x256 inputs (1x1 at the
            bottleneck), 7 for 128x128.
        ngf: channels of the outermost convolution.
        norm: normalization name (``instance``, ``batch``, ``none``).
        dropout: Dropout(0.5) in the num_downs-5 middle 8*ngf blocks.
        antialias: accepted so every generator takes the same options; the U-Net has no
            anti-aliased variant, so True raises ``OptionError``.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if antialias:
            raise OptionError(
                "antialias=True needs a ResNet generator (resnet_9blocks, resnet_<N>blocks); the U-Net has no "
                "anti-aliased variant."
            )
        if num_downs < 5:
            raise OptionError(f"num_downs={num_downs}: a UnetGenerator needs num_downs >= 5.", option="num_downs")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        for outer in (ngf * 4, ngf * 2, ngf):
            block = UnetSkipConnectionBlock(outer, outer * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm
        )
        self.num_downs = num_downs
        self.size_multiple: int = 2**num_downs

    @property
    def gradient_checkpointing(self) -> bool:
        """When True and gradients are enabled, every level's layers are recomputed during backward
        instead of keeping their activations (less memory, same numbers and running statistics)."""
        return self.model.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        for block in self.modules():
            if isinstance(block, UnetSkipConnectionBlock):
                block.gradient_checkpointing = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.size_multiple, type(self).__name__)
        return self.model(x)


@GENERATORS.register("resnet_9blocks")
def resnet_9blocks(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    antialias: bool = False,
) -> ResnetGenerator:
    """CycleGAN's ResNet generator with 9 residual blocks (for 256x256 training).

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the first convolution.
        norm: normalization name.
        dropout: Dropout(0.5) inside the residual blocks.
        antialias: CUT's anti-aliased layout (blur Down / Up layers).
    """
    return ResnetGenerator(input_nc, output_nc, ngf, norm, dropout, n_blocks=9, antialias=antialias)


@GENERATORS.register("resnet_6blocks")
def resnet_6blocks(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    antialias: bool = False,
) -> ResnetGenerator:
    """CycleGAN's ResNet generator with 6 residual blocks (for 128x128 training).

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the first convolution.
        norm: normalization name.
        dropout: Dropout(0.5) inside the residual blocks.
        antialias: CUT's anti-aliased layout (blur Down / Up layers).
    """
    return ResnetGenerator(input_nc, output_nc, ngf, norm, dropout, n_blocks=6, antialias=antialias)


@GENERATORS.register("unet_256")
def unet_256(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    antialias: bool = False,
) -> UnetGenerator:
    """pix2pix's U-Net with 8 downsamplings (256x256 reaches 1x1 at the bottleneck).

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the outermost convolution.
        norm: normalization name.
        dropout: Dropout(0.5) in the middle blocks.
        antialias: not available for the U-Net (True raises ``OptionError``).
    """
    return UnetGenerator(input_nc, output_nc, num_downs=8, ngf=ngf, norm=norm, dropout=dropout, antialias=antialias)


@GENERATORS.register("unet_128")
def unet_128(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    antialias: bool = False,
) -> UnetGenerator:
    """U-Net with 7 downsamplings (128x128 reaches 1x1 at the bottleneck).

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the outermost convolution.
        norm: normalization name.
        dropout: Dropout(0.5) in the middle blocks.
        antialias: not available for the U-Net (True raises ``OptionError``).
    """
    return UnetGenerator(input_nc, output_nc, num_downs=7, ngf=ngf, norm=norm, dropout=dropout, antialias=antialias)


def _resnet_from_name(match: re.Match[str]) -> GeneratorBuilder:
    return functools.partial(ResnetGenerator, n_blocks=int(match["n_blocks"]))


def _unet_from_name(match: re.Match[str]) -> GeneratorBuilder:
    side = int(match["side"])
    num_downs = int(math.log2(side)) if side > 0 else 0
    if side < 32 or 2**num_downs != side:
        raise OptionError(
            f"Generator 'unet_{match['side']}': the side must be a power of two >= 32, e.g. unet_32, "
            "unet_64, unet_128, unet_256, unet_512."
        )
    return functools.partial(UnetGenerator, num_downs=num_downs)


GENERATORS.add_pattern(r"resnet_(?P<n_blocks>\d+)blocks", "resnet_<N>blocks", _resnet_from_name)
GENERATORS.add_pattern(r"unet_(?P<side>\d+)", "unet_<side>", _unet_from_name)
