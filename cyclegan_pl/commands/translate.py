"""``translate``: a folder of images (or one image) through a trained model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Literal, Optional

import lightning.pytorch as pl

from cyclegan_pl.callbacks import ImageWriter
from cyclegan_pl.data import ImageFolderDataset, image_folder_loader
from cyclegan_pl.data.output import OutputDepth
from cyclegan_pl.data.readers import reader_for
from cyclegan_pl.directions import Direction
from cyclegan_pl.errors import OptionError
from cyclegan_pl.networks.tiling import AUTO_TILING, Tiling
from cyclegan_pl.weights import load_checkpoint


def translate(
    ckpt_path: Path,
    input: Path,
    output: Path,
    direction: Direction = "AtoB",
    batch_size: int = 1,
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto",
    num_workers: int = 0,
    extension: Optional[str] = None,
    depth: OutputDepth = "auto",
    eval_mode: Optional[bool] = None,
    tiling: Tiling = AUTO_TILING,
    seed: Optional[int] = None,
    steps: Optional[int] = None,
) -> Path:
    """Translate a folder or one image with a checkpoint, keeping relative paths, names, sizes.

    Folders are searched recursively; each output image has its source's relative path, name and
    size (sides the generator cannot take are padded, then cropped back, down to 1x1). An output
    folder inside the input folder is left out of the inputs. Images are read as the model's data
    was (8-bit photos, or natively: 16-bit, float, multi-band) and written in the data's units
    (:mod:`cyclegan_pl.data.output`). Before anything is written, every output path is checked:
    none may be an input image (``output`` equal to ``input``, or one image translated into its
    own folder, would overwrite the sources) and no two inputs may share one (``x.jpg`` and
    ``x.png``). Each image is written atomically: a run that stops keeps the images translated so
    far, complete, and no partial file.

    Args:
        ckpt_path: a checkpoint written by ``fit``, ``import-reference`` or ``download-model``,
            a ``save_pretrained`` folder or ``hf://owner/name``.
        input: an image file or a folder of images.
        output: folder that receives the translated images.
        direction: ``AtoB`` or ``BtoA`` (only for models that translate both ways and whose
            generator for that way was trained or imported).
        batch_size: images per forward pass (images of equal size are batched together).
        device: where to run: ``auto`` picks a GPU when there is one.
        num_workers: data loading processes.
        extension: file type of the written images: png, tif, npy, jpg... (default: PNG where it
            holds the images, else TIFF).
        depth: ``auto`` (8-bit for 8-bit data, else the data's dtype and units), ``uint8`` (an
            8-bit rendering), ``uint16`` or ``float32`` (the data's units).
        eval_mode: override the model's ``eval_mode`` (True: dropout off and BatchNorm running
            statistics, deterministic output); None keeps what the model was trained with.
        tiling: translate large images in tiles (``--tiling.tile 512 --tiling.overlap 64``), with
            the whole image's normalisation statistics, so that memory is bounded by the tile;
            by default images over 4 megapixels are tiled (``--tiling.above``).
        seed: for a method whose translation samples a path (UNSB): the seed of its noise and
            latents (default: the checkpoint's ``sampling_seed``); the same seed gives the same
            images. An error for the other methods.
        steps: for such a method: how many steps of the path to run (default: the checkpoint's
            ``inference_steps``, all of them); fewer are faster and translate less.
    """
    if not Path(input).exists():
        raise OptionError(f"input={input} does not exist; pass an image file or a folder of images.", option="input")
    if batch_size < 1:
        raise OptionError(f"batch_size={batch_size}: must be >= 1.", option="batch_size")
    _check_output_folder(Path(output))
    writer = ImageWriter(output_dir=output, extension=extension, depth=depth)
    module = load_checkpoint(ckpt_path)
    module.translation(direction)
    module.choose_sampling(seed, steps)
    if eval_mode is not None:
        module.eval_mode = eval_mode
    reader = reader_for(module.intensity[direction[0]], f"images of domain {direction[0]}")
    tiling.check(getattr(module.generator_for(direction), "size_multiple", 1))
    dataset = ImageFolderDataset(
        input, channels=reader, exclude=[output], dtype="uint8", direction=direction, tiling=tiling
    )
    _check_output_paths(dataset, writer, output, module.intensity[direction[-1]])
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[writer],
    )
    trainer.predict(module, dataloaders=image_folder_loader(dataset, batch_size, num_workers), return_predictions=False)
    print(f"translated images written to {output}")
    return Path(output)


def _check_output_folder(output: Path) -> None:
    """Refuse an output that is a file, or lies under one, or in a folder that cannot be written."""
    if output.exists() and not output.is_dir():
        raise OptionError(
            f"output={output} is a file: pass a folder for the translated images (it is created when missing).",
            option="output",
        )
    existing = output.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OptionError(f"output={output} cannot be created: {existing} is a file, not a folder.", option="output")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(f"output={output} cannot be written: {existing} is not writable by you.", option="output")


def _check_output_paths(dataset: ImageFolderDataset, writer: ImageWriter, output: Path, mapping: Any) -> None:
    """Refuse, before anything is written, an output path that is an input image or that two inputs share.

    The paths are the writer's own, with the extension it gives images of the output domain
    (``mapping``, the module's intensity mapping of that domain).
    """
    _, suffix, _ = writer.output.resolve(mapping)
    inputs = {path.resolve(): path for path in dataset.files}
    planned: Dict[Path, Path] = {}
    for index, source in enumerate(dataset.files):
        target = writer.target_path(dataset.relpath(index), str(source), suffix)
        resolved = target.resolve()
        if resolved in inputs:
            raise OptionError(
                f"output={output}: the translation of {source} would be written over the input image "
                f"{inputs[resolved]}; pass an output folder that holds none of the input images.",
                option="output",
            )
        if resolved in planned:
            raise OptionError(
                f"{planned[resolved]} and {source} would both be translated to {target}: rename one of them, or "
                "translate them into separate output folders."
            )
        planned[resolved] = source
