"""DCLGAN's and UNSB's weights in and out: the authors' run folders (import-reference, strictly into
their layouts, the method told from the files), save_pretrained / from_pretrained, and export
(DCLGAN's generators; UNSB's multi-step sampler is refused with the reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import torch
from torch import nn

from cyclegan_pl import DCLGAN, UNSB, CycleGAN, load_checkpoint
from cyclegan_pl.commands import export, import_reference
from cyclegan_pl.errors import OptionError
from cyclegan_pl.networks import (
    PatchProjection,
    define_discriminator,
    define_generator,
    energy_network,
    init_weights,
)
from cyclegan_pl.weights import describe_state_dict

# Larger initial weights than the authors' 0.02 keep tiny networks' outputs far from zero.
GAIN = 0.3


def save_run(folder: Path, nets: Dict[str, nn.Module], names=None) -> Dict[str, nn.Module]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names or nets:
        torch.save(nets[name].state_dict(), folder / f"latest_net_{name}.pth")
    return nets


def dclgan_nets() -> Dict[str, nn.Module]:
    """The six networks of an authors' DCLGAN run at ngf 8 (anti-aliased, F1/F2 on layers 4-16)."""
    torch.manual_seed(0)
    gens = {name: define_generator("resnet_9blocks", ngf=8, antialias=True, init_type="xavier") for name in "AB"}
    nets: Dict[str, nn.Module] = {f"G_{name}": gen for name, gen in gens.items()}
    for name in "AB":
        nets[f"D_{name}"] = define_discriminator("basic", ndf=8, antialias=True, init_type="xavier")
    for index, name in ((1, "A"), (2, "B")):
        heads = PatchProjection(gens[name].feature_channels([4, 8, 12, 16]))
        nets[f"F{index}"] = init_weights(heads, "xavier", GAIN)
    return nets


def unsb_nets() -> Dict[str, nn.Module]:
    torch.manual_seed(0)
    gen = define_generator("resnet_9blocks_cond", ngf=8, antialias=True, init_type="xavier", init_gain=GAIN)
    return {
        "G": gen,
        "D": define_discriminator("basic_cond", ndf=8, antialias=True, init_type="xavier"),
        "E": init_weights(energy_network(3, 8), "xavier"),
        "F": init_weights(PatchProjection(gen.feature_channels([0, 4, 8, 12, 16])), "xavier"),
    }


def assert_same(module: nn.Module, net: nn.Module) -> None:
    expected = net.state_dict()
    assert list(module.state_dict()) == list(expected)
    for key, value in expected.items():
        assert torch.equal(module.state_dict()[key], value), key


def test_dclgan_run_folder_fills_all_six_networks(tmp_path, capsys):
    nets = save_run(tmp_path / "run", dclgan_nets())
    ckpt = import_reference(tmp_path / "run", tmp_path / "dcl.ckpt")
    assert "into a DCLGAN checkpoint" in capsys.readouterr().out
    module = load_checkpoint(ckpt)
    assert isinstance(module, DCLGAN) and module.hparams.antialias is True and module.hparams.ngf == 8
    for reference_name, attribute in DCLGAN.reference_networks.items():
        assert_same(getattr(module, attribute), nets[reference_name])
    assert module.trained_directions == ("AtoB", "BtoA")
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert len(checkpoint["optimizer_states"]) == 3
    image = torch.rand(1, 3, 20, 28) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(module.translate(image, "BtoA"), nets["G_B"](image))


def test_a_test_folder_of_antialiased_g_a_g_b_is_dclgan_and_a_plain_one_cyclegan(tmp_path):
    nets = save_run(tmp_path / "dcl", dclgan_nets(), names=("G_A", "G_B"))
    module = load_checkpoint(import_reference(tmp_path / "dcl", tmp_path / "dcl.ckpt"))
    assert isinstance(module, DCLGAN)
    assert_same(module.gen_ab, nets["G_A"])
    torch.manual_seed(0)
    plain = {name: define_generator("resnet_9blocks", ngf=8) for name in ("G_A", "G_B")}
    save_run(tmp_path / "cyc", plain)
    assert isinstance(load_checkpoint(import_reference(tmp_path / "cyc", tmp_path / "cyc.ckpt")), CycleGAN)
    # A DCLGAN folder can still be read as the other method it fits when asked.
    forced = load_checkpoint(import_reference(tmp_path / "cyc", tmp_path / "forced.ckpt", model="dclgan"))
    assert isinstance(forced, DCLGAN) and forced.hparams.antialias is False


def test_unsb_networks_are_described_and_their_run_folder_fills_g_d_e_f(tmp_path, capsys):
    nets = save_run(tmp_path / "run", unsb_nets())
    gen, disc, energy = (describe_state_dict(nets[name].state_dict()) for name in "GDE")
    assert (gen["kind"], gen["name"], gen["ngf"], gen["antialias"]) == ("resnet_cond", "resnet_9blocks_cond", 8, True)
    assert (disc["kind"], disc["name"], disc["ndf"], disc["input_nc"]) == ("patchgan_cond", "basic_cond", 8, 3)
    assert energy["input_nc"] == 12
    ckpt = import_reference(tmp_path / "run", tmp_path / "sb.ckpt")
    assert "into a UNSB checkpoint" in capsys.readouterr().out
    module = load_checkpoint(ckpt)
    assert isinstance(module, UNSB) and module.hparams.ngf == 8 and module.hparams.ndf == 8
    for reference_name, attribute in UNSB.reference_networks.items():
        assert_same(getattr(module, attribute), nets[reference_name])
    assert len(torch.load(ckpt, map_location="cpu", weights_only=False)["optimizer_states"]) == 4
    # The test folders of their runs hold G alone: still UNSB (no other method builds it).
    save_run(tmp_path / "g_only", nets, names=("G",))
    alone = load_checkpoint(import_reference(tmp_path / "g_only", tmp_path / "g.ckpt"))
    assert isinstance(alone, UNSB)
    assert_same(alone.gen, nets["G"])
    single = load_checkpoint(import_reference(tmp_path / "g_only" / "latest_net_G.pth", tmp_path / "single.ckpt"))
    assert isinstance(single, UNSB)


@pytest.mark.parametrize("method", ["dclgan", "unsb"])
def test_pretrained_folders_round_trip(tmp_path, method):
    torch.manual_seed(0)
    module = DCLGAN(ngf=8, ndf=8, init_gain=GAIN) if method == "dclgan" else UNSB(ngf=8, ndf=8, init_gain=GAIN)
    folder = module.save_pretrained(tmp_path / "model")
    loaded = type(module).from_pretrained(folder)
    assert type(load_checkpoint(folder)) is type(module)
    listed = lambda hparams: {k: list(v) if isinstance(v, tuple) else v for k, v in hparams.items()}  # noqa: E731
    assert listed(loaded.hparams) == listed(module.hparams)  # (config.json holds nce_layers as a list)
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    images = torch.rand(2, 3, 20, 24) * 2 - 1
    for direction in module.directions:
        if method == "unsb":  # the same sampling seed: the same latents and noise
            module.reset_sampling()
            loaded.reset_sampling()
        torch.testing.assert_close(loaded.translate(images, direction), module.translate(images, direction))
    assert f"({type(module).__name__})" in (folder / "README.md").read_text()


def test_dclgan_exports_both_generators(tmp_path):
    torch.manual_seed(0)
    module = DCLGAN(ngf=8, ndf=8, init_gain=GAIN)
    folder = module.save_pretrained(tmp_path / "model")
    images = torch.rand(1, 3, 30, 45) * 2 - 1
    for direction in ("AtoB", "BtoA"):
        program = torch.jit.load(str(export(folder, tmp_path / f"{direction}.pt", direction=direction)))
        expected = module.translate(images, direction)
        assert expected.std() > 0.01
        with torch.no_grad():
            assert (program(images) - expected).abs().max() < 1e-5, direction


def test_unsb_export_is_refused_with_the_reason(tmp_path):
    folder = UNSB(ngf=8, ndf=8).save_pretrained(tmp_path / "model")
    with pytest.raises(OptionError, match="Cannot export a UNSB: it translates with a multi-step sampler"):
        export(folder, tmp_path / "sb.pt")
    assert not (tmp_path / "sb.pt").exists()
