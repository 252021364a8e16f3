"""``optimize``: an image-folder dataset into LitData chunks, for the streaming data modules."""

from __future__ import annotations

from pathlib import Path
from typing import Literal


def optimize(
    source: Path,
    output: str,
    layout: Literal["auto", "unpaired", "paired", "folder"] = "auto",
    chunk_bytes: str = "64MB",
    num_workers: int = 1,
    overwrite: bool = False,
    skip_bad_images: bool = False,
    max_image_bytes: int = 256 << 20,
) -> str:
    """Convert an image-folder dataset into LitData chunks (litdata.optimize), images kept encoded.

    Each split (trainA/ trainB/ testA/ testB/ valA/ valB/ of an unpaired dataset, train/ test/ val/
    of a paired one, or a single folder of images) becomes a LitData dataset holding every file's
    bytes and name, in the folders' order. A local output appears only once complete; running again
    on a finished output of the same files does nothing. Read it with StreamingUnpairedDataModule or
    StreamingPairedDataModule (configs/h2z_stream.yaml).

    Args:
        source: the dataset folder, or one folder of images.
        output: a local folder, or an s3:// or gs:// URL (credentials from the environment).
        layout: auto (from the folders), unpaired, paired or folder.
        chunk_bytes: target size of one chunk file, e.g. 64MB.
        num_workers: processes writing chunks.
        overwrite: replace an output holding a conversion of other files (never anything else).
        skip_bad_images: leave out files that fail a quick integrity check (one warning names them).
        max_image_bytes: refuse image files larger than this many bytes.
    """
    from cyclegan_pl.data.chunks import optimize_images

    report = optimize_images(
        source,
        output,
        layout=layout,
        chunk_bytes=chunk_bytes,
        num_workers=num_workers,
        overwrite=overwrite,
        skip_bad_images=skip_bad_images,
        max_image_bytes=max_image_bytes,
    )
    return report.output
