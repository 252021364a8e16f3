import pytest
import torch
from torch import nn

from cyclegan_pl.networks import INITS, NORMS, define_generator, init_weights, norm_uses_bias


def test_norm_names():
    assert NORMS.names() == ["instance", "batch", "none"]


def test_instance_norm_has_no_affine_and_no_statistics():
    layer = NORMS.get("instance")(16)
    assert isinstance(layer, nn.InstanceNorm2d)
    assert not layer.affine and not layer.track_running_stats
    assert dict(layer.state_dict()) == {}


def test_batch_norm_is_affine_with_statistics():
    layer = NORMS.get("batch")(16)
    assert isinstance(layer, nn.BatchNorm2d)
    assert layer.affine and layer.track_running_stats
    assert set(layer.state_dict()) == {
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }


def test_none_norm_is_identity():
    assert isinstance(NORMS.get("none")(16), nn.Identity)


@pytest.mark.parametrize("norm, bias", [("instance", True), ("batch", False), ("none", True)])
def test_conv_bias_before_norm(norm, bias):
    assert norm_uses_bias(norm) is bias


def test_unknown_norm_names_option_and_choices():
    with pytest.raises(ValueError, match=r"norm .group.; choose one of: instance, batch, none"):
        NORMS.get("group")


def test_init_names():
    assert INITS.names() == ["normal", "xavier", "kaiming", "orthogonal"]


def test_normal_init_statistics():
    torch.manual_seed(0)
    net = define_generator("unet_64", ngf=16, norm="batch", init_type="normal", init_gain=0.02)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    conv_weights = torch.cat([m.weight.flatten() for m in convs])
    assert conv_weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert abs(conv_weights.mean().item()) < 1e-3
    bn_weights = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
    assert bn_weights.mean().item() == pytest.approx(1.0, abs=0.005)
    assert bn_weights.std().item() == pytest.approx(0.02, rel=0.2)
    for module in net.modules():
        if getattr(module, "bias", None) is not None:
            assert torch.count_nonzero(module.bias) == 0


@pytest.mark.parametrize("init_type", ["xavier", "kaiming", "orthogonal"])
def test_other_inits_run_and_zero_biases(init_type):
    net = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Linear(4, 4), nn.BatchNorm2d(4))
    init_weights(net, init_type, 0.02)
    assert torch.count_nonzero(net[0].bias) == 0
    assert torch.count_nonzero(net[1].bias) == 0
    assert torch.count_nonzero(net[2].bias) == 0


def test_gain_scales_xavier_and_orthogonal_but_not_kaiming():
    def weight_std(init_type, gain):
        torch.manual_seed(0)
        conv = nn.Conv2d(32, 32, 3)
        init_weights(conv, init_type, gain)
        return conv.weight.std().item()

    for init_type in ("xavier", "orthogonal"):
        assert weight_std(init_type, 0.04) == pytest.approx(2 * weight_std(init_type, 0.02))
    assert weight_std("kaiming", 0.04) == pytest.approx(weight_std("kaiming", 0.02))


def test_unknown_init_names_option():
    with pytest.raises(ValueError, match=r"init type .uniform.; choose one of: normal"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")
