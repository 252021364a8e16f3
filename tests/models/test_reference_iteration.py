"""One training iteration through a real Trainer equals the published iteration (docs/method.md) in plain PyTorch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cyclegan_pl import CycleGAN, Pix2Pix
from cyclegan_pl.seeding import hash_seed

# The module reseeds before each step from (seed, epoch, batch index, rank) (its
# `reseed_every_step` contract); the plain loop below seeds the same way so that dropout masks
# are drawn identically on both sides. No seed_everything ran, so the seed is 0.
SEED_AT_STEP = hash_seed(0, 0, 0, 0)


@pytest.fixture(autouse=True)
def _no_global_seed(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def fixed_batch(size: int = 32, n: int = 1) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "A": torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
        "B": torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
        "A_paths": [f"a{i}.png" for i in range(n)],
        "B_paths": [f"b{i}.png" for i in range(n)],
    }


def assert_same_weights(expected: dict, module: torch.nn.Module, prefix: str) -> None:
    actual = module.state_dict()
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=1e-6, msg=f"{prefix}.{key} differs")


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


@pytest.mark.parametrize("gan_mode,lambda_identity", [("lsgan", 0.5), ("vanilla", 0.0)])
def test_cyclegan_iteration_matches_reference(gan_mode, lambda_identity, fit_batches):
    torch.manual_seed(0)
    module = CycleGAN(generator="resnet_6blocks", ngf=8, ndf=8, gan_mode=gan_mode, lambda_identity=lambda_identity)
    g_a, g_b = copy.deepcopy(module.gen_ab), copy.deepcopy(module.gen_ba)
    d_a, d_b = copy.deepcopy(module.disc_b), copy.deepcopy(module.disc_a)  # reference D_A judges B
    initial_g_a = copy.deepcopy(g_a.state_dict())
    batch = fixed_batch()
    fit_batches(module, [batch])

    # The CycleGAN step of docs/method.md#cyclegan-training-step, written out with the reference code's names.
    def gan(pred, real):
        target = torch.full_like(pred, 1.0 if real else 0.0)
        return F.mse_loss(pred, target) if gan_mode == "lsgan" else F.binary_cross_entropy_with_logits(pred, target)

    opt_g = torch.optim.Adam(list(g_a.parameters()) + list(g_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    real_a, real_b = batch["A"], batch["B"]
    torch.manual_seed(SEED_AT_STEP)
    fake_b = g_a(real_a)
    rec_a = g_b(fake_b)
    fake_a = g_b(real_b)
    rec_b = g_a(fake_a)
    set_requires_grad([d_a, d_b], False)
    opt_g.zero_grad()
    loss_g = gan(d_a(fake_b), True) + gan(d_b(fake_a), True)
    loss_g = loss_g + 10 * F.l1_loss(rec_a, real_a) + 10 * F.l1_loss(rec_b, real_b)
    if lambda_identity > 0:
        loss_g = loss_g + 10 * lambda_identity * F.l1_loss(g_a(real_b), real_b)
        loss_g = loss_g + 10 * lambda_identity * F.l1_loss(g_b(real_a), real_a)
    loss_g.backward()
    opt_g.step()
    set_requires_grad([d_a, d_b], True)
    opt_d.zero_grad()
    loss_d_a = 0.5 * (gan(d_a(real_b), True) + gan(d_a(fake_b.detach()), False))
    loss_d_a.backward()
    loss_d_b = 0.5 * (gan(d_b(real_a), True) + gan(d_b(fake_a.detach()), False))
    loss_d_b.backward()
    opt_d.step()

    assert_same_weights(g_a.state_dict(), module.gen_ab, "gen_ab")
    assert_same_weights(g_b.state_dict(), module.gen_ba, "gen_ba")
    assert_same_weights(d_a.state_dict(), module.disc_b, "disc_b")
    assert_same_weights(d_b.state_dict(), module.disc_a, "disc_a")
    # The iteration really moved the weights: the checks above would also pass if both sides
    # did nothing.
    assert not torch.equal(initial_g_a["model.1.weight"], module.gen_ab.state_dict()["model.1.weight"])


# unet_32 has no dropout block; unet_64 has one 8*ngf block with Dropout(0.5), as the published
# unet_256 has three: the masks drawn on both sides must agree.
@pytest.mark.parametrize("generator,size", [("unet_32", 32), ("unet_64", 64)])
def test_pix2pix_iteration_matches_reference(generator, size, fit_batches):
    torch.manual_seed(0)
    module = Pix2Pix(generator=generator, ngf=8, ndf=8)
    has_dropout = any(isinstance(m, torch.nn.Dropout) for m in module.gen.modules())
    assert has_dropout == (generator == "unet_64")
    net_g, net_d = copy.deepcopy(module.gen), copy.deepcopy(module.disc)
    initial_g = copy.deepcopy(net_g.state_dict())
    batch = fixed_batch(size=size, n=2)
    fit_batches(module, [batch])

    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_a, real_b = batch["A"], batch["B"]

    def bce(pred, real):
        return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, 1.0 if real else 0.0))

    torch.manual_seed(SEED_AT_STEP)
    fake_b = net_g(real_a)
    set_requires_grad([net_d], True)
    opt_d.zero_grad()
    loss_d_fake = bce(net_d(torch.cat([real_a, fake_b.detach()], 1)), False)
    loss_d_real = bce(net_d(torch.cat([real_a, real_b], 1)), True)
    (0.5 * (loss_d_fake + loss_d_real)).backward()
    opt_d.step()
    set_requires_grad([net_d], False)
    opt_g.zero_grad()
    loss_g = bce(net_d(torch.cat([real_a, fake_b], 1)), True) + 100 * F.l1_loss(fake_b, real_b)
    loss_g.backward()
    opt_g.step()

    assert_same_weights(net_g.state_dict(), module.gen, "gen")
    assert_same_weights(net_d.state_dict(), module.disc, "disc")
    assert any(not torch.equal(initial_g[k], v) for k, v in module.gen.state_dict().items())
