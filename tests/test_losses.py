"""GAN loss modes on known values, and the gradient penalty."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cyclegan_pl.losses import GAN_LOSSES, build_gan_loss, gradient_penalty

PRED = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])


def test_registry_lists_all_modes():
    assert set(GAN_LOSSES.names()) == {"lsgan", "vanilla", "wgangp", "hinge"}
    with pytest.raises(ValueError, match="GAN loss mode .lsgann.; choose one of: lsgan, vanilla"):
        build_gan_loss("lsgann")


def test_lsgan_known_values():
    loss = build_gan_loss("lsgan")
    assert loss(PRED, True).item() == pytest.approx(((0.5 - 1) ** 2 + 4 + 1 + 1) / 4)
    assert loss(PRED, False).item() == pytest.approx((0.25 + 1 + 4 + 0) / 4)


def test_vanilla_known_values():
    loss = build_gan_loss("vanilla")
    values = [0.5, -1.0, 2.0, 0.0]
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert loss(PRED, True).item() == pytest.approx(sum(softplus(-v) for v in values) / 4, rel=1e-6)
    assert loss(PRED, False).item() == pytest.approx(sum(softplus(v) for v in values) / 4, rel=1e-6)


def test_wgangp_and_hinge_known_values():
    wgan = build_gan_loss("wgangp")
    assert wgan.uses_gradient_penalty
    assert wgan(PRED, True).item() == pytest.approx(-0.375)
    assert wgan(PRED, False).item() == pytest.approx(0.375)
    hinge = build_gan_loss("hinge")
    assert hinge(PRED, True, for_discriminator=True).item() == pytest.approx((0.5 + 2 + 0 + 1) / 4)
    assert hinge(PRED, False, for_discriminator=True).item() == pytest.approx((1.5 + 0 + 3 + 1) / 4)
    assert hinge(PRED, True).item() == pytest.approx(-0.375)


@pytest.mark.parametrize("mode", ["lsgan", "vanilla"])
def test_targets_follow_prediction_dtype_and_shape(mode):
    pred = torch.randn(2, 1, 5, 7, dtype=torch.float64)
    loss = build_gan_loss(mode)(pred, True)
    assert loss.dtype == torch.float64 and loss.dim() == 0


def test_gradient_penalty_value_and_gradient():
    # A linear critic D(x) = sum(w * x) has gradient w everywhere: penalty = (||w|| - 1)^2.
    critic = nn.Conv2d(2, 1, kernel_size=2, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[[[1.0, 2.0], [0.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]]]))
    real = torch.randn(3, 1, 2, 2)
    fake = torch.randn(3, 1, 2, 2)
    condition = torch.randn(3, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake, condition=condition)
    # Only the second input channel is the interpolated image: its weights are zero -> norm 0.
    assert penalty.item() == pytest.approx(1.0)
    critic2 = nn.Conv2d(1, 1, kernel_size=2, bias=False)
    with torch.no_grad():
        critic2.weight.copy_(torch.tensor([[[[1.0, 2.0], [0.0, 2.0]]]]))
    penalty2 = gradient_penalty(critic2, real, fake)
    assert penalty2.item() == pytest.approx((3.0 - 1.0) ** 2)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||: the penalty's gradient reaches D's weights.
    penalty2.backward()
    expected = 2 * (3.0 - 1.0) * critic2.weight.detach() / 3.0
    torch.testing.assert_close(critic2.weight.grad, expected)
