"""The methods registry and the contract every registered method keeps (new methods are checked too)."""

from __future__ import annotations

import pytest
import torch

from cyclegan_pl import CUT, CycleGAN, Pix2Pix
from cyclegan_pl.methods import METHODS, class_path
from cyclegan_pl.models.base import ImageTranslationModule
from cyclegan_pl.weights import checkpoint_method, published_models

TINY = {"cyclegan": dict(generator="resnet_2blocks"), "pix2pix": dict(generator="unet_32"), "cut": {}}


def tiny(method) -> ImageTranslationModule:
    return method(ngf=8, ndf=8, **TINY.get(method.method_name, {}))


def test_every_method_registers_itself_under_its_name():
    assert {"cyclegan": CycleGAN, "pix2pix": Pix2Pix, "cut": CUT}.items() <= {
        name: METHODS.get(name) for name in METHODS
    }.items()


@pytest.mark.parametrize("name", METHODS.names())
def test_a_method_declares_what_the_package_asks_of_it(name):
    method = METHODS.get(name)
    assert issubclass(method, ImageTranslationModule) and method.method_name == name
    assert method.card_summary.endswith(".") and len(method.card_summary) > 20
    module = tiny(method)
    directions = [t.direction for t in method.translations]
    assert directions and len(set(directions)) == len(directions) and directions[0] == "AtoB"
    for translation in method.translations:
        # The declared generator is a network of the module, and the one that translates that way.
        assert module.generator_for(translation.direction) is getattr(module, translation.generator)
    networks = dict(module.named_children())
    for reference_name, attribute in method.reference_networks.items():
        assert isinstance(networks.get(attribute), torch.nn.Module), (reference_name, attribute)
    # The reference networks are every network with weights: what a 0.2.0 checkpoint is told by.
    prefixes = {key.split(".", 1)[0] for key in module.state_dict()}
    assert prefixes == set(method.reference_networks.values())
    assert METHODS.from_network_names(prefixes) is method
    assert set(method.image_pools) <= {t.output for t in method.translations}
    for entry in method.published_models:
        assert entry.method == name and published_models().get(entry.name) is entry


def test_class_paths_name_only_registered_classes():
    assert class_path(CycleGAN) == "cyclegan_pl.CycleGAN"
    assert METHODS.from_class_path("cyclegan_pl.CUT") is CUT
    assert METHODS.from_class_path("cyclegan_pl.models.pix2pix.Pix2Pix") is Pix2Pix
    # A path read from a file only selects among registered classes: nothing is imported.
    for path in ("os.system", "cyclegan_pl.models.base.ImageTranslationModule", "evil.CUT", None, 5):
        assert METHODS.from_class_path(path) is None


@pytest.mark.parametrize("method", [CycleGAN, Pix2Pix, CUT], ids=lambda m: m.__name__)
def test_a_checkpoint_is_told_by_the_class_path_it_records(method, tmp_path, make_trainer):
    module = tiny(method)
    trainer = make_trainer()
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    checkpoint = torch.load(tmp_path / "m.ckpt", weights_only=True)
    assert checkpoint["cyclegan_pl"]["class_path"] == class_path(method)
    assert "_class_path" not in checkpoint.get("hyper_parameters", {})  # written from Python, not the CLI
    # Whatever order the networks come in (the old key-prefix test depended on it).
    checkpoint["state_dict"] = dict(reversed(list(checkpoint["state_dict"].items())))
    assert checkpoint_method(checkpoint) is method
    # The class path decides even where the networks alone would say another method.
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(("gen.", "disc."))}
    if method is not Pix2Pix:
        assert checkpoint_method(checkpoint) is method


def test_a_subclass_of_ones_own_loads_as_its_registered_method(tmp_path, make_trainer):
    class MyCycleGAN(CycleGAN):
        pass

    module = MyCycleGAN(ngf=8, ndf=8, generator="resnet_2blocks")
    trainer = make_trainer()
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    # Not registered: told by its networks, never imported from the path the file names.
    assert checkpoint_method(torch.load(tmp_path / "m.ckpt", weights_only=True)) is CycleGAN
