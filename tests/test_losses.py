"""GAN loss modes on known values, and the gradient penalty."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cyclegan_pl.losses import GAN_LOSSES, build_gan_loss, cosine_patch_nce_loss, gradient_penalty, patch_nce_loss

PRED = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])


def test_registry_lists_all_modes():
    assert set(GAN_LOSSES.names()) == {"lsgan", "vanilla", "wgangp", "hinge", "hinge_margin"}
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


def test_hinge_margin_gives_the_generator_the_real_target_hinge():
    margin = build_gan_loss("hinge_margin")
    hinge = build_gan_loss("hinge")
    for real in (True, False):
        assert margin(PRED, real, for_discriminator=True).item() == hinge(PRED, real, for_discriminator=True).item()
    # G: mean(relu(1 - D(fake))), not -mean(D(fake)).
    assert margin(PRED, True).item() == pytest.approx((0.5 + 2 + 0 + 1) / 4)


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


# --- PatchNCE ----------------------------------------------------------------------------
def _cross_entropy(logits, tau=0.07):
    """-log softmax(logits / tau)[0], by hand."""
    scaled = [value / tau for value in logits]
    return math.log(sum(math.exp(v) for v in scaled)) - scaled[0]


NCE_QUERY = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
NCE_KEY = torch.tensor([[[0.6, 0.8], [1.0, 0.0]]])


def test_patch_nce_known_values_one_image():
    # Row 0: positive q0.k0 = 0.6; negatives q0.k0 (own position -> -10), q0.k1 = 1.
    # Row 1: positive q1.k1 = 0;   negatives q1.k0 = 0.8, q1.k1 (own position -> -10).
    loss = patch_nce_loss(NCE_QUERY, NCE_KEY)
    assert loss.shape == (1, 2)
    expected = [_cross_entropy([0.6, -10.0, 1.0]), _cross_entropy([0.0, 0.8, -10.0])]
    assert loss.flatten().tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_patch_nce_groups_rows_by_the_tensors_batch_size():
    # The same two rows as two images of one patch each: per image, the only negative is the
    # masked own position; from the whole minibatch, the rows see each other as above.
    query, key = NCE_QUERY.view(2, 1, 2), NCE_KEY.view(2, 1, 2)
    per_image = patch_nce_loss(query, key)
    assert per_image.shape == (2, 1)
    assert per_image.flatten().tolist() == pytest.approx(
        [_cross_entropy([0.6, -10.0]), _cross_entropy([0.0, -10.0])], rel=1e-5, abs=1e-6
    )
    whole_batch = patch_nce_loss(query, key, negatives_from_minibatch=True)
    assert whole_batch.flatten().tolist() == pytest.approx(
        [_cross_entropy([0.6, -10.0, 1.0]), _cross_entropy([0.0, 0.8, -10.0])], rel=1e-5, abs=1e-6
    )
    assert patch_nce_loss(query, key, temperature=1.0).flatten().tolist() == pytest.approx(
        [_cross_entropy([0.6, -10.0], tau=1.0), _cross_entropy([0.0, -10.0], tau=1.0)], rel=1e-5, abs=1e-6
    )


def test_patch_nce_keys_get_no_gradient():
    query = NCE_QUERY.clone().requires_grad_(True)
    key = NCE_KEY.clone().requires_grad_(True)
    patch_nce_loss(query, key).mean().backward()
    assert key.grad is None
    assert query.grad is not None and query.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"same \(N, P, D\) shape"):
        patch_nce_loss(query, key[:, :1])


def test_cosine_patch_nce_known_values_and_whole_batch_negatives():
    # Two rows, orthogonal unit keys scaled by 3 and 0.5: cosines ignore the lengths.
    key = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    query = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    rows = cosine_patch_nce_loss(query, key, temperature=1.0)
    cos = 1 / math.sqrt(2)
    # Row 0: positive cos 1, negatives [-10 (itself), cos(q0, k1) = 0]; row 1: positive cos, [cos, -10].
    expected0 = -1.0 + math.log(math.exp(1.0) + math.exp(-10.0) + math.exp(0.0))
    expected1 = -cos + math.log(math.exp(cos) + math.exp(cos) + math.exp(-10.0))
    assert rows.tolist() == pytest.approx([expected0, expected1], rel=1e-6)
    # Rows of other images are negatives too: R x R, whatever the batch they came from.
    big = torch.randn(6, 4)
    assert cosine_patch_nce_loss(big, torch.randn(6, 4)).shape == (6,)


def test_cosine_patch_nce_matmul_equals_broadcast_and_keys_get_no_gradient():
    generator = torch.Generator().manual_seed(0)
    query = (torch.randn(12, 8, generator=generator) * 1e-3).requires_grad_(True)
    key = (torch.randn(12, 8, generator=generator) * 1e-3).requires_grad_(True)
    broadcast = cosine_patch_nce_loss(query, key, 0.07)
    matmul = cosine_patch_nce_loss(query, key, 0.07, pairwise="matmul")
    torch.testing.assert_close(matmul, broadcast, rtol=1e-5, atol=1e-5)
    broadcast.sum().backward()
    assert key.grad is None and query.grad is not None
    # Not CUT's dot products: at this scale those logits would all be ~0.
    assert not torch.allclose(broadcast, patch_nce_loss(query[None], key[None], 0.07)[0])
    with pytest.raises(ValueError, match="same \\(R, D\\) shape"):
        cosine_patch_nce_loss(query, key[:3])
