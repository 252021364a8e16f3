"""DCLGAN iterations through a real Trainer equal the authors' iteration written out in plain PyTorch
(tests/models/reference_dclgan.py, checked against their code), and its networks are theirs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from cyclegan_pl import DCLGAN
from cyclegan_pl.errors import OptionError
from cyclegan_pl.seeding import hash_seed

HERE = Path(__file__).parent
LAYOUTS = HERE.parent / "networks" / "reference_layouts"


@pytest.fixture(autouse=True)
def _no_global_seed(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


@pytest.fixture(scope="module")
def ref():
    import importlib.util
    import sys

    if "reference_dclgan" not in sys.modules:
        spec = importlib.util.spec_from_file_location("reference_dclgan", HERE / "reference_dclgan.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["reference_dclgan"] = module
        spec.loader.exec_module(module)
    return sys.modules["reference_dclgan"]


def patch_generator(batch_idx: int) -> torch.Generator:
    # The module's contract: a step's patch positions come from a generator seeded with
    # (seed, epoch, batch index, rank, 1); no seed_everything ran, so the seed is 0.
    return torch.Generator().manual_seed(hash_seed(0, 0, batch_idx, 0, 1))


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


def assert_same_weights(expected: torch.nn.Module, actual: torch.nn.Module, prefix: str) -> None:
    theirs, ours = expected.state_dict(), actual.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=1e-6, msg=f"{prefix}.{key} differs")


CASES = {
    # name: (module options, the reference's options, batch size, iterations)
    "defaults-b1": (dict(), dict(), 1, 1),
    "defaults-b1-two-steps": (dict(num_patches=64), dict(), 1, 2),
    "defaults-b2-two-steps": (dict(num_patches=64), dict(), 2, 2),
    "lsgan-idt-b2": (
        dict(num_patches=64, gan_mode="lsgan", lambda_idt=0.5),
        dict(gan_mode="lsgan", lambda_idt=0.5),
        2,
        1,
    ),
    "weights-b1-two-steps": (
        dict(num_patches=64, lambda_nce=1.0, lambda_gan=0.5, nce_temperature=0.1),
        dict(lambda_nce=1.0, lambda_gan=0.5, temperature=0.1),
        1,
        2,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dclgan_iterations_match_the_authors(case, ref, fit_batches):
    options, reference_options, batch_size, iterations = CASES[case]
    torch.manual_seed(0)
    module = DCLGAN(ngf=8, ndf=8, **options)
    nets = ref.DCLGANNetworks(
        g_a=copy.deepcopy(module.gen_ab),
        g_b=copy.deepcopy(module.gen_ba),
        d_a=copy.deepcopy(module.disc_b),
        d_b=copy.deepcopy(module.disc_a),
        f1=copy.deepcopy(module.projection_ab),
        f2=copy.deepcopy(module.projection_ba),
    )
    initial = copy.deepcopy(module.state_dict())
    batches = make_batches(batch_size, iterations)
    trainer = fit_batches(module, batches)

    optimizers = ref.dclgan_optimizers(nets)
    patches = options.get("num_patches", 256)
    reference_losses = []
    for batch_idx, batch in enumerate(batches):
        draws = patch_generator(batch_idx)
        # NCE(A, G_A(A)) on G_A's layers 4, 8, 12, 16 (32x32, 16x16, 8x8, 8x8 at 32 px), then NCE(B, G_B(B)).
        ids = [torch.randperm(p, generator=draws)[: min(patches, p)] for p in (1024, 256, 64, 64) * 2]
        reference_losses.append(
            ref.dclgan_iteration(nets, optimizers, batch["A"], batch["B"], ids[:4], ids[4:], **reference_options)
        )
    pairs = [
        (nets.g_a, module.gen_ab, "gen_ab"),
        (nets.g_b, module.gen_ba, "gen_ba"),
        (nets.d_a, module.disc_b, "disc_b"),
        (nets.d_b, module.disc_a, "disc_a"),
        (nets.f1, module.projection_ab, "projection_ab"),
        (nets.f2, module.projection_ba, "projection_ba"),
    ]
    for theirs, ours, name in pairs:
        assert_same_weights(theirs, ours, name)
    # Every network moved: the checks above would also pass if neither side trained.
    state = module.state_dict()
    for key in ("gen_ab.model.1.weight", "gen_ba.model.1.weight", "disc_a.model.0.weight", "disc_b.model.0.weight"):
        assert not torch.equal(initial[key], state[key]), key
    for key in ("projection_ab.mlp_3.2.weight", "projection_ba.mlp_3.2.weight"):
        assert not torch.equal(initial[key], state[key]), key
    # The epoch means of the logged terms are the authors' (their D losses are logged times lambda_gan).
    logged = trainer.callback_metrics
    mean = lambda name: sum(float(losses[name]) for losses in reference_losses) / iterations  # noqa: E731
    lambda_gan = reference_options.get("lambda_gan", 1.0)
    for ours, theirs, scale in [
        ("g", "G", 1),
        ("nce_ab", "NCE1", 1),
        ("idt_a", "idt_B", 1),
        ("d_b", "D_A", lambda_gan),
    ]:
        assert float(logged[f"loss/{ours}_epoch"]) * scale == pytest.approx(mean(theirs), rel=1e-5), ours


def test_dclgan_defaults_are_the_authors_networks():
    module = DCLGAN()
    counts = {
        name: sum(p.numel() for p in getattr(module, name).parameters()) for name in DCLGAN.reference_networks.values()
    }
    assert counts == {
        "gen_ab": 11_378_179,
        "gen_ba": 11_378_179,
        "disc_a": 2_764_737,
        "disc_b": 2_764_737,
        "projection_ab": 493_568,
        "projection_ba": 493_568,
    }
    assert sum(counts.values()) == 29_272_968
    # The state_dict of each network is the authors' (keys, shapes and order).
    for reference_name, attribute in DCLGAN.reference_networks.items():
        layout = json.loads((LAYOUTS / f"dclgan_{reference_name[0]}.json").read_text())["state_dict"]
        ours = {key: list(value.shape) for key, value in getattr(module, attribute).state_dict().items()}
        assert list(ours.items()) == [(key, list(shape)) for key, shape in layout.items()], reference_name
    assert module.hparams.gan_mode == "hinge_margin" and module.hparams.init_type == "xavier"
    assert list(module.hparams.nce_layers) == [4, 8, 12, 16] and module.hparams.lambda_nce == 2.0


def test_dclgan_heads_have_their_own_adam_under_the_schedule(fit_batches):
    from cyclegan_pl import LinearDecay

    module = DCLGAN(ngf=8, ndf=8, num_patches=8, lr=1e-4)
    trainer = fit_batches(module, make_batches(1, 1), callbacks=[LinearDecay(n_epochs=0, n_epochs_decay=1)])
    opt_g, opt_d, opt_f = trainer.optimizers
    assert [len(opt.param_groups[0]["params"]) for opt in (opt_g, opt_d, opt_f)] == [
        len(list(module.gen_ab.parameters())) * 2,
        len(list(module.disc_a.parameters())) * 2,
        len(list(module.projection_ab.parameters())) * 2,
    ]
    # factor(0) = 1 - 1 / (1 + 1): every optimizer decays from its own initial rate.
    assert [opt.param_groups[0]["lr"] for opt in (opt_g, opt_d, opt_f)] == [5e-5, 5e-5, 5e-4]
    assert opt_g.param_groups[0]["betas"] == (0.5, 0.999) and opt_f.param_groups[0]["betas"] == (0.9, 0.999)


def test_dclgan_translates_both_ways():
    module = DCLGAN(ngf=8, ndf=8, num_patches=8)
    assert module.directions == ("AtoB", "BtoA")
    for direction in module.directions:
        assert module.translate(torch.zeros(1, 3, 20, 28), direction).shape == (1, 3, 20, 28)
    batch = make_batches(1, 1, size=16)[0]
    assert list(module.visuals(batch)) == ["real_A", "fake_B", "real_B", "fake_A", "idt_B", "idt_A"]
    assert list(DCLGAN(ngf=8, ndf=8, lambda_idt=0.0).visuals(batch)) == ["real_A", "fake_B", "real_B", "fake_A"]


def test_dclgan_identity_terms_exist_only_with_nce(fit_batches):
    # As the authors' code: lambda_nce=0 drops the identity terms too, whatever lambda_idt says.
    module = DCLGAN(ngf=8, ndf=8, num_patches=8, lambda_nce=0.0)
    assert not module.uses_identity
    trainer = fit_batches(module, make_batches(1, 1))
    logged = {key.split("/")[1].rsplit("_", 1)[0] for key in trainer.callback_metrics if key.startswith("loss/")}
    assert {"g_gan_ab", "g_gan_ba", "d_a", "d_b", "g"} <= logged and not logged & {"nce_ab", "idt_a", "idt_b"}


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(generator="unet_128", antialias=False), "needs a ResNet generator"),
        (dict(discriminator="basic_cond"), "one of UNSB's time-conditional networks"),
        (dict(nce_layers=(4, 40)), "each must index the generator's"),
        (dict(lambda_gan=0.0, lambda_nce=0.0), "lambda_gan=0 and lambda_nce=0"),
        (dict(input_nc=1), "lambda_idt=1.0 runs each generator on the other domain"),
        (dict(num_patches=0), "num_patches=0: must be at least 1"),
    ],
)
def test_dclgan_option_errors(options, message):
    with pytest.raises(OptionError, match=message):
        DCLGAN(ngf=8, ndf=8, **options)
