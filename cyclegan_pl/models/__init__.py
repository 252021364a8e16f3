"""One LightningModule per method, and loading a checkpoint without knowing which."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from cyclegan_pl.models.base import ImageTranslationModule, NonFiniteLossError
from cyclegan_pl.models.cyclegan import CycleGAN
from cyclegan_pl.models.pix2pix import Pix2Pix

# The first generator key of each module's state_dict identifies the method.
_METHOD_BY_KEY_PREFIX = {"gen_ab.": CycleGAN, "gen.": Pix2Pix}


def load_checkpoint(path: Union[str, Path], map_location: str = "cpu") -> ImageTranslationModule:
    """Load a Lightning checkpoint written by ``fit`` into the right module (CycleGAN or Pix2Pix)."""
    if not Path(path).is_file():
        # Named as the commands' option, since translate and export pass it on unchanged.
        raise FileNotFoundError(
            f"--ckpt_path {path} does not exist; pass a .ckpt written by `fit` or `import-reference`."
        )
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    state_dict = checkpoint.get("state_dict")
    if state_dict is None:
        raise ValueError(
            f"{path} is not a Lightning checkpoint (no 'state_dict'); for a reference-code .pth use "
            "cyclegan_pl.networks.load_reference_state_dict."
        )
    for prefix, module_class in _METHOD_BY_KEY_PREFIX.items():
        if any(key.startswith(prefix) for key in state_dict):
            # LightningCLI adds bookkeeping entries such as `_class_path`; they are no arguments.
            hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
            module = module_class(**hparams)
            module.load_state_dict(state_dict)
            return module
    raise ValueError(f"{path} holds neither a CycleGAN nor a Pix2Pix state_dict.")


__all__ = ["CycleGAN", "ImageTranslationModule", "NonFiniteLossError", "Pix2Pix", "load_checkpoint"]
