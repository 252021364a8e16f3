"""Generators, discriminators, norms, initializations and projection heads of the methods (UNSB's
time-conditional ones included).

Build networks by name with :func:`define_generator` / :func:`define_discriminator`; weights saved
by the reference code load with :func:`cyclegan_pl.weights.load_reference_state_dict`.
"""

from __future__ import annotations

from torch import nn

from .antialias import Downsample, Upsample
from .conditional import (
    TimeConditionalPatchDiscriminator,
    TimeConditionalResnetBlock,
    TimeConditionalResnetGenerator,
    energy_network,
    timestep_embedding,
)
from .discriminators import DISCRIMINATORS, NLayerDiscriminator, PixelDiscriminator
from .generators import (
    GENERATORS,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
)
from .init import INITS, init_weights
from .norms import NORMS, get_norm_layer, norm_uses_bias
from .projection import PatchProjection, draw_patch_ids, sample_patches

__all__ = [
    "DISCRIMINATORS",
    "DiscriminatorName",
    "Downsample",
    "GENERATORS",
    "GeneratorName",
    "INITS",
    "InitType",
    "NLayerDiscriminator",
    "NORMS",
    "NormName",
    "PatchProjection",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "TimeConditionalPatchDiscriminator",
    "TimeConditionalResnetBlock",
    "TimeConditionalResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "Upsample",
    "define_discriminator",
    "define_generator",
    "draw_patch_ids",
    "energy_network",
    "get_norm_layer",
    "init_weights",
    "norm_uses_bias",
    "sample_patches",
    "timestep_embedding",
]


def define_generator(
    name: str,
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    antialias: bool = False,
) -> nn.Module:
    """Build and initialize a generator.

    Args:
        name: ``resnet_9blocks``, ``resnet_6blocks``, ``unet_256``, ``unet_128``, UNSB's
            time-conditional ``resnet_9blocks_cond`` (called ``G(x, t, z)``), or a pattern
            ``resnet_<N>blocks`` (N residual blocks) / ``unet_<side>`` (side a power of two
            >= 32; ``log2(side)`` downsamplings).
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the first convolution.
        norm: ``instance``, ``batch`` or ``none``.
        dropout: Dropout(0.5) in the ResNet blocks / the U-Net's middle blocks.
        init_type: ``normal``, ``xavier``, ``kaiming`` or ``orthogonal``.
        init_gain: standard deviation / gain of the initialization.
        antialias: CUT's anti-aliased ResNet (blur Down / Up layers, docs/method.md#cut-and-fastcut);
            ResNet generators only.

    Returns:
        The network (on the CPU), with attribute ``size_multiple``.

    Raises:
        OptionError: for an unknown name, norm or init type (listing the valid ones).
    """
    builder = GENERATORS.get(name)
    net = builder(input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm, dropout=dropout, antialias=antialias)
    return init_weights(net, init_type, init_gain)


def define_discriminator(
    name: str,
    input_nc: int = 3,
    ndf: int = 64,
    n_layers: int = 3,
    norm: str = "instance",
    init_type: str = "normal",
    init_gain: float = 0.02,
    antialias: bool = False,
) -> nn.Module:
    """Build and initialize a discriminator.

    Args:
        name: ``basic`` (70x70 PatchGAN), ``n_layers`` (PatchGAN with ``n_layers`` layers),
            ``pixel`` (1x1 PixelGAN) or UNSB's time-conditional ``basic_cond`` (called ``D(x, t)``;
            anti-aliased only).
        input_nc: input channels (6 for pix2pix's conditional discriminator).
        ndf: channels of the first convolution.
        n_layers: depth of the ``n_layers`` PatchGAN (ignored by the others).
        norm: ``instance``, ``batch`` or ``none``.
        init_type: ``normal``, ``xavier``, ``kaiming`` or ``orthogonal``.
        init_gain: standard deviation / gain of the initialization.
        antialias: CUT's anti-aliased PatchGAN (blur Down layers); ``basic`` and ``n_layers`` only.

    Returns:
        The network (on the CPU); its output is raw scores, no sigmoid.

    Raises:
        OptionError: for an unknown name, norm or init type (listing the valid ones).
    """
    builder = DISCRIMINATORS.get(name)
    net = builder(input_nc=input_nc, ndf=ndf, n_layers=n_layers, norm=norm, antialias=antialias)
    return init_weights(net, init_type, init_gain)


# The types of the options that choose a network by name: `--help` lists the names, a typo
# fails when the command line is parsed.
GeneratorName = GENERATORS.choices()
DiscriminatorName = DISCRIMINATORS.choices()
NormName = NORMS.choices()
InitType = INITS.choices()
