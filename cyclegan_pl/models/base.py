"""What CycleGAN and Pix2Pix share: manual-optimisation plumbing, inference, safety checks."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Dict, Iterator, List, Literal, Optional, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor, nn

from cyclegan_pl.seeding import hash_seed

Direction = Literal["AtoB", "BtoA"]
NonFinitePolicy = Literal["raise", "skip", "ignore"]
OptimizerImpl = Literal["default", "foreach", "fused"]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; training stops instead of learning from it."""


def pad_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Pad (N, C, H, W) images on the bottom/right so both sides are multiples of ``multiple``.

    Reflection keeps the border statistics close to the image's own; images smaller than the
    padding fall back to replicating the edge, which reflection cannot do.
    """
    height, width = images.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return images
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` of the modules' parameters for the block, then restore it.

    The generator step must not accumulate gradients into the discriminators (REFERENCE.md,
    step 2); restoring the previous flags keeps user choices such as frozen layers intact.
    """
    params = [p for module in modules for p in module.parameters()]
    previous = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, previous):
            p.requires_grad_(flag)


class ImageTranslationModule(pl.LightningModule):
    """Base LightningModule for GAN image translation with manual optimisation.

    Subclasses build their networks, define ``training_step`` and name their generators per
    direction in ``generator_for``. This class provides the Adam optimisers, inference
    (``translate``, ``forward``, ``predict_step``), the non-finite-loss guard and the speed
    options that do not change numerics by default.
    """

    #: direction used by ``predict``; a datamodule's ``predict_direction`` overrides it
    predict_direction: Direction = "AtoB"
    #: loss terms shown in the progress bar (all are logged)
    progress_bar_losses: Sequence[str] = ()

    def __init__(
        self,
        lr: float,
        beta1: float,
        beta2: float,
        eval_mode: bool,
        on_nonfinite: NonFinitePolicy,
        channels_last: bool,
        compile: bool,
        gradient_checkpointing: bool,
        optimizer_impl: OptimizerImpl,
        reseed_every_step: bool = True,
    ) -> None:
        super().__init__()
        self.reseed_every_step = reseed_every_step
        self._stream_seed: Optional[int] = None
        self._epoch_loss_sums: Dict[str, Tensor] = {}
        self._epoch_loss_count = 0
        self.automatic_optimization = False
        self.lr = lr
        self.betas = (beta1, beta2)
        self.eval_mode = eval_mode
        self.on_nonfinite = on_nonfinite
        self.channels_last = channels_last
        self.compile_networks = compile
        self.gradient_checkpointing = gradient_checkpointing
        self.optimizer_impl = optimizer_impl
        self.skipped_nonfinite_steps = 0

    # --- networks -------------------------------------------------------------------------
    def generator_for(self, direction: str) -> nn.Module:
        raise NotImplementedError

    def generators(self) -> List[nn.Module]:
        raise NotImplementedError

    def discriminators(self) -> List[nn.Module]:
        raise NotImplementedError

    def _apply_network_options(self) -> None:
        if self.gradient_checkpointing:
            for gen in self.generators():
                if not hasattr(gen, "gradient_checkpointing"):
                    raise ValueError(
                        f"model.gradient_checkpointing=true needs a ResNet generator; "
                        f"{type(gen).__name__} does not support it."
                    )
                gen.gradient_checkpointing = True
        if self.compile_networks:
            # Module.compile keeps the state_dict keys unchanged, unlike torch.compile(module).
            for net in self.generators() + self.discriminators():
                net.compile()

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        self._let_ddp_find_unused_parameters()

    def _let_ddp_find_unused_parameters(self) -> None:
        # The generator step leaves the discriminators without gradients and the discriminator
        # step the generators, so DDP must look for unused parameters at every backward; doing
        # it here (setup runs before the strategy wraps the model) makes plain `ddp` work.
        strategy = self._trainer.strategy if self._trainer is not None else None
        ddp_kwargs = getattr(strategy, "_ddp_kwargs", None)
        if isinstance(strategy, DDPStrategy) and isinstance(ddp_kwargs, dict):
            ddp_kwargs.setdefault("find_unused_parameters", True)

    def _prepare_input(self, images: Tensor) -> Tensor:
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # --- optimisation ---------------------------------------------------------------------
    def _adam(self, params: Sequence[nn.Parameter]) -> torch.optim.Adam:
        impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[self.optimizer_impl]
        return torch.optim.Adam(params, lr=self.lr, betas=self.betas, **impl)

    def configure_optimizers(self):
        gen_params = [p for net in self.generators() for p in net.parameters()]
        disc_params = [p for net in self.discriminators() for p in net.parameters()]
        opt_g, opt_d = self._adam(gen_params), self._adam(disc_params)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                # The LR schedule scales from initial_lr, so it stays right after a resume.
                group.setdefault("initial_lr", group["lr"])
        return [opt_g, opt_d]

    def _optimizer_step(self, optimizer, loss: Tensor, losses: Dict[str, Tensor]) -> bool:
        """zero_grad, backward, step; returns False when a non-finite loss skipped the step."""
        if not self._losses_are_finite(losses):
            optimizer.zero_grad()
            return False
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return True

    def _losses_are_finite(self, losses: Dict[str, Tensor]) -> bool:
        if self.on_nonfinite == "ignore":
            # No check, no device synchronisation: the reference's behaviour.
            return True
        values = torch.stack([value.detach().float() for value in losses.values()])
        finite = torch.isfinite(values)
        if bool(finite.all()):
            return True
        bad = [name for name, ok in zip(losses, finite.tolist()) if not ok]
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {self._batch_idx})"
        if self.on_nonfinite == "raise":
            raise NonFiniteLossError(
                f"Loss term(s) {', '.join(bad)} became non-finite "
                f"({', '.join(f'{n}={losses[n].item()}' for n in bad)}) at {where}. "
                "Lower model.lr, check the input images, or set model.on_nonfinite=skip to skip such steps."
            )
        self.skipped_nonfinite_steps += 1
        self.print(f"Skipping an optimizer step at {where}: non-finite {', '.join(bad)}")
        return False

    def _log_training(self, losses: Dict[str, Tensor]) -> None:
        """Step values on the trainer's logging steps; epoch means at the end of the epoch.

        Each ``self.log`` call costs Lightning about a millisecond of Python, which at batch 1
        on a fast GPU is a tenth of an iteration, so values are only handed to Lightning on
        the steps its loggers write (every ``log_every_n_steps``); the epoch means are summed
        here, on the device, from every step.
        """
        batch_size = self._current_batch_size
        for name, value in losses.items():
            total = self._epoch_loss_sums.get(name)
            weighted = value.detach().float() * batch_size
            self._epoch_loss_sums[name] = weighted if total is None else total + weighted
        self._epoch_loss_count += batch_size
        if not self._is_logging_step():
            return
        for name, value in losses.items():
            self.log(f"loss/{name}_step", value.detach(), on_step=True, on_epoch=False,
                     prog_bar=name in self.progress_bar_losses, batch_size=batch_size)
        opt_g, opt_d = self.optimizers()
        self.log("lr/g", opt_g.param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=batch_size)
        self.log("lr/d", opt_d.param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=batch_size)
        if self.skipped_nonfinite_steps:
            self.log("nonfinite_skipped_steps", float(self.skipped_nonfinite_steps), on_step=True,
                     batch_size=batch_size)

    def _is_logging_step(self) -> bool:
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_epoch_start(self) -> None:
        self._epoch_loss_sums: Dict[str, Tensor] = {}
        self._epoch_loss_count = 0

    def on_train_epoch_end(self) -> None:
        if not self._epoch_loss_count:
            return
        for name, total in self._epoch_loss_sums.items():
            # Averaged over all processes (one all-reduce per value and epoch under DDP).
            self.log(f"loss/{name}_epoch", total / self._epoch_loss_count, on_step=False, on_epoch=True,
                     prog_bar=name in self.progress_bar_losses, sync_dist=self.trainer.world_size > 1)

    def on_fit_start(self) -> None:
        if self._stream_seed is None:
            self._stream_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_save_checkpoint(self, checkpoint: Dict) -> None:
        # Kept with the weights, so a resumed run draws the same streams even when it was
        # started with another seed (e.g. `seed_everything: true`).
        checkpoint["cyclegan_pl_stream_seed"] = self._stream_seed

    def on_load_checkpoint(self, checkpoint: Dict) -> None:
        self._stream_seed = checkpoint.get("cyclegan_pl_stream_seed", self._stream_seed)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._batch_idx = batch_idx
        self._current_batch_size = batch["A"].shape[0]
        if self.reseed_every_step:
            # The step's random draws (dropout, gradient-penalty mixing) then depend on
            # (seed, epoch, batch, rank) only, whatever ran before it (data loader start,
            # validation, sample grids), so `fit --ckpt_path` continues exactly as an
            # uninterrupted run would; the data draws its own per-item generators.
            step_seed = hash_seed(self._stream_seed, self.current_epoch, batch_idx, self.global_rank)
            random.seed(step_seed)
            np.random.seed(step_seed % 2**32)
            torch.manual_seed(step_seed)

    # --- inference ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _inference_context(self, nets: Sequence[nn.Module]) -> Iterator[None]:
        """Eval mode, or the reference's test-time train mode without touching running stats.

        The reference test script keeps dropout and batch statistics on unless ``--eval``;
        we do the same by default but zero the BatchNorm momentum so inference during training
        (validation, sample grids) never changes the running statistics being trained.
        """
        was_training = [net.training for net in nets]
        saved_momentum = []
        for net in nets:
            if self.eval_mode:
                net.eval()
                continue
            net.train()
            for layer in net.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    saved_momentum.append((layer, layer.momentum, layer.num_batches_tracked.clone()))
                    layer.momentum = 0.0
        try:
            with torch.no_grad():
                yield
        finally:
            for layer, momentum, tracked in saved_momentum:
                layer.momentum = momentum
                layer.num_batches_tracked.copy_(tracked)
            for net, flag in zip(nets, was_training):
                net.train(flag)

    def translate(self, images: Tensor, direction: Direction = "AtoB") -> Tensor:
        """Translate images (N, C, H, W in [-1, 1]) of any size; returns the same size.

        Sides that are not a multiple of the generator's ``size_multiple`` are padded and the
        output cropped back, so arbitrary image sizes work at inference.
        """
        gen = self.generator_for(direction)
        height, width = images.shape[-2:]
        padded = self._prepare_input(pad_to_multiple(images, getattr(gen, "size_multiple", 1)))
        with self._inference_context([gen]):
            output = gen(padded)
        return output[..., :height, :width]

    def forward(self, images: Tensor) -> Tensor:
        """Translate A -> B (pix2pix: input -> output)."""
        return self.translate(images, "AtoB")

    def on_predict_start(self) -> None:
        # The datamodule chose which domain's images it serves, so it names the direction.
        datamodule = self.trainer.datamodule
        self.predict_direction = getattr(datamodule, "predict_direction", self.predict_direction)

    def predict_step(self, batch: Dict, batch_idx: int, dataloader_idx: int = 0) -> Dict:
        images = batch["image"] if "image" in batch else batch["A"]
        paths = batch.get("path", batch.get("A_paths"))
        result = {"images": self.translate(images, self.predict_direction), "path": paths}
        result["relpath"] = batch.get("relpath", [p.rsplit("/", 1)[-1] for p in paths] if paths else None)
        return result
