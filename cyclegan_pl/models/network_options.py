"""Options that change how networks run, not what they compute: checkpointing, compilation, memory format."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from cyclegan_pl.errors import OptionError


def enable_gradient_checkpointing(generators: Sequence[nn.Module]) -> None:
    """Recompute the generators' residual blocks in the backward pass instead of storing them.

    Raises:
        OptionError: a generator has no blocks to recompute (the ResNet generators have).
    """
    for gen in generators:
        if not hasattr(gen, "gradient_checkpointing"):
            raise OptionError(
                f"gradient_checkpointing=True needs a ResNet generator; {type(gen).__name__} does not support it.",
                option="gradient_checkpointing",
            )
        gen.gradient_checkpointing = True


def compile_networks(networks: Sequence[nn.Module]) -> None:
    """``torch.compile`` each network in place (``Module.compile`` keeps the state_dict keys)."""
    for net in networks:
        net.compile()
