"""Discriminators: the PatchGAN (``basic``, ``n_layers``) and the 1x1 PixelGAN (``pixel``).

Module names reproduce the reference nesting (PatchGAN ``model.<i>``, PixelGAN ``net.<i>``), so its
checkpoints load with ``strict=True``. Every builder in :data:`DISCRIMINATORS` takes the same
keyword arguments ``input_nc, ndf, n_layers, norm``; builders that fix the depth ignore
``n_layers``. All discriminators return raw scores (no sigmoid).
"""

from __future__ import annotations

from typing import List, Protocol

import torch
from torch import nn

from ..errors import OptionError
from ..registry import Registry
from .antialias import Downsample
from .checkpointing import checkpointed_run, split_before
from .norms import NORMS

__all__ = [
    "DISCRIMINATORS",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "patchgan_basic",
    "patchgan_n_layers",
    "pixelgan",
]


class DiscriminatorBuilder(Protocol):
    def __call__(
        self, *, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False
    ) -> nn.Module: ...


DISCRIMINATORS: Registry[DiscriminatorBuilder] = Registry("discriminator")


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a fully convolutional classifier scoring overlapping patches.

    With ``n_layers=3`` each output scores a 70x70 patch and a 256x256 input gives 30x30 scores.

    Attributes:
        gradient_checkpointing: when True and gradients are enabled, each convolution with its
            norm and activation is recomputed during backward (less memory, same numbers).

    Args:
        input_nc: input channels (6 for pix2pix's conditional D on input+output).
        ndf: channels of the first convolution; deeper layers use ndf*min(2**n, 8).
        n_layers: number of stride-2 convolutions (>= 1).
        norm: normalization name (``instance``, ``batch``, ``none``); the first layer has none.
        antialias: CUT's anti-aliased layout (docs/method.md#cut-and-fastcut): every stride-2
            convolution becomes a stride-1 one whose activation is followed by a blur
            :class:`~cyclegan_pl.networks.antialias.Downsample`. Same parameters and output size
            (30x30 for 256x256 with 3 layers). False (the default) is CycleGAN's network.
    """

    def __init__(
        self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise OptionError(f"NLayerDiscriminator needs n_layers >= 1, got {n_layers}.")
        norm_layer = NORMS.get(norm)
        bias = norm_layer.conv_bias
        first_stride = 1 if antialias else 2
        layers: List[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=first_stride, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        if antialias:
            layers.append(Downsample(ndf))
        channels = ndf
        for n in range(1, n_layers + 1):
            out_channels = ndf * min(2**n, 8)
            # The last of these keeps the resolution: it widens the receptive field only.
            downsamples = n < n_layers
            stride = 2 if downsamples and not antialias else 1
            layers += [
                nn.Conv2d(channels, out_channels, kernel_size=4, stride=stride, padding=1, bias=bias),
                norm_layer(out_channels),
                nn.LeakyReLU(0.2, True),
            ]
            if downsamples and antialias:
                layers.append(Downsample(out_channels))
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        self.gradient_checkpointing: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run(self.model, x, self.gradient_checkpointing)


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN: scores every pixel independently (colour statistics only).

    Attributes:
        gradient_checkpointing: as :class:`NLayerDiscriminator`'s.

    Args:
        input_nc: input channels.
        ndf: channels of the first 1x1 convolution (the second has 2*ndf).
        norm: normalization name (``instance``, ``batch``, ``none``).
        antialias: accepted so every discriminator takes the same options; the PixelGAN never
            downsamples, so True raises ``OptionError``.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: str = "instance", antialias: bool = False) -> None:
        super().__init__()
        if antialias:
            raise OptionError(
                "antialias=True needs a PatchGAN discriminator (basic, n_layers); 'pixel' never downsamples."
            )
        norm_layer = NORMS.get(norm)
        bias = norm_layer.conv_bias
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=bias),
        )
        self.gradient_checkpointing: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run(self.net, x, self.gradient_checkpointing)


def _run(layers: nn.Sequential, x: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    """``layers(x)``; with checkpointing (and gradients on), each convolution with the layers
    after it is recomputed during backward instead of keeping its activations."""
    if not (checkpointing and torch.is_grad_enabled()):
        return layers(x)
    for run in split_before(layers, nn.Conv2d):
        x = checkpointed_run(run, x)
    return x


@DISCRIMINATORS.register("basic")
def patchgan_basic(
    input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False
) -> NLayerDiscriminator:
    """The 70x70 PatchGAN (3 layers).

    Args:
        input_nc: input channels.
        ndf: channels of the first convolution.
        n_layers: ignored (always 3).
        norm: normalization name.
        antialias: CUT's anti-aliased layout (blur Down layers).
    """
    return NLayerDiscriminator(input_nc, ndf, n_layers=3, norm=norm, antialias=antialias)


@DISCRIMINATORS.register("n_layers")
def patchgan_n_layers(
    input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False
) -> NLayerDiscriminator:
    """PatchGAN with ``n_layers`` stride-2 convolutions.

    Args:
        input_nc: input channels.
        ndf: channels of the first convolution.
        n_layers: number of stride-2 convolutions.
        norm: normalization name.
        antialias: CUT's anti-aliased layout (blur Down layers).
    """
    return NLayerDiscriminator(input_nc, ndf, n_layers=n_layers, norm=norm, antialias=antialias)


@DISCRIMINATORS.register("pixel")
def pixelgan(
    input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False
) -> PixelDiscriminator:
    """The 1x1 PixelGAN.

    Args:
        input_nc: input channels.
        ndf: channels of the first convolution.
        n_layers: ignored.
        norm: normalization name.
        antialias: not available (True raises ``OptionError``).
    """
    return PixelDiscriminator(input_nc, ndf, norm=norm, antialias=antialias)
