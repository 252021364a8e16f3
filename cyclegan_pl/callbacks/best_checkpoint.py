"""Keep the best checkpoint by a metric that is not logged at every validation (FID)."""

from __future__ import annotations

from typing import Dict

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor


class BestCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose ``monitor`` may be missing: such validations save nothing.

    Lightning's ``ModelCheckpoint`` stops the run when a validation has not logged the monitored
    metric. ``fid/a2b`` is logged only when the FID callback computes it: not on the epochs
    between ``every_n_epochs``, and never when the Inception weights are unavailable (training
    then goes on without FID). This subclass keeps the best checkpoint(s) of the epochs that
    have the metric and says once that it has none otherwise. All other options are
    ``ModelCheckpoint``'s; the configs use ``monitor: fid/a2b``, ``mode: min``, ``save_top_k: 1``.
    The metric is reduced over all processes, so every process takes the same decision.
    """

    _said_missing = False

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: Dict[str, Tensor]) -> None:
        if self.monitor is not None and self.monitor not in monitor_candidates:
            if not self._said_missing:
                rank_zero_info(f"BestCheckpoint: no {self.monitor} logged yet, so no best checkpoint is saved yet.")
                self._said_missing = True
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)
