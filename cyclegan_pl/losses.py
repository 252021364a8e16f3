"""Adversarial losses, and the contrastive PatchNCE losses of CUT and DCLGAN.

Every mode is a :class:`GANLoss` subclass registered in :data:`GAN_LOSSES` under its config name.
A loss is called on the discriminator's raw output (no sigmoid) with ``target_is_real``; the
targets are built with the prediction's shape, dtype and device, so the loss works for PatchGAN
maps of any size and under autocast.

``wgangp`` is a real WGAN-GP: the models add :func:`gradient_penalty` to the discriminator loss
(the reference code defines the penalty but never calls it).

:func:`patch_nce_loss` is CUT's loss on projected feature patches (docs/method.md#cut-and-fastcut);
:func:`cosine_patch_nce_loss` is DCLGAN's variant (cosine similarities, negatives from the whole
batch; docs/method.md#dclgan).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegan_pl.registry import Registry

GAN_LOSSES: Registry[type] = Registry("GAN loss mode")


class GANLoss(nn.Module):
    """Base class: ``loss(prediction, target_is_real, for_discriminator)``.

    ``for_discriminator`` only matters for losses whose generator and discriminator objectives
    differ in form (hinge).
    """

    #: whether the discriminator loss needs the gradient penalty term
    uses_gradient_penalty: bool = False

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = False) -> Tensor:
        raise NotImplementedError


@GAN_LOSSES.register("lsgan")
class LSGANLoss(GANLoss):
    """Least-squares GAN: MSE against a target of 1 (real) or 0 (fake)."""

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = False) -> Tensor:
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        return F.mse_loss(prediction, target)


@GAN_LOSSES.register("vanilla")
class VanillaGANLoss(GANLoss):
    """The original GAN loss: binary cross-entropy on logits."""

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = False) -> Tensor:
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        return F.binary_cross_entropy_with_logits(prediction, target)


@GAN_LOSSES.register("wgangp")
class WassersteinGANLoss(GANLoss):
    """Wasserstein critic loss: ``-mean(real)`` and ``+mean(fake)``.

    The discriminator step adds :func:`gradient_penalty` (see ``uses_gradient_penalty``).
    """

    uses_gradient_penalty = True

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = False) -> Tensor:
        return -prediction.mean() if target_is_real else prediction.mean()


@GAN_LOSSES.register("hinge")
class HingeGANLoss(GANLoss):
    """Hinge loss: ``relu(1 - D(real)) + relu(1 + D(fake))`` for D, ``-D(fake)`` for G."""

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = False) -> Tensor:
        if not for_discriminator:
            # The generator maximises the critic score of its fakes.
            return -prediction.mean()
        if target_is_real:
            return F.relu(1.0 - prediction).mean()
        return F.relu(1.0 + prediction).mean()


@GAN_LOSSES.register("hinge_margin")
class MarginHingeGANLoss(HingeGANLoss):
    """Hinge loss whose generator term keeps the margin: ``relu(1 - D(fake))`` for G.

    The discriminator's terms are ``hinge``'s. The generator is scored with the discriminator's
    real-target term, ``mean(relu(1 - D(G(x))))``, instead of ``-mean(D(G(x)))``: the generator
    stops being pushed once its fakes score 1. This is the ``hinge`` mode of the CUT-family code
    (DCLGAN's default, docs/method.md#dclgan).
    """

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = False) -> Tensor:
        return super().forward(prediction, target_is_real, for_discriminator=True)


#: The type of the option choosing a loss mode.
GANMode = GAN_LOSSES.choices()


def build_gan_loss(gan_mode: str) -> GANLoss:
    """Instantiate the GAN loss registered as ``gan_mode`` (lsgan, vanilla, wgangp, hinge, hinge_margin)."""
    return GAN_LOSSES.get(gan_mode)()


def gradient_penalty(
    discriminator: nn.Module,
    real: Tensor,
    fake: Tensor,
    condition: Tensor | None = None,
    constant: float = 1.0,
) -> Tensor:
    """WGAN-GP penalty ``mean((||grad D(x_hat)||_2 - constant)^2)`` on random interpolates.

    Args:
        discriminator: the critic; called on ``x_hat`` (or ``cat(condition, x_hat)``).
        real: real images (N, C, H, W).
        fake: generated images, same shape; detached here.
        condition: for conditional critics (pix2pix), the input concatenated in front.
        constant: the target gradient norm.

    The graph is kept (``create_graph=True``) so the penalty's own gradient reaches D's weights.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    critic_input = interpolates if condition is None else torch.cat([condition, interpolates], dim=1)
    scores = discriminator(critic_input)
    (gradients,) = torch.autograd.grad(
        outputs=scores,
        inputs=interpolates,
        grad_outputs=torch.ones_like(scores),
        create_graph=True,
    )
    gradients = gradients.flatten(1)
    return ((gradients.norm(2, dim=1) - constant) ** 2).mean()


def patch_nce_loss(
    query: Tensor,
    key: Tensor,
    temperature: float = 0.07,
    negatives_from_minibatch: bool = False,
) -> Tensor:
    """CUT's PatchNCE loss of one feature layer, one value per query row (docs/method.md#cut-and-fastcut).

    Each query row must pick its own key (the positive, same image and position) out of the keys
    of the other positions (the negatives): a cross-entropy over ``[positive, negatives] / tau``
    with the positive as the target. The key at the query's own position is among the negatives
    too, its logit replaced by -10 (it stays in the softmax, as in the published code).

    Rows are grouped per image by the tensors' own first dimension, so a short last batch or a
    per-device batch groups correctly.

    Args:
        query: (N, P, D) projected patches of the output images (L2-normalised rows).
        key: (N, P, D) projected patches of the source images at the same positions; detached
            here (keys get no gradient).
        temperature: tau (0.07).
        negatives_from_minibatch: take the negatives from all ``N * P`` keys of the batch instead
            of the ``P`` keys of the query's own image (for single-image training).

    Returns:
        (N, P) cross-entropy of each row; the caller weights and averages it.
    """
    if query.dim() != 3 or query.shape != key.shape:
        raise ValueError(
            f"patch_nce_loss needs query and key of the same (N, P, D) shape, got {tuple(query.shape)} "
            f"and {tuple(key.shape)}."
        )
    batch, patches, dim = query.shape
    key = key.detach()
    rows_q = query.reshape(batch * patches, 1, dim)
    rows_k = key.reshape(batch * patches, dim, 1)
    positive = torch.bmm(rows_q, rows_k).view(batch * patches, 1)
    groups = 1 if negatives_from_minibatch else batch
    grouped_q = query.reshape(groups, -1, dim)
    grouped_k = key.reshape(groups, -1, dim)
    per_group = grouped_q.shape[1]
    negatives = torch.bmm(grouped_q, grouped_k.transpose(2, 1))
    same_position = torch.eye(per_group, device=query.device, dtype=torch.bool)[None]
    negatives = negatives.masked_fill(same_position, -10.0).view(-1, per_group)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, targets, reduction="none").view(batch, patches)


def cosine_patch_nce_loss(query: Tensor, key: Tensor, temperature: float = 0.07, pairwise: str = "broadcast") -> Tensor:
    """DCLGAN's PatchNCE loss of one feature layer, one value per query row (docs/method.md#dclgan).

    As :func:`patch_nce_loss`, each query row must pick its own key out of the others, but the
    similarities are cosines (``F.cosine_similarity``, eps 1e-8) of the projected rows, and the
    negatives of every row are the keys of *all* rows of the batch (every image's patches), its
    own key among them with logit -10. At the published initialisation the projected rows are far
    from unit length, so cosines are not the dot products CUT uses.

    Args:
        query: (R, D) projected patches of the output images, image-major (R = N * P).
        key: (R, D) projected patches of the source images at the same positions; detached
            here (keys get no gradient).
        temperature: tau (0.07).
        pairwise: how the R x R cosines are computed: ``broadcast`` (the published computation,
            an (R, R, D) intermediate: 64 MiB per layer at one image of 256 patches, 16 times
            that at four images) or ``matmul`` (rows scaled to unit length, then one matrix
            product: R x R memory, the same values up to rounding).

    Returns:
        (R,) cross-entropy of each row; the caller averages it.
    """
    if query.dim() != 2 or query.shape != key.shape:
        raise ValueError(
            f"cosine_patch_nce_loss needs query and key of the same (R, D) shape, got {tuple(query.shape)} "
            f"and {tuple(key.shape)}."
        )
    if pairwise not in ("broadcast", "matmul"):
        raise ValueError(f"pairwise={pairwise!r}: use 'broadcast' or 'matmul'.")
    rows = query.shape[0]
    key = key.detach()
    positive = F.cosine_similarity(query, key, dim=-1).view(rows, 1)
    if pairwise == "broadcast":
        negatives = F.cosine_similarity(query[:, None, None, :], key[None, None, :, :], dim=-1).view(rows, rows)
    else:
        unit_q = query / query.norm(dim=1, keepdim=True).clamp_min(1e-8)
        unit_k = key / key.norm(dim=1, keepdim=True).clamp_min(1e-8)
        negatives = unit_q @ unit_k.t()
    same_position = torch.eye(rows, dtype=torch.bool, device=query.device)
    negatives = negatives.masked_fill(same_position, -10.0)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    targets = torch.zeros(rows, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, targets, reduction="none")
