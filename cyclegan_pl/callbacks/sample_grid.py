"""A grid of translations of fixed held-out images, saved and logged during training."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Literal, Optional

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import default_collate
from torchvision.utils import make_grid

from cyclegan_pl.data.display import check_bands, display_rgb
from cyclegan_pl.data.image import write_image
from cyclegan_pl.errors import OptionError

SampleSplit = Literal["val", "test", "train"]


class SampleGrid(pl.Callback):
    """Save (and log) a grid of the model's visuals for the same held-out images every few epochs.

    The first ``num_images`` items of the datamodule's ``split`` dataset are fetched once and
    kept on CPU, so every grid shows the same inputs. Each row is one image, each column one of
    the module's ``visuals(batch)`` in order (CycleGAN: real_A, fake_B, rec_A, real_B, fake_A,
    rec_B; Pix2Pix: input, output, target; CUT: real_A, fake_B, real_B and, with identity NCE,
    idt_B). Images are translated one at a time, as the
    reference test script does, so batch statistics never mix images. The grid is written as
    ``<log_dir>/<dirname>/epoch_XXXX.png`` (XXXX = number of completed epochs) after every
    ``every_n_epochs``-th epoch and at the end of fit, and sent to a WandbLogger or
    TensorBoardLogger when one is attached. Every rank renders the grid and takes every decision
    about it alike (with SyncBatchNorm and the reference's train-mode inference each forward is
    a collective); only global rank 0 writes and logs it.

    Args:
        every_n_epochs: save a grid after every this many training epochs (0: only at the end of fit).
        num_images: number of held-out images (rows of the grid).
        split: dataset the images come from (``val`` falls back to ``test`` when there is no
            validation set).
        dirname: folder under the run's log directory that receives the PNG files.
        bands: the bands shown of multi-band images: one index (gray) or three (RGB); default:
            gray for one band, RGB for three, the first three otherwise.
        stretch: stretch each shown band to its 1st..99th percentile; default: only for images
            of other than 1 or 3 bands.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_images: int = 4,
        split: SampleSplit = "val",
        dirname: str = "samples",
        bands: Optional[List[int]] = None,
        stretch: Optional[bool] = None,
    ) -> None:
        super().__init__()
        if every_n_epochs < 0:
            raise OptionError(f"SampleGrid every_n_epochs must be >= 0, got {every_n_epochs}.")
        if num_images < 1:
            raise OptionError(f"SampleGrid num_images must be >= 1, got {num_images}.")
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.split = split
        self.dirname = dirname
        self.bands = check_bands(bands)
        self.stretch = stretch
        self.output_dir: Optional[str] = None
        self._samples: Optional[List[Dict[str, Any]]] = None
        self._disabled = False
        self._last_rendered_epoch: Optional[int] = None

    # --- where --------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        # trainer.log_dir broadcasts, so every rank must ask for it, here, not on rank 0 alone.
        log_dir = trainer.log_dir or trainer.default_root_dir
        self.output_dir = os.path.join(log_dir, self.dirname)

    # --- when ---------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        completed = trainer.current_epoch + 1
        if self.every_n_epochs and completed % self.every_n_epochs == 0:
            self.save_grid(trainer, pl_module, completed)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        completed = trainer.current_epoch
        if self._last_rendered_epoch != completed:
            self.save_grid(trainer, pl_module, completed)

    # --- what ---------------------------------------------------------------------------------
    def save_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> Optional[str]:
        """Render, write and log the grid labelled ``epoch``; returns the file path (rank 0)."""
        if self._disabled:
            return None
        samples = self._fixed_samples(trainer)
        if not samples:
            return None
        # Every rank renders (a few images): with SyncBatchNorm and the reference's train-mode
        # inference each forward is a collective, so rank 0 alone would wait forever.
        grid = self.render(pl_module, samples)
        self._last_rendered_epoch = epoch
        if trainer.global_rank != 0:
            return None
        if self.output_dir is None:
            self.output_dir = os.path.join(trainer.default_root_dir, self.dirname)
        path = os.path.join(self.output_dir, f"epoch_{epoch:04d}.png")
        array = (grid * 255.0).round_().to(torch.uint8).permute(1, 2, 0).numpy()
        write_image(array, path, "PNG")
        self._log_to_loggers(trainer, grid, array, epoch)
        return path

    def render(self, pl_module: pl.LightningModule, samples: List[Dict[str, Any]]) -> Tensor:
        """The (3, H, W) grid in [0, 1]: one row per sample, one column per visual."""
        rows: List[List[Tensor]] = []
        for sample in samples:
            batch = pl_module.prepare_batch(_to_device(default_collate([sample]), pl_module.device))
            visuals = pl_module.visuals(batch)
            rows.append([display_rgb(image[0], self.bands, self.stretch).cpu() for image in visuals.values()])
        tiles = _pad_to_common_size([tile for row in rows for tile in row])
        return make_grid(torch.stack(tiles), nrow=len(rows[0]), padding=2, pad_value=1.0)

    def _log_to_loggers(self, trainer: pl.Trainer, grid: Tensor, array: Any, epoch: int) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=self.dirname, images=[array], step=trainer.global_step, caption=[f"epoch {epoch}"])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(self.dirname, grid, global_step=trainer.global_step)

    # --- which images -------------------------------------------------------------------------
    def _fixed_samples(self, trainer: pl.Trainer) -> Optional[List[Dict[str, Any]]]:
        if self._samples is None:
            problem = None
            try:
                self._samples = self._fetch_samples(trainer)
            except Exception as err:  # noqa: BLE001 - a missing preview must not stop training
                problem = err
            # Rendering runs forwards that may be collectives: every rank renders or none does.
            if not trainer.strategy.reduce_boolean_decision(problem is None, all=True):
                reason = f" ({problem})" if problem is not None else " on another process"
                rank_zero_warn(f"SampleGrid is disabled: could not read {self.num_images} {self.split} images{reason}.")
                self._disabled = True
                self._samples = None
                return None
        return self._samples

    def _fetch_samples(self, trainer: pl.Trainer) -> List[Dict[str, Any]]:
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "sample_batch"):
            batch = datamodule.sample_batch(self.num_images, self.split)
            return _split_batch(batch)
        dataset = self._dataset(trainer)
        count = min(self.num_images, len(dataset))
        if count == 0:
            raise ValueError(f"the {self.split} dataset is empty")
        return [_to_cpu(dataset[index]) for index in range(count)]

    def _dataset(self, trainer: pl.Trainer):
        splits = [self.split] + (["test"] if self.split == "val" else [])
        datamodule = trainer.datamodule
        problems = []
        for split in splits:
            loader = None
            if datamodule is not None:
                try:
                    loader = getattr(datamodule, f"{split}_dataloader")()
                except Exception as err:  # noqa: BLE001 - e.g. the hook is not implemented: try the next split
                    problems.append(f"{split}: {err}")
            elif split == "val":
                loader = trainer.val_dataloaders
            if isinstance(loader, (list, tuple)):
                loader = loader[0] if loader else None
            if loader is not None and getattr(loader, "dataset", None) is not None:
                return loader.dataset
        details = f" ({'; '.join(problems)})" if problems else ""
        raise OptionError(f"no {' or '.join(splits)} dataset{details}: give the datamodule one or set SampleGrid split")


def _split_batch(batch: Dict[str, Any]) -> List[Dict[str, Any]]:
    size = next(len(value) for value in batch.values() if isinstance(value, (Tensor, list, tuple)))
    items = []
    for index in range(size):
        item = {}
        for key, value in batch.items():
            item[key] = value[index] if isinstance(value, (Tensor, list, tuple)) else value
        items.append(_to_cpu(item))
    return items


def _to_cpu(item: Dict[str, Any]) -> Dict[str, Any]:
    return {key: value.detach().cpu() if isinstance(value, Tensor) else value for key, value in item.items()}


def _to_device(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    return {key: value.to(device) if isinstance(value, Tensor) else value for key, value in batch.items()}


def _pad_to_common_size(tiles: List[Tensor]) -> List[Tensor]:
    height = max(tile.shape[-2] for tile in tiles)
    width = max(tile.shape[-1] for tile in tiles)
    return [F.pad(tile, (0, width - tile.shape[-1], 0, height - tile.shape[-2]), value=1.0) for tile in tiles]
