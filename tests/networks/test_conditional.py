"""UNSB's time-conditional networks, and the DCLGAN / UNSB networks against their authors' layouts.

The files in ``reference_layouts/`` hold ``{state_dict key: shape}`` of the authors' networks at
their default options, in their order: each was written by building the network with the
authors' own code (JunlinHan/DCLGAN and cyclomon/UNSB at the commits named in the file, their
``models/networks.py`` ``define_G`` / ``define_D`` / ``define_F`` with the call named in the
file, F's MLPs created by one forward on G's features), outside this project, and dumping
``{k: list(v.shape) for k, v in net.state_dict().items()}``. A state_dict with exactly these keys
and shapes is what their ``latest_net_*.pth`` files hold, so equal layouts mean those files load
with ``strict=True``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegan_pl.errors import OptionError
from cyclegan_pl.networks import (
    DISCRIMINATORS,
    GENERATORS,
    PatchProjection,
    TimeConditionalPatchDiscriminator,
    TimeConditionalResnetGenerator,
    define_discriminator,
    define_generator,
    energy_network,
    init_weights,
    timestep_embedding,
)

LAYOUTS = Path(__file__).parent / "reference_layouts"
UNSB_NCE_LAYERS = [0, 4, 8, 12, 16]
DCLGAN_NCE_LAYERS = [4, 8, 12, 16]


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layout(net: nn.Module) -> list:
    return [(key, list(value.shape)) for key, value in net.state_dict().items()]


def unsb_networks(ngf: int = 64) -> dict:
    gen = define_generator("resnet_9blocks_cond", ngf=ngf, antialias=True, init_type="xavier")
    return {
        "G": gen,
        "D": define_discriminator("basic_cond", ndf=ngf, antialias=True, init_type="xavier"),
        "E": init_weights(energy_network(ndf=ngf), "xavier"),
        "F": PatchProjection(gen.feature_channels(UNSB_NCE_LAYERS)),
    }


def dclgan_networks() -> dict:
    gen = define_generator("resnet_9blocks", antialias=True, init_type="xavier")
    return {
        "G": gen,
        "D": define_discriminator("basic", antialias=True, init_type="xavier"),
        "F": PatchProjection(gen.feature_channels(DCLGAN_NCE_LAYERS)),
    }


@pytest.fixture(scope="module")
def full_size() -> dict:
    return {"unsb": unsb_networks(), "dclgan": dclgan_networks()}


def test_unsb_parameter_counts_at_the_defaults(full_size):
    counts = {name: num_params(net) for name, net in full_size["unsb"].items()}
    assert counts == {"G": 14_684_419, "D": 3_143_041, "E": 3_152_257, "F": 560_384}


def test_dclgan_parameter_counts_at_the_defaults(full_size):
    # DCLGAN's networks are CUT's: the anti-aliased ResNet-9, PatchGAN and projection heads on
    # layers 4, 8, 12, 16; it has two of each.
    counts = {name: num_params(net) for name, net in full_size["dclgan"].items()}
    assert counts == {"G": 11_378_179, "D": 2_764_737, "F": 493_568}
    assert 2 * sum(counts.values()) == 29_272_968


@pytest.mark.parametrize(
    "method, network",
    [("unsb", "G"), ("unsb", "D"), ("unsb", "E"), ("unsb", "F"), ("dclgan", "G"), ("dclgan", "D")] + [("dclgan", "F")],
)
def test_state_dict_layout_is_the_authors(full_size, method, network):
    reference = json.loads((LAYOUTS / f"{method}_{network}.json").read_text())["state_dict"]
    ours = layout(full_size[method][network])
    assert dict(ours) == reference
    assert [key for key, _ in ours] == list(reference)  # same order, too


def test_authors_layout_loads_strictly_into_the_registered_builders(full_size):
    # What import-reference will do with a latest_net_E.pth: a file with the reference keys.
    reference = json.loads((LAYOUTS / "unsb_E.json").read_text())["state_dict"]
    state = {key: torch.full(shape, 0.5) for key, shape in reference.items()}
    energy = full_size["unsb"]["E"]
    energy.load_state_dict(state, strict=True)
    assert torch.equal(energy.final_conv.weight, torch.full((1, 512, 4, 4), 0.5))


def test_registered_names():
    assert "resnet_9blocks_cond" in GENERATORS and "basic_cond" in DISCRIMINATORS
    assert isinstance(define_generator("resnet_9blocks_cond", ngf=8), TimeConditionalResnetGenerator)
    assert isinstance(define_discriminator("basic_cond", ndf=8, antialias=True), TimeConditionalPatchDiscriminator)


# --- tiny networks ---------------------------------------------------------------------------
@pytest.fixture
def tiny() -> dict:
    # PyTorch's default initialisation: the published one (Xavier, gain 0.02) makes every
    # conditioning effect tiny at the start.
    torch.manual_seed(0)
    gen = TimeConditionalResnetGenerator(ngf=8, antialias=True)
    return {
        "G": gen,
        "D": TimeConditionalPatchDiscriminator(ndf=8),
        "E": energy_network(ndf=8),
        "F": PatchProjection(gen.feature_channels(UNSB_NCE_LAYERS)),
    }


def test_forward_shapes(tiny):
    gen, disc, energy = tiny["G"], tiny["D"], tiny["E"]
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    z = torch.randn(2, gen.z_dim)
    assert gen.z_dim == 32
    with torch.no_grad():
        for t in (torch.tensor([3]), torch.tensor([0, 4])):
            out = gen(x, t, z)
            assert out.shape == x.shape and out.abs().max() <= 1
            # The same score map as the anti-aliased PatchGAN's.
            plain = define_discriminator("basic", ndf=8, antialias=True)
            assert disc(x, t).shape == plain(x).shape == (2, 1, 2, 4)
            pair = torch.randn(2, 6, 32, 48)
            assert energy(pair, t, pair).shape == (2, 1, 2, 4)


def test_full_size_discriminator_scores_30x30_at_256():
    disc = define_discriminator("basic_cond", ndf=4, antialias=True)
    with torch.no_grad():
        assert disc(torch.zeros(1, 3, 256, 256), torch.tensor([1])).shape == (1, 1, 30, 30)


def test_latent_changes_the_generator_output(tiny):
    gen = tiny["G"]
    x, t = torch.rand(1, 3, 32, 32) * 2 - 1, torch.tensor([2])
    with torch.no_grad():
        a, b = gen(x, t, torch.randn(1, gen.z_dim)), gen(x, t, torch.randn(1, gen.z_dim))
    assert (a - b).abs().max() > 1e-4


def test_published_generator_ignores_the_step_chained_one_does_not(tiny):
    # The published block keeps only norm(x) of its first stage, so t never reaches the output.
    gen = tiny["G"]
    chained = TimeConditionalResnetGenerator(ngf=8, antialias=True, chain_conv_block=True)
    chained.load_state_dict(gen.state_dict())
    x, z = torch.rand(1, 3, 32, 32) * 2 - 1, torch.randn(1, gen.z_dim)
    with torch.no_grad():
        assert torch.equal(gen(x, torch.tensor([0]), z), gen(x, torch.tensor([4]), z))
        assert (chained(x, torch.tensor([0]), z) - chained(x, torch.tensor([4]), z)).abs().max() > 1e-6
        # ... and chaining is a different network on the same weights.
        assert (chained(x, torch.tensor([0]), z) - gen(x, torch.tensor([0]), z)).abs().max() > 1e-3


def test_step_changes_discriminator_and_energy_scores(tiny):
    x, pair = torch.rand(1, 3, 32, 32), torch.rand(1, 6, 32, 32)
    with torch.no_grad():
        assert (tiny["D"](x, torch.tensor([0])) - tiny["D"](x, torch.tensor([4]))).abs().max() > 1e-6
        assert (tiny["E"](pair, torch.tensor([0]), pair) - tiny["E"](pair, torch.tensor([4]), pair)).abs().max() > 1e-6
        # E scores the pair: swapping the second transition changes the score.
        assert (
            tiny["E"](pair, torch.tensor([1]), pair) - tiny["E"](pair, torch.tensor([1]), pair.flip(3))
        ).abs().max() > 0


def test_per_sample_conditions_act_per_sample(tiny):
    gen, disc = tiny["G"], tiny["D"]
    x, z, t = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, gen.z_dim), torch.tensor([1, 3])
    with torch.no_grad():
        together, scores = gen(x, t, z), disc(x, t)
        for i in range(2):
            alone = gen(x[i : i + 1], t[i : i + 1], z[i : i + 1])
            torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=1e-5)
            torch.testing.assert_close(scores[i : i + 1], disc(x[i : i + 1], t[i : i + 1]), rtol=0, atol=1e-5)


def test_parameters_the_published_generator_never_trains(tiny):
    # The published G never uses these (DDP needs find_unused_parameters, or they must be left out).
    gen = tiny["G"]
    x = torch.rand(1, 3, 32, 32)
    gen(x, torch.tensor([1]), torch.randn(1, gen.z_dim)).square().mean().backward()
    untrained = {name for name, p in gen.named_parameters() if p.grad is None}
    expected = {"time_embed.0.weight", "time_embed.0.bias", "time_embed.2.weight", "time_embed.2.bias"}
    for k in range(9):
        for part in ("conv_block.1", "Dense_time", "style"):
            expected |= {f"model_res.{k}.{part}.weight", f"model_res.{k}.{part}.bias"}
    assert untrained == expected


def test_encode_returns_the_entries_in_order(tiny):
    gen = tiny["G"]
    x, z, t = torch.rand(1, 3, 32, 32), torch.randn(1, gen.z_dim), torch.tensor([0])
    with torch.no_grad():
        feats = gen.encode(x, t, z, UNSB_NCE_LAYERS)
        assert [f.shape[1] for f in feats] == gen.feature_channels(UNSB_NCE_LAYERS) == [3, 16, 32, 32, 32]
        assert torch.equal(feats[0], nn.functional.pad(x, (3, 3, 3, 3), mode="reflect"))
        out = gen.model(x)
        z_embedding = gen.z_transform(z)
        for block in gen.model_res[:5]:
            out = block(out, None, z_embedding)
        assert torch.equal(feats[4], out)
        assert [f.shape for f in gen.encode(x, t, z, [16, 0])] == [feats[4].shape, feats[0].shape]
    with pytest.raises(OptionError, match="0 to 20"):
        gen.encode(x, t, z, [0, 21])


def test_missing_conditions_and_strided_patchgan_are_option_errors(tiny):
    with pytest.raises(OptionError, match="needs a step index t and a latent z"):
        tiny["G"](torch.zeros(1, 3, 32, 32))
    with pytest.raises(OptionError, match="needs a step index t"):
        tiny["D"](torch.zeros(1, 3, 32, 32))
    with pytest.raises(OptionError, match="only anti-aliased"):
        define_discriminator("basic_cond", ndf=8)
    with pytest.raises(OptionError, match="multiples of 4"):
        tiny["G"](torch.zeros(1, 3, 30, 32), torch.tensor([0]), torch.zeros(1, 32))


def test_strided_generator_variant():
    gen = define_generator("resnet_9blocks_cond", ngf=8, antialias=False)
    assert not any(".filt" in key for key in gen.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert gen(x, torch.tensor([0]), torch.randn(1, 32)).shape == x.shape
    assert gen.feature_channels(UNSB_NCE_LAYERS) == [3, 16, 32, 32, 32]


def test_timestep_embedding_values():
    steps = torch.tensor([0, 1, 4])
    emb = timestep_embedding(steps, 8)
    # frequencies exp(-k log(1e4) / 3) = 1, 0.0464, 0.00215, 1e-4; sines first, then cosines
    frequencies = torch.tensor([1.0, 10000 ** (-1 / 3), 10000 ** (-2 / 3), 1e-4])
    angles = steps[:, None].float() * frequencies
    torch.testing.assert_close(emb, torch.cat([angles.sin(), angles.cos()], 1))
    odd = timestep_embedding(steps, 9)
    assert odd.shape == (3, 9) and torch.equal(odd[:, :8], emb) and not odd[:, 8].any()
    with pytest.raises(ValueError, match="1-D"):
        timestep_embedding(torch.zeros(2, 1), 8)
