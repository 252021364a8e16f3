"""A CUT run folder of the published code (latest_net_G/D/F.pth), or its G alone, becomes a CUT checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import torch
from torch import nn

from cyclegan_pl import CUT
from cyclegan_pl.commands import import_reference
from cyclegan_pl.errors import OptionError
from cyclegan_pl.networks import PatchProjection, define_discriminator, define_generator
from cyclegan_pl.weights import describe_state_dict, load_checkpoint


def save_cut_run(folder: Path, names=("G", "D", "F")) -> Dict[str, nn.Module]:
    """Tiny files in the published layout: anti-aliased G and D (with their `filt` buffers), F's mlp_<k> heads."""
    torch.manual_seed(0)
    gen = define_generator("resnet_9blocks", ngf=8, antialias=True, init_type="xavier")
    nets = {
        "G": gen,
        "D": define_discriminator("basic", ndf=8, antialias=True, init_type="xavier"),
        "F": PatchProjection(gen.feature_channels([0, 4, 8, 12, 16])),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        torch.save(nets[name].state_dict(), folder / f"latest_net_{name}.pth")
    return nets


def assert_same(module: nn.Module, net: nn.Module) -> None:
    expected = net.state_dict()
    assert module.state_dict().keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(module.state_dict()[key], value), key


def test_antialiased_files_are_described_as_such(tmp_path):
    nets = save_cut_run(tmp_path / "run")
    gen, disc = describe_state_dict(nets["G"].state_dict()), describe_state_dict(nets["D"].state_dict())
    assert (gen["name"], gen["ngf"], gen["antialias"]) == ("resnet_9blocks", 8, True)
    # the 4-D blur buffers are no convolutions: still the 3-layer PatchGAN
    assert (disc["name"], disc["n_layers"], disc["ndf"], disc["antialias"]) == ("basic", 3, 8, True)
    assert describe_state_dict(define_discriminator("basic", ndf=8).state_dict())["antialias"] is False


def test_cut_run_folder_fills_g_d_and_f(tmp_path, capsys):
    nets = save_cut_run(tmp_path / "run")
    ckpt = import_reference(tmp_path / "run", tmp_path / "cut.ckpt")
    assert "D -> disc, F -> projection, G -> gen into a CUT checkpoint" in capsys.readouterr().out
    module = load_checkpoint(ckpt)
    assert isinstance(module, CUT)
    assert module.hparams.antialias is True and module.hparams.ngf == 8 and module.hparams.ndf == 8
    assert_same(module.gen, nets["G"])
    assert_same(module.disc, nets["D"])
    assert_same(module.projection, nets["F"])
    assert module.trained_directions == ("AtoB",)
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert checkpoint["hyper_parameters"]["_class_path"] == "cyclegan_pl.CUT"
    assert len(checkpoint["optimizer_states"]) == 3
    image = torch.rand(1, 3, 20, 28) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(module.translate(image), nets["G"](image))


def test_cut_generator_alone_makes_a_cut_and_refuses_btoa(tmp_path, capsys):
    nets = save_cut_run(tmp_path / "run", names=("G",))
    ckpt = import_reference(tmp_path / "run", tmp_path / "g.ckpt")
    out = capsys.readouterr().out
    assert "disc, projection not found" in out and "into a CUT checkpoint" in out
    module = load_checkpoint(ckpt)
    assert isinstance(module, CUT)
    assert_same(module.gen, nets["G"])
    single = import_reference(tmp_path / "run" / "latest_net_G.pth", tmp_path / "single.ckpt")
    assert isinstance(load_checkpoint(single), CUT)
    with pytest.raises(OptionError, match="direction=BtoA: a CUT translates AtoB only"):
        import_reference(tmp_path / "run" / "latest_net_G.pth", tmp_path / "b.ckpt", direction="BtoA")
    with pytest.raises(OptionError, match="CUT translates AtoB only"):
        module.translate(torch.zeros(1, 3, 16, 16), "BtoA")
