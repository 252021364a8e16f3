"""One LightningModule per method, and loading a checkpoint without knowing which."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Type, Union

from cyclegan_pl.checkpoints import load_lightning_checkpoint
from cyclegan_pl.errors import CheckpointError
from cyclegan_pl.models.base import CHECKPOINT_KEY, ImageTranslationModule, Translation
from cyclegan_pl.models.cut import CUT
from cyclegan_pl.models.cyclegan import CycleGAN
from cyclegan_pl.models.pix2pix import Pix2Pix
from cyclegan_pl.models.pretrained import is_pretrained_source
from cyclegan_pl.registry import Registry

#: The methods by the name of their class (what a checkpoint's ``_class_path`` ends with).
METHODS: Registry[Type[ImageTranslationModule]] = Registry("method")
METHODS.add("CycleGAN", CycleGAN)
METHODS.add("Pix2Pix", Pix2Pix)
METHODS.add("CUT", CUT)

# Checkpoints without a class path (written by Trainer.save_checkpoint in Python) are told apart
# by their networks' keys (CUT's projection first: CUT and Pix2Pix both name their generator `gen`).
_METHOD_BY_KEY_PREFIX = {"gen_ab.": "CycleGAN", "projection.": "CUT", "gen.": "Pix2Pix"}


def checkpoint_method(
    checkpoint: Dict[str, Any], path: Union[str, Path] = "the checkpoint"
) -> Type[ImageTranslationModule]:
    """The module class a Lightning checkpoint (already loaded) was written from.

    Raises:
        CheckpointError: the checkpoint holds none of the package's methods.
    """
    class_path = checkpoint.get("hyper_parameters", {}).get("_class_path")
    if isinstance(class_path, str):
        name = class_path.rsplit(".", 1)[-1]
        if name in METHODS:
            return METHODS.get(name)
    for prefix, name in _METHOD_BY_KEY_PREFIX.items():
        if any(key.startswith(prefix) for key in checkpoint["state_dict"]):
            return METHODS.get(name)
    raise CheckpointError(f"{path} holds none of the methods {', '.join(METHODS.names())}.")


def load_checkpoint(path: Union[str, Path], map_location: str = "cpu") -> ImageTranslationModule:
    """Load a model into the right module, from any of the forms the package writes.

    ``path`` is a Lightning checkpoint written by ``fit``, ``import-reference`` or
    ``download-model``, a folder written by
    :meth:`~cyclegan_pl.models.base.ImageTranslationModule.save_pretrained`, or a Hugging Face
    Hub repo holding one, as ``hf://owner/name`` (needs ``cyclegan_pl[hub]``). Nothing in the
    files is executed (see :func:`cyclegan_pl.files.load_torch_file`; the folder's weights are
    safetensors).

    Raises:
        CheckpointError: the file is missing, unreadable, unsafe, or holds no known method.
    """
    if is_pretrained_source(path):
        return ImageTranslationModule.from_pretrained(path, map_location=map_location)
    checkpoint = load_lightning_checkpoint(path)
    module_class = checkpoint_method(checkpoint, path)
    # LightningCLI adds bookkeeping entries such as `_class_path`; they are no arguments.
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    module = module_class(**hparams)
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    return module.to(map_location)


__all__ = [
    "CHECKPOINT_KEY",
    "CUT",
    "METHODS",
    "CycleGAN",
    "ImageTranslationModule",
    "Pix2Pix",
    "Translation",
    "checkpoint_method",
    "load_checkpoint",
]
