"""Write ``predict`` outputs as image files that mirror the input folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any, Dict, Optional, Sequence, Set, Union

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from cyclegan_pl.data.intensity import default_mapping
from cyclegan_pl.data.output import OutputDepth, OutputFormat
from cyclegan_pl.errors import OptionError


class ImageWriter(BasePredictionWriter):
    """Save every translated image of ``predict`` under ``output_dir``, batch by batch.

    Each prediction of ``predict_step`` (``{"images": (N, C, H, W) in [-1, 1], "path": [...],
    "relpath": [...], "domain": "B"}``) is written as ``output_dir/<relpath with the new
    extension>``, e.g. ``sub/x.jpg`` -> ``sub/x.png``, at the image's own size: 8-bit for 8-bit
    data (1-channel images as greyscale, 3-channel as RGB), the data's own units and dtype for
    16-bit, float and multi-band data (the module's intensity mapping of ``domain``; see
    :mod:`cyclegan_pl.data.output`). Files are written to a temporary name and renamed, so an
    interrupted run never leaves a truncated image. Nothing is kept after a batch is written;
    each process writes the items of its own shard.

    Args:
        output_dir: folder that receives the images (created when missing).
        extension: file type of the written images: ``png`` (lossless), ``tif``, ``npy``,
            ``jpg``, ``webp``... (default: PNG where it holds the images, else TIFF).
        depth: ``auto`` (8-bit for 8-bit data, else the data's dtype and units), ``uint8`` (an
            8-bit rendering), ``uint16`` or ``float32`` (the data's units).
        overwrite: replace existing files. False keeps files that already exist and skips those
            images, so an interrupted run can be continued.
    """

    def __init__(
        self,
        output_dir: Union[str, Path],
        extension: Optional[str] = None,
        depth: OutputDepth = "auto",
        overwrite: bool = True,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.output = OutputFormat(depth, extension)
        self.overwrite = overwrite
        self.written = 0
        self.skipped = 0
        self._targets: Set[str] = set()

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.written = 0
        self.skipped = 0
        self._targets = set()

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.skipped:
            rank_zero_info(f"ImageWriter kept {self.skipped} existing file(s) in {self.output_dir} (overwrite=False).")

    def target_path(self, relpath: Optional[str], path: Optional[str], suffix: Optional[str] = None) -> Path:
        """Output file for one source image: its relative path with the extension ``suffix``
        (default: the ``extension`` option's, else ``.png``)."""
        suffix = suffix or "." + (self.output.extension or "png").lower().lstrip(".")
        name = relpath if relpath else (os.path.basename(path) if path else None)
        if not name:
            raise ValueError("ImageWriter needs a 'relpath' or 'path' for every predicted image")
        relative = PurePath(name)
        if relative.is_absolute() or ".." in relative.parts:
            # A relpath leaving output_dir would overwrite files elsewhere; keep the file name only.
            relative = PurePath(relative.name)
        return self.output_dir / relative.with_suffix(suffix)

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Dict[str, Any],
        batch_indices: Optional[Sequence[int]],
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        images = prediction["images"]
        count = images.shape[0]
        relpaths = _as_list(prediction.get("relpath"), count)
        paths = _as_list(prediction.get("path"), count)
        host_images = images.detach().cpu()
        channels = host_images.shape[1]
        intensity = getattr(pl_module, "intensity", {})
        mapping = intensity.get(prediction.get("domain", "B")) or default_mapping(channels)
        _, suffix, _ = self.output.resolve(mapping)
        for index in range(count):
            target = self.target_path(relpaths[index], paths[index], suffix)
            key = str(target)
            if key in self._targets:
                raise OptionError(
                    f"Two input images map to the same output {target} (e.g. x.jpg and x.png in one "
                    "folder); rename one of them or predict them into separate output_dir folders."
                )
            self._targets.add(key)
            if not self.overwrite and target.exists():
                self.skipped += 1
                continue
            self.output.write(host_images[index], mapping, target)
            self.written += 1


def _as_list(value: Any, count: int) -> list:
    if value is None:
        return [None] * count
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    values = [os.fspath(item) if item is not None else None for item in value]
    if len(values) != count:
        raise ValueError(f"ImageWriter got {count} images but {len(values)} paths in one prediction")
    return values
