"""How networks run at inference time: eval mode, or the reference's test-time train mode."""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Sequence

import torch
from torch import nn


@contextlib.contextmanager
def inference_mode(nets: Sequence[nn.Module], eval_mode: bool) -> Iterator[None]:
    """Run ``nets`` without gradients in eval mode, or in the reference's test-time train mode.

    The reference test script keeps dropout and batch statistics on unless ``--eval``; with
    ``eval_mode`` False we do the same, but zero the BatchNorm momentum so that inference during
    training (validation, sample grids) never changes the running statistics being trained.
    SyncBatchNorm layers use their own batch's statistics here, as the one-GPU reference does: an
    image's output then does not depend on what other processes translate, and inference runs no
    collective (ranks may hold different numbers of images). Every flag is restored afterwards.

    Args:
        nets: the networks that run in the block.
        eval_mode: ``nn.Module.eval()`` (dropout off, running statistics) instead.
    """
    was_training = [net.training for net in nets]
    saved_momentum = []
    local_statistics = []
    for net in nets:
        if eval_mode:
            net.eval()
            continue
        net.train()
        for layer in net.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                saved_momentum.append((layer, layer.momentum, layer.num_batches_tracked.clone()))
                layer.momentum = 0.0
            if isinstance(layer, nn.SyncBatchNorm):
                layer.forward = functools.partial(nn.modules.batchnorm._BatchNorm.forward, layer)
                local_statistics.append(layer)
    try:
        with torch.no_grad():
            yield
    finally:
        for layer, momentum, tracked in saved_momentum:
            layer.momentum = momentum
            layer.num_batches_tracked.copy_(tracked)
        for layer in local_statistics:
            del layer.forward  # back to SyncBatchNorm.forward
        for net, flag in zip(nets, was_training, strict=True):
            net.train(flag)
