import pytest
import torch

from cyclegan_pl.networks import (
    DISCRIMINATORS,
    NLayerDiscriminator,
    PixelDiscriminator,
    define_discriminator,
)


def num_params(net):
    return sum(p.numel() for p in net.parameters())


def shapes(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def test_names():
    assert DISCRIMINATORS.names() == ["basic", "n_layers", "pixel", "basic_cond"]


@pytest.mark.parametrize("input_nc, norm, expected", [(3, "instance", 2_764_737), (6, "batch", 2_768_705)])
def test_basic_parameter_counts(input_nc, norm, expected):
    assert num_params(define_discriminator("basic", input_nc=input_nc, norm=norm)) == expected


def test_basic_output_is_30x30_for_256_input():
    net = define_discriminator("basic")
    with torch.no_grad():
        assert net(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_basic_instance_key_layout_is_exact():
    # Convs at 0, 2, 5, 8, 11 (each conv after the first is followed by norm and LeakyReLU).
    assert shapes(define_discriminator("basic")) == {
        "model.0.weight": (64, 3, 4, 4),
        "model.0.bias": (64,),
        "model.2.weight": (128, 64, 4, 4),
        "model.2.bias": (128,),
        "model.5.weight": (256, 128, 4, 4),
        "model.5.bias": (256,),
        "model.8.weight": (512, 256, 4, 4),
        "model.8.bias": (512,),
        "model.11.weight": (1, 512, 4, 4),
        "model.11.bias": (1,),
    }


def test_basic_batch_norm_keys():
    keys = shapes(define_discriminator("basic", input_nc=6, norm="batch"))
    assert keys["model.0.weight"] == (64, 6, 4, 4)
    assert keys["model.0.bias"] == (64,)
    assert "model.2.bias" not in keys
    assert keys["model.3.weight"] == (128,)
    assert keys["model.3.running_var"] == (128,)
    assert keys["model.9.num_batches_tracked"] == ()
    assert keys["model.11.weight"] == (1, 512, 4, 4)


def test_basic_ignores_n_layers():
    basic = define_discriminator("basic")
    assert shapes(define_discriminator("basic", n_layers=5)) == shapes(basic)


def test_n_layers_2():
    net = define_discriminator("n_layers", ndf=8, n_layers=2)
    assert isinstance(net, NLayerDiscriminator)
    keys = shapes(net)
    assert keys["model.2.weight"] == (16, 8, 4, 4)
    assert keys["model.5.weight"] == (32, 16, 4, 4)  # stride 1
    assert keys["model.8.weight"] == (1, 32, 4, 4)
    assert "model.9.weight" not in keys
    with torch.no_grad():
        # 64 -> 32 -> 16 -> 15 -> 14
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 1, 14, 14)


def test_n_layers_5_caps_width_at_8_ndf():
    net = define_discriminator("n_layers", ndf=8, n_layers=5)
    keys = shapes(net)
    assert keys["model.8.weight"] == (64, 32, 4, 4)
    assert keys["model.11.weight"] == (64, 64, 4, 4)
    assert keys["model.14.weight"] == (64, 64, 4, 4)
    assert keys["model.17.weight"] == (1, 64, 4, 4)
    with torch.no_grad():
        # 128 / 2**5 = 4, then two stride-1 convs: 3, 2
        assert net(torch.randn(1, 3, 128, 128)).shape == (1, 1, 2, 2)


def test_n_layers_must_be_positive():
    with pytest.raises(ValueError, match=r"n_layers >= 1, got 0"):
        define_discriminator("n_layers", n_layers=0)


def test_pixel_keys_and_output():
    net = define_discriminator("pixel", ndf=8)
    assert isinstance(net, PixelDiscriminator)
    assert shapes(net) == {
        "net.0.weight": (8, 3, 1, 1),
        "net.0.bias": (8,),
        "net.2.weight": (16, 8, 1, 1),
        "net.2.bias": (16,),
        "net.5.weight": (1, 16, 1, 1),
        "net.5.bias": (1,),
    }
    with torch.no_grad():
        assert net(torch.randn(2, 3, 20, 12)).shape == (2, 1, 20, 12)


def test_pixel_batch_norm_keys():
    keys = shapes(define_discriminator("pixel", norm="batch"))
    assert keys["net.0.bias"] == (64,)
    assert "net.2.bias" not in keys
    assert keys["net.3.weight"] == (128,)
    assert "net.5.bias" not in keys
    assert keys["net.5.weight"] == (1, 128, 1, 1)


def test_unknown_discriminator_names_option():
    with pytest.raises(ValueError, match=r"discriminator .patch.; choose one of: basic, n_layers, pixel"):
        define_discriminator("patch")
