"""CUT's anti-aliased networks and its projection F (docs/method.md#cut-and-fastcut)."""

import pytest
import torch

from cyclegan_pl.errors import OptionError
from cyclegan_pl.networks import (
    Downsample,
    PatchProjection,
    ResnetGenerator,
    Upsample,
    define_discriminator,
    define_generator,
    draw_patch_ids,
)

NCE_LAYERS = [0, 4, 8, 12, 16]


def num_params(net):
    return sum(p.numel() for p in net.parameters())


def shapes(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


# --- blur layers --------------------------------------------------------------------------
def test_down_and_up_filters_are_buffers_with_the_binomial_kernels():
    down, up = Downsample(2), Upsample(3)
    assert list(down.parameters()) == [] and list(up.parameters()) == []
    assert shapes(down) == {"filt": (2, 1, 3, 3)}
    assert shapes(up) == {"filt": (3, 1, 4, 4)}
    expected_down = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    expected_up = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 16
    for channel in range(2):
        torch.testing.assert_close(down.filt[channel, 0], expected_down, rtol=0, atol=0)
    for channel in range(3):
        torch.testing.assert_close(up.filt[channel, 0], expected_up, rtol=0, atol=0)


@pytest.mark.parametrize("size, down_size", [((8, 8), (4, 4)), ((5, 7), (3, 4)), ((2, 2), (1, 1))])
def test_down_halves_rounding_up_and_up_doubles(size, down_size):
    x = torch.randn(2, 3, *size)
    assert Downsample(3)(x).shape == (2, 3, *down_size)
    assert Upsample(3)(x).shape == (2, 3, 2 * size[0], 2 * size[1])


def test_down_and_up_known_values():
    # Down of [[a, b], [c, d]]: the reflection-padded 3x3 window weighs a and d by 4, b and c by 2+2.
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])
    torch.testing.assert_close(Downsample(1)(x), torch.tensor([[[[3.0]]]]))
    # Up of one row [p, q]: taps [1, 3, 3, 1] / 4 per axis on the replicated border.
    x = torch.tensor([[[[4.0, 8.0]]]])
    row = torch.tensor([4.0, 5.0, 7.0, 8.0])
    torch.testing.assert_close(Upsample(1)(x), row.expand(1, 1, 2, 4))


def test_blur_layers_keep_a_constant_image():
    x = torch.full((1, 2, 6, 6), 0.3)
    torch.testing.assert_close(Downsample(2)(x), torch.full((1, 2, 3, 3), 0.3))
    torch.testing.assert_close(Upsample(2)(x), torch.full((1, 2, 12, 12), 0.3))


# --- generator ----------------------------------------------------------------------------
def test_antialiased_resnet_counts_and_layout():
    net = define_generator("resnet_9blocks", antialias=True)
    assert len(net.model) == 32
    assert num_params(net) == 11_378_179
    # index: (weight shape, bias shape); all stride-1 Conv2d, so weights are (out, in, k, k).
    convs = {
        1: (64, 3, 7, 7),
        4: (128, 64, 3, 3),
        8: (256, 128, 3, 3),
        22: (128, 256, 3, 3),
        26: (64, 128, 3, 3),
        30: (3, 64, 7, 7),
    }
    expected = {}
    for index, weight in convs.items():
        expected[f"model.{index}.weight"] = weight
        expected[f"model.{index}.bias"] = (weight[0],)
    for block in range(12, 21):
        for conv in (1, 5):
            expected[f"model.{block}.conv_block.{conv}.weight"] = (256, 256, 3, 3)
            expected[f"model.{block}.conv_block.{conv}.bias"] = (256,)
    expected.update(
        {
            "model.7.filt": (128, 1, 3, 3),
            "model.11.filt": (256, 1, 3, 3),
            "model.21.filt": (256, 1, 4, 4),
            "model.25.filt": (128, 1, 4, 4),
        }
    )
    assert shapes(net) == expected
    assert isinstance(net.model[7], Downsample) and isinstance(net.model[21], Upsample)


def test_antialias_off_is_cyclegans_network():
    torch.manual_seed(0)
    default = define_generator("resnet_9blocks", ngf=8)
    torch.manual_seed(0)
    explicit = define_generator("resnet_9blocks", ngf=8, antialias=False)
    assert len(default.model) == 28
    assert not any(isinstance(m, (Downsample, Upsample)) for m in default.modules())
    assert default.state_dict().keys() == explicit.state_dict().keys()
    for key, value in default.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[key])


def test_encode_returns_the_nce_features_and_stops_there():
    net = define_generator("resnet_9blocks", ngf=8, antialias=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = net.encode(x, NCE_LAYERS)
        # Scaled from (3, 262, 262), (128, 256, 256), (256, 128, 128), (256, 64, 64) x 2 at 256 px, ngf 64.
        assert [tuple(f.shape) for f in feats] == [
            (2, 3, 38, 38),
            (2, 16, 32, 32),
            (2, 32, 16, 16),
            (2, 32, 8, 8),
            (2, 32, 8, 8),
        ]
        torch.testing.assert_close(feats[0], torch.nn.functional.pad(x, (3, 3, 3, 3), mode="reflect"))
        # layer 4 is the convolution before its norm
        torch.testing.assert_close(feats[1], net.model[:5](x))
        # the last entry is the whole network; the order of the request is kept
        last, first = net.encode(x, [31, 0])
        torch.testing.assert_close(last, net(x))
        torch.testing.assert_close(first, feats[0])
    assert net.feature_channels(NCE_LAYERS) == [3, 16, 32, 32, 32]
    assert define_generator("resnet_9blocks", antialias=True).feature_channels(NCE_LAYERS) == [3, 128, 256, 256, 256]


def test_encode_rejects_layers_outside_the_network():
    net = ResnetGenerator(ngf=8, n_blocks=1, antialias=True)
    with pytest.raises(OptionError, match=r"each must index the generator's 24 `model` entries \(0 to 23\)"):
        net.encode(torch.zeros(1, 3, 8, 8), [0, 24])
    with pytest.raises(OptionError, match="at least one"):
        net.feature_channels([])


def test_unet_and_pixel_have_no_antialiased_variant():
    with pytest.raises(OptionError, match="antialias=True needs a ResNet generator"):
        define_generator("unet_128", antialias=True)
    with pytest.raises(OptionError, match="antialias=True needs a PatchGAN"):
        define_discriminator("pixel", antialias=True)


# --- discriminator ------------------------------------------------------------------------
def test_antialiased_patchgan_counts_layout_and_output():
    net = define_discriminator("basic", antialias=True)
    assert num_params(net) == 2_764_737
    assert shapes(net) == {
        "model.0.weight": (64, 3, 4, 4),
        "model.0.bias": (64,),
        "model.2.filt": (64, 1, 3, 3),
        "model.3.weight": (128, 64, 4, 4),
        "model.3.bias": (128,),
        "model.6.filt": (128, 1, 3, 3),
        "model.7.weight": (256, 128, 4, 4),
        "model.7.bias": (256,),
        "model.10.filt": (256, 1, 3, 3),
        "model.11.weight": (512, 256, 4, 4),
        "model.11.bias": (512,),
        "model.14.weight": (1, 512, 4, 4),
        "model.14.bias": (1,),
    }
    assert all(conv.stride == (1, 1) for conv in net.modules() if isinstance(conv, torch.nn.Conv2d))
    small = define_discriminator("basic", ndf=4, antialias=True)
    with torch.no_grad():
        assert small(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


# --- projection F -------------------------------------------------------------------------
def test_projection_counts_keys_and_unit_rows():
    f = PatchProjection([3, 128, 256, 256, 256])
    assert num_params(f) == 560_384
    assert shapes(f) == {
        key: shape
        for k, channels in enumerate([3, 128, 256, 256, 256])
        for key, shape in {
            f"mlp_{k}.0.weight": (256, channels),
            f"mlp_{k}.0.bias": (256,),
            f"mlp_{k}.2.weight": (256, 256),
            f"mlp_{k}.2.bias": (256,),
        }.items()
    }
    small = PatchProjection([3, 8], units=16)
    feats = [torch.randn(2, 3, 5, 5), torch.randn(2, 8, 3, 3)]
    ids = draw_patch_ids(feats, 16, torch.Generator().manual_seed(0))
    assert [len(i) for i in ids] == [16, 9]  # all 9 positions of the 3x3 map
    assert len(set(ids[0].tolist())) == 16
    out = small(feats, ids)
    assert [tuple(o.shape) for o in out] == [(2, 16, 16), (2, 9, 16)]
    for o in out:
        torch.testing.assert_close(o.norm(dim=-1), torch.ones(o.shape[:2]))
    # Row j of image n is the head applied to the feature at position ids[j] of image n.
    position = int(ids[0][5])
    vector = feats[0][1, :, position // 5, position % 5]
    expected = small.mlp_0(vector)
    torch.testing.assert_close(out[0][1, 5], expected / expected.norm())
