"""Results pages of ``test``: every test image's visuals, browsable offline (and in wandb)."""

from __future__ import annotations

import contextlib
import html
import os
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from cyclegan_pl.data.display import check_bands, display_rgb
from cyclegan_pl.data.image import write_image
from cyclegan_pl.data.intensity import IntensityMapping, default_mapping
from cyclegan_pl.data.output import OutputDepth, OutputFormat
from cyclegan_pl.data.readers import image_size
from cyclegan_pl.errors import OptionError
from cyclegan_pl.files import atomic_file, atomic_folder

SIDE_BY_SIDE = "side_by_side"


class ResultsPage(pl.Callback):
    """Write the visuals of every ``test`` item as image files and an offline HTML page.

    For each test item (CycleGAN: one A and one B image; Pix2Pix: one pair) it writes

    * ``side_by_side/NNNNN_<name>.png``: the module's visuals side by side, at the test size
      (CycleGAN: real_A, fake_B, rec_A, real_B, fake_A, rec_B; Pix2Pix: input, output, target);
    * ``<output visual>/<source path>.png`` (``fake_B/``, ``fake_A/``; Pix2Pix ``output/``): each
      translation as its own file, resized back to its source file's size, named by its source's
      path relative to the folder of its domain's test files with ``.png`` for its extension
      (``sub/x.jpg`` -> ``sub/x.png``; ``x.jpg`` and ``x.png`` beside each other keep theirs:
      ``x.jpg.png``, ``x.png.png``). 8-bit PNGs for 8-bit data; for 16-bit, float and multi-band
      data the data's units (``depth``: 16-bit PNG, or TIFF where PNG cannot hold them; see
      :mod:`cyclegan_pl.data.output`). A file that comes round again in an unpaired test set is
      written once;
    * ``index.html`` (and ``page_NNNN.html`` after ``page_size`` rows): a table with the source
      file names, the side-by-side image and links to the single images; images load lazily
      (``loading="lazy"``), so pages stay light with thousands of test images. It needs no
      network and no server: open it from the disk.

    Multi-band images are shown (side by side, and in wandb) through ``bands`` and ``stretch``
    (:mod:`cyclegan_pl.data.display`). With a WandbLogger the same rows go to a wandb table
    (``test/results``). Everything is
    written into a staging folder that replaces ``output_dir`` once the test has finished, so an
    interrupted test leaves the previous pages. The visuals are those ``test_step`` returned (no
    extra forward pass); under DDP they are gathered from every process and global rank 0 writes.

    Args:
        output_dir: the folder of the pages (default: ``<default_root_dir>/results/<checkpoint
            name>``, or ``results/test`` without a checkpoint).
        page_size: table rows per HTML page.
        wandb_table: also log a wandb table when a WandbLogger is attached.
        depth: what the single translations are written as: ``auto`` (8-bit for 8-bit data, else
            the data's dtype and units), ``uint8`` (an 8-bit rendering), ``uint16`` or ``float32``.
        bands: which bands the side-by-side images show (one index: gray; three: RGB), as
            :class:`~cyclegan_pl.callbacks.SampleGrid`'s; default: the first three.
        stretch: per-band stretch of those images (default: for other than 1 or 3 bands).
    """

    def __init__(
        self,
        output_dir: Optional[str] = None,
        page_size: int = 200,
        wandb_table: bool = True,
        depth: OutputDepth = "auto",
        bands: Optional[List[int]] = None,
        stretch: Optional[bool] = None,
    ) -> None:
        super().__init__()
        if page_size < 1:
            raise OptionError(f"ResultsPage page_size must be >= 1, got {page_size}.")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.page_size = page_size
        self.wandb_table = wandb_table
        self.output = OutputFormat(depth)
        self.bands = check_bands(bands)
        self.stretch = stretch
        self.rows: List[Dict[str, Any]] = []
        self.written_dir: Optional[Path] = None
        self._stack: Optional[contextlib.ExitStack] = None
        self._staging: Optional[Path] = None
        self._seen_items: set = set()
        self._singles: Dict[Tuple[str, str], str] = {}
        self._translations: tuple = ()
        self._mappings: Dict[str, IntensityMapping] = {}

    # --- where ------------------------------------------------------------------------------
    def _target(self, trainer: pl.Trainer) -> Path:
        if self.output_dir is not None:
            return self.output_dir
        ckpt = getattr(trainer, "ckpt_path", None)
        name = Path(ckpt).stem if ckpt else "test"
        return Path(trainer.default_root_dir) / "results" / name

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows, self._seen_items, self._singles = [], set(), {}
        self._translations = tuple(getattr(pl_module, "translations", ()))
        self._mappings = dict(getattr(pl_module, "intensity", {}))
        self.written_dir = self._target(trainer)
        if trainer.is_global_zero:
            self._stack = contextlib.ExitStack()
            self._staging = self._stack.enter_context(atomic_folder(self.written_dir, replace=True))

    # --- each batch -------------------------------------------------------------------------
    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, dict):
            raise TypeError(
                f"ResultsPage needs {type(pl_module).__name__}.test_step to return its visuals (a dict of images)."
            )
        items = self._items(outputs, batch)
        if trainer.world_size > 1:
            gathered: List[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, items)
            items = [item for part in gathered for item in part]
        if trainer.is_global_zero:
            for item in items:
                self._write_item(item)

    def _items(self, outputs: Dict[str, Tensor], batch: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Host copies of each item's visuals and file names (what rank 0 needs to write it)."""
        count = next(iter(outputs.values())).shape[0]
        host = {name: images.detach().float().cpu() for name, images in outputs.items()}
        items = []
        for index in range(count):
            paths = {domain: _path(batch.get(f"{domain}_paths"), index) for domain in "AB"}
            items.append({"paths": paths, "visuals": {name: images[index] for name, images in host.items()}})
        return items

    def _write_item(self, item: Dict[str, Any]) -> None:
        assert self._staging is not None
        paths: Dict[str, Optional[str]] = item["paths"]
        key = (paths["A"], paths["B"])
        if key in self._seen_items:  # a distributed sampler's padding repeats items
            return
        self._seen_items.add(key)
        number = len(self.rows)
        stem = Path(paths["A"]).stem if paths["A"] else f"item{number}"
        visuals: Dict[str, Tensor] = item["visuals"]
        side_by_side = f"{SIDE_BY_SIDE}/{number:05d}_{stem}.png"
        shown = [display_rgb(image, self.bands, self.stretch) for image in visuals.values()]
        write_image(_unit_to_uint8(_side_by_side(shown)), self._staging / side_by_side)
        singles: Dict[str, str] = {}
        for translation in self._translations:
            if translation.output not in visuals:
                continue
            source_domain = translation.direction[0]
            source = paths[source_domain]
            if source is None:
                continue
            single = (translation.output, source)
            if single not in self._singles:
                # Named once every source is known (see _name_singles): two sources may share a stem.
                image = visuals[translation.output]
                mapping = self._mappings.get(translation.direction[-1]) or default_mapping(image.shape[0])
                size = _source_size(source, paired=paths["A"] == paths["B"])
                provisional = self.output.write(
                    _resized(image, size), mapping, self._staging / f"{translation.output}/.{len(self._singles):06d}"
                )
                self._singles[single] = provisional.relative_to(self._staging).as_posix()
            singles[translation.output] = source
        self.rows.append({"paths": paths, "side_by_side": side_by_side, "singles": singles, "visuals": list(visuals)})

    def _name_singles(self, folder: Path) -> None:
        """Give each translation its final name: its source's path relative to the folder of all
        sources of its domain, as a PNG (``dup.jpg.png`` and ``dup.png.png`` when only the
        extension tells two sources apart), and the rows their file names and links."""
        names: Dict[Tuple[str, str], str] = {}
        for output in dict.fromkeys(output for output, _ in self._singles):
            sources = [source for name, source in self._singles if name == output]
            suffix = PurePosixPath(self._singles[(output, sources[0])]).suffix
            for source, name in zip(sources, _unique_names(sources, suffix), strict=True):
                names[(output, source)] = f"{output}/{name}"
                (folder / names[(output, source)]).parent.mkdir(parents=True, exist_ok=True)
                os.replace(folder / self._singles[(output, source)], folder / names[(output, source)])
        shown = {}
        for domain in "AB":
            sources = list(dict.fromkeys(row["paths"][domain] for row in self.rows if row["paths"][domain]))
            shown.update(zip(sources, _relative_names(sources), strict=True))
        for row in self.rows:
            row["singles"] = {output: names[(output, source)] for output, source in row["singles"].items()}
            row["names"] = list(dict.fromkeys(shown[p] for p in (row["paths"]["A"], row["paths"]["B"]) if p))

    # --- the end ----------------------------------------------------------------------------
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or self._stack is None:
            return
        assert self._staging is not None and self.written_dir is not None
        self._name_singles(self._staging)
        self._write_pages(self._staging)
        stack, self._stack = self._stack, None
        stack.close()  # the staging folder becomes output_dir
        if self.wandb_table:
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    self._log_table(logger, self.written_dir)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            # Leaves the previous pages: the staging folder is removed.
            stack.__exit__(type(exception), exception, exception.__traceback__)

    def _write_pages(self, folder: Path) -> None:
        pages = [self.rows[i : i + self.page_size] for i in range(0, len(self.rows), self.page_size)] or [[]]
        names = ["index.html"] + [f"page_{n:04d}.html" for n in range(2, len(pages) + 1)]
        for number, (name, rows) in enumerate(zip(names, pages, strict=True)):
            with atomic_file(folder / name) as tmp:
                tmp.write_text(self._page(rows, number, names, start=number * self.page_size), encoding="utf-8")

    def _page(self, rows: List[Dict[str, Any]], number: int, names: List[str], start: int) -> str:
        visuals = " | ".join(rows[0]["visuals"]) if rows else ""
        nav = " ".join(
            f"<b>{n + 1}</b>" if n == number else f'<a href="{quote(name)}">{n + 1}</a>' for n, name in enumerate(names)
        )
        lines = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8"><title>Test results</title>',
            "<style>body{font-family:sans-serif} td{vertical-align:top;padding:4px} img{max-width:100%}</style>",
            "</head><body>",
            f"<h1>Test results ({len(self.rows)} items)</h1>",
            f"<p>Columns of each image: {html.escape(visuals)}. Pages: {nav}</p>",
            "<table><tr><th>#</th><th>files</th><th>visuals</th><th>single images</th></tr>",
        ]
        for offset, row in enumerate(rows):
            files = "<br>".join(html.escape(name) for name in row["names"])
            singles = "<br>".join(
                f'<a href="{quote(path)}">{html.escape(visual)}</a>' for visual, path in row["singles"].items()
            )
            link = quote(row["side_by_side"])
            image = f'<a href="{link}"><img src="{link}" loading="lazy"></a>'
            lines.append(f"<tr><td>{start + offset + 1}</td><td>{files}</td><td>{image}</td><td>{singles}</td></tr>")
        lines += ["</table>", f"<p>Pages: {nav}</p>", "</body></html>", ""]
        return "\n".join(lines)

    def _log_table(self, logger: WandbLogger, folder: Path) -> None:
        import wandb

        columns = ["files", "visuals", *sorted({v for row in self.rows for v in row["singles"]})]
        data = []
        for row in self.rows:
            # wandb shows 8-bit pictures; a file in the data's units is named instead.
            singles = [
                (wandb.Image(str(folder / row["singles"][name])) if _is_picture(row["singles"][name]) else name)
                if name in row["singles"]
                else None
                for name in columns[2:]
            ]
            data.append([", ".join(row["names"]), wandb.Image(str(folder / row["side_by_side"])), *singles])
        logger.log_table(key="test/results", columns=columns, data=data)


def _is_picture(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")


def _path(paths: Any, index: int) -> Optional[str]:
    if paths is None:
        return None
    if isinstance(paths, (str, os.PathLike)):
        return os.fspath(paths)
    return os.fspath(paths[index])


def _relative_names(sources: List[str]) -> List[str]:
    """Each path relative to the deepest folder holding them all (``a/n.jpg``, ``b/n.jpg``)."""
    try:
        root = os.path.commonpath([os.path.dirname(source) for source in sources])
    except ValueError:  # absolute and relative paths mixed, or several drives
        return [PurePath(source).name for source in sources]
    names = []
    for source in sources:
        relative = PurePath(os.path.relpath(source, root) if root else source)
        names.append(relative.as_posix() if ".." not in relative.parts else relative.name)
    return names


def _unique_names(sources: List[str], suffix: str = ".png") -> List[str]:
    """Names with ``suffix`` of the sources' relative paths, one per source, even for ``x.jpg`` and ``x.png``."""
    relative = _relative_names(sources)
    plain = [str(PurePosixPath(name).with_suffix(suffix)) for name in relative]
    shared = {name for name in plain if plain.count(name) > 1}
    taken: set = set()
    names = []
    for rel, name in zip(relative, plain, strict=True):
        candidate = f"{rel}{suffix}" if name in shared else name
        number = 2
        while candidate in taken:  # only for names built to look like another file's
            candidate = f"{rel}.{number}{suffix}"
            number += 1
        taken.add(candidate)
        names.append(candidate)
    return names


def _unit_to_uint8(image: Tensor):
    """A (3, H, W) image in [0, 1] -> (H, W, 3) uint8, truncated as ``to_uint8`` does."""
    return (image * 255.0).clamp_(0.0, 255.0).to(torch.uint8).permute(1, 2, 0).numpy()


def _side_by_side(images: List[Tensor]) -> Tensor:
    """(3, H, W) images in [0, 1] side by side, each scaled to the tallest one's height."""
    height = max(image.shape[-2] for image in images)
    parts = []
    for image in images:
        if image.shape[-2] != height:
            image = _resized(image, (height, round(image.shape[-1] * height / image.shape[-2])))
        parts.append(image)
    return torch.cat(parts, dim=-1)


def _resized(image: Tensor, size: Tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    resized = F.interpolate(image[None].float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    return resized[0].clamp(-1.0, 1.0)


def _source_size(path: str, paired: bool) -> Tuple[int, int]:
    """(height, width) of the source image: half the file's width for a side-by-side A|B pair."""
    height, width = image_size(path)
    return (height, width // 2) if paired else (height, width)
