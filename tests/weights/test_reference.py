import pytest
import torch
from torch import nn

from cyclegan_pl.errors import CheckpointError, CheckpointMismatchError
from cyclegan_pl.networks import define_discriminator, define_generator
from cyclegan_pl.weights import (
    convert_reference_state_dict,
    describe_network,
    describe_state_dict,
    load_reference_state_dict,
)


def reference_format(net):
    """A state_dict as old PyTorch + DataParallel saved it: InstanceNorm running statistics,
    BatchNorm without num_batches_tracked, every key prefixed with `module.`."""
    state = {}
    modules = dict(net.named_modules())
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        state[f"module.{key}"] = value.clone()
    for name, module in modules.items():
        if isinstance(module, nn.InstanceNorm2d):
            state[f"module.{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"module.{name}.running_var"] = torch.ones(module.num_features)
    return state


def perturb_batch_norm_statistics(net):
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.9, 1.1)


def saved(tmp_path, state, name="latest_net_G.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_reference_instance_norm_file_loads_strict_with_identical_outputs(tmp_path):
    torch.manual_seed(0)
    original = define_generator("resnet_3blocks", ngf=8)
    path = saved(tmp_path, reference_format(original))
    assert any(k.endswith("running_mean") for k in torch.load(path))

    torch.manual_seed(1)
    loaded = define_generator("resnet_3blocks", ngf=8)
    load_reference_state_dict(loaded, path)

    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), original(x), rtol=0, atol=0)


def test_reference_batch_norm_file_loads_strict_with_identical_outputs(tmp_path):
    torch.manual_seed(0)
    original = define_generator("unet_32", ngf=8, norm="batch").eval()
    perturb_batch_norm_statistics(original)
    path = saved(tmp_path, reference_format(original))

    torch.manual_seed(1)
    loaded = define_generator("unet_32", ngf=8, norm="batch").eval()
    load_reference_state_dict(loaded, path)

    counters = [v for k, v in loaded.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(int(c) == 0 for c in counters)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), original(x), rtol=0, atol=0)


def test_reference_discriminator_state_dict_loads():
    original = define_discriminator("basic", ndf=8)
    loaded = define_discriminator("basic", ndf=8)
    load_reference_state_dict(loaded, reference_format(original))
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_convert_without_network():
    net = define_generator("unet_32", ngf=8, norm="batch")
    state = reference_format(net)
    before = dict(state)
    converted = convert_reference_state_dict(state)
    assert state == before  # input untouched
    assert set(converted) == set(net.state_dict())
    assert converted["model.model.1.model.2.num_batches_tracked"].dtype == torch.long


def test_convert_keeps_our_own_state_dict_unchanged():
    for net in (
        define_generator("resnet_3blocks", ngf=8, norm="batch"),
        define_generator("unet_32", ngf=8),
        define_discriminator("pixel", ndf=8, norm="batch"),
    ):
        state = net.state_dict()
        converted = convert_reference_state_dict(state, net)
        assert list(converted) == list(state)


def test_describe_each_kind():
    resnet = describe_state_dict(reference_format(define_generator("resnet_6blocks", ngf=8)))
    assert resnet["name"] == "resnet_6blocks"
    assert (resnet["n_blocks"], resnet["ngf"], resnet["norm"], resnet["dropout"]) == (
        6,
        8,
        "instance",
        False,
    )
    unet_net = define_generator("unet_128", input_nc=1, output_nc=2, ngf=8)
    unet = describe_state_dict(unet_net.state_dict())
    assert (unet["name"], unet["num_downs"], unet["input_nc"], unet["output_nc"]) == (
        "unet_128",
        7,
        1,
        2,
    )
    patch = describe_state_dict(
        define_discriminator("n_layers", input_nc=6, ndf=8, n_layers=4, norm="batch").state_dict()
    )
    assert (patch["name"], patch["n_layers"], patch["input_nc"], patch["ndf"], patch["norm"]) == (
        "n_layers",
        4,
        6,
        8,
        "batch",
    )
    pixel = describe_state_dict(define_discriminator("pixel", ndf=8).state_dict())
    assert (pixel["kind"], pixel["role"], pixel["ndf"]) == ("pixel", "discriminator", 8)
    assert describe_state_dict({"fc.weight": torch.zeros(2, 2)})["kind"] == "unknown"


def test_describe_network_tells_none_norm_and_unet_dropout():
    info = describe_network(define_generator("unet_64", ngf=8, norm="none", dropout=True))
    assert info["norm"] == "none" and info["dropout"] is True


def test_describe_resnet_dropout_from_keys():
    state = define_generator("resnet_2blocks", ngf=8, dropout=True).state_dict()
    assert describe_state_dict(state)["dropout"] is True


def mismatch(net, source):
    with pytest.raises(CheckpointMismatchError) as error:
        load_reference_state_dict(net, source)
    message = str(error.value)
    assert isinstance(error.value, RuntimeError)
    assert len(message.splitlines()) <= 8
    return message


def test_wrong_number_of_resnet_blocks(tmp_path):
    path = saved(tmp_path, reference_format(define_generator("resnet_6blocks")), "horse2zebra.pth")
    message = mismatch(define_generator("resnet_9blocks"), path)
    assert "horse2zebra.pth" in message
    assert "resnet_6blocks" in message
    assert "To load it, build the network with generator='resnet_6blocks'." in message  # that alone


def test_batch_norm_unet_into_instance_norm_unet():
    checkpoint = define_generator("unet_32", ngf=8, norm="batch").state_dict()
    message = mismatch(define_generator("unet_32", ngf=8), checkpoint)
    assert "norm='batch'" in message
    assert "generator=" not in message


def test_instance_norm_unet_into_batch_norm_unet():
    checkpoint = reference_format(define_generator("unet_32", ngf=8))
    message = mismatch(define_generator("unet_32", ngf=8, norm="batch"), checkpoint)
    assert "norm='instance'" in message


def test_ngf_mismatch():
    checkpoint = define_generator("resnet_2blocks", ngf=8).state_dict()
    message = mismatch(define_generator("resnet_2blocks", ngf=16), checkpoint)
    assert "ngf=8" in message
    assert "shapes" in message


def test_unet_depth_and_channels_mismatch():
    checkpoint = define_generator("unet_64", input_nc=1, ngf=8).state_dict()
    message = mismatch(define_generator("unet_32", ngf=8), checkpoint)
    assert "generator='unet_64'" in message
    assert "input_nc=1" in message


def test_resnet_dropout_mismatch():
    checkpoint = define_generator("resnet_2blocks", ngf=8, dropout=True).state_dict()
    message = mismatch(define_generator("resnet_2blocks", ngf=8), checkpoint)
    assert "dropout=True" in message


def test_discriminator_mismatches():
    basic = define_discriminator("basic", ndf=8).state_dict()
    assert "discriminator='basic'" in mismatch(define_discriminator("n_layers", ndf=8, n_layers=4), basic)
    deep = define_discriminator("n_layers", ndf=8, n_layers=5).state_dict()
    message = mismatch(define_discriminator("basic", ndf=8), deep)
    assert "discriminator='n_layers'" in message and "n_layers=5" in message
    narrow = define_discriminator("pixel", ndf=8).state_dict()
    assert "ndf=8" in mismatch(define_discriminator("pixel", ndf=16), narrow)


def test_generator_file_into_discriminator():
    generator = define_generator("resnet_2blocks", ngf=8).state_dict()
    message = mismatch(define_discriminator("basic", ndf=8), generator)
    assert "holds a generator" in message


def test_unknown_layout_message_is_short():
    checkpoint = {f"encoder.layer{i}.weight": torch.zeros(4, 4) for i in range(50)}
    message = mismatch(define_generator("resnet_2blocks", ngf=8), checkpoint)
    assert "unrecognised" in message
    assert message.count("encoder.layer") <= 3


def test_non_strict_load_allows_missing_keys_but_not_shapes():
    net = define_generator("resnet_2blocks", ngf=8)
    partial = {k: v for k, v in net.state_dict().items() if "conv_block" not in k}
    fresh = define_generator("resnet_2blocks", ngf=8)
    result = load_reference_state_dict(fresh, partial, strict=False)
    assert result.missing_keys and not result.unexpected_keys
    with pytest.raises(CheckpointMismatchError):
        load_reference_state_dict(define_generator("resnet_2blocks", ngf=16), net.state_dict(), strict=False)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.pth.*does not exist"):
        net = define_generator("resnet_2blocks", ngf=8)
        load_reference_state_dict(net, tmp_path / "nothere.pth")


def test_file_that_is_not_a_state_dict(tmp_path):
    path = saved(tmp_path, {"state_dict": {}, "epoch": 3}, "last.ckpt")
    with pytest.raises(ValueError, match=r"last\.ckpt.*Lightning checkpoint"):
        load_reference_state_dict(define_generator("resnet_2blocks", ngf=8), path)


def test_describe_survives_damaged_layouts():
    damaged = {
        "model.1.weight": torch.zeros(8, 3, 7, 7),
        "model.extra.conv_block.1.weight": torch.zeros(1, 1, 1, 1),
    }
    assert describe_state_dict(damaged)["kind"] == "unknown"
    assert describe_state_dict({"step": 3, "fc.weight": torch.zeros(2)})["num_tensors"] == 1
