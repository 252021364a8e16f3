"""UNSB's time-conditional networks (docs/method.md#unsb): the generator ``resnet_9blocks_cond``,
the PatchGAN ``basic_cond`` and the energy network E.

UNSB (Kim et al., ICLR 2024) refines an image over a few time steps. Its generator takes the
image, the integer index of the step and a latent vector ``z``; its discriminator and its energy
network take the image(s) and the step index. Attribute names and nesting reproduce the published
networks, so their ``latest_net_G.pth``, ``_D`` and ``_E`` files load with ``strict=True``:

* generator: ``model.<i>`` (stem and the two blur-pooled downsamplings), ``model_res.<k>`` (the
  residual blocks), ``model_upsample.<i>``, ``z_transform.<i>`` (the latent's MLP) and
  ``time_embed.<i>`` (the step's MLP);
* discriminator / E: ``model_main.<k>`` (blocks ``conv1``, ``down``, ``dense``), ``final_conv``
  and ``t_embed.main.<i>``.

The published residual block applies each layer of its first stage to the block's *input* and
keeps only the last result, so its first convolution and the time input never reach the output:
the published generator ignores the step index. ``chain_conv_block=False`` (the default)
reproduces that; ``True`` chains the stage as evidently intended (pad, convolution, + time,
norm). Both have the same parameters.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import OptionError
from .antialias import Downsample, Upsample
from .discriminators import DISCRIMINATORS
from .generators import GENERATORS, _padded_conv3x3, check_input_size
from .norms import NORMS

__all__ = [
    "AdaptiveLayer",
    "PixelNorm",
    "TimeConditionalConvBlock",
    "TimeConditionalPatchDiscriminator",
    "TimeConditionalResnetBlock",
    "TimeConditionalResnetGenerator",
    "TimestepEmbedding",
    "energy_network",
    "patchgan_basic_cond",
    "resnet_9blocks_cond",
    "timestep_embedding",
]


def timestep_embedding(steps: Tensor, dim: int, max_positions: int = 10000) -> Tensor:
    """Sinusoidal embedding of integer step indices: ``(N,) -> (N, dim)``.

    The first ``dim // 2`` columns are ``sin(step * f_k)``, the next ``cos(step * f_k)``, with
    frequencies ``f_k = exp(-k * log(max_positions) / (dim // 2 - 1))``; an odd ``dim`` gets a
    zero last column.

    Args:
        steps: 1-D tensor of step indices (any numeric dtype).
        dim: embedding width (>= 4).
        max_positions: period scale of the slowest frequency.
    """
    if steps.dim() != 1:
        raise ValueError(f"timestep_embedding needs a 1-D tensor of step indices, got shape {tuple(steps.shape)}.")
    half = dim // 2
    if half < 2:
        raise ValueError(f"timestep_embedding needs dim >= 4, got {dim}.")
    rate = math.log(max_positions) / (half - 1)
    frequencies = torch.exp(torch.arange(half, dtype=torch.float32, device=steps.device) * -rate)
    angles = steps.float()[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        embedding = nn.functional.pad(embedding, (0, 1))
    return embedding


class PixelNorm(nn.Module):
    """Scale each row to unit root-mean-square over dimension 1 (``x / sqrt(mean(x^2) + 1e-8)``)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class TimestepEmbedding(nn.Module):
    """The discriminator's step MLP: sinusoidal embedding, then Linear, LeakyReLU(0.2), Linear,
    LeakyReLU(0.2) (``main.0``, ``main.2``).

    Args:
        embedding_dim: width of the sinusoidal embedding and of the first layer's input.
        hidden_dim: width of the first layer's output.
        output_dim: width of the result.
    """

    def __init__(self, embedding_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.main = nn.Sequential(
            nn.Linear(embedding_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, output_dim),
            nn.LeakyReLU(0.2),
        )

    def forward(self, steps: Tensor) -> Tensor:
        return self.main(timestep_embedding(steps, self.embedding_dim))


class AdaptiveLayer(nn.Module):
    """Feature-wise affine modulation by a style vector: ``gamma(s) * x + beta(s)``.

    ``style_net`` maps the style to ``2 * channels`` values, the first half the scale and the
    second the shift. Its bias starts at (1, ..., 1, 0, ..., 0); ``init_weights`` later sets every
    bias to 0, as the published code's initialisation does.

    Args:
        channels: channels of the modulated features.
        style_dim: width of the style vector.
    """

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.style_net = nn.Linear(style_dim, channels * 2)
        with torch.no_grad():
            self.style_net.bias[:channels] = 1
            self.style_net.bias[channels:] = 0

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma, beta = self.style_net(style)[:, :, None, None].chunk(2, 1)
        return gamma * x + beta


class TimeConditionalResnetBlock(nn.Module):
    """Residual block of ``resnet_9blocks_cond``: ``x + conv_fin(adaptive(first(x), z))``.

    ``conv_block`` holds the first stage (pad, 3x3 convolution, norm), ``conv_fin`` the second
    (ReLU, optional Dropout(0.5), pad, 3x3 convolution, norm); ``adaptive`` modulates by the
    embedded latent; ``Dense_time`` projects the embedded step. ``style`` (Linear(z_dim,
    2 * dim)) exists in the published block and its files but is never used.

    ``first(x)`` is, as published (``chain_conv_block=False``), the stage's norm applied to ``x``
    itself: the published loop feeds every layer the block input and keeps the last output, so
    the first convolution and the step are computed there and thrown away (here they are not
    computed; their parameters get no gradient either way). ``chain_conv_block=True`` runs
    ``norm(conv(pad(x)) + Dense_time(t))``.

    Args:
        dim: channels (unchanged by the block).
        norm: normalization name (``NORMS``).
        dropout: Dropout(0.5) after the ReLU of the second stage.
        padding: ``reflect``, ``replicate`` or ``zero`` padding of the 3x3 convolutions.
        temb_dim: width of the embedded step.
        z_dim: width of the embedded latent.
        chain_conv_block: chain the first stage (see above) instead of the published behaviour.
    """

    def __init__(
        self,
        dim: int,
        norm: str = "instance",
        dropout: bool = False,
        padding: str = "reflect",
        temb_dim: int = 256,
        z_dim: int = 256,
        chain_conv_block: bool = False,
    ) -> None:
        super().__init__()
        norm_layer = NORMS.get(norm)
        # Registration order reproduces the published state_dict order.
        self.conv_block = nn.ModuleList(_padded_conv3x3(dim, padding, norm_layer.conv_bias) + [norm_layer(dim)])
        second: List[nn.Module] = [nn.ReLU(True)]
        if dropout:
            second.append(nn.Dropout(0.5))
        second += _padded_conv3x3(dim, padding, norm_layer.conv_bias) + [norm_layer(dim)]
        self.conv_fin = nn.ModuleList(second)
        self.adaptive = AdaptiveLayer(dim, z_dim)
        self.Dense_time = nn.Linear(temb_dim, dim)
        nn.init.zeros_(self.Dense_time.bias)
        self.style = nn.Linear(z_dim, dim * 2)
        with torch.no_grad():
            self.style.bias[:dim] = 1
            self.style.bias[dim:] = 0
        self.chain_conv_block = chain_conv_block

    def first_stage(self, x: Tensor, time_embedding: Optional[Tensor]) -> Tensor:
        if not self.chain_conv_block:
            return self.conv_block[-1](x)
        out = x
        for layer in self.conv_block[:-1]:
            out = layer(out)
        out = out + self.Dense_time(time_embedding)[:, :, None, None]
        return self.conv_block[-1](out)

    def forward(self, x: Tensor, time_embedding: Optional[Tensor], z_embedding: Tensor) -> Tensor:
        out = self.adaptive(self.first_stage(x, time_embedding), z_embedding)
        for layer in self.conv_fin:
            out = layer(out)
        return x + out


def _missing_condition(network: str, needs: str) -> OptionError:
    return OptionError(
        f"{network} is one of UNSB's time-conditional networks: it needs {needs}, which only model UNSB "
        "provides. Choose a plain network (e.g. resnet_9blocks, basic) for the other methods."
    )


class TimeConditionalResnetGenerator(nn.Module):
    """UNSB's generator: CUT's anti-aliased ResNet whose residual blocks are modulated by an
    embedded latent ``z`` (and, with ``chain_conv_block``, by the embedded step index).

    ``forward(x, t, z)``: ``x`` (N, input_nc, H, W) with H and W multiples of 4; ``t`` the integer
    step indices, shape (N,) or (1,); ``z`` (N, ``z_dim``) standard normal. The latent passes
    through ``z_transform`` (PixelNorm, then ``1 + n_mlp`` Linear + LeakyReLU(0.2) layers of width
    ``4 * ngf``); the step through a sinusoidal embedding of width ``ngf`` and ``time_embed``
    (Linear(ngf, 4 * ngf), LeakyReLU(0.2), Linear(4 * ngf, 4 * ngf), LeakyReLU(0.2)). As published
    (``chain_conv_block=False``) the output does not depend on ``t``, and ``time_embed``,
    the blocks' ``Dense_time``, ``style`` and first convolutions get no gradient.

    Attributes:
        size_multiple: input sides must be multiples of this (4).
        z_dim: width of the latent ``z`` (``4 * ngf``).

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the first convolution; the blocks run at ``4 * ngf``.
        norm: normalization name (``instance``, ``batch``, ``none``).
        dropout: Dropout(0.5) inside each residual block.
        n_blocks: number of residual blocks.
        padding: padding of the blocks' convolutions: ``reflect``, ``replicate``, ``zero``.
        antialias: blur-pooled down / upsampling (the published default); False uses stride-2
            convolutions and transposed convolutions (the published ``--no_antialias
            --no_antialias_up``).
        n_mlp: Linear layers of ``z_transform`` after the first (3).
        chain_conv_block: run each block's first stage in sequence, which makes the output depend
            on ``t`` (:class:`TimeConditionalResnetBlock`); False reproduces the published network.
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
        antialias: bool = True,
        n_mlp: int = 3,
        chain_conv_block: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"TimeConditionalResnetGenerator needs n_blocks >= 1, got {n_blocks}.")
        norm_layer = NORMS.get(norm)
        bias = norm_layer.conv_bias
        width = ngf * 2**self.n_downsampling
        stem: List[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(self.n_downsampling):
            stride = 1 if antialias else 2
            stem += [
                nn.Conv2d(channels, channels * 2, kernel_size=3, stride=stride, padding=1, bias=bias),
                norm_layer(channels * 2),
                nn.ReLU(True),
            ]
            if antialias:
                stem.append(Downsample(channels * 2))
            channels *= 2
        # Registration order reproduces the published state_dict order (blocks first).
        self.model_res = nn.ModuleList(
            TimeConditionalResnetBlock(width, norm, dropout, padding, width, width, chain_conv_block)
            for _ in range(n_blocks)
        )
        up: List[nn.Module] = []
        for _ in range(self.n_downsampling):
            if antialias:
                up += [Upsample(channels), nn.Conv2d(channels, channels // 2, 3, stride=1, padding=1, bias=bias)]
            else:
                up.append(
                    nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
                )
            up += [norm_layer(channels // 2), nn.ReLU(True)]
            channels //= 2
        up += [nn.ReflectionPad2d(3), nn.Conv2d(channels, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*stem)
        self.model_upsample = nn.Sequential(*up)
        mapping: List[nn.Module] = [PixelNorm(), nn.Linear(width, width), nn.LeakyReLU(0.2)]
        for _ in range(n_mlp):
            mapping += [nn.Linear(width, width), nn.LeakyReLU(0.2)]
        self.z_transform = nn.Sequential(*mapping)
        self.time_embed = nn.Sequential(
            nn.Linear(ngf, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2)
        )
        nn.init.zeros_(self.time_embed[0].bias)
        nn.init.zeros_(self.time_embed[2].bias)
        self.ngf = ngf
        self.input_nc = input_nc
        self.z_dim = width
        self.chain_conv_block = chain_conv_block
        self.size_multiple: int = 2**self.n_downsampling

    def set_chain_conv_block(self, chain: bool) -> None:
        """Switch every residual block between the published first stage (False: the step is
        ignored) and the chained one (True); the parameters are the same."""
        self.chain_conv_block = chain
        for block in self.model_res:
            block.chain_conv_block = chain

    def _conditions(self, t: Optional[Tensor], z: Optional[Tensor]):
        if t is None or z is None:
            raise _missing_condition(type(self).__name__, "a step index t and a latent z")
        time_embedding = self.time_embed(timestep_embedding(t, self.ngf)) if self.chain_conv_block else None
        return time_embedding, self.z_transform(z)

    def forward(self, x: Tensor, t: Optional[Tensor] = None, z: Optional[Tensor] = None) -> Tensor:
        check_input_size(x, self.size_multiple, type(self).__name__)
        time_embedding, z_embedding = self._conditions(t, z)
        out = self.model(x)
        for block in self.model_res:
            out = block(out, time_embedding, z_embedding)
        return self.model_upsample(out)

    def encode(self, x: Tensor, t: Tensor, z: Tensor, layers: Sequence[int]) -> List[Tensor]:
        """The outputs of the entries numbered ``layers``, in that order.

        Entries are numbered through ``model`` (0 to 11 when anti-aliased) and on through
        ``model_res`` (12 is the first block's output); only the entries up to the largest index
        run. UNSB's ``nce_layers`` 0, 4, 8, 12, 16 are the padded input, the two stride-1
        convolutions before their norms, and blocks 1 and 5.

        Args:
            x: input batch (N, C, H, W), sides multiples of ``size_multiple``.
            t: step indices (N,) or (1,).
            z: latents (N, ``z_dim``).
            layers: entry indices.
        """
        check_input_size(x, self.size_multiple, type(self).__name__)
        self._check_layers(layers)
        time_embedding, z_embedding = self._conditions(t, z)
        wanted, found = set(layers), {}
        last = max(layers)
        for index, layer in enumerate(self.model):
            if index > last:
                break
            x = layer(x)
            if index in wanted:
                found[index] = x
        for offset, block in enumerate(self.model_res):
            index = len(self.model) + offset
            if index > last:
                break
            x = block(x, time_embedding, z_embedding)
            if index in wanted:
                found[index] = x
        return [found[index] for index in layers]

    def feature_channels(self, layers: Sequence[int]) -> List[int]:
        """The channels of the outputs :meth:`encode` returns for ``layers``."""
        self._check_layers(layers)
        channels, per_entry = self.input_nc, []
        for layer in self.model:
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            per_entry.append(channels)
        per_entry += [self.z_dim] * len(self.model_res)
        return [per_entry[index] for index in layers]

    def _check_layers(self, layers: Sequence[int]) -> None:
        count = len(self.model) + len(self.model_res)
        bad = [index for index in layers if not 0 <= index < count]
        if not layers or bad:
            raise OptionError(
                f"Feature layers {list(layers)}: each must index the conditional generator's {len(self.model)} `model` "
                f"entries and {len(self.model_res)} residual blocks (0 to {count - 1}), and at least one is needed."
            )


class TimeConditionalConvBlock(nn.Module):
    """One PatchGAN stage of ``basic_cond``: 4x4 convolution ``conv1``, + ``dense(t_emb)`` per
    channel, optional norm, LeakyReLU(0.2), optional blur :class:`Downsample` ``down``.

    ``down`` exists (and its ``filt`` buffer is saved) even when ``downsample`` is False, as in
    the published block.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        temb_dim: width of the embedded step.
        norm: normalization name, or None for no norm layer.
        downsample: apply ``down`` at the end.
        bias: whether ``conv1`` carries a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_dim: int,
        norm: Optional[str] = None,
        downsample: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=1, padding=1, bias=bias)
        self.norm = NORMS.get(norm)(out_channels) if norm is not None else None
        self.act = nn.LeakyReLU(0.2, True)
        self.down = Downsample(out_channels)
        self.dense = nn.Linear(temb_dim, out_channels)
        self.downsample = downsample

    def forward(self, x: Tensor, time_embedding: Tensor) -> Tensor:
        out = self.conv1(x) + self.dense(time_embedding)[:, :, None, None]
        if self.norm is not None:
            out = self.norm(out)
        out = self.act(out)
        return self.down(out) if self.downsample else out


class TimeConditionalPatchDiscriminator(nn.Module):
    """UNSB's PatchGAN ``basic_cond``: CUT's anti-aliased 70x70 PatchGAN with the embedded step
    index added after every convolution but the last.

    ``forward(x, t, x2=None)`` scores ``x`` (or ``cat(x, x2)`` along channels, as E does) at
    step indices ``t`` of shape (N,) or (1,); raw scores, 30x30 for 256x256 inputs. The step is
    embedded by :class:`TimestepEmbedding` (``t_embed``) at width ``4 * ndf``.

    Args:
        input_nc: input channels (the channels of ``x`` and ``x2`` together).
        ndf: channels of the first convolution; later stages ``ndf * min(2**n, 8)``.
        n_layers: downsampling stages (3 for the published network).
        norm: normalization name; the first stage has none.
        antialias: must be True: the published code has no working strided variant.
    """

    def __init__(
        self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = True
    ) -> None:
        super().__init__()
        if not antialias:
            raise OptionError(
                "The time-conditional PatchGAN (basic_cond) exists only anti-aliased (antialias=true), as published."
            )
        if n_layers < 1:
            raise OptionError(f"TimeConditionalPatchDiscriminator needs n_layers >= 1, got {n_layers}.")
        bias = NORMS.get(norm).conv_bias
        temb_dim = 4 * ndf
        blocks = [TimeConditionalConvBlock(input_nc, ndf, temb_dim, None, True, bias)]
        channels = ndf
        for n in range(1, n_layers + 1):
            out_channels = ndf * min(2**n, 8)
            blocks.append(TimeConditionalConvBlock(channels, out_channels, temb_dim, norm, n < n_layers, bias))
            channels = out_channels
        self.model_main = nn.ModuleList(blocks)
        self.final_conv = nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1)
        self.t_embed = TimestepEmbedding(temb_dim, temb_dim, temb_dim)

    def forward(self, x: Tensor, t: Optional[Tensor] = None, x2: Optional[Tensor] = None) -> Tensor:
        if t is None:
            raise _missing_condition(type(self).__name__, "a step index t")
        time_embedding = self.t_embed(t)
        out = x if x2 is None else torch.cat([x, x2], dim=1)
        for block in self.model_main:
            out = block(out, time_embedding)
        return self.final_conv(out)


def energy_network(image_nc: int = 3, ndf: int = 64, norm: str = "instance") -> TimeConditionalPatchDiscriminator:
    """UNSB's energy network E: ``basic_cond`` on ``4 * image_nc`` channels.

    E scores a pair of transitions: ``E(cat(x_t, x_1), t, cat(x_t', x_1'))``, each transition an
    image at step t and its translation stacked along channels. Not initialised here (use
    :func:`~cyclegan_pl.networks.init_weights`).

    Args:
        image_nc: channels of one image.
        ndf: channels of the first convolution.
        norm: normalization name.
    """
    return TimeConditionalPatchDiscriminator(4 * image_nc, ndf, n_layers=3, norm=norm)


@GENERATORS.register("resnet_9blocks_cond")
def resnet_9blocks_cond(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    antialias: bool = False,
) -> TimeConditionalResnetGenerator:
    """UNSB's time-conditional ResNet generator with 9 residual blocks; called as ``G(x, t, z)``.

    Args:
        input_nc: input image channels.
        output_nc: output image channels.
        ngf: channels of the first convolution.
        norm: normalization name.
        dropout: Dropout(0.5) inside the residual blocks.
        antialias: blur-pooled down / upsampling, as published (UNSB passes True); False uses
            strided and transposed convolutions.
    """
    return TimeConditionalResnetGenerator(input_nc, output_nc, ngf, norm, dropout, n_blocks=9, antialias=antialias)


@DISCRIMINATORS.register("basic_cond")
def patchgan_basic_cond(
    input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = True
) -> TimeConditionalPatchDiscriminator:
    """UNSB's time-conditional 70x70 PatchGAN (3 layers); called as ``D(x, t)`` or ``E(x, t, x2)``.

    Args:
        input_nc: input channels (12 for the energy network E).
        ndf: channels of the first convolution.
        n_layers: ignored (always 3).
        norm: normalization name.
        antialias: must be True (the only published variant).
    """
    return TimeConditionalPatchDiscriminator(input_nc, ndf, n_layers=3, norm=norm, antialias=antialias)
