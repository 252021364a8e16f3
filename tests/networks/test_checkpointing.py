"""Gradient checkpointing changes memory, never numbers: outputs, gradients and running statistics."""

from __future__ import annotations

import copy

import pytest
import torch

from cyclegan_pl.networks import define_discriminator, define_generator

NETWORKS = {
    "resnet, batch norm, dropout": lambda: define_generator("resnet_3blocks", ngf=8, norm="batch", dropout=True),
    "resnet antialiased": lambda: define_generator("resnet_2blocks", ngf=8, antialias=True),
    "unet, batch norm, dropout": lambda: define_generator("unet_64", ngf=8, norm="batch", dropout=True),
    "unet, instance norm": lambda: define_generator("unet_32", ngf=8),
    "patchgan, batch norm": lambda: define_discriminator("basic", ndf=8, norm="batch"),
    "patchgan antialiased": lambda: define_discriminator("n_layers", ndf=8, n_layers=2, antialias=True),
    "pixelgan": lambda: define_discriminator("pixel", ndf=8, norm="batch"),
}


def _step(net: torch.nn.Module, x: torch.Tensor):
    torch.manual_seed(1)  # the same dropout masks in both runs
    inp = x.clone().requires_grad_(True)
    out = net(inp)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), inp.grad, {name: p.grad for name, p in net.named_parameters()}


@pytest.mark.parametrize("build", NETWORKS.values(), ids=NETWORKS.keys())
def test_checkpointed_network_gives_the_same_outputs_gradients_and_buffers(build):
    torch.manual_seed(0)
    plain = build()
    checkpointed = copy.deepcopy(plain)
    assert plain.gradient_checkpointing is False
    checkpointed.gradient_checkpointing = True
    x = torch.randn(2, 3, 64, 64)

    (out_a, in_grad_a, grads_a), (out_b, in_grad_b, grads_b) = _step(plain, x), _step(checkpointed, x)
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=1e-5)
    torch.testing.assert_close(in_grad_b, in_grad_a, rtol=1e-5, atol=1e-5)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-5, atol=1e-5, msg=name)
    # BatchNorm's running statistics are updated once per step, as without checkpointing.
    for (name, buffer), (_, other) in zip(plain.named_buffers(), checkpointed.named_buffers(), strict=True):
        torch.testing.assert_close(other, buffer, rtol=0, atol=1e-6, msg=name)


def test_unet_switch_reaches_every_level():
    net = define_generator("unet_64", ngf=8)
    net.gradient_checkpointing = True
    levels = [m for m in net.modules() if type(m).__name__ == "UnetSkipConnectionBlock"]
    assert len(levels) == 6 and all(level.gradient_checkpointing for level in levels)
    assert net.gradient_checkpointing is True


def test_checkpointing_stores_less_for_the_backward_pass():
    """What autograd keeps for backward (the memory checkpointing is for) shrinks."""

    def saved_bytes(net: torch.nn.Module) -> int:
        total = 0

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        x = torch.randn(1, 3, 64, 64)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            net(x).sum()
        return total

    for build in (NETWORKS["resnet, batch norm, dropout"], NETWORKS["unet, instance norm"], NETWORKS["pixelgan"]):
        net = build()
        plain = saved_bytes(net)
        net.gradient_checkpointing = True
        assert saved_bytes(net) < 0.75 * plain, type(net).__name__


def test_checkpointed_encoder_gives_the_same_features_and_gradients():
    """CUT's PatchNCE features (``encode``) come out of recomputed parts that end at each layer asked for."""
    torch.manual_seed(0)
    plain = define_generator("resnet_9blocks", ngf=8, antialias=True)
    checkpointed = copy.deepcopy(plain)
    checkpointed.gradient_checkpointing = True
    x = torch.randn(1, 3, 64, 64)
    results = []
    for net in (plain, checkpointed):
        features = net.encode(x, [0, 4, 8, 12, 16])
        sum(feature.square().mean() for feature in features).backward()
        results.append(([feature.detach() for feature in features], {n: p.grad for n, p in net.named_parameters()}))
    (features_a, grads_a), (features_b, grads_b) = results
    for feature_a, feature_b in zip(features_a, features_b, strict=True):
        torch.testing.assert_close(feature_b, feature_a, rtol=0, atol=1e-6)
    for name, grad in grads_a.items():
        if grad is not None:
            torch.testing.assert_close(grads_b[name], grad, rtol=1e-5, atol=1e-6, msg=name)
