"""The reference learning-rate schedule: constant, then linear decay towards zero."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

from cyclegan_pl.errors import OptionError


class LinearDecay(pl.Callback):
    """Keep the learning rate for ``n_epochs`` epochs, then decay it linearly over ``n_epochs_decay``.

    At the start of every training epoch each parameter group of every optimizer gets
    ``lr = initial_lr * factor(current_epoch)`` with the published rule (docs/method.md#learning-rate-schedule)
    ``factor(e) = 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay + 1)`` (``e`` is
    Lightning's 0-based epoch, so the N-th epoch runs at ``factor(N - 1)``). With the defaults
    epochs 1-100 run at 2e-4, epoch 101 at 2e-4 * 100/101 and epoch 200 at 2e-4 / 101. The lr
    depends only on the epoch, so a resumed run continues the schedule exactly. Past the end of
    the schedule the factor stays at 0 instead of turning negative.

    Args:
        n_epochs: epochs at the initial learning rate.
        n_epochs_decay: epochs over which the learning rate decays linearly towards zero.
        epoch_count: the reference's starting epoch counter (1); a larger value shifts the
            schedule as if that many epochs minus one had already run.
    """

    def __init__(self, n_epochs: int = 100, n_epochs_decay: int = 100, epoch_count: int = 1) -> None:
        super().__init__()
        if n_epochs < 0 or n_epochs_decay < 0:
            raise OptionError(
                f"LinearDecay needs n_epochs >= 0 and n_epochs_decay >= 0, got {n_epochs} and {n_epochs_decay}"
            )
        self.n_epochs = n_epochs
        self.n_epochs_decay = n_epochs_decay
        self.epoch_count = epoch_count

    def factor(self, epoch: int) -> float:
        """Learning-rate multiplier of the 0-based training epoch ``epoch``."""
        decayed = max(0, epoch + self.epoch_count - self.n_epochs) / (self.n_epochs_decay + 1)
        return max(0.0, 1.0 - decayed)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = self.n_epochs + self.n_epochs_decay
        if trainer.max_epochs != total:
            rank_zero_warn(
                f"LinearDecay schedules {self.n_epochs} + {self.n_epochs_decay} = {total} epochs but "
                f"trainer.max_epochs is {trainer.max_epochs}: the learning rate will not end near 0 as "
                f"in the published schedule. Set trainer.max_epochs={total} or change n_epochs / n_epochs_decay."
            )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        factor = self.factor(trainer.current_epoch)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor
        # Equal on every process; sync_dist only averages equals and keeps DDP quiet.
        pl_module.log("lr_factor", factor, on_step=False, on_epoch=True, sync_dist=True)
