"""UNSB iterations through a real Trainer equal the authors' iteration written out in plain PyTorch
(tests/models/reference_unsb.py, checked against their code), with the random draws made equal on
both sides; its networks are theirs; its sampler is seeded and reproducible."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from cyclegan_pl import UNSB
from cyclegan_pl.errors import OptionError
from cyclegan_pl.models.unsb import NOISE_STREAM, TIME_STREAM, time_grid
from cyclegan_pl.networks import TimeConditionalResnetBlock
from cyclegan_pl.seeding import hash_seed

HERE = Path(__file__).parent
LAYOUTS = HERE.parent / "networks" / "reference_layouts"
# H * W of G's layers 0, 4, 8, 12, 16 at 32 px: the padded input 38x38, then 32x32, 16x16, 8x8, 8x8.
POSITIONS = (1444, 1024, 256, 64, 64)


@pytest.fixture(autouse=True)
def _no_global_seed(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


@pytest.fixture(scope="module")
def ref():
    if "reference_unsb" not in sys.modules:
        spec = importlib.util.spec_from_file_location("reference_unsb", HERE / "reference_unsb.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["reference_unsb"] = module
        spec.loader.exec_module(module)
    return sys.modules["reference_unsb"]


def make_batches(n: int, count: int, size: int = 32) -> list:
    generator = torch.Generator().manual_seed(0)
    image = lambda: torch.rand(n, 3, size, size, generator=generator) * 2 - 1  # noqa: E731
    return [
        {"A": image(), "B": image(), "A2": image(), "A_paths": ["a"] * n, "B_paths": ["b"] * n} for _ in range(count)
    ]


def module_draws(ref, batch_idx: int, step: int, images: torch.Tensor, z_dim: int, nce_idt: bool, patches: int):
    """The draws the module makes at ``batch_idx`` (its documented order on its noise stream), as the
    reference takes them."""
    generator = torch.Generator().manual_seed(hash_seed(0, 0, batch_idx, 0, NOISE_STREAM))
    n, chains = images.shape[0], 3 if nce_idt else 2
    path_z, path_noise = [], []
    for s in range(step + 1):
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

    def nce_draws():
        z = torch.randn(n, z_dim, generator=generator)
        return z, [torch.randperm(p, generator=generator)[: min(patches, p)] for p in POSITIONS]

    z_nce, ids_nce = nce_draws()
    z_idt, ids_idt = nce_draws() if nce_idt else (None, None)
    return ref.UNSBDraws(step, path_z, path_noise, z_fake, z_fake2, z_nce, ids_nce, z_idt, ids_idt)


def assert_same_weights(expected: torch.nn.Module, actual: torch.nn.Module, prefix: str) -> None:
    theirs, ours = expected.state_dict(), actual.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=1e-6, msg=f"{prefix}.{key} differs")


# The published horse2zebra command's weights; the code's defaults differ in lambda_sb (0.1).
RECIPE = dict(lambda_sb=1.0, lambda_nce=1.0)
CASES = {
    # name: (options, batch size, the iterations' step indices)
    "recipe-b1-t0-t3": (RECIPE, 1, (0, 3)),
    "recipe-b2-t4-t1": (RECIPE, 2, (4, 1)),
    "tau1-b2-t2-t4": (dict(RECIPE, tau=1.0), 2, (2, 4)),
    "code-defaults-b1-t2": (dict(), 1, (2,)),
    # tau 0.1: the SB weight (T - t) / T * tau must be rounded as float32 tensor arithmetic.
    "tau0.1-b1-t1-t3": (dict(RECIPE, tau=0.1), 1, (1, 3)),
    "no-nce-idt-b2-t3": (dict(RECIPE, nce_idt=False, lambda_nce=2.0), 2, (3,)),
    "time-conditional-b2-t3-t1": (dict(RECIPE, time_conditional_blocks=True), 2, (3, 1)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unsb_iterations_match_the_authors(case, ref, fit_batches, monkeypatch):
    options, batch_size, steps = CASES[case]
    torch.manual_seed(0)
    module = UNSB(ngf=8, ndf=8, **options)
    forced = iter(steps)
    drawn = []
    draw = module.draw_time_index  # still drawn; the test picks the steps to cover the path's cases

    def draw_then_force(batch_idx):
        drawn.append(draw(batch_idx))
        return next(forced)

    monkeypatch.setattr(module, "draw_time_index", draw_then_force)
    nets = {name: copy.deepcopy(getattr(module, attribute)) for name, attribute in UNSB.reference_networks.items()}
    initial = copy.deepcopy(module.state_dict())
    batches = make_batches(batch_size, len(steps))
    trainer = fit_batches(module, batches)
    assert len(drawn) == len(steps)

    optimizers = {name: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999)) for name, net in nets.items()}
    nce_idt = options.get("nce_idt", True)
    reference_options = {k: v for k, v in options.items() if k != "time_conditional_blocks"}
    reference_losses = []
    for batch_idx, (batch, step) in enumerate(zip(batches, steps, strict=True)):
        draws = module_draws(ref, batch_idx, step, batch["A"], module.gen.z_dim, nce_idt, 256)
        reference_losses.append(
            ref.unsb_iteration(nets, optimizers, batch["A"], batch["B"], batch["A2"], draws, **reference_options)
        )
    for name, attribute in UNSB.reference_networks.items():
        assert_same_weights(nets[name], getattr(module, attribute), attribute)
    # Every network moved (G's trained half): the checks above would also pass if neither side trained.
    state = module.state_dict()
    for key in ("gen.model.1.weight", "gen.model_res.0.conv_fin.2.weight", "disc.model_main.0.conv1.weight"):
        assert not torch.equal(initial[key], state[key]), key
    for key in ("energy.model_main.0.conv1.weight", "projection.mlp_4.2.weight"):
        assert not torch.equal(initial[key], state[key]), key
    logged = trainer.callback_metrics
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    expected = {
        "g": mean([float(losses["G"]) for losses in reference_losses]),
        "e": mean([float(losses["E"]) for losses in reference_losses]),
        "d": mean([float(losses["D_fake"] + losses["D_real"]) * 0.5 for losses in reference_losses]),
    }
    if options.get("lambda_sb", 0.1) > 0:
        expected["sb"] = mean([float(losses["SB"]) for losses in reference_losses])
    for name, value in expected.items():
        assert float(logged[f"loss/{name}_epoch"]) == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_the_generator_ignores_the_step_unless_chained_without_norm():
    torch.manual_seed(0)
    module = UNSB(ngf=8, ndf=8)
    x, z = torch.rand(1, 3, 16, 16) * 2 - 1, torch.randn(1, module.gen.z_dim)
    with torch.no_grad():  # published: the step never reaches the output
        assert torch.equal(module.gen(x, torch.tensor([0]), z), module.gen(x, torch.tensor([4]), z))

    def first_stage_dependence(norm: str) -> float:
        block = TimeConditionalResnetBlock(16, norm=norm, temb_dim=16, z_dim=16, chain_conv_block=True)
        features, step0, step4 = torch.randn(2, 16, 8, 8), torch.randn(1, 16), torch.randn(1, 16)
        with torch.no_grad():
            return float((block.first_stage(features, step0) - block.first_stage(features, step4)).abs().max())

    # Chained, the step is added per channel before the block's norm, which removes it again.
    assert first_stage_dependence("instance") < 1e-5  # rounding only
    assert first_stage_dependence("none") > 1e-2


def test_the_published_generator_leaves_half_untrained(fit_batches):
    torch.manual_seed(0)
    module = UNSB(ngf=8, ndf=8)
    initial = copy.deepcopy(module.gen.state_dict())
    fit_batches(module, make_batches(1, 1))
    frozen = [key for key, value in module.gen.state_dict().items() if torch.equal(value, initial[key])]
    assert any(key.startswith("time_embed.") for key in frozen)
    for k in range(9):
        assert f"model_res.{k}.style.weight" in frozen and f"model_res.{k}.Dense_time.weight" in frozen
    assert "model_res.0.conv_block.1.weight" in frozen and "model_res.0.conv_fin.2.weight" not in frozen


def test_the_step_index_is_the_same_on_every_process():
    module = UNSB(ngf=8, ndf=8)
    module.stream_seed = 0
    steps = [module.draw_time_index(batch_idx) for batch_idx in range(40)]
    generator = lambda b: torch.Generator().manual_seed(hash_seed(0, 0, b, 0, TIME_STREAM))  # noqa: E731
    assert steps == [int(torch.randint(5, (1,), generator=generator(b))) for b in range(40)]
    assert set(steps) == {0, 1, 2, 3, 4}


def test_unsb_defaults_are_the_authors_networks():
    module = UNSB()
    counts = {name: sum(p.numel() for p in getattr(module, name).parameters()) for name in ("gen", "disc", "energy")}
    counts["projection"] = sum(p.numel() for p in module.projection.parameters())
    assert counts == {"gen": 14_684_419, "disc": 3_143_041, "energy": 3_152_257, "projection": 560_384}
    for reference_name, attribute in UNSB.reference_networks.items():
        layout = json.loads((LAYOUTS / f"unsb_{reference_name}.json").read_text())["state_dict"]
        ours = {key: list(value.shape) for key, value in getattr(module, attribute).state_dict().items()}
        assert list(ours.items()) == [(key, list(shape)) for key, shape in layout.items()], reference_name
    hp = module.hparams
    assert (hp.lambda_sb, hp.lambda_nce, hp.num_timesteps, hp.tau, hp.gan_mode) == (0.1, 1.0, 5, 0.01, "lsgan")
    assert module.optimizer_names == ("g", "d", "e", "f") and module.inference_steps == 5


def test_time_grid():
    # 0, then 0.5 + 0.5 * (0, 1, 1.5, 1.8333, 2.0833) / 2.0833
    torch.testing.assert_close(time_grid(5), torch.tensor([0.0, 0.5, 0.74, 0.86, 0.94, 1.0]))
    assert time_grid(1).tolist() == [0.0, 1.0] and time_grid(2).tolist() == [0.0, 0.5, 1.0]


def test_translation_runs_the_seeded_multi_step_path():
    torch.manual_seed(0)
    module = UNSB(ngf=8, ndf=8, tau=1.0)
    images = torch.rand(2, 3, 20, 28) * 2 - 1
    module.reset_sampling()
    first = module.translate(images)
    module.reset_sampling()
    assert torch.equal(module.translate(images), first)  # the same seed, the same translation
    assert not torch.equal(module.translate(images), first)  # the stream moves on
    module.reset_sampling(seed=1)
    assert not torch.equal(module.translate(images), first)
    assert first.shape == images.shape

    # The path by hand: per step, the noise of the transition, then the latent.
    draws = torch.Generator().manual_seed(hash_seed(0, 0))
    state = prediction = images
    with torch.no_grad():
        for s in range(5):
            if s > 0:
                state = module.transition(state, prediction, torch.randn(images.shape, generator=draws), s)
            prediction = module.gen(state, torch.full((2,), s), torch.randn(2, module.gen.z_dim, generator=draws))
    module.reset_sampling()
    torch.testing.assert_close(module.translate(images), prediction, rtol=0, atol=1e-6)

    # Every step's prediction: the last is the translation; fewer steps give the first ones.
    module.reset_sampling()
    steps = module.translation_steps(images)
    assert len(steps) == 5 and torch.equal(steps[-1], first)
    module.inference_steps = 2
    module.reset_sampling()
    two = module.translate(images)
    assert module.hparams.inference_steps == 2 and torch.equal(two, steps[1]) and not torch.equal(two, first)
    with pytest.raises(OptionError, match="inference_steps=6: a translation runs 1 to num_timesteps=5"):
        module.inference_steps = 6


def test_unsb_translates_a_to_b_only_and_needs_the_second_a_batch(fit_batches):
    module = UNSB(ngf=8, ndf=8, num_patches=8)
    assert module.directions == ("AtoB",)
    with pytest.raises(OptionError, match="UNSB translates AtoB only"):
        module.translate(torch.zeros(1, 3, 16, 16), "BtoA")
    batch = make_batches(1, 1, size=16)[0]
    assert list(module.visuals(batch)) == ["real_A", "fake_B", "real_B", "idt_B"]
    del batch["A2"]
    with pytest.raises(OptionError, match="second, independent batch of domain A images"):
        fit_batches(module, [batch])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(generator="resnet_9blocks"), "use resnet_9blocks_cond"),
        (dict(discriminator="basic"), "use basic_cond"),
        (dict(input_nc=1), "needs input_nc == output_nc"),
        (dict(num_timesteps=0), "num_timesteps=0"),
        (dict(inference_steps=7), "inference_steps=7"),
        (dict(lambda_gan=0.0, lambda_sb=0.0, lambda_nce=0.0), "all 0"),
        (dict(nce_layers=(0, 40)), "each must index the conditional generator's"),
    ],
)
def test_unsb_option_errors(options, message):
    with pytest.raises(OptionError, match=message):
        UNSB(ngf=8, ndf=8, **options)


def test_the_sampling_callback_sets_seed_and_steps_and_refuses_other_methods(make_trainer):
    from cyclegan_pl import CUT, UNSBSampling

    module = UNSB(ngf=8, ndf=8)
    UNSBSampling(seed=7, steps=2).setup(make_trainer(), module, "predict")
    assert module.hparams.sampling_seed == 7 and module.inference_steps == 2
    with pytest.raises(OptionError, match="inference_steps=9"):
        UNSBSampling(steps=9).setup(make_trainer(), module, "predict")
    with pytest.raises(OptionError, match="UNSBSampling sets a UNSB's sampling seed and steps; the model is a CUT"):
        UNSBSampling(seed=1).setup(make_trainer(), CUT(ngf=8, ndf=8), "predict")
