"""The tensors of every weights file are checked the same way, whichever loader reads them.

A checkpoint, a save_pretrained folder and a reference-code .pth file each hold a tensor of
another dtype or a non-finite value: a non-floating tensor where the network has floating ones
(bool, int64, complex) and NaN/inf values are refused with one line naming the file and the
tensor; float16/bfloat16/float64 tensors load, converted to the network's float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

import pytest
import torch

from cyclegan_pl import CycleGAN, load_checkpoint
from cyclegan_pl.errors import CheckpointError
from cyclegan_pl.networks import define_generator
from cyclegan_pl.weights import load_reference_state_dict
from cyclegan_pl.weights.reference_import import save_imported_checkpoint

TINY = dict(generator="resnet_2blocks", ngf=8, ndf=8)
# A tensor every form holds: the first conv of the (A -> B) generator.
KEY = "model.1.weight"

Edit = Callable[[torch.Tensor], torch.Tensor]


def _nan(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[3] = float("nan")
    return tensor


def _inf(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[0] = float("-inf")
    return tensor


REFUSED: Dict[str, Edit] = {
    "bool": lambda t: t > 0,
    "int64": lambda t: (t * 100).long(),
    "complex": lambda t: t.to(torch.complex64),
    "nan": _nan,
    "inf": _inf,
}
CONVERTED = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _module() -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(**TINY)


def _checkpoint(tmp_path: Path, edit: Edit) -> Path:
    module = _module()
    path = save_imported_checkpoint(module, 0, {}, tmp_path / "m.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"][f"gen_ab.{KEY}"] = edit(checkpoint["state_dict"][f"gen_ab.{KEY}"])
    torch.save(checkpoint, path)
    return path


def _folder(tmp_path: Path, edit: Edit) -> Path:
    from safetensors.torch import load_file, save_file

    folder = _module().save_pretrained(tmp_path / "folder")
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    tensors[f"gen_ab.{KEY}"] = edit(tensors[f"gen_ab.{KEY}"])
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return folder


def _reference(tmp_path: Path, edit: Edit) -> Path:
    torch.manual_seed(0)
    state = define_generator("resnet_2blocks", ngf=8).state_dict()
    state[KEY] = edit(state[KEY])
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    return path


def _load(form: str, path: Path) -> torch.Tensor:
    """Load ``path`` the way its form is loaded; the loaded first conv weight."""
    if form == "reference":
        net = define_generator("resnet_2blocks", ngf=8)
        load_reference_state_dict(net, path)
        return net.state_dict()[KEY]
    return load_checkpoint(path).gen_ab.state_dict()[KEY]


FORMS = {"checkpoint": _checkpoint, "folder": _folder, "reference": _reference}
FILE_OF = {"checkpoint": "m.ckpt", "folder": "model.safetensors", "reference": "latest_net_G.pth"}


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("kind", list(REFUSED))
def test_a_tensor_of_another_kind_or_non_finite_is_refused_naming_file_and_tensor(tmp_path, form, kind):
    path = FORMS[form](tmp_path, REFUSED[kind])
    with pytest.raises(CheckpointError) as error:
        _load(form, path)
    message = str(error.value)
    assert "\n" not in message
    assert FILE_OF[form] in message and KEY in message
    assert ("non-finite" in message) if kind in ("nan", "inf") else (kind in message)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("dtype", list(CONVERTED))
def test_other_floating_precisions_load_converted_to_float32(tmp_path, form, dtype):
    path = FORMS[form](tmp_path, lambda t: t.to(CONVERTED[dtype]))
    loaded = _load(form, path)
    torch.manual_seed(0)
    expected = define_generator("resnet_2blocks", ngf=8).state_dict()[KEY].to(CONVERTED[dtype]).float()
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded, expected)


def test_a_float64_value_beyond_float32_is_refused(tmp_path):
    def huge(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.double()
        tensor.view(-1)[0] = 1e300
        return tensor

    with pytest.raises(CheckpointError, match=r"latest_net_G\.pth.*model\.1\.weight.*float32"):
        _load("reference", _reference(tmp_path, huge))


def test_integer_buffers_stay_integers(tmp_path):
    # BatchNorm's num_batches_tracked is an integer buffer: an integer is right there, a float is not.
    from cyclegan_pl import Pix2Pix

    torch.manual_seed(0)
    module = Pix2Pix(generator="unet_32", ngf=8, ndf=8)
    path = save_imported_checkpoint(module, 0, {}, tmp_path / "p.ckpt")
    assert isinstance(load_checkpoint(path), Pix2Pix)
    checkpoint = torch.load(path, weights_only=True)
    key = next(k for k in checkpoint["state_dict"] if k.endswith("num_batches_tracked"))
    checkpoint["state_dict"][key] = checkpoint["state_dict"][key].float()
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=rf"p\.ckpt.*{key}.*float32"):
        load_checkpoint(path)


@pytest.mark.parametrize("form", ["checkpoint", "folder"])
def test_non_finite_values_in_a_network_that_does_not_translate_are_a_warning(tmp_path, form):
    # A discriminator (or CUT's projection) that diverged does not stop the generator from
    # translating: the file loads, with a warning naming the tensor (0.2.0 wrote such files).
    module = _module()
    key = "disc_a.model.0.weight"
    if form == "checkpoint":
        path = save_imported_checkpoint(module, 0, {}, tmp_path / "m.ckpt")
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["state_dict"][key] = _nan(checkpoint["state_dict"][key])
        torch.save(checkpoint, path)
    else:
        from safetensors.torch import load_file, save_file

        path = module.save_pretrained(tmp_path / "folder")
        tensors = load_file(str(path / "model.safetensors"))
        tensors[key] = _nan(tensors[key])
        save_file(tensors, str(path / "model.safetensors"))
    with pytest.warns(UserWarning, match=rf"{key} holds 1 non-finite value"):
        loaded = load_checkpoint(path)
    assert torch.equal(loaded.gen_ab.state_dict()[KEY], module.gen_ab.state_dict()[KEY])
