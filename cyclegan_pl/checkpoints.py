"""Lightning checkpoints: read without running code from them, written atomically.

:class:`SafeCheckpointIO` is the checkpoint plugin the command line gives every Trainer
(``fit/validate/test/predict --ckpt_path``): it reads through
:func:`~cyclegan_pl.files.load_torch_file` (tensors and plain data only, one-line errors naming
the file) and writes through :func:`~cyclegan_pl.files.atomic_torch_save`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cyclegan_pl.errors import CheckpointError
from cyclegan_pl.files import atomic_torch_save, load_torch_file

PathLike = Union[str, Path]


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
    return checkpoint


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
