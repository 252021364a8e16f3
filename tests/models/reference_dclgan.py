"""One DCLGAN training iteration in plain PyTorch, as the authors' code performs it.

Written from the project's DCLGAN / UNSB specification (notes: dclgan_unsb_spec.md), which describes
JunlinHan/DCLGAN ``models/dcl_model.py`` at the defaults of its ``options/``; checked against that
code run outside the project (equal parameters, bit for bit, after one and two iterations at batch 1
and 2). Not collected by pytest (no ``test_`` prefix): load it with ``load_reference`` of
test_reference_methods.py (spec_from_file_location, registered in ``sys.modules``) and compare a
module's Trainer iteration with :func:`dclgan_iteration`, the random draws made equal on both sides.

Networks are given (G_A, G_B: anti-aliased ResNets with ``encode(x, layers)``; D_A judges domain
B, D_B domain A; F1 projects G_A's features, F2 G_B's, through heads ``mlp_<k>``); the random
draws are arguments: the patch positions of ``NCE(A, G_A(A))`` and of ``NCE(B, G_B(B))``, one
index vector per NCE layer each. DCLGAN draws nothing else (no pool, no dropout, no flip).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NCE_LAYERS = (4, 8, 12, 16)


@dataclass
class DCLGANNetworks:
    g_a: nn.Module
    g_b: nn.Module
    d_a: nn.Module
    d_b: nn.Module
    f1: nn.Module
    f2: nn.Module


@dataclass
class DCLGANOptimizers:
    g: torch.optim.Optimizer
    d: torch.optim.Optimizer
    f: torch.optim.Optimizer


def dclgan_optimizers(nets: DCLGANNetworks, lr: float = 2e-4, betas=(0.5, 0.999)) -> DCLGANOptimizers:
    """The authors' three Adams: G_A and G_B together, D_A and D_B together (``lr``, ``betas``),
    and F1 and F2 together with PyTorch's Adam defaults (lr 1e-3, betas (0.9, 0.999)), whatever
    ``lr`` is."""
    return DCLGANOptimizers(
        g=torch.optim.Adam(itertools.chain(nets.g_a.parameters(), nets.g_b.parameters()), lr=lr, betas=betas),
        d=torch.optim.Adam(itertools.chain(nets.d_a.parameters(), nets.d_b.parameters()), lr=lr, betas=betas),
        f=torch.optim.Adam(itertools.chain(nets.f1.parameters(), nets.f2.parameters())),
    )


def gan_loss(prediction: Tensor, real: bool, mode: str) -> Tensor:
    """The authors' GAN criterion. Their ``hinge`` gives the generator the discriminator's
    real-target term, ``mean(relu(1 - D(G(x))))``, not ``-mean(D(G(x)))``."""
    if mode == "hinge":
        return F.relu(1 - prediction).mean() if real else F.relu(1 + prediction).mean()
    target = torch.full_like(prediction, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan mode {mode}")


def project(net_f: nn.Module, features: Sequence[Tensor], patch_ids: Sequence[Tensor]) -> List[Tensor]:
    """The rows at ``patch_ids`` of each map (N*P, C) through head ``mlp_<k>``, divided by their
    L2 norm + 1e-7: (N*P, units) per layer, image-major."""
    rows = []
    for k, (feature, ids) in enumerate(zip(features, patch_ids, strict=True)):
        patches = feature.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :].flatten(0, 1)
        out = getattr(net_f, f"mlp_{k}")(patches)
        rows.append(out / (out.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7))
    return rows


def cosine_patch_nce(query: Tensor, key: Tensor, temperature: float) -> Tensor:
    """DCLGAN's PatchNCE of one layer, one value per query row.

    Similarities are cosines. The negatives of each query are the keys of *all* rows of the
    batch (every image's patches), its own key among them with logit -10; the positive is its own
    key. The keys get no gradient.
    """
    rows = query.shape[0]
    key = key.detach()
    positive = F.cosine_similarity(query, key, dim=-1).view(rows, 1)
    negatives = F.cosine_similarity(query[:, None, None, :], key[None, None, :, :], dim=-1).view(rows, rows)
    negatives = negatives.masked_fill(torch.eye(rows, dtype=torch.bool, device=query.device), -10.0)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(rows, dtype=torch.long, device=query.device), reduction="none")


def nce_term(
    source: Tensor,
    output: Tensor,
    key_g: nn.Module,
    key_f: nn.Module,
    query_g: nn.Module,
    query_f: nn.Module,
    patch_ids: Sequence[Tensor],
    layers: Sequence[int],
    temperature: float,
) -> Tensor:
    """One direction's PatchNCE: keys from the translating generator's encoder on the source
    (through its own head), queries from the *other* generator's encoder on the output (through
    the other head), at the same positions; mean over rows, then over layers."""
    queries = query_g.encode(output, list(layers))
    with torch.no_grad():  # the authors' keys are detached inside the loss: no gradient either way
        keys = project(key_f, key_g.encode(source, list(layers)), patch_ids)
    queries = project(query_f, queries, patch_ids)
    total = 0.0
    for query, key in zip(queries, keys, strict=True):
        total = total + cosine_patch_nce(query, key, temperature).mean()
    return total / len(layers)


def set_requires_grad(nets: Sequence[nn.Module], flag: bool) -> None:
    for net in nets:
        for parameter in net.parameters():
            parameter.requires_grad_(flag)


def dclgan_iteration(
    nets: DCLGANNetworks,
    optimizers: DCLGANOptimizers,
    real_a: Tensor,
    real_b: Tensor,
    patch_ids_a: Sequence[Tensor],
    patch_ids_b: Sequence[Tensor],
    *,
    lambda_gan: float = 1.0,
    lambda_nce: float = 2.0,
    lambda_idt: float = 1.0,
    gan_mode: str = "hinge",
    nce_layers: Sequence[int] = NCE_LAYERS,
    temperature: float = 0.07,
) -> Dict[str, Tensor]:
    """One training iteration of DCLGAN at the authors' defaults; updates the networks in place.

    Args:
        nets: the six networks.
        optimizers: their Adams (:func:`dclgan_optimizers`).
        real_a: images of domain A (N, C, H, W).
        real_b: images of domain B.
        patch_ids_a: per NCE layer, the positions (into the flattened H*W of G_A's feature map) of
            ``NCE(real_A, fake_B)``; shared by every image of the batch.
        patch_ids_b: the same for ``NCE(real_B, fake_A)`` (G_B's feature maps).
        lambda_gan, lambda_nce, lambda_idt, gan_mode, nce_layers, temperature: the options.

    Returns:
        The loss terms under the authors' names (weighted as they log them).
    """
    # 1. every forward first: both translations and both identities
    fake_b = nets.g_a(real_a)
    fake_a = nets.g_b(real_b)
    idt_a = nets.g_a(real_b)
    idt_b = nets.g_b(real_a)

    # 2. one Adam step on both discriminators (one optimizer, two backwards)
    set_requires_grad([nets.d_a, nets.d_b], True)
    optimizers.d.zero_grad()
    loss_d_a = 0.5 * (gan_loss(nets.d_a(real_b), True, gan_mode) + gan_loss(nets.d_a(fake_b.detach()), False, gan_mode))
    loss_d_a.backward()
    loss_d_b = 0.5 * (gan_loss(nets.d_b(real_a), True, gan_mode) + gan_loss(nets.d_b(fake_a.detach()), False, gan_mode))
    loss_d_b.backward()
    optimizers.d.step()

    # 3. with D frozen, one backward through both generators and both heads, then their steps
    set_requires_grad([nets.d_a, nets.d_b], False)
    optimizers.g.zero_grad()
    optimizers.f.zero_grad()
    zero = real_a.new_zeros(())
    loss_g_a = loss_g_b = loss_nce1 = loss_nce2 = loss_idt_a = loss_idt_b = zero
    if lambda_gan > 0:
        loss_g_a = gan_loss(nets.d_a(fake_b), True, gan_mode) * lambda_gan
        loss_g_b = gan_loss(nets.d_b(fake_a), True, gan_mode) * lambda_gan
    if lambda_nce > 0:  # the identity terms exist only with the NCE ones
        loss_nce1 = nce_term(real_a, fake_b, nets.g_a, nets.f1, nets.g_b, nets.f2, patch_ids_a, nce_layers, temperature)
        loss_nce2 = nce_term(real_b, fake_a, nets.g_b, nets.f2, nets.g_a, nets.f1, patch_ids_b, nce_layers, temperature)
        loss_nce1, loss_nce2 = loss_nce1 * lambda_nce, loss_nce2 * lambda_nce
        loss_idt_a = F.l1_loss(idt_a, real_b) * lambda_idt
        loss_idt_b = F.l1_loss(idt_b, real_a) * lambda_idt
    loss_g = (loss_g_a + loss_g_b) * 0.5 + (loss_nce1 + loss_nce2) * 0.5 + (loss_idt_a + loss_idt_b) * 0.5
    loss_g.backward()
    optimizers.g.step()
    optimizers.f.step()
    set_requires_grad([nets.d_a, nets.d_b], True)
    return {
        "D_A": loss_d_a.detach() * lambda_gan,
        "D_B": loss_d_b.detach() * lambda_gan,
        "G_A": loss_g_a.detach(),
        "G_B": loss_g_b.detach(),
        "NCE1": loss_nce1.detach(),
        "NCE2": loss_nce2.detach(),
        "idt_A": loss_idt_a.detach(),
        "idt_B": loss_idt_b.detach(),
        "G": loss_g.detach(),
    }
