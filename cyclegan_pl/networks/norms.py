"""Normalization layers selectable by name (``norm``).

``NORMS.get(name)`` returns a :class:`NormLayer`: a factory that builds the layer for a channel
count and knows whether the convolution feeding it should carry a bias.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..registry import Registry

__all__ = ["NORMS", "NormLayer", "get_norm_layer", "norm_uses_bias"]


class NormLayer:
    """Builds one normalization layer per call.

    Args:
        build: callable taking a channel count and returning the layer.
        conv_bias: whether a convolution right before this layer carries a bias. BatchNorm has its
            own affine shift, so its convolutions have none. The reference networks keep a bias
            before InstanceNorm (and before no norm); reproducing that keeps their checkpoints
            loadable.
    """

    def __init__(self, build: Callable[[int], nn.Module], conv_bias: bool) -> None:
        self._build = build
        self.conv_bias = conv_bias

    def __call__(self, num_features: int) -> nn.Module:
        return self._build(num_features)


def _instance_norm(num_features: int) -> nn.Module:
    return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)


def _batch_norm(num_features: int) -> nn.Module:
    return nn.BatchNorm2d(num_features, affine=True, track_running_stats=True)


def _no_norm(num_features: int) -> nn.Module:
    # An Identity keeps the layer's slot in nn.Sequential, so key indices match the other norms.
    return nn.Identity()


NORMS: Registry[NormLayer] = Registry("norm")
NORMS.add("instance", NormLayer(_instance_norm, conv_bias=True))
NORMS.add("batch", NormLayer(_batch_norm, conv_bias=False))
NORMS.add("none", NormLayer(_no_norm, conv_bias=True))


def get_norm_layer(norm: str) -> NormLayer:
    """Return the layer factory for a norm name.

    Args:
        norm: one of ``NORMS.names()`` (``instance``, ``batch``, ``none``).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    return NORMS.get(norm)


def norm_uses_bias(norm: str) -> bool:
    """Whether convolutions placed before the ``norm`` layer carry a bias.

    Args:
        norm: one of ``NORMS.names()``.
    """
    return NORMS.get(norm).conv_bias
