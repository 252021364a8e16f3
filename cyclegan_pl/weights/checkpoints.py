"""Lightning checkpoints: read without running code from them, written atomically, loaded into their method.

:class:`SafeCheckpointIO` is the checkpoint plugin the command line gives every Trainer
(``fit/validate/test/predict --ckpt_path``): it reads through
:func:`~cyclegan_pl.files.load_torch_file` (tensors and plain data only, one-line errors naming
the file) and writes through :func:`~cyclegan_pl.files.atomic_torch_save`.
:func:`load_checkpoint` builds the right module from any form the package writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import LightningModule
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from cyclegan_pl.errors import CheckpointError
from cyclegan_pl.files import atomic_torch_save, load_torch_file
from cyclegan_pl.methods import METHODS
from cyclegan_pl.weights.hub import from_pretrained, is_pretrained_source
from cyclegan_pl.weights.tensors import conform_tensors, module_for_weights, tensor_specs

PathLike = Union[str, Path]

#: The key of the package's own entries in a Lightning checkpoint.
CHECKPOINT_KEY = "cyclegan_pl"


def load_lightning_checkpoint(path: PathLike, what: str = "--ckpt_path") -> Dict[str, Any]:
    """A Lightning checkpoint (a dict with a ``state_dict``), read with :func:`load_torch_file`.

    Raises:
        CheckpointError: as :func:`load_torch_file`, or the file is not a Lightning checkpoint.
    """
    checkpoint = load_torch_file(path, what)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(
            f"{what} {path} is not a Lightning checkpoint (no 'state_dict'): pass a .ckpt written by "
            "`fit`, `import-reference` or `download-model`; reference-code .pth files are converted "
            "with `python -m cyclegan_pl import-reference`."
        )
    others = [str(key) for key, value in checkpoint["state_dict"].items() if not isinstance(value, Tensor)]
    if others:
        raise CheckpointError(
            f"{what} {path}: its state_dict holds entries that are not tensors ({', '.join(others[:3])})."
        )
    return checkpoint


def checkpoint_method(checkpoint: Dict[str, Any], path: PathLike = "the checkpoint") -> Any:
    """The method class a Lightning checkpoint (already loaded) was written from.

    Read from the class path the package writes into every checkpoint (and LightningCLI into
    its hyperparameters); checkpoints of 0.2.0 written from Python carry neither and are told
    apart by the exact set of their networks.

    Raises:
        CheckpointError: the checkpoint holds none of the package's methods.
    """
    own = checkpoint.get(CHECKPOINT_KEY)
    for class_path in (
        own.get("class_path") if isinstance(own, dict) else None,
        checkpoint.get("hyper_parameters", {}).get("_class_path"),
    ):
        method = METHODS.from_class_path(class_path)
        if method is not None:
            return method
    method = METHODS.from_network_names(key.split(".", 1)[0] for key in checkpoint["state_dict"])
    if method is None:
        raise CheckpointError(f"{path} holds none of the methods {', '.join(METHODS.names())}.")
    return method


def load_checkpoint(path: PathLike, map_location: str = "cpu") -> LightningModule:
    """Load a model into the right module, from any of the forms the package writes.

    ``path`` is a Lightning checkpoint written by ``fit``, ``import-reference`` or
    ``download-model``, a folder written by ``save_pretrained``, or a Hugging Face Hub repo
    holding one, as ``hf://owner/name`` (needs ``cyclegan_pl[hub]``). Nothing in the files is
    executed (see :func:`cyclegan_pl.files.load_torch_file`; the folder's weights are safetensors).

    The file's options are checked against the method's typed arguments and its tensors against
    the module they describe before that module is built (a file describing a huge network costs
    nothing), and each tensor's dtype and values are checked
    (:mod:`~cyclegan_pl.weights.tensors`).

    Raises:
        CheckpointError: the file is missing, unreadable, unsafe, holds no known method, or
            its options or tensors do not make that method's module; one line naming the file.
    """
    if is_pretrained_source(path):
        return from_pretrained(path, map_location=map_location)
    checkpoint = load_lightning_checkpoint(path)
    module_class = checkpoint_method(checkpoint, path)
    hyper_parameters = checkpoint.get("hyper_parameters", {})
    if not isinstance(hyper_parameters, dict):
        raise CheckpointError(f"{path}: its hyper_parameters are not a mapping of options; pass another checkpoint.")
    # LightningCLI adds bookkeeping entries such as `_class_path`; they are no arguments.
    hparams = {k: v for k, v in hyper_parameters.items() if not str(k).startswith("_")}
    state = checkpoint["state_dict"]
    module = module_for_weights(
        module_class,
        hparams,
        tensor_specs(state),
        options_origin=f"The hyper_parameters of {path}",
        weights_origin=str(path),
        described_by="its hyper_parameters",
    )
    checkpoint["state_dict"] = conform_tensors(state, module.state_dict(), str(path), module.generator_names())
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    return module.to(map_location)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, reading without running code and writing local files atomically."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "file" not in get_filesystem(path).protocol:
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self, path: _PATH, map_location: Optional[Any] = None, weights_only: Optional[bool] = None
    ) -> Dict[str, Any]:
        if "file" not in get_filesystem(path).protocol:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return load_torch_file(path, "--ckpt_path", map_location=map_location or "cpu")
