"""Images per second of the training loader: LitData chunks against image folders, on a local disk.

Reads horse2zebra under $CYCLEGAN_PL_DATA, converts it once into chunks (``optimize``, in a
temporary folder unless ``--chunks`` names one), then times the training loaders of
``UnpairedDataModule`` (folders) and ``StreamingUnpairedDataModule`` (chunks) at the published
sizes (286 bicubic resize, random 256 crop, flip, uint8 batches of 1) with 1 and 2 worker
processes. Each measurement is one epoch of trainA's items after ``warmup`` items; the workers'
start is not timed. An unpaired item counts 2 images (its A and its B), as in
``data_throughput.py``. Both loaders decode and transform the same images the same way: what
differs is where the encoded bytes come from (one file each, or a few large chunk files read by
LitData) and LitData's loader.

Usage::

    CYCLEGAN_PL_DATA=/work/shared/datasets python benchmarks/streaming_throughput.py --workers '[1, 2]'
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import torch
from jsonargparse import CLI

from cyclegan_pl.data import StreamingUnpairedDataModule, UnpairedDataModule
from cyclegan_pl.data.chunks import optimize_images

DATA_ENV = "CYCLEGAN_PL_DATA"


def _data_root() -> Path:
    value = os.environ.get(DATA_ENV)
    if not value or not Path(value).is_dir():
        raise SystemExit(f"Set {DATA_ENV} to the folder holding horse2zebra/ (e.g. /work/shared/datasets).")
    return Path(value)


def _epoch_rate(loader, warmup: int) -> float:
    """Items per second over one epoch of ``loader``, after ``warmup`` items (which start the workers)."""
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    for batch in iterator:
        count += len(batch["A_paths"])
    return count / (time.perf_counter() - start)


def main(
    workers: List[int] = [1, 2],
    repeats: int = 3,
    warmup: int = 10,
    chunk_bytes: str = "64MB",
    chunks: Optional[Path] = None,
) -> None:
    """Print a table of images/s through the training loader, folders against chunks.

    Args:
        workers: DataLoader worker counts.
        repeats: epochs per loader and worker count (alternating folders and chunks); the best is
            reported, as other processes on the machine only ever slow a measurement down.
        warmup: items read before timing each epoch.
        chunk_bytes: chunk size of the conversion.
        chunks: an existing conversion of horse2zebra to read (default: converted into a temporary folder).
    """
    torch.set_num_threads(1)
    source = _data_root() / "horse2zebra"
    with tempfile.TemporaryDirectory(prefix="cyclegan_pl-bench-") as scratch:
        if chunks is None:
            chunks = Path(scratch) / "horse2zebra"
            optimize_images(source, str(chunks), chunk_bytes=chunk_bytes, progress=False)
        rows = []
        for count in workers:
            options = dict(num_workers=count, batch_size=1, seed=0, pin_memory=False)
            modules = {
                "folders": UnpairedDataModule(str(source), **options),
                "chunks": StreamingUnpairedDataModule(str(chunks), **options),
            }
            loaders = {}
            for name, module in modules.items():
                module.setup("fit")
                loaders[name] = module.train_dataloader()
            best = dict.fromkeys(modules, 0.0)
            for _ in range(repeats):
                for name, loader in loaders.items():
                    best[name] = max(best[name], 2 * _epoch_rate(loader, warmup))
            rows.append((count, best))
    print("| workers | folders (images/s) | chunks (images/s) | chunks / folders |")
    print("|---:|---:|---:|---:|")
    for count, best in rows:
        print(f"| {count} | {best['folders']:.0f} | {best['chunks']:.0f} | {best['chunks'] / best['folders']:.2f}x |")
    print(
        f"\nhorse2zebra trainA ({len(list((source / 'trainA').iterdir()))} items per epoch, each an A and a B "
        f"image), 286 -> 256 crop with flip, uint8 batches of 1; best of {repeats} epochs after {warmup} items; "
        "torch.set_num_threads(1)."
    )


if __name__ == "__main__":
    CLI(main)
