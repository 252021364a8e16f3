"""A callback for tests/test_multinode.py: every process writes what it trained on and its parameters.

Given to `fit` on the command line (`--trainer.callbacks+=rank_state.RankState`, with this folder on
PYTHONPATH). After each training epoch, each process saves ``FOLDER/rank<R>_epoch<E>.pt``: its
global rank, node rank and world size, the ``A_paths`` of the batches it trained on in that epoch,
and its parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import lightning.pytorch as pl
import torch


class RankState(pl.Callback):
    """Saves, per process and epoch, the batches' A images and the parameters (see the module doc).

    Args:
        folder: where the files go (shared by the processes).
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.batches: List[List[str]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batches = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int):
        self.batches.append([str(path) for path in batch["A_paths"]])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "global_rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "batches": self.batches,
            "parameters": {name: value.detach().cpu().clone() for name, value in pl_module.named_parameters()},
        }
        torch.save(state, self.folder / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.pt")
