"""Logging a method's loss terms: step values on the loggers' steps, epoch means from every step."""

from __future__ import annotations

from typing import Dict, Sequence

from lightning.pytorch import LightningModule
from torch import Tensor


class LossLog:
    """Sums each loss term over an epoch on the device and hands Lightning only what its loggers write.

    Each ``LightningModule.log`` call costs about a millisecond of Python, which at batch 1 on a
    fast GPU is a tenth of an iteration, so step values are logged only on the steps the loggers
    write (every ``log_every_n_steps``-th training batch over the whole run, and the last); the
    epoch means are summed here from every step and averaged over all processes once an epoch.

    Args:
        progress_bar: the terms shown in the progress bar (all are logged).
    """

    def __init__(self, progress_bar: Sequence[str] = ()) -> None:
        self.progress_bar = tuple(progress_bar)
        #: training steps logged over the whole run (kept in checkpoints so a resumed run logs the same steps)
        self.iterations = 0
        self._sums: Dict[str, Tensor] = {}
        self._count = 0

    def start_epoch(self) -> None:
        self._sums, self._count = {}, 0

    def log_step(
        self, module: LightningModule, losses: Dict[str, Tensor], batch_size: int, extra: Dict[str, float]
    ) -> None:
        """Add the step's terms to the epoch sums; log them (and ``extra``) on a logging step."""
        for name, value in losses.items():
            weighted = value.detach().float() * batch_size
            total = self._sums.get(name)
            self._sums[name] = weighted if total is None else total + weighted
        self._count += batch_size
        trainer = module.trainer
        if (self.iterations + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop:
            for name, value in losses.items():
                module.log(
                    f"loss/{name}_step",
                    value.detach(),
                    on_step=True,
                    on_epoch=False,
                    prog_bar=name in self.progress_bar,
                    batch_size=batch_size,
                )
            for name, value in extra.items():
                module.log(name, value, on_step=True, on_epoch=False, batch_size=batch_size)
        self.iterations += 1

    def log_epoch(self, module: LightningModule) -> None:
        """Log each term's mean over the epoch, averaged over all processes."""
        for name, total in self._sums.items():
            module.log(
                f"loss/{name}_epoch",
                total / max(1, self._count),
                on_step=False,
                on_epoch=True,
                prog_bar=name in self.progress_bar,
                sync_dist=module.trainer.world_size > 1,
            )
