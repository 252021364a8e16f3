"""What a training step does when a loss term is NaN or infinite."""

from __future__ import annotations

from typing import Dict, Literal

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from cyclegan_pl.errors import NonFiniteLossError

NonFinitePolicy = Literal["raise", "skip", "ignore"]


class NonFiniteCheck:
    """Checks a step's loss terms before its backward pass, the same way on every process.

    Args:
        policy: ``raise`` stops training with the term's name and the step, ``skip`` skips that
            optimizer step and counts it, ``ignore`` does not check (as the reference; saves one
            device synchronisation per step).
    """

    def __init__(self, policy: NonFinitePolicy) -> None:
        self.policy = policy
        #: optimizer steps skipped so far (``skip``)
        self.skipped = 0

    def allows_step(self, losses: Dict[str, Tensor], module: LightningModule) -> bool:
        """Whether the step may run: every term finite on every process (or ``ignore``).

        Raises:
            NonFiniteLossError: a term is not finite and the policy is ``raise``.
        """
        if self.policy == "ignore":
            return True
        values = torch.stack([value.detach().float() for value in losses.values()])
        finite = torch.isfinite(values)
        all_finite = bool(finite.all())
        trainer = module._trainer
        if trainer is not None:
            # Every process must take the same branch, or the backward's all-reduce waits forever.
            all_finite = trainer.strategy.reduce_boolean_decision(all_finite, all=True)
        if all_finite:
            return True
        bad = [name for name, ok in zip(losses, finite.tolist(), strict=True) if not ok] or ["(on another process)"]
        where = f"global step {module.global_step} (epoch {module.current_epoch}, batch {_batch_index(module)})"
        if self.policy == "raise":
            values_text = ", ".join(f"{n}={losses[n].item()}" for n in bad if n in losses)
            raise NonFiniteLossError(
                f"Loss term(s) {', '.join(bad)} became non-finite ({values_text}) at {where}. "
                "Lower lr, check the input images, or set on_nonfinite=skip to skip such steps."
            )
        self.skipped += 1
        module.print(f"Skipping an optimizer step at {where}: non-finite {', '.join(bad)}")
        return False


def _batch_index(module: LightningModule) -> object:
    trainer = module._trainer
    return trainer.fit_loop.epoch_loop.batch_idx if trainer is not None else "?"
