"""One UNSB training iteration in plain PyTorch, as the authors' code performs it.

Written from the project's DCLGAN / UNSB specification (notes: dclgan_unsb_spec.md), which describes
cyclomon/UNSB ``models/sb_model.py`` in the ``--mode sb`` configuration; checked against that code
run outside the project (equal parameters, bit for bit, after one and two iterations at batch 1 and
2). Not collected by pytest (no ``test_`` prefix): load it with ``load_reference`` of
test_reference_methods.py (spec_from_file_location, registered in ``sys.modules``) and compare a
module's Trainer iteration with :func:`unsb_iteration`, the random draws made equal on both sides.

Networks are given: G (``resnet_9blocks_cond``, called ``G(x, t, z)``, with ``encode(x, t, z,
layers)`` and ``z_dim``), D (``basic_cond``, ``D(x, t)``), E (``basic_cond`` on 12 channels,
``E(x, t, x2)``) and F (heads ``mlp_<k>``). Every random draw of the iteration is a field of
:class:`UNSBDraws`; :func:`draw_in_authors_order` makes them from one generator in the order the
authors' code consumes its random streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NCE_LAYERS = (0, 4, 8, 12, 16)


def time_grid(num_timesteps: int) -> Tensor:
    """The T + 1 times of the path, float32: 0, then 0.5 + 0.5 * (harmonic partial sums /
    their total), which runs from 0.5 to 1. Computed in float64 like the authors' NumPy code."""
    increments = [0.0] + [1.0 / (i + 1) for i in range(num_timesteps - 1)]
    partial, sums = 0.0, []
    for increment in increments:
        partial += increment
        sums.append(partial)
    # T = 1 divides 0 by 0, as the authors' code does; those times are never used (t is always 0).
    scaled = [s / sums[-1] if sums[-1] else float("nan") for s in sums]
    times = [0.0] + [0.5 * scaled[-1] + 0.5 * s for s in scaled]
    return torch.tensor(times, dtype=torch.float64).float()


@dataclass
class UNSBDraws:
    """The random draws of one UNSB iteration (N images per batch, step index t).

    Attributes:
        time_index: the step t in [0, T - 1], one for the whole batch.
        path_z: for each path step s = 0..t, the latents of the three chains (A, A2, B), each
            (N, z_dim).
        path_noise: for each path step s = 1..t, the Gaussian noise of the three chains (A, A2,
            B), each shaped like the images.
        z_fake: latents of ``G(cat(X_t, X_t^B))``: (2N, z_dim) with ``nce_idt`` (N without).
        z_fake2: latents of ``G(X_t^2)``: (N, z_dim).
        z_nce: the one latent batch (N, z_dim) both encodes of ``NCE(A, G(X_t))`` use.
        patch_ids_nce: per NCE layer, the positions of ``NCE(A, G(X_t))``.
        z_nce_idt: the latents of ``NCE(B, G(X_t^B))``.
        patch_ids_nce_idt: its positions.
    """

    time_index: int
    path_z: List[Sequence[Tensor]]
    path_noise: List[Sequence[Tensor]]
    z_fake: Tensor
    z_fake2: Tensor
    z_nce: Tensor
    patch_ids_nce: List[Tensor]
    z_nce_idt: Optional[Tensor] = None
    patch_ids_nce_idt: Optional[List[Tensor]] = None


def draw_in_authors_order(
    generator: torch.Generator,
    images: Tensor,
    z_dim: int,
    feature_positions: Sequence[int],
    num_timesteps: int = 5,
    num_patches: int = 256,
    nce_idt: bool = True,
    time_index: Optional[int] = None,
) -> UNSBDraws:
    """All draws of one iteration from ``generator``, in the authors' order (their code spreads
    them over the CPU generator, the CUDA generator and NumPy; this keeps their sequence):
    the step, then per path step s = 0..t [noise A if s > 0, z A, noise A2 if s > 0, z A2, noise B
    if s > 0, z B], then z_fake, z_fake2, (two unused uniforms: the discriminator's and the
    generator's ``std``), z_nce, the positions of each NCE layer, z_nce_idt, their positions.

    Args:
        generator: the stream.
        images: a batch shaped like the inputs (for the noise).
        z_dim: G's latent width.
        feature_positions: H * W of each NCE layer's feature map.
        num_timesteps: T.
        num_patches: positions per layer.
        nce_idt: draw the identity chain and its NCE draws.
        time_index: force the step (still drawn, then replaced).
    """
    n = images.shape[0]
    drawn = int(torch.randint(num_timesteps, (1,), generator=generator))
    t = drawn if time_index is None else time_index
    chains = 3 if nce_idt else 2
    path_z, path_noise = [], []
    for s in range(t + 1):
        zs, noises = [], []
        for _ in range(chains):
            if s > 0:
                noises.append(torch.randn(images.shape, generator=generator))
            zs.append(torch.randn(n, z_dim, generator=generator))
        path_z.append(zs)
        if s > 0:
            path_noise.append(noises)
    z_fake = torch.randn((2 if nce_idt else 1) * n, z_dim, generator=generator)
    z_fake2 = torch.randn(n, z_dim, generator=generator)
    torch.rand(2, generator=generator)

    def positions() -> List[Tensor]:
        return [torch.randperm(p, generator=generator)[: min(num_patches, p)] for p in feature_positions]

    z_nce = torch.randn(n, z_dim, generator=generator)
    ids_nce = positions()
    z_idt, ids_idt = (torch.randn(n, z_dim, generator=generator), positions()) if nce_idt else (None, None)
    return UNSBDraws(t, path_z, path_noise, z_fake, z_fake2, z_nce, ids_nce, z_idt, ids_idt)


def lsgan(prediction: Tensor, real: bool) -> Tensor:
    return F.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))


def project(net_f: nn.Module, features: Sequence[Tensor], patch_ids: Sequence[Tensor]) -> List[Tensor]:
    """The rows at ``patch_ids`` of each map (N*P, C) through head ``mlp_<k>``, divided by their
    L2 norm + 1e-7."""
    rows = []
    for k, (feature, ids) in enumerate(zip(features, patch_ids, strict=True)):
        patches = feature.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :].flatten(0, 1)
        out = getattr(net_f, f"mlp_{k}")(patches)
        rows.append(out / (out.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7))
    return rows


def patch_nce(query: Tensor, key: Tensor, batch: int, temperature: float) -> Tensor:
    """CUT's PatchNCE of one layer (dot products of the normalised rows; negatives from the
    query's own image, its own key among them with logit -10); one value per row."""
    rows, dim = query.shape
    key = key.detach()
    positive = torch.bmm(query.view(rows, 1, dim), key.view(rows, dim, 1)).view(rows, 1)
    per_image_q, per_image_k = query.view(batch, -1, dim), key.view(batch, -1, dim)
    patches = per_image_q.shape[1]
    negatives = torch.bmm(per_image_q, per_image_k.transpose(2, 1))
    negatives = negatives.masked_fill(torch.eye(patches, dtype=torch.bool, device=query.device)[None], -10.0)
    logits = torch.cat([positive, negatives.view(-1, patches)], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(rows, dtype=torch.long, device=query.device), reduction="none")


def nce_term(
    net_g: nn.Module,
    net_f: nn.Module,
    source: Tensor,
    output: Tensor,
    z: Tensor,
    patch_ids: Sequence[Tensor],
    layers: Sequence[int],
    lambda_nce: float,
    temperature: float,
) -> Tensor:
    """PatchNCE of ``output`` against ``source``: both encoded by G at step 0 with the same
    latents ``z``; each layer's rows weighted by ``lambda_nce`` and averaged, then the layers."""
    step0 = torch.zeros(1, dtype=torch.long, device=source.device)
    queries = net_g.encode(output, step0, z, list(layers))
    with torch.no_grad():  # the authors' keys are detached inside the loss: no gradient either way
        keys = project(net_f, net_g.encode(source, step0, z, list(layers)), patch_ids)
    queries = project(net_f, queries, patch_ids)
    total = 0.0
    for query, key in zip(queries, keys, strict=True):
        total = total + (patch_nce(query, key, source.shape[0], temperature) * lambda_nce).mean()
    return total / len(layers)


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    for parameter in net.parameters():
        parameter.requires_grad_(flag)


def unsb_iteration(
    nets: Dict[str, nn.Module],
    optimizers: Dict[str, torch.optim.Optimizer],
    real_a: Tensor,
    real_b: Tensor,
    real_a2: Tensor,
    draws: UNSBDraws,
    *,
    num_timesteps: int = 5,
    tau: float = 0.01,
    lambda_gan: float = 1.0,
    lambda_sb: float = 0.1,
    lambda_nce: float = 1.0,
    nce_idt: bool = True,
    nce_layers: Sequence[int] = NCE_LAYERS,
    temperature: float = 0.07,
) -> Dict[str, Tensor]:
    """One training iteration of UNSB (``--mode sb``); updates the networks in place.

    Args:
        nets: ``G``, ``D``, ``E``, ``F``.
        optimizers: one Adam each under the same keys (the authors': lr 2e-4, betas (0.5, 0.999)).
        real_a: images of domain A (N, C, H, W).
        real_b: images of domain B.
        real_a2: a second, independent batch of domain A (the authors' second data loader).
        draws: every random draw (:class:`UNSBDraws`).
        num_timesteps, tau, lambda_gan, lambda_sb, lambda_nce, nce_idt, nce_layers, temperature:
            the options; the published horse2zebra command sets ``lambda_sb=1``.

    Returns:
        The loss terms under the authors' names.
    """
    g, d, e, f = nets["G"], nets["D"], nets["E"], nets["F"]
    n, t = real_a.shape[0], draws.time_index
    times = time_grid(num_timesteps).to(real_a.device)

    # 1. the stochastic path to step t, without gradient (three chains: A, A2 and B)
    with torch.no_grad():
        chains = [real_a, real_a2, real_b] if nce_idt else [real_a, real_a2]
        states = list(chains)
        predictions: List[Tensor] = []
        for s in range(t + 1):
            if s > 0:
                delta = times[s] - times[s - 1]
                denom = times[-1] - times[s - 1]
                inter = (delta / denom).reshape(-1, 1, 1, 1)
                scale = (delta * (1 - delta / denom)).reshape(-1, 1, 1, 1)
                states = [
                    (1 - inter) * x + inter * x1 + (scale * tau).sqrt() * noise
                    for x, x1, noise in zip(states, predictions, draws.path_noise[s - 1], strict=True)
                ]
            step = torch.full((n,), s, dtype=torch.long, device=real_a.device)
            predictions = [g(x, step, z) for x, z in zip(states, draws.path_z[s], strict=True)]
    x_t, x_t2 = states[0], states[1]
    x_tb = states[2] if nce_idt else None

    # 2. the translations at step t, with gradient
    step_t = torch.full((1,), t, dtype=torch.long, device=real_a.device)
    fake = g(torch.cat([x_t, x_tb]) if nce_idt else x_t, step_t, draws.z_fake)
    fake_b2 = g(x_t2, step_t, draws.z_fake2)
    fake_b = fake[:n]
    idt_b = fake[n:] if nce_idt else None

    # 3. one Adam step on D
    set_requires_grad(d, True)
    optimizers["D"].zero_grad()
    loss_d_fake = lsgan(d(fake_b.detach(), step_t), False).mean()
    loss_d_real = lsgan(d(real_b, step_t), True).mean()
    loss_d = (loss_d_fake + loss_d_real) * 0.5
    loss_d.backward()
    optimizers["D"].step()

    # 4. one Adam step on E: the transitions (X_t, G(X_t)) against the independent ones of A2
    set_requires_grad(e, True)
    optimizers["E"].zero_grad()
    pair = torch.cat([x_t, fake_b.detach()], dim=1)
    pair2 = torch.cat([x_t2, fake_b2.detach()], dim=1)
    log_partition = torch.logsumexp(e(pair, step_t, pair2).reshape(-1), dim=0).mean()
    loss_e = -e(pair, step_t, pair).mean() + log_partition + log_partition**2
    loss_e.backward()
    optimizers["E"].step()

    # 5. with D and E frozen, one backward for G and F, then their steps
    set_requires_grad(d, False)
    set_requires_grad(e, False)
    optimizers["G"].zero_grad()
    optimizers["F"].zero_grad()
    zero = real_a.new_zeros(())
    loss_g_gan = lsgan(d(fake_b, step_t), True).mean() * lambda_gan if lambda_gan > 0 else zero
    loss_sb = zero
    if lambda_sb > 0:
        pair = torch.cat([x_t, fake_b], dim=1)
        pair2 = torch.cat([x_t2, fake_b2], dim=1)
        energy = e(pair, step_t, pair).mean() - torch.logsumexp(e(pair, step_t, pair2).reshape(-1), dim=0)
        # (T - t) / T as a float32 tensor, then times tau, as the authors' tensor arithmetic rounds it
        loss_sb = -(num_timesteps - step_t[0]) / num_timesteps * tau * energy
        loss_sb = loss_sb + tau * torch.mean((x_t - fake_b) ** 2)
    loss_nce = loss_nce_y = zero
    nce_both = zero
    if lambda_nce > 0:
        loss_nce = nce_term(g, f, real_a, fake_b, draws.z_nce, draws.patch_ids_nce, nce_layers, lambda_nce, temperature)
        nce_both = loss_nce
        if nce_idt:
            loss_nce_y = nce_term(
                g, f, real_b, idt_b, draws.z_nce_idt, draws.patch_ids_nce_idt, nce_layers, lambda_nce, temperature
            )
            nce_both = (loss_nce + loss_nce_y) * 0.5
    # lambda_nce weights the rows above and the sum here: it enters squared, as in the authors' code
    loss_g = loss_g_gan + lambda_sb * loss_sb + lambda_nce * nce_both
    loss_g.backward()
    optimizers["G"].step()
    optimizers["F"].step()
    set_requires_grad(d, True)
    set_requires_grad(e, True)
    return {
        "D_fake": loss_d_fake.detach(),
        "D_real": loss_d_real.detach(),
        "E": loss_e.detach(),
        "G_GAN": loss_g_gan.detach(),
        "SB": loss_sb.detach(),
        "NCE": loss_nce.detach(),
        "NCE_Y": loss_nce_y.detach(),
        "G": loss_g.detach(),
    }
