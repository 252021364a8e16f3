"""CUT / FastCUT iterations through a real Trainer equal the published iteration (docs/method.md#cut-and-fastcut)
written out in plain PyTorch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cyclegan_pl import CUT
from cyclegan_pl.errors import OptionError
from cyclegan_pl.seeding import hash_seed

NCE_LAYERS = [0, 4, 8, 12, 16]


@pytest.fixture(autouse=True)
def _no_global_seed(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def patch_seed(batch_idx: int) -> int:
    # The module's contract: the flip and the patch positions of a step come from a generator
    # seeded with (seed, epoch, batch index, rank, 1); no seed_everything ran, so the seed is 0.
    return hash_seed(0, 0, batch_idx, 0, 1)


def make_batches(n: int, count: int, size: int = 32) -> list:
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "A": torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
            "B": torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
            "A_paths": [f"a{i}.png" for i in range(n)],
            "B_paths": [f"b{i}.png" for i in range(n)],
        }
        for _ in range(count)
    ]


def assert_same_weights(expected: dict, module: torch.nn.Module, prefix: str) -> None:
    actual = module.state_dict()
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=1e-6, msg=f"{prefix}.{key} differs")


# --- the published iteration, in the published code's terms -----------------------------
def set_requires_grad(net, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


def encode(net_g, x):
    feats = []
    for index, layer in enumerate(net_g.model):
        x = layer(x)
        if index in NCE_LAYERS:
            feats.append(x)
        if index == NCE_LAYERS[-1]:
            return feats
    raise AssertionError("unreachable")


def sample_f(net_f, feats, num_patches, rng, patch_ids=None):
    """PatchSampleF: shared random positions per layer, the layer's MLP, L2 normalisation."""
    out, ids = [], []
    for k, feat in enumerate(feats):
        flat = feat.permute(0, 2, 3, 1).flatten(1, 2)
        if patch_ids is None:
            patch_id = torch.randperm(flat.shape[1], generator=rng)[: min(num_patches, flat.shape[1])]
        else:
            patch_id = patch_ids[k]
        x = getattr(net_f, f"mlp_{k}")(flat[:, patch_id, :].flatten(0, 1))
        x = x / (x.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)
        out.append(x)
        ids.append(patch_id)
    return out, ids


def patch_nce(feat_q, feat_k, batch_size, tau=0.07):
    rows, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(rows, 1, -1), feat_k.view(rows, -1, 1)).view(rows, 1)
    feat_q = feat_q.view(batch_size, -1, dim)
    feat_k = feat_k.view(batch_size, -1, dim)
    npatches = feat_q.size(1)
    l_neg = torch.bmm(feat_q, feat_k.transpose(2, 1))
    l_neg.masked_fill_(torch.eye(npatches, dtype=torch.bool)[None], -10.0)
    out = torch.cat((l_pos, l_neg.view(-1, npatches)), dim=1) / tau
    return F.cross_entropy(out, torch.zeros(out.size(0), dtype=torch.long), reduction="none")


def reference_iterations(net_g, net_d, net_f, batches, *, nce_idt, lambda_nce, flip, all_negatives, num_patches=256):
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), **adam)
    opt_d = torch.optim.Adam(net_d.parameters(), **adam)
    opt_f = torch.optim.Adam(net_f.parameters(), **adam)

    def gan(pred, real):
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))

    for batch_idx, batch in enumerate(batches):
        rng = torch.Generator().manual_seed(patch_seed(batch_idx))
        real_a, real_b = batch["A"], batch["B"]
        n = real_a.shape[0]
        real = torch.cat((real_a, real_b)) if nce_idt else real_a
        flipped = False
        if flip is not None:
            torch.rand((), generator=rng)  # the coin, overridden by the test
            flipped = flip
            if flipped:
                real = torch.flip(real, [3])
        fake = net_g(real)
        fake_b = fake[:n]
        idt_b = fake[n:] if nce_idt else None

        set_requires_grad(net_d, True)
        opt_d.zero_grad()
        loss_d = (gan(net_d(fake_b.detach()), False) + gan(net_d(real_b), True)) * 0.5
        loss_d.backward()
        opt_d.step()

        # the published code groups by its configured batch size, 1 for whole-minibatch negatives
        groups = 1 if all_negatives else n

        def nce(src, tgt, flipped=flipped, rng=rng, groups=groups):
            feat_q = encode(net_g, tgt)
            if flipped:
                feat_q = [torch.flip(fq, [3]) for fq in feat_q]
            feat_k = encode(net_g, src)
            feat_k_pool, ids = sample_f(net_f, feat_k, num_patches, rng)
            feat_q_pool, _ = sample_f(net_f, feat_q, num_patches, rng, ids)
            total = 0.0
            for f_q, f_k in zip(feat_q_pool, feat_k_pool, strict=True):
                total += (patch_nce(f_q, f_k, groups) * lambda_nce).mean()
            return total / len(NCE_LAYERS)

        set_requires_grad(net_d, False)
        opt_g.zero_grad()
        opt_f.zero_grad()
        loss_g_gan = gan(net_d(fake_b), True) * 1.0
        loss_nce = nce(real_a, fake_b)
        if nce_idt:
            loss_nce = (loss_nce + nce(real_b, idt_b)) * 0.5
        loss_g = loss_g_gan + loss_nce
        loss_g.backward()
        opt_g.step()
        opt_f.step()


CASES = {
    # name: (CUT options, forced flip or None, batch size, iterations)
    "cut-b1": (dict(), None, 1, 1),
    "cut-b2-two-steps": (dict(), None, 2, 2),
    "fastcut-flipped-b1": (dict(nce_idt=False, lambda_nce=10.0, flip_equivariance=True), True, 1, 1),
    "fastcut-unflipped-b2": (dict(nce_idt=False, lambda_nce=10.0, flip_equivariance=True), False, 2, 1),
    "fastcut-flipped-b2-two-steps": (dict(nce_idt=False, lambda_nce=10.0, flip_equivariance=True), True, 2, 2),
    "cut-minibatch-negatives-b2": (dict(nce_includes_all_negatives_from_minibatch=True), None, 2, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cut_iterations_match_reference(case, monkeypatch, fit_batches):
    options, flip, batch_size, iterations = CASES[case]
    torch.manual_seed(0)
    module = CUT(ngf=8, ndf=8, **options)
    if flip is not None:
        draw = module.draw_flip  # still consumes the coin, so the positions drawn after it agree
        monkeypatch.setattr(module, "draw_flip", lambda draws: draw(draws) | True if flip else draw(draws) & False)
    net_g, net_d, net_f = (copy.deepcopy(m) for m in (module.gen, module.disc, module.projection))
    initial = copy.deepcopy(module.state_dict())
    batches = make_batches(batch_size, iterations)
    fit_batches(module, batches)

    reference_iterations(
        net_g,
        net_d,
        net_f,
        batches,
        nce_idt=options.get("nce_idt", True),
        lambda_nce=options.get("lambda_nce", 1.0),
        flip=flip,
        all_negatives=options.get("nce_includes_all_negatives_from_minibatch", False),
    )
    assert_same_weights(net_g.state_dict(), module.gen, "gen")
    assert_same_weights(net_d.state_dict(), module.disc, "disc")
    assert_same_weights(net_f.state_dict(), module.projection, "projection")
    # Every network moved: the checks above would also pass if neither side trained.
    for prefix in ("gen.model.1.weight", "disc.model.0.weight", "projection.mlp_4.2.weight"):
        assert not torch.equal(initial[prefix], module.state_dict()[prefix]), prefix


def test_cut_translates_a_to_b_only():
    module = CUT(ngf=8, ndf=8, nce_layers=(0, 4))
    assert module.directions == ("AtoB",)
    assert module.translate(torch.zeros(1, 3, 20, 28)).shape == (1, 3, 20, 28)
    with pytest.raises(OptionError, match="CUT translates AtoB only"):
        module.translate(torch.zeros(1, 3, 16, 16), "BtoA")
    batch = make_batches(1, 1, size=16)[0]
    assert list(module.visuals(batch)) == ["real_A", "fake_B", "real_B", "idt_B"]
    assert list(CUT(ngf=8, ndf=8, nce_idt=False).visuals(batch)) == ["real_A", "fake_B", "real_B"]


def test_cut_defaults_are_the_published_networks():
    module = CUT()
    counts = [sum(p.numel() for p in net.parameters()) for net in (module.gen, module.disc, module.projection)]
    assert counts == [11_378_179, 2_764_737, 560_384]
    assert "gen.model.7.filt" in module.state_dict() and "disc.model.2.filt" in module.state_dict()
    assert module.optimizer_names == ("g", "d", "f")
    assert [len(group) for group in module.optimizer_groups()] == [
        len(list(net.parameters())) for net in (module.gen, module.disc, module.projection)
    ]


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(generator="unet_128", antialias=False), "needs a ResNet generator"),
        (dict(nce_layers=(0, 40)), "each must index the generator's"),
        (dict(lambda_gan=0.0, lambda_nce=0.0), "lambda_gan=0 and lambda_nce=0"),
        (dict(input_nc=1), "nce_idt=True runs the generator on domain B"),
        (dict(num_patches=0), "num_patches=0: must be at least 1"),
    ],
)
def test_cut_option_errors(options, message):
    with pytest.raises(OptionError, match=message):
        CUT(ngf=8, ndf=8, **options)


def test_linear_decay_schedules_all_three_optimizers(fit_batches):
    from cyclegan_pl import LinearDecay

    module = CUT(ngf=8, ndf=8, nce_layers=(0, 4), num_patches=8)
    trainer = fit_batches(module, make_batches(1, 1), callbacks=[LinearDecay(n_epochs=0, n_epochs_decay=1)])
    assert len(trainer.optimizers) == 3
    # factor(0) = 1 - 1 / (1 + 1)
    assert [opt.param_groups[0]["lr"] for opt in trainer.optimizers] == [1e-4, 1e-4, 1e-4]
