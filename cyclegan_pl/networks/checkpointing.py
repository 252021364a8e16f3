"""Gradient checkpointing that gives the same numbers: recompute a part in backward instead of storing it.

:func:`checkpointed` runs a layer under ``torch.utils.checkpoint`` (non-reentrant): its
activations are dropped after the forward and recomputed during the backward pass, trading
compute for memory. Dropout draws the same masks on recomputation (the random state is kept). A
plain checkpoint would also run batch norm's running-statistics update twice (once in the forward,
once in the recomputation), so the running statistics of a checkpointed part are put back as
they were after the forward when it is recomputed: outputs, gradients and buffers equal an
unchecked run's.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Sequence, Tuple, Type

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def _batch_norms(layer: nn.Module) -> List[nn.modules.batchnorm._BatchNorm]:
    return [module for module in layer.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


def checkpointed(layer: nn.Module, *inputs: Tensor) -> Tensor:
    """``layer(*inputs)``, recomputed in backward when gradients are on (see the module doc)."""
    if not torch.is_grad_enabled():
        return layer(*inputs)
    norms = _batch_norms(layer)
    if not norms:
        return checkpoint(layer, *inputs, use_reentrant=False)

    @contextlib.contextmanager
    def recomputation() -> Iterator[None]:
        # Other forwards may have run since this one, so the buffers are put back as the
        # recomputation found them, not as this forward left them.
        before = [tuple(buffer.clone() for buffer in _buffers(norm)) for norm in norms]
        try:
            yield
        finally:
            with torch.no_grad():
                for norm, values in zip(norms, before, strict=True):
                    for buffer, value in zip(_buffers(norm), values, strict=True):
                        buffer.copy_(value)

    return checkpoint(
        layer, *inputs, use_reentrant=False, context_fn=lambda: (contextlib.nullcontext(), recomputation())
    )


def _buffers(norm: nn.modules.batchnorm._BatchNorm) -> Tuple[Tensor, ...]:
    buffers = (norm.running_mean, norm.running_var, norm.num_batches_tracked)
    return tuple(buffer for buffer in buffers if buffer is not None)


def checkpointed_run(layers: Sequence[nn.Module], x: Tensor) -> Tensor:
    """``layers`` applied in order as one recomputed part.

    Leading in-place activations run outside the part: they overwrite the part's input, which a
    recomputation would otherwise see already activated (and the reference networks rely on that
    overwrite, e.g. the U-Net's skip connection carries the activated input).
    """
    layers = list(layers)
    while layers and getattr(layers[0], "inplace", False):
        x = layers.pop(0)(x)
    if not layers:
        return x
    return checkpointed(layers[0] if len(layers) == 1 else nn.Sequential(*layers), x)


def split_before(layers: Sequence[nn.Module], kind: Type[nn.Module]) -> List[List[nn.Module]]:
    """``layers`` cut into runs that each start at a ``kind`` layer (the first run may not)."""
    runs: List[List[nn.Module]] = [[]]
    for layer in layers:
        if isinstance(layer, kind) and runs[-1]:
            runs.append([])
        runs[-1].append(layer)
    return runs
