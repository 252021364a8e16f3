"""Weight initialization schemes selectable by name (``init_type``)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..registry import Registry

__all__ = ["INITS", "init_weights"]

WeightInit = Callable[[torch.Tensor, float], None]

INITS: Registry[WeightInit] = Registry("init type")

# Layers whose weight goes through the chosen scheme (bias set to 0).
_WEIGHTED_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


@INITS.register("normal")
def normal_init(weight: torch.Tensor, gain: float) -> None:
    """Draw from N(0, gain)."""
    nn.init.normal_(weight, mean=0.0, std=gain)


@INITS.register("xavier")
def xavier_init(weight: torch.Tensor, gain: float) -> None:
    """Xavier/Glorot normal with the given gain."""
    nn.init.xavier_normal_(weight, gain=gain)


@INITS.register("kaiming")
def kaiming_init(weight: torch.Tensor, gain: float) -> None:
    """Kaiming/He normal (fan_in). Its scale comes from the fan-in alone: ``gain`` is unused, as
    in the reference code."""
    nn.init.kaiming_normal_(weight, a=0, mode="fan_in")


@INITS.register("orthogonal")
def orthogonal_init(weight: torch.Tensor, gain: float) -> None:
    """(Semi-)orthogonal matrix scaled by the gain."""
    nn.init.orthogonal_(weight, gain=gain)


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialize a network in place, as the reference code does.

    Convolution, transposed-convolution and linear weights follow ``init_type``, their biases
    become 0. BatchNorm2d weights are drawn from N(1, init_gain) and their biases become 0.

    Args:
        net: network to initialize.
        init_type: one of ``INITS.names()`` (``normal``, ``xavier``, ``kaiming``, ``orthogonal``).
        init_gain: standard deviation (``normal``) or gain (``xavier``, ``orthogonal``).

    Returns:
        ``net`` itself.
    """
    init_weight = INITS.get(init_type)
    for module in net.modules():
        if isinstance(module, _WEIGHTED_LAYERS):
            init_weight(module.weight, init_gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            if module.weight is not None:
                nn.init.normal_(module.weight, mean=1.0, std=init_gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net
