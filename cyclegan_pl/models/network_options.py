"""Options that change how networks run, not what they compute: checkpointing, compilation, memory format."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from cyclegan_pl.errors import OptionError


def enable_gradient_checkpointing(networks: Sequence[nn.Module], option: str) -> None:
    """Recompute the networks' layers in the backward pass instead of storing their activations.

    Args:
        networks: generators or discriminators with a ``gradient_checkpointing`` switch.
        option: the module option that asked for it (named in the error).

    Raises:
        OptionError: a network cannot recompute its layers (UNSB's time-conditional networks, and
            networks of the user's own).
    """
    for net in networks:
        if not hasattr(net, "gradient_checkpointing"):
            raise OptionError(
                f"{option}=True: {type(net).__name__} has no gradient checkpointing; the built-in ResNet and "
                "U-Net generators and PatchGAN/PixelGAN discriminators have (UNSB's time-conditional ones have not).",
                option=option,
            )
        net.gradient_checkpointing = True


def compile_networks(networks: Sequence[nn.Module]) -> None:
    """``torch.compile`` each network in place (``Module.compile`` keeps the state_dict keys)."""
    for net in networks:
        net.compile()
