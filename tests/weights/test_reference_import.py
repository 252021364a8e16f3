"""Reference-code run folders and published generators become checkpoints Lightning accepts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from cyclegan_pl import CycleGAN, Pix2Pix
from cyclegan_pl.commands import import_reference
from cyclegan_pl.errors import CheckpointError, CheckpointMismatchError
from cyclegan_pl.networks import define_discriminator, define_generator
from cyclegan_pl.weights import load_checkpoint


def reference_state_dict(net: nn.Module, old_pytorch: bool = False) -> Dict[str, torch.Tensor]:
    """A state_dict as the reference code saves it; ``old_pytorch`` adds the InstanceNorm
    running statistics and drops the BatchNorm ``num_batches_tracked`` of PyTorch < 0.4.1."""
    state = {
        key: value.clone()
        for key, value in net.state_dict().items()
        if not (old_pytorch and key.endswith("num_batches_tracked"))
    }
    if old_pytorch:
        for name, module in net.named_modules():
            if isinstance(module, nn.InstanceNorm2d):
                state[f"{name}.running_mean"] = torch.zeros(module.num_features)
                state[f"{name}.running_var"] = torch.ones(module.num_features)
    return state


def save_cyclegan_run(folder: Path, label: str = "latest", seed: int = 0) -> Dict[str, nn.Module]:
    """Tiny reference-format CycleGAN files; G_A saved like old PyTorch did."""
    torch.manual_seed(seed)
    nets = {
        "G_A": define_generator("resnet_2blocks", ngf=8),
        "G_B": define_generator("resnet_2blocks", ngf=8),
        "D_A": define_discriminator("n_layers", ndf=8, n_layers=2),
        "D_B": define_discriminator("n_layers", ndf=8, n_layers=2),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        torch.save(reference_state_dict(net, old_pytorch=name == "G_A"), folder / f"{label}_net_{name}.pth")
    return nets


def save_pix2pix_run(folder: Path, label: str = "latest") -> Dict[str, nn.Module]:
    torch.manual_seed(0)
    nets = {
        "G": define_generator("unet_32", ngf=8, norm="batch", dropout=True, init_gain=0.2),
        "D": define_discriminator("basic", input_nc=6, ndf=8, norm="batch"),
    }
    for net in nets.values():  # running statistics that differ from a fresh network's
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        torch.save(reference_state_dict(net, old_pytorch=True), folder / f"{label}_net_{name}.pth")
    return nets


def assert_same_tensors(net: nn.Module, reference: nn.Module) -> None:
    ours, theirs = net.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def images(size: int = 32, n: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_cyclegan_run_fills_every_network_under_our_names(tmp_path):
    nets = save_cyclegan_run(tmp_path / "run")
    output = import_reference(tmp_path / "run", tmp_path / "out" / "imported.ckpt")
    assert output == tmp_path / "out" / "imported.ckpt"
    assert sorted(p.name for p in output.parent.iterdir()) == ["imported.ckpt"]

    module = load_checkpoint(output)
    assert isinstance(module, CycleGAN)
    hp = module.hparams
    assert (hp.generator, hp.ngf, hp.norm, hp.dropout) == ("resnet_2blocks", 8, "instance", False)
    assert (hp.discriminator, hp.ndf, hp.n_layers_d) == ("n_layers", 8, 2)
    assert_same_tensors(module.gen_ab, nets["G_A"])
    assert_same_tensors(module.gen_ba, nets["G_B"])
    assert_same_tensors(module.disc_b, nets["D_A"])  # the reference's D_A judges domain B
    assert_same_tensors(module.disc_a, nets["D_B"])

    x = images()
    with torch.no_grad():
        torch.testing.assert_close(module.translate(x, "AtoB"), nets["G_A"](x), rtol=0, atol=0)
        torch.testing.assert_close(module.translate(x, "BtoA"), nets["G_B"](x), rtol=0, atol=0)
    # LightningCLI's class path entries let Lightning's own loader rebuild the module too.
    assert_same_tensors(CycleGAN.load_from_checkpoint(output).disc_b, nets["D_A"])


def test_latest_is_preferred_and_epoch_picks_numbered_files(tmp_path):
    run = tmp_path / "run"
    older = save_cyclegan_run(run, label="5", seed=5)
    latest = save_cyclegan_run(run, label="latest", seed=7)

    checkpoint = torch.load(import_reference(run, tmp_path / "latest.ckpt"), weights_only=False)
    assert checkpoint["epoch"] == 0
    assert_same_tensors(load_checkpoint(tmp_path / "latest.ckpt").gen_ab, latest["G_A"])

    path = import_reference(run, tmp_path / "epoch5.ckpt", epoch="5", hparams={"lr": 1e-4, "eval_mode": True})
    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint["epoch"] == 5
    assert checkpoint["hyper_parameters"]["eval_mode"] is True
    assert {group["lr"] for state in checkpoint["optimizer_states"] for group in state["param_groups"]} == {1e-4}
    assert_same_tensors(load_checkpoint(path).gen_ab, older["G_A"])

    with pytest.raises(ValueError, match=r"epoch=7.*5, latest"):
        import_reference(run, tmp_path / "x.ckpt", epoch="7")


def test_single_published_generator_fills_the_chosen_direction(tmp_path, capsys):
    torch.manual_seed(0)
    published = define_generator("resnet_2blocks", ngf=8)
    torch.save(reference_state_dict(published, old_pytorch=True), tmp_path / "horse2zebra.pth")

    module = load_checkpoint(import_reference(tmp_path / "horse2zebra.pth", tmp_path / "h2z.ckpt"))
    assert isinstance(module, CycleGAN)
    assert_same_tensors(module.gen_ab, published)
    assert "disc_a, disc_b, gen_ba" in capsys.readouterr().out  # the untouched networks are named

    module = load_checkpoint(import_reference(tmp_path / "horse2zebra.pth", tmp_path / "z2h.ckpt", direction="BtoA"))
    assert_same_tensors(module.gen_ba, published)
    x = images(size=36)
    with torch.no_grad():
        torch.testing.assert_close(module.translate(x, "BtoA"), published(x), rtol=0, atol=0)


def test_pix2pix_run_with_old_batch_norm_files(tmp_path):
    nets = save_pix2pix_run(tmp_path / "facades")
    module = load_checkpoint(import_reference(tmp_path / "facades", tmp_path / "facades.ckpt"))
    assert isinstance(module, Pix2Pix)
    hp = module.hparams
    assert (hp.generator, hp.ngf, hp.norm, hp.dropout, hp.ndf) == ("unet_32", 8, "batch", True, 8)
    for ours, theirs in [(module.gen, nets["G"]), (module.disc, nets["D"])]:
        for key, value in theirs.state_dict().items():
            expected = torch.zeros_like(value) if key.endswith("num_batches_tracked") else value
            assert torch.equal(ours.state_dict()[key], expected), key

    module.eval_mode = True
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(module.translate(x), nets["G"].eval()(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="direction=BtoA: a Pix2Pix translates AtoB only"):
        import_reference(tmp_path / "facades" / "latest_net_G.pth", tmp_path / "x.ckpt", direction="BtoA")


class _EpochRecorder(pl.Callback):
    def __init__(self) -> None:
        self.epochs = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append(trainer.current_epoch)


def test_lightning_predict_and_resumed_fit_accept_the_import(tmp_path, make_trainer):
    nets = save_cyclegan_run(tmp_path / "run", label="3")
    ckpt = import_reference(tmp_path / "run", tmp_path / "imported.ckpt")
    hparams = {
        key: value
        for key, value in torch.load(ckpt, weights_only=False)["hyper_parameters"].items()
        if not key.startswith("_")
    }  # LightningCLI's class path entries

    x = images()
    batch = {"image": x, "path": ["/data/a.png"], "relpath": ["a.png"]}
    torch.manual_seed(123)
    (prediction,) = make_trainer().predict(CycleGAN(**hparams), DataLoader([batch], batch_size=None), ckpt_path=ckpt)
    with torch.no_grad():
        torch.testing.assert_close(prediction["images"], nets["G_A"](x), rtol=0, atol=0)

    torch.manual_seed(123)
    module = CycleGAN(**hparams)
    recorder = _EpochRecorder()
    trainer = make_trainer(max_epochs=4, callbacks=[recorder])
    train_batch = {"A": images(seed=2), "B": images(seed=3), "A_paths": ["a.png"], "B_paths": ["b.png"]}
    trainer.fit(module, DataLoader([train_batch], batch_size=None), ckpt_path=ckpt)
    assert recorder.epochs == [3]  # continues after the 3 epochs named by the files
    assert trainer.global_step == 2  # one step of each optimizer
    # One fresh Adam step moves each weight by about lr (2e-4), far less than a re-initialization.
    for ours, theirs in [(module.gen_ab, nets["G_A"]), (module.disc_b, nets["D_A"])]:
        for name, param in ours.named_parameters():
            assert (param.detach() - theirs.get_parameter(name)).abs().max() < 1e-3, name


def test_architecture_mismatch_names_the_saved_architecture(tmp_path):
    save_cyclegan_run(tmp_path / "run")
    with pytest.raises(CheckpointMismatchError, match="resnet_2blocks") as error:
        import_reference(tmp_path / "run", tmp_path / "x.ckpt", generator="resnet_9blocks")
    assert "importing G_A into gen_ab" in str(error.value)
    assert not (tmp_path / "x.ckpt").exists()


def test_folder_without_reference_files_names_the_expected_files(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no weights here")
    with pytest.raises(CheckpointError, match=r"empty.*latest_net_G_A\.pth") as error:
        import_reference(tmp_path / "empty", tmp_path / "x.ckpt")
    assert "_net_G.pth" in str(error.value)
    with pytest.raises(CheckpointError, match="missing"):
        import_reference(tmp_path / "missing", tmp_path / "x.ckpt")


def test_a_discriminator_file_alone_is_refused(tmp_path):
    save_cyclegan_run(tmp_path / "run")
    with pytest.raises(ValueError, match="holds a discriminator"):
        import_reference(tmp_path / "run" / "latest_net_D_A.pth", tmp_path / "x.ckpt")


def test_a_partial_import_refuses_the_direction_it_does_not_hold(tmp_path):
    # A folder holding only latest_net_G_A.pth: BtoA would translate with random weights.
    from cyclegan_pl.commands import export, translate
    from cyclegan_pl.errors import OptionError

    run = tmp_path / "run"
    nets = save_cyclegan_run(run)
    for name in ("G_B", "D_A", "D_B"):
        (run / f"latest_net_{name}.pth").unlink()
    ckpt = import_reference(run, tmp_path / "partial.ckpt")
    module = load_checkpoint(ckpt)
    assert module.trained_directions == ("AtoB",)
    assert_same_tensors(module.gen_ab, nets["G_A"])
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "x.png")
    with pytest.raises(OptionError, match=r"direction=BtoA: this CycleGAN's BtoA generator was never trained"):
        translate(ckpt, tmp_path / "in", tmp_path / "out", direction="BtoA")
    with pytest.raises(OptionError, match="BtoA generator was never trained"):
        export(ckpt, tmp_path / "b2a.pt", direction="BtoA")
    assert not (tmp_path / "out").exists() and not (tmp_path / "b2a.pt").exists()
    translate(ckpt, tmp_path / "in", tmp_path / "out", direction="AtoB")
    assert (tmp_path / "out" / "x.png").is_file()


def test_translate_leaves_its_own_output_folder_out_of_the_inputs(tmp_path):
    save_cyclegan_run(tmp_path / "run")
    ckpt = import_reference(tmp_path / "run", tmp_path / "full.ckpt")
    inputs = tmp_path / "photos"
    inputs.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(inputs / "a.png")
    for _ in range(2):  # a second run must not translate the first run's outputs
        translate_folder = inputs / "out"
        from cyclegan_pl.commands import translate

        translate(ckpt, inputs, translate_folder)
    written = sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*.png"))
    assert written == ["a.png", "out/a.png"]
    assert (translate_folder / "a.png").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
