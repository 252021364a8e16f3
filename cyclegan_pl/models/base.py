"""What every method shares: options, manual-optimisation plumbing, inference, safety checks.

A method (CycleGAN, Pix2Pix...) subclasses :class:`ImageTranslationModule` and declares:

* its options (only those the base does not declare) as ``__init__`` arguments, passing the
  rest on with ``**kwargs``; every option lives in ``self.hparams`` only, so what a checkpoint
  and ``--print_config`` show is what runs;
* ``translations``: what it translates, one :class:`Translation` per direction, naming the
  visuals that hold the source, the translation and the real images of the target domain
  (callbacks, commands and export ask this, never the networks);
* ``generator_for(direction)``, ``optimizer_groups()`` and ``visuals(batch)``;
* ``training_step``, written as the algorithm's steps, each a short named method that calls
  :meth:`optimizer_step_with` for its optimizer(s).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from typing import Any, ClassVar, Dict, Iterator, List, Literal, NamedTuple, Optional, Sequence, Tuple

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cyclegan_pl.data.transforms import as_model_input, normalize_batch
from cyclegan_pl.directions import Direction, check_direction
from cyclegan_pl.errors import NonFiniteLossError, OptionError
from cyclegan_pl.models.pretrained import PretrainedMixin
from cyclegan_pl.networks.padding import crop_to, pad_to_multiple
from cyclegan_pl.seeding import hash_seed

NonFinitePolicy = Literal["raise", "skip", "ignore"]
OptimizerImpl = Literal["default", "foreach", "fused"]
Channels = Literal[1, 3]

#: The key of the package's own entries in a Lightning checkpoint.
CHECKPOINT_KEY = "cyclegan_pl"


class Translation(NamedTuple):
    """One direction a method translates, and the names of its visuals.

    Attributes:
        direction: ``AtoB`` or ``BtoA``.
        source: the visual holding the input images (e.g. ``real_A``).
        output: the visual holding their translation (e.g. ``fake_B``).
        target: the visual holding real images of the output domain (e.g. ``real_B``): what FID
            compares ``output`` with, and pix2pix's ground truth.
    """

    direction: Direction
    source: str
    output: str
    target: str


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` of the modules' parameters for the block, then restore it.

    A generator step must not accumulate gradients into the discriminators
    (docs/method.md#cyclegan-training-step); restoring the previous flags keeps user choices such
    as frozen layers intact.
    """
    params = [p for module in modules for p in module.parameters()]
    previous = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, previous, strict=True):
            p.requires_grad_(flag)


class ImageTranslationModule(PretrainedMixin, pl.LightningModule):
    """Base LightningModule for GAN image translation with manual optimisation.

    The options every method shares are declared here, keyword-only; each method declares its
    own (architecture choices with the method's defaults, loss weights) and passes these on.

    Args:
        ngf: number of generator filters in the first conv layer.
        ndf: number of discriminator filters in the first conv layer.
        n_layers_d: number of strided layers when ``discriminator`` is ``n_layers``.
        init_gain: scale of the weight initialisation.
        gp_weight: weight of the gradient penalty added to the discriminator loss when
            ``gan_mode`` is ``wgangp``.
        lr: initial learning rate of every Adam optimiser.
        beta1: Adam beta1.
        beta2: Adam beta2.
        input_nc: channels of domain A images (the input); must equal the data module's.
        output_nc: channels of domain B images (the output); must equal the data module's.
        eval_mode: run inference (validation, test, predict, sample grids) with the networks in
            eval mode: dropout off and BatchNorm running statistics, so the output is
            deterministic. False (the reference behaviour) keeps dropout and batch statistics on
            at test time; with instance norm and no dropout both give the same images.
        on_nonfinite: what to do when a loss term is NaN/inf: ``raise`` stops training with the
            term's name and the step, ``skip`` skips that optimizer step and counts it,
            ``ignore`` does not check (as the reference; saves one device sync per step).
        batched_calls: run the network calls that the algorithm allows in one batch (e.g. each
            discriminator on [real, fake]): fewer, larger kernel launches. Exact with instance
            norm, not with batch norm (the batch statistics would then mix images).
        channels_last: keep networks and inputs in channels-last memory format (faster on
            tensor-core GPUs).
        compile: ``torch.compile`` the networks (state_dict keys stay unchanged).
        gradient_checkpointing: recompute the ResNet generators' residual blocks in the
            backward pass instead of storing their activations (less memory at high resolution,
            same numbers, about a third more generator compute).
        optimizer_impl: Adam implementation: ``default`` (PyTorch's choice), ``foreach`` or
            ``fused`` (CUDA); the last two differ from ``default`` only in rounding.
        reseed_every_step: reseed the global random generators before every training step
            from (``seed_everything``'s seed, epoch, batch index, rank), so a resumed run draws
            the same dropout masks and penalty mixes as an uninterrupted one. False leaves the
            streams running.
    """

    #: what the method translates; the first entry is its main direction
    translations: ClassVar[Tuple[Translation, ...]] = ()
    #: names of the optimizers of ``optimizer_groups`` (logged as ``lr/<name>``)
    optimizer_names: ClassVar[Tuple[str, ...]] = ("g", "d")
    #: loss terms shown in the progress bar (all are logged)
    progress_bar_losses: ClassVar[Sequence[str]] = ()

    def __init__(
        self,
        *,
        ngf: int = 64,
        ndf: int = 64,
        n_layers_d: int = 3,
        init_gain: float = 0.02,
        gp_weight: float = 10.0,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        input_nc: Channels = 3,
        output_nc: Channels = 3,
        eval_mode: bool = False,
        on_nonfinite: NonFinitePolicy = "raise",
        batched_calls: bool = False,
        channels_last: bool = False,
        compile: bool = False,
        gradient_checkpointing: bool = False,
        optimizer_impl: OptimizerImpl = "default",
        reseed_every_step: bool = True,
    ) -> None:
        super().__init__()
        # Collects the arguments of the whole __init__ chain, the method's own included.
        self.save_hyperparameters()
        self.automatic_optimization = False
        #: the directions whose generator was trained or imported (a checkpoint keeps this)
        self.trained_directions: Tuple[Direction, ...] = self.directions
        #: what the model card says about this model (see :data:`CARD_FIELDS`): filled from the
        #: training run at save time, and by ``download-model`` for published models
        self.card_info: Dict[str, Any] = {}
        #: the direction ``predict`` translates (a data module's ``predict_direction`` sets it)
        self.predict_direction: Direction = self.directions[0]
        self.skipped_nonfinite_steps = 0
        self._stream_seed: Optional[int] = None
        self._iterations = 0
        self._epoch_loss_sums: Dict[str, Tensor] = {}
        self._epoch_loss_count = 0
        self._batch_idx = 0
        self._current_batch_size = 1

    # --- options that change after construction ---------------------------------------------
    @property
    def eval_mode(self) -> bool:
        """Inference in eval mode (see the ``eval_mode`` option); setting it updates the hparams."""
        return bool(self.hparams.eval_mode)

    @eval_mode.setter
    def eval_mode(self, value: bool) -> None:
        self.hparams.eval_mode = bool(value)

    # --- what the method translates ---------------------------------------------------------
    @property
    def directions(self) -> Tuple[Direction, ...]:
        """The directions this method translates."""
        return tuple(translation.direction for translation in self.translations)

    def translation(self, direction: str, what: str = "direction") -> Translation:
        """The :class:`Translation` of ``direction``, which must have a trained generator.

        Args:
            direction: ``AtoB`` or ``BtoA``.
            what: the option that holds the direction, named in the error.

        Raises:
            OptionError: the method does not translate that way, or the model's generator for
                it was never trained or imported.
        """
        check_direction(direction, self.directions, what, reason=f"a {type(self).__name__} translates {self._ways()}")
        if direction not in self.trained_directions:
            raise OptionError(
                f"{what} {direction}: this {type(self).__name__}'s {direction} generator was never trained "
                f"or imported (its checkpoint holds {' and '.join(self.trained_directions)} only); use "
                f"{' or '.join(self.trained_directions)}, or import or train the {direction} generator."
            )
        return next(t for t in self.translations if t.direction == direction)

    def _ways(self) -> str:
        return " and ".join(self.directions) + (" only" if len(self.directions) == 1 else "")

    def source_channels(self, direction: str) -> int:
        """Channels of the images ``direction`` reads (``input_nc`` for AtoB)."""
        return self.hparams.input_nc if direction == "AtoB" else self.hparams.output_nc

    def generator_for(self, direction: str) -> nn.Module:
        """The generator translating ``direction``."""
        raise NotImplementedError

    def generators(self) -> List[nn.Module]:
        return [self.generator_for(direction) for direction in self.directions]

    def discriminators(self) -> List[nn.Module]:
        raise NotImplementedError

    def visuals(self, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        """The images of a batch and their translations, by name, in display order."""
        raise NotImplementedError

    # --- networks ---------------------------------------------------------------------------
    def _apply_network_options(self) -> None:
        if self.hparams.gradient_checkpointing:
            for gen in self.generators():
                if not hasattr(gen, "gradient_checkpointing"):
                    raise OptionError(
                        f"model.gradient_checkpointing=true needs a ResNet generator; "
                        f"{type(gen).__name__} does not support it."
                    )
                gen.gradient_checkpointing = True
        if self.hparams.compile:
            # Module.compile keeps the state_dict keys unchanged, unlike torch.compile(module).
            for net in self.generators() + self.discriminators():
                net.compile()

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)
        self._check_data_channels()

    def _check_data_channels(self) -> None:
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        for option in ("input_nc", "output_nc"):
            data_value = getattr(datamodule, option, None)
            if data_value is not None and data_value != self.hparams[option]:
                raise OptionError(
                    f"model.{option}={self.hparams[option]} but data.{option}={data_value}: the images must "
                    f"have as many channels as the networks take; set both {option} options to the same value."
                )

    def on_fit_start(self) -> None:
        if self._stream_seed is None:
            self._stream_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        self.trained_directions = self.directions
        self._require_unused_parameter_search()

    def _require_unused_parameter_search(self) -> None:
        # Each step leaves the other networks without gradients (the generator step the
        # discriminators, and vice versa), so DDP must look for unused parameters at every
        # backward. The command line turns `ddp` into its find_unused_parameters variant.
        wrapped = self.trainer.strategy.model
        if isinstance(wrapped, DistributedDataParallel) and not wrapped.find_unused_parameters:
            raise OptionError(
                f"{type(self).__name__} trains its networks in separate steps, so DDP must look for unused "
                "parameters: use strategy='ddp_find_unused_parameters_true' (or "
                "DDPStrategy(find_unused_parameters=True)); the command line does this for --trainer.strategy ddp."
            )

    def _prepare_input(self, images: Tensor) -> Tensor:
        images = as_model_input(images)
        if self.hparams.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # --- optimisation -----------------------------------------------------------------------
    def optimizer_groups(self) -> List[List[nn.Parameter]]:
        """The parameters of each optimizer, in the order of ``optimizer_names``."""
        return [
            [p for net in self.generators() for p in net.parameters()],
            [p for net in self.discriminators() for p in net.parameters()],
        ]

    def configure_optimizers(self) -> List[torch.optim.Optimizer]:
        impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[self.hparams.optimizer_impl]
        betas = (self.hparams.beta1, self.hparams.beta2)
        optimizers = [
            torch.optim.Adam(group, lr=self.hparams.lr, betas=betas, **impl) for group in self.optimizer_groups()
        ]
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                # The LR schedule scales from initial_lr, so it stays right after a resume.
                group.setdefault("initial_lr", group["lr"])
        return optimizers

    def optimizer_step_with(self, optimizers: Sequence[Any], loss: Tensor, losses: Dict[str, Tensor]) -> bool:
        """zero_grad, backward, step of ``optimizers``; False when a non-finite loss skipped it."""
        for optimizer in optimizers:
            optimizer.zero_grad()
        if not self._losses_are_finite(losses):
            return False
        self.manual_backward(loss)
        for optimizer in optimizers:
            optimizer.step()
        return True

    def _losses_are_finite(self, losses: Dict[str, Tensor]) -> bool:
        if self.hparams.on_nonfinite == "ignore":
            # No check, no device synchronisation: the reference's behaviour.
            return True
        values = torch.stack([value.detach().float() for value in losses.values()])
        finite = torch.isfinite(values)
        all_finite = bool(finite.all())
        if self._trainer is not None:
            # Every process must take the same branch, or the backward's all-reduce waits forever.
            all_finite = self.trainer.strategy.reduce_boolean_decision(all_finite, all=True)
        if all_finite:
            return True
        bad = [name for name, ok in zip(losses, finite.tolist(), strict=True) if not ok] or ["(on another process)"]
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {self._batch_idx})"
        if self.hparams.on_nonfinite == "raise":
            values_text = ", ".join(f"{n}={losses[n].item()}" for n in bad if n in losses)
            raise NonFiniteLossError(
                f"Loss term(s) {', '.join(bad)} became non-finite ({values_text}) at {where}. "
                "Lower model.lr, check the input images, or set model.on_nonfinite=skip to skip such steps."
            )
        self.skipped_nonfinite_steps += 1
        self.print(f"Skipping an optimizer step at {where}: non-finite {', '.join(bad)}")
        return False

    # --- logging ----------------------------------------------------------------------------
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
        if self._is_logging_step():
            for name, value in losses.items():
                self.log(
                    f"loss/{name}_step",
                    value.detach(),
                    on_step=True,
                    on_epoch=False,
                    prog_bar=name in self.progress_bar_losses,
                    batch_size=batch_size,
                )
            for name, optimizer in zip(self.optimizer_names, self.optimizers(), strict=True):
                self.log(
                    f"lr/{name}", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=batch_size
                )
            if self.skipped_nonfinite_steps:
                self.log(
                    "nonfinite_skipped_steps", float(self.skipped_nonfinite_steps), on_step=True, batch_size=batch_size
                )
        self._iterations += 1

    def _is_logging_step(self) -> bool:
        # Lightning's loggers write the step values of every log_every_n_steps-th training batch
        # (counted over the whole run) and of the last one; the iteration count is kept in the
        # checkpoint so a resumed run logs the same steps.
        every = self.trainer.log_every_n_steps
        return (self._iterations + 1) % every == 0 or self.trainer.should_stop

    def on_train_epoch_start(self) -> None:
        self._epoch_loss_sums = {}
        self._epoch_loss_count = 0

    def on_train_epoch_end(self) -> None:
        for name, total in self._epoch_loss_sums.items():
            # Averaged over all processes (one all-reduce per value and epoch under DDP).
            self.log(
                f"loss/{name}_epoch",
                total / max(1, self._epoch_loss_count),
                on_step=False,
                on_epoch=True,
                prog_bar=name in self.progress_bar_losses,
                sync_dist=self.trainer.world_size > 1,
            )

    # --- checkpoints and random streams ------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        # The seed is kept with the weights, so a resumed run draws the same streams even when
        # it was started with another seed (e.g. `seed_everything: true`).
        checkpoint[CHECKPOINT_KEY] = {
            "stream_seed": self._stream_seed,
            "iterations": self._iterations,
            "trained_directions": list(self.trained_directions),
            "card": self.current_card_info(),
        }

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY, {})
        self._stream_seed = state.get("stream_seed", checkpoint.get("cyclegan_pl_stream_seed", self._stream_seed))
        self._iterations = state.get("iterations", self._iterations)
        self.trained_directions = tuple(state.get("trained_directions", self.directions))
        self.card_info = dict(state.get("card", self.card_info))

    def on_train_batch_start(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._batch_idx = batch_idx
        self._current_batch_size = batch["A"].shape[0]
        if self.hparams.reseed_every_step:
            # The step's random draws (dropout, gradient-penalty mixing) then depend on
            # (seed, epoch, batch, rank) only, whatever ran before it (data loader start,
            # validation, sample grids), so `fit --ckpt_path` continues exactly as an
            # uninterrupted run would; the data draws its own per-item generators.
            step_seed = hash_seed(self._stream_seed, self.current_epoch, batch_idx, self.global_rank)
            random.seed(step_seed)
            np.random.seed(step_seed % 2**32)
            torch.manual_seed(step_seed)

    # --- inference --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _inference_context(self, nets: Sequence[nn.Module]) -> Iterator[None]:
        """Eval mode, or the reference's test-time train mode without touching running stats.

        The reference test script keeps dropout and batch statistics on unless ``--eval``;
        we do the same by default but zero the BatchNorm momentum so inference during training
        (validation, sample grids) never changes the running statistics being trained.
        SyncBatchNorm layers use their own batch's statistics here, as the one-GPU reference
        does: the output of an image then does not depend on what other processes translate,
        and inference runs no collective (ranks may hold different numbers of images).
        """
        was_training = [net.training for net in nets]
        saved_momentum = []
        local_statistics = []
        for net in nets:
            if self.eval_mode:
                net.eval()
                continue
            net.train()
            for layer in net.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    saved_momentum.append((layer, layer.momentum, layer.num_batches_tracked.clone()))
                    layer.momentum = 0.0
                if isinstance(layer, nn.SyncBatchNorm):
                    layer.forward = functools.partial(nn.modules.batchnorm._BatchNorm.forward, layer)
                    local_statistics.append(layer)
        try:
            with torch.no_grad():
                yield
        finally:
            for layer, momentum, tracked in saved_momentum:
                layer.momentum = momentum
                layer.num_batches_tracked.copy_(tracked)
            for layer in local_statistics:
                del layer.forward  # back to SyncBatchNorm.forward
            for net, flag in zip(nets, was_training, strict=True):
                net.train(flag)

    def translate(self, images: Tensor, direction: str = "AtoB") -> Tensor:
        """Translate images (N, C, H, W in [-1, 1], or uint8) of any size; returns the same size in [-1, 1].

        Sides that are not a multiple of the generator's ``size_multiple`` are padded and the
        output cropped back (:mod:`cyclegan_pl.networks.padding`), so any image size works.
        """
        self.translation(direction)
        gen = self.generator_for(direction)
        height, width = images.shape[-2:]
        padded = self._prepare_input(pad_to_multiple(as_model_input(images), getattr(gen, "size_multiple", 1)))
        with self._inference_context([gen]):
            output = gen(padded)
        return crop_to(output, height, width)

    def forward(self, images: Tensor) -> Tensor:
        """Translate in the method's main direction (A -> B)."""
        return self.translate(images, self.directions[0])

    def on_predict_start(self) -> None:
        # The datamodule chose which domain's images it serves, so it names the direction.
        datamodule = self.trainer.datamodule
        self.predict_direction = getattr(datamodule, "predict_direction", self.predict_direction)
        self.translation(self.predict_direction, what="data.predict_direction")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> Dict[str, Any]:
        images = batch["image"] if "image" in batch else batch["A"]
        paths = batch.get("path", batch.get("A_paths"))
        result = {"images": self.translate(images, self.predict_direction), "path": paths}
        result["relpath"] = batch.get("relpath", [p.rsplit("/", 1)[-1] for p in paths] if paths else None)
        return result

    # --- evaluation -------------------------------------------------------------------------
    def evaluation_losses(self, batch: Dict[str, Any], visuals: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Losses logged as ``val/<name>`` and ``test/<name>``, from the batch's visuals."""
        return {}

    def _evaluation_step(self, stage: str, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        batch = normalize_batch(batch)  # uint8 batches from a loader of your own
        visuals = self.visuals(batch)
        losses = self.evaluation_losses(batch, visuals)
        if losses:
            self.log_dict(
                {f"{stage}/{name}": value for name, value in losses.items()},
                on_epoch=True,
                sync_dist=True,
                batch_size=batch["A"].shape[0],
            )
        # Returned so callbacks (FID, results pages) use these images instead of translating again.
        return {name: image.detach() for name, image in visuals.items()}

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Tensor]:
        return self._evaluation_step("val", batch)

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Tensor]:
        return self._evaluation_step("test", batch)
