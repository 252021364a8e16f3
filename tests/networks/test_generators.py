import pytest
import torch
from torch import nn

from cyclegan_pl.networks import (
    GENERATORS,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    define_generator,
)


def num_params(net):
    return sum(p.numel() for p in net.parameters())


def shapes(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize(
    "name, norm, expected",
    [
        ("resnet_9blocks", "instance", 11_378_179),
        ("resnet_6blocks", "instance", 7_837_699),
        ("unet_256", "batch", 54_413_955),
        ("unet_128", "batch", 41_828_995),
    ],
)
def test_reference_parameter_counts(name, norm, expected):
    assert num_params(define_generator(name, norm=norm)) == expected


# ResNet, from docs/method.md#resnet-generator: pad 0, conv 1, norm 2, relu 3, down convs at 4 and 7, blocks from
# 10, then per up step [convT, norm, relu], then pad, conv, tanh. In a block: pad 0, conv 1,
# norm 2, relu 3, pad 4, conv 5, norm 6 (dropout at 4 shifts the second conv to 6).
def expected_resnet_instance_keys(n_blocks):
    first_up = 10 + n_blocks
    # index: (weight shape, bias shape); ConvTranspose weights are (in, out, k, k).
    convs = {
        1: ((64, 3, 7, 7), (64,)),
        4: ((128, 64, 3, 3), (128,)),
        7: ((256, 128, 3, 3), (256,)),
        first_up: ((256, 128, 3, 3), (128,)),
        first_up + 3: ((128, 64, 3, 3), (64,)),
        first_up + 7: ((3, 64, 7, 7), (3,)),
    }
    keys = {}
    for index, (weight, bias) in convs.items():
        keys[f"model.{index}.weight"] = weight
        keys[f"model.{index}.bias"] = bias
    for block in range(10, 10 + n_blocks):
        for conv in (1, 5):
            keys[f"model.{block}.conv_block.{conv}.weight"] = (256, 256, 3, 3)
            keys[f"model.{block}.conv_block.{conv}.bias"] = (256,)
    return keys


@pytest.mark.parametrize("name, n_blocks", [("resnet_9blocks", 9), ("resnet_6blocks", 6)])
def test_resnet_instance_key_layout_is_exact(name, n_blocks):
    assert shapes(define_generator(name)) == expected_resnet_instance_keys(n_blocks)


def test_resnet_9blocks_representative_keys():
    keys = shapes(define_generator("resnet_9blocks"))
    assert keys["model.1.weight"] == (64, 3, 7, 7)
    assert keys["model.10.conv_block.1.weight"] == (256, 256, 3, 3)
    assert keys["model.18.conv_block.5.weight"] == (256, 256, 3, 3)
    assert keys["model.19.weight"] == (256, 128, 3, 3)  # ConvTranspose: (in, out, k, k)
    assert keys["model.22.weight"] == (128, 64, 3, 3)
    assert keys["model.26.weight"] == (3, 64, 7, 7)
    assert keys["model.26.bias"] == (3,)


def test_resnet_batch_norm_keys():
    keys = shapes(define_generator("resnet_6blocks", ngf=8, norm="batch"))
    assert "model.1.bias" not in keys
    assert keys["model.2.weight"] == (8,)
    assert keys["model.2.running_mean"] == (8,)
    assert keys["model.2.num_batches_tracked"] == ()
    assert keys["model.10.conv_block.2.running_var"] == (32,)
    assert keys["model.10.conv_block.6.weight"] == (32,)
    assert "model.10.conv_block.1.bias" not in keys
    # The last conv feeds Tanh, not a norm: it keeps its bias.
    assert keys["model.23.bias"] == (3,)


def test_resnet_dropout_shifts_second_block_conv():
    keys = shapes(define_generator("resnet_6blocks", ngf=8, dropout=True))
    assert "model.10.conv_block.6.weight" in keys
    assert "model.10.conv_block.5.weight" not in keys


UNET_OUTER = "model.model"
UNET_LEVEL1 = "model.model.1"


def unet_block_prefix(level):
    """Prefix of the block `level` steps inside the outermost one (level 1 = ngf/2*ngf)."""
    return UNET_LEVEL1 + ".model.3" * (level - 1)


@pytest.mark.parametrize("name, num_downs", [("unet_256", 8), ("unet_128", 7)])
def test_unet_batch_key_layout(name, num_downs):
    keys = shapes(define_generator(name, norm="batch"))
    assert keys[f"{UNET_OUTER}.0.weight"] == (64, 3, 4, 4)
    assert f"{UNET_OUTER}.0.bias" not in keys
    assert keys[f"{UNET_OUTER}.3.weight"] == (128, 3, 4, 4)
    assert keys[f"{UNET_OUTER}.3.bias"] == (3,)
    # Level 1: [LeakyReLU, down, norm, sub, ReLU, up, norm].
    assert keys["model.model.1.model.1.weight"] == (128, 64, 4, 4)
    assert keys["model.model.1.model.2.weight"] == (128,)
    assert keys["model.model.1.model.5.weight"] == (256, 64, 4, 4)
    assert keys["model.model.1.model.6.running_mean"] == (64,)
    assert keys[f"{unet_block_prefix(2)}.model.1.weight"] == (256, 128, 4, 4)
    assert keys[f"{unet_block_prefix(3)}.model.5.weight"] == (1024, 256, 4, 4)
    # Innermost: [LeakyReLU, down, ReLU, up, norm].
    innermost = unet_block_prefix(num_downs - 1)
    assert keys[f"{innermost}.model.1.weight"] == (512, 512, 4, 4)
    assert keys[f"{innermost}.model.3.weight"] == (512, 512, 4, 4)
    assert keys[f"{innermost}.model.4.weight"] == (512,)
    assert f"{innermost}.model.2.weight" not in keys
    assert not any(k.startswith(f"{innermost}.model.3.model") for k in keys)
    deepest_middle = unet_block_prefix(num_downs - 2)
    assert keys[f"{deepest_middle}.model.5.weight"] == (1024, 512, 4, 4)
    if name == "unet_256":
        spelled_out = "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight"
        assert keys[spelled_out] == (512, 512, 4, 4)


def test_unet_instance_keys_have_biases_and_no_norm_tensors():
    keys = shapes(define_generator("unet_32", ngf=8))
    assert keys["model.model.0.bias"] == (8,)
    assert keys["model.model.1.model.1.bias"] == (16,)
    assert not any(len(shape) == 1 and k.endswith(".weight") for k, shape in keys.items())
    assert not any("running" in k for k in keys)


def test_unet_dropout_sits_in_middle_blocks_only():
    net = define_generator("unet_256", ngf=8, dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 8 - 5
    assert set(net.state_dict()) == set(define_generator("unet_256", ngf=8).state_dict())


def test_named_generators_are_registered():
    assert GENERATORS.names() == ["resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "resnet_9blocks_cond"]
    assert GENERATORS.patterns() == ["resnet_<N>blocks", "unet_<side>"]


@pytest.mark.parametrize("n_blocks", [0, 3, 12])
def test_resnet_pattern(n_blocks):
    name = f"resnet_{n_blocks}blocks"
    assert name in GENERATORS
    net = define_generator(name, ngf=8)
    assert isinstance(net, ResnetGenerator)
    assert sum(isinstance(m, ResnetBlock) for m in net.modules()) == n_blocks


@pytest.mark.parametrize("side, num_downs", [(32, 5), (64, 6), (512, 9)])
def test_unet_pattern(side, num_downs):
    net = define_generator(f"unet_{side}", ngf=8)
    assert isinstance(net, UnetGenerator)
    assert net.num_downs == num_downs
    assert net.size_multiple == side


@pytest.mark.parametrize("name", ["unet_100", "unet_16", "unet_0"])
def test_unet_pattern_rejects_bad_sides(name):
    assert name not in GENERATORS
    with pytest.raises(ValueError, match="power of two >= 32"):
        define_generator(name)


def test_unknown_generator_lists_names_and_patterns():
    with pytest.raises(ValueError, match=r"generator .resnet9.; choose one of: resnet_9blocks.*resnet_<N>blocks"):
        define_generator("resnet9")


def test_size_multiple():
    assert define_generator("resnet_9blocks", ngf=8).size_multiple == 4
    assert define_generator("unet_128", ngf=8).size_multiple == 128
    assert define_generator("unet_256", ngf=8).size_multiple == 256


@pytest.mark.parametrize(
    "name, norm, size",
    [
        ("resnet_9blocks", "instance", (32, 48)),
        ("resnet_3blocks", "batch", (36, 20)),
        ("unet_32", "instance", (32, 64)),
        ("unet_64", "batch", (64, 64)),
    ],
)
def test_generators_keep_spatial_size(name, norm, size):
    net = define_generator(name, ngf=8, norm=norm)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1


def test_unet_256_forward_at_256():
    net = define_generator("unet_256", ngf=8, norm="batch", dropout=True)
    with torch.no_grad():
        y = net(torch.randn(1, 3, 256, 256))
    assert y.shape == (1, 3, 256, 256)


def test_channel_options():
    net = define_generator("resnet_3blocks", input_nc=1, output_nc=2, ngf=8)
    with torch.no_grad():
        assert net(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)


@pytest.mark.parametrize(
    "name, size, multiple",
    [("resnet_3blocks", (30, 32), 4), ("unet_64", (64, 96), 64)],
)
def test_non_multiple_input_raises(name, size, multiple):
    net = define_generator(name, ngf=8)
    height, width = size
    with pytest.raises(ValueError, match=rf"multiples of {multiple}.*{height}x{width}"):
        net(torch.randn(1, 3, height, width))


def test_gradient_checkpointing_matches_plain_forward_and_backward():
    torch.manual_seed(0)
    plain = define_generator("resnet_3blocks", ngf=8, dropout=True)
    checkpointed = define_generator("resnet_3blocks", ngf=8, dropout=True)
    checkpointed.load_state_dict(plain.state_dict())
    assert plain.gradient_checkpointing is False
    checkpointed.gradient_checkpointing = True
    assert set(checkpointed.state_dict()) == set(plain.state_dict())

    x = torch.randn(2, 3, 16, 16)
    results = []
    for net in (plain, checkpointed):
        torch.manual_seed(1)
        inp = x.clone().requires_grad_(True)
        out = net(inp)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), inp.grad, [p.grad for p in net.parameters()]))

    (out_a, in_grad_a, grads_a), (out_b, in_grad_b, grads_b) = results
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=0)
    torch.testing.assert_close(in_grad_b, in_grad_a)
    for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(grad_b, grad_a)


def test_gradient_checkpointing_under_no_grad():
    net = define_generator("resnet_3blocks", ngf=8)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        expected = net(x)
        net.gradient_checkpointing = True
        torch.testing.assert_close(net(x), expected)
