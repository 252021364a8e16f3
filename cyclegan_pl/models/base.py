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
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterator, List, Literal, NamedTuple, Optional, Sequence, Tuple, Type, Union

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cyclegan_pl.data.transforms import as_model_input, normalize_batch
from cyclegan_pl.directions import Direction, check_direction
from cyclegan_pl.errors import CheckpointError, DownloadError, NonFiniteLossError, OptionError, UserError
from cyclegan_pl.files import atomic_file
from cyclegan_pl.networks.padding import crop_to, pad_to_multiple
from cyclegan_pl.seeding import hash_seed

NonFinitePolicy = Literal["raise", "skip", "ignore"]
OptimizerImpl = Literal["default", "foreach", "fused"]
Channels = Literal[1, 3]

#: The key of the package's own entries in a Lightning checkpoint.
CHECKPOINT_KEY = "cyclegan_pl"

#: The files of a :meth:`ImageTranslationModule.save_pretrained` folder.
PRETRAINED_WEIGHTS = "model.safetensors"
PRETRAINED_CONFIG = "config.json"
PRETRAINED_CARD = "README.md"
#: Bumped when the folder's layout changes in a way older readers would misread.
PRETRAINED_FORMAT = 1
#: How a Hugging Face Hub repo is named where a local path is also accepted (``hf://owner/name``;
#: pathlib turns ``//`` into ``/``, so one slash is accepted too).
HUB_PREFIX = re.compile(r"^hf:/+")
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
#: What ``card_info`` may hold: shown in the model card, kept in checkpoints and folders.
CARD_FIELDS = ("name", "description", "dataset", "epochs", "command", "metrics", "source")


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


class ImageTranslationModule(pl.LightningModule):
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

    # --- Hub-style folders: safetensors weights, config.json, model card ---------------------
    def current_card_info(self) -> Dict[str, Any]:
        """:attr:`card_info` completed from the run that trains or tests the model, if any.

        The epochs trained, the dataset's name and the FID / test numbers last logged (``fid/*``,
        ``test/*``) are taken from the attached Trainer; what ``card_info`` already says is kept
        where the Trainer knows nothing.
        """
        card = {key: value for key, value in self.card_info.items() if value is not None}
        trainer = self._trainer
        if trainer is None:
            return card
        if trainer.state.fn == "fit" or "epochs" not in card:
            card["epochs"] = int(trainer.current_epoch)
        dataset = getattr(getattr(trainer, "datamodule", None), "dataset_name", None)
        if dataset:
            card["dataset"] = str(dataset)
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith(("fid/", "test/")) and getattr(value, "numel", lambda: 1)() == 1
        }
        if metrics:
            card["metrics"] = {**card.get("metrics", {}), **metrics}
        return card

    def save_pretrained(self, directory: Union[str, Path], **card: Any) -> Path:
        """Write the model as a folder: ``model.safetensors``, ``config.json`` and ``README.md``.

        The weights are a safetensors file (tensors only: nothing runs when it is read), the
        configuration holds the class and its hyperparameters and the directions it translates,
        and the model card says what the model is: method, dataset when known, epochs, the
        command that reproduces it and evaluation numbers when known. The folder loads with
        :meth:`from_pretrained`, ``load_checkpoint`` and ``--ckpt_path`` (``translate``,
        ``export``, ``app``). Each file is written atomically; other files in the folder are left.

        Args:
            directory: the folder to write (created when missing).
            **card: model card entries overriding what the model knows (:data:`CARD_FIELDS`),
                e.g. ``dataset="horse2zebra"``, ``metrics={"fid/a2b": 61.2}``.

        Returns:
            The folder.
        """
        unknown = sorted(set(card) - set(CARD_FIELDS))
        if unknown:
            raise OptionError(f"save_pretrained: unknown model card entries {unknown}; use {', '.join(CARD_FIELDS)}.")
        from safetensors.torch import save_file

        folder = Path(directory)
        info = {**self.current_card_info(), **{k: v for k, v in card.items() if v is not None}}
        info.setdefault("name", folder.resolve().name)
        config = {
            "library": "cyclegan_pl",
            "format": PRETRAINED_FORMAT,
            "class_path": f"cyclegan_pl.{type(self).__name__}",
            "hparams": dict(self.hparams),
            "trained_directions": list(self.trained_directions),
            "card": info,
        }
        try:
            config_text = json.dumps(config, indent=2, sort_keys=False, allow_nan=False) + "\n"
        except (TypeError, ValueError) as error:
            raise OptionError(f"save_pretrained: the hparams or card entries are not JSON ({error}).") from None
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        with atomic_file(folder / PRETRAINED_WEIGHTS) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt", "class_path": config["class_path"]})
        with atomic_file(folder / PRETRAINED_CONFIG) as tmp:
            tmp.write_text(config_text)
        with atomic_file(folder / PRETRAINED_CARD) as tmp:
            tmp.write_text(_model_card(type(self).__name__, self.directions, config, info, folder))
        return folder

    @classmethod
    def from_pretrained(
        cls, source: Union[str, Path], revision: Optional[str] = None, map_location: str = "cpu"
    ) -> ImageTranslationModule:
        """Load a folder written by :meth:`save_pretrained`, or a Hugging Face Hub repo holding one.

        Called on the base class it builds whichever method the folder holds; called on a method
        (``CycleGAN.from_pretrained``) it refuses a folder of another method.

        Args:
            source: the folder, or a Hub repo id (``owner/name`` when no such local folder
                exists, or explicitly ``hf://owner/name``), downloaded with ``huggingface_hub``
                (``pip install 'cyclegan_pl[hub]'``).
            revision: the Hub revision (branch, tag or commit); ignored for folders.
            map_location: the device the module is moved to.

        Raises:
            CheckpointError: the folder lacks a file, holds another method, or its weights do
                not fit its configuration.
            DownloadError: the Hub repo could not be downloaded.
        """
        folder = _pretrained_folder(source, revision)
        config = _read_pretrained_config(folder)
        module_class = _pretrained_class(config, folder)
        if not issubclass(module_class, cls):
            raise CheckpointError(
                f"{folder} holds a {module_class.__name__}, not a {cls.__name__}: load it with "
                f"{module_class.__name__}.from_pretrained or cyclegan_pl.load_checkpoint."
            )
        try:
            module = module_class(**config["hparams"])
        except (TypeError, UserError) as error:
            raise CheckpointError(
                f"{folder / PRETRAINED_CONFIG}: its hparams do not build a {module_class.__name__} ({error})."
            ) from None
        module.load_state_dict(_read_pretrained_weights(folder, module))
        trained = tuple(config.get("trained_directions") or module.directions)
        if not set(trained) <= set(module.directions):
            raise CheckpointError(
                f"{folder / PRETRAINED_CONFIG}: trained_directions {list(trained)} are not directions a "
                f"{module_class.__name__} translates ({', '.join(module.directions)})."
            )
        module.trained_directions = trained
        module.card_info = dict(config.get("card") or {})
        return module.to(map_location)

    def push_to_hub(
        self,
        repo_id: str,
        private: Optional[bool] = None,
        commit_message: str = "Upload cyclegan_pl model",
        token: Optional[str] = None,
        **card: Any,
    ) -> str:
        """Upload the :meth:`save_pretrained` folder to a Hugging Face Hub model repo (created if new).

        Needs ``huggingface_hub`` (``pip install 'cyclegan_pl[hub]'``) and a Hub token (``hf auth
        login`` or ``token``). Returns the URL of the commit.
        """
        hub = _import_hub(f"push_to_hub('{repo_id}')")
        api = hub.HfApi(token=token)
        staging = Path(tempfile.mkdtemp(prefix="cyclegan_pl_push_"))
        try:
            self.save_pretrained(staging, **{"name": repo_id.rsplit("/", 1)[-1], **card})
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id, folder_path=str(staging), commit_message=commit_message, repo_type="model"
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return str(getattr(commit, "commit_url", commit))


def is_pretrained_source(source: Union[str, Path]) -> bool:
    """Whether ``source`` names a :meth:`~ImageTranslationModule.save_pretrained` folder or Hub repo
    (a folder, or ``hf://owner/name``) rather than a checkpoint file."""
    return bool(HUB_PREFIX.match(str(source))) or Path(source).is_dir()


def _import_hub(what: str) -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(
            f"{what} needs the huggingface_hub package: pip install 'cyclegan_pl[hub]' "
            "(or download the repo's files by hand and pass their folder)."
        ) from None
    return huggingface_hub


def _pretrained_folder(source: Union[str, Path], revision: Optional[str]) -> Path:
    """The local folder of ``source``: itself, or the Hub repo's files downloaded."""
    text = str(source)
    explicit_hub = HUB_PREFIX.match(text)
    if not explicit_hub:
        path = Path(text)
        if path.is_dir():
            return path
        if path.exists():
            raise CheckpointError(
                f"{path} is a file; from_pretrained takes a folder written by save_pretrained (or a Hub repo "
                "id). Load a .ckpt file with cyclegan_pl.load_checkpoint."
            )
    repo_id = HUB_PREFIX.sub("", text)
    if not _REPO_ID.fullmatch(repo_id):
        raise CheckpointError(
            f"{source} is neither a folder written by save_pretrained nor a Hugging Face Hub repo id (owner/name)."
        )
    hub = _import_hub(f"Loading '{repo_id}' from the Hugging Face Hub")
    offline = bool(os.environ.get("CYCLEGAN_PL_OFFLINE"))
    local = "" if explicit_hub else f" (there is no local folder {source} either)"
    try:
        folder = hub.snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=[PRETRAINED_CONFIG, PRETRAINED_WEIGHTS, PRETRAINED_CARD],
            local_files_only=offline,
        )
    except Exception as error:  # noqa: BLE001 - the hub's errors are many; each is one line here
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        cache = " from the local cache (CYCLEGAN_PL_OFFLINE is set)" if offline else ""
        raise DownloadError(
            f"Could not get the Hub repo {repo_id}{cache}{local}: {type(error).__name__}: {first_line}. "
            "Check the name and the network, or download its config.json and model.safetensors by hand "
            "into a folder and pass that folder."
        ) from None
    return Path(folder)


def _read_pretrained_config(folder: Path) -> Dict[str, Any]:
    path = folder / PRETRAINED_CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{folder} holds no {PRETRAINED_CONFIG}: pass a folder written by save_pretrained, or a "
            ".ckpt checkpoint file."
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} cannot be read as JSON ({error}).") from None
    if not isinstance(config, dict) or not isinstance(config.get("hparams"), dict):
        raise CheckpointError(f"{path} is not a cyclegan_pl config (no 'hparams' mapping).")
    if int(config.get("format", PRETRAINED_FORMAT)) > PRETRAINED_FORMAT:
        raise CheckpointError(
            f"{path} was written by a newer cyclegan_pl (format {config['format']}); upgrade cyclegan_pl to load it."
        )
    return config


def _pretrained_class(config: Dict[str, Any], folder: Path) -> Type[ImageTranslationModule]:
    from cyclegan_pl.models import METHODS

    name = str(config.get("class_path", "")).rsplit(".", 1)[-1]
    if name not in METHODS:
        raise CheckpointError(
            f"{folder / PRETRAINED_CONFIG} names the class {config.get('class_path')!r}, none of the methods "
            f"{', '.join(METHODS.names())}."
        )
    return METHODS.get(name)


def _read_pretrained_weights(folder: Path, module: nn.Module) -> Dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / PRETRAINED_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{folder} holds no {PRETRAINED_WEIGHTS}: copy it there from where the folder came from.")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({error}); copy it again.") from None
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if missing or unexpected or reshaped:
        examples = ", ".join((missing + unexpected + reshaped)[:3])
        raise CheckpointError(
            f"{path} does not fit the {type(module).__name__} its {PRETRAINED_CONFIG} describes: {len(missing)} "
            f"missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped tensors (e.g. {examples})."
        )
    return state


def _model_card(
    method: str, all_directions: Sequence[str], config: Dict[str, Any], card: Dict[str, Any], folder: Path
) -> str:
    """The README.md of a save_pretrained folder: front matter for the Hub, then the facts."""
    hp = config["hparams"]
    directions = config["trained_directions"]
    dataset = card.get("dataset")
    kind = "unpaired image-to-image translation" if method == "CycleGAN" else "paired image-to-image translation"
    lines = ["---", "library_name: cyclegan_pl", "pipeline_tag: image-to-image", "tags:"]
    lines += [f"- {tag}" for tag in ("image-to-image", method.lower(), "pytorch-lightning")]
    if dataset:
        lines += ["datasets:", f"- {dataset}"]
    lines += ["---", "", f"# {card.get('name', folder.name)} ({method})", ""]
    if card.get("description"):
        lines += [str(card["description"]), ""]
    only = " only" if len(directions) < len(all_directions) else ""
    rows = [
        ("method", f"{method} ({kind})"),
        ("translates", " and ".join(directions) + only),
        ("dataset", dataset or "not recorded"),
        ("epochs", card.get("epochs", "not recorded")),
        (
            "generator",
            f"{hp.get('generator')}, ngf {hp.get('ngf')}, {hp.get('norm')} norm, dropout {hp.get('dropout')}",
        ),
        ("channels", f"{hp.get('input_nc')} -> {hp.get('output_nc')}"),
    ]
    if card.get("source"):
        rows.append(("source", card["source"]))
    lines += ["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows] + [""]
    lines += ["## Reproduce", ""]
    if card.get("command"):
        lines += ["```bash", str(card["command"]), "```", ""]
    else:
        lines += ["The command that trained it was not recorded.", ""]
    lines += ["## Evaluation", ""]
    metrics = card.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())]
    else:
        lines += ["No evaluation numbers were recorded."]
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"python -m cyclegan_pl translate --ckpt_path {folder} --input IMAGES --output OUT --direction {directions[0]}",
        "```",
        "",
        "```python",
        "from cyclegan_pl import load_checkpoint",
        f'model = load_checkpoint("{folder}")  # or {method}.from_pretrained(...)',
        f'images_out = model.translate(images_in, "{directions[0]}")  # N, C, H, W in [-1, 1]',
        "```",
        "",
    ]
    return "\n".join(lines)
