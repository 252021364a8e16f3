"""A resumable checkpoint when a scheduler (or ``docker stop``, ``timeout``) stops training."""

from __future__ import annotations

import os
from typing import Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class SigtermCheckpoint(pl.Callback):
    """On SIGTERM, save ``last.ckpt`` where the run's ``ModelCheckpoint`` keeps it, then let fit stop.

    Lightning stops training at the next batch once the process receives SIGTERM (all processes
    of a multi-GPU run stop at the same batch). This callback writes the state of that moment to
    the ``last.ckpt`` of the trainer's ``ModelCheckpoint``, so ``fit --ckpt_path last`` resumes
    from it; the command line then exits with status 143 (128 + SIGTERM), so a following command
    (``fit && translate``) does not run on an unfinished model. Other exceptions are left alone:
    their state may be the problem.

    Args:
        dirpath: folder of the checkpoint when the trainer has no ``ModelCheckpoint`` with a
            ``dirpath`` (default: ``<default_root_dir>/checkpoints``).
    """

    def __init__(self, dirpath: Optional[str] = None) -> None:
        super().__init__()
        self.dirpath = dirpath
        self.saved_path: Optional[str] = None

    def checkpoint_path(self, trainer: pl.Trainer) -> str:
        """Where the checkpoint goes: the ``last`` file of the trainer's ModelCheckpoint."""
        model_checkpoint = trainer.checkpoint_callback
        if isinstance(model_checkpoint, ModelCheckpoint) and model_checkpoint.dirpath:
            name = model_checkpoint.CHECKPOINT_NAME_LAST + model_checkpoint.FILE_EXTENSION
            return os.path.join(model_checkpoint.dirpath, name)
        folder = self.dirpath or os.path.join(trainer.default_root_dir, "checkpoints")
        return os.path.join(folder, "last.ckpt")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.sanity_checking:
            return
        path = self.checkpoint_path(trainer)
        # Every process calls it (it ends with a barrier); rank 0 writes.
        trainer.save_checkpoint(path)
        self.saved_path = path
        rank_zero_info(f"SIGTERM: saved {path}; resume with --ckpt_path last.")
