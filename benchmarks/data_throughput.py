"""Images per second of the training data pipeline, against a plain PIL + torchvision pipeline.

Reads the real images under $CYCLEGAN_PL_DATA (horse2zebra, facades) and times, in-process with
one torch thread (one worker's share of a machine):

* ``cyclegan_pl``: the package's dataset ``__getitem__`` at the default training options
  (resize 286 bicubic, random crop 256, random flip, [-1, 1] float tensors);
* ``plain PIL``: the same work the way the reference code does it: PIL open, ``convert("RGB")``,
  ``Resize(286, BICUBIC)``, ``RandomCrop(256)``, ``RandomHorizontalFlip``, ``ToTensor``,
  ``Normalize(0.5, 0.5)`` (facades: crop the A|B halves and apply one crop/flip to both).

Counting: an unpaired (horse2zebra) item is two images (its A and its B), a paired (facades) item
is one image file (the A|B pair).

``multiband16`` is a synthetic unpaired set of 16-bit 4-band TIFFs (up to 300 per domain at the
images' size, written once into ``--scratch``), read natively (int32 batches, normalised in the consuming
process by a percentile mapping); its plain pipeline is ``tifffile.imread`` + float resize, crop,
flip and a fixed normalisation in numpy/torch.

``--save`` writes the figures as JSON; ``--baseline`` reads such a file (e.g. from the previous
release) and prints each figure's ratio to it, to show that a change did not slow the 8-bit path.

A second table times whole DataLoaders (batch 1, the recipe's) with 1, 2 and N worker processes
(``--workers``): the plain pipeline, ours handing out float32 batches (normalised in the workers,
as before 0.2) and ours handing out uint8 batches (the data modules' default), whose
normalisation to [-1, 1] runs in the consuming process as it would on the device (its cost is
included).

Usage::

    CYCLEGAN_PL_DATA=/work/shared/datasets python benchmarks/data_throughput.py --items 300
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from jsonargparse import CLI
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms as T
from torchvision.transforms import functional as TVF

from cyclegan_pl.data import ImageTransform, PairedDataset, UnpairedDataset, list_images
from cyclegan_pl.data.intensity import IntensityMapping
from cyclegan_pl.data.readers import ImageReader
from cyclegan_pl.data.transforms import IMAGE_KEYS

DATA_ENV = "CYCLEGAN_PL_DATA"


def _data_root() -> Path:
    value = os.environ.get(DATA_ENV)
    if not value or not Path(value).is_dir():
        raise SystemExit(
            f"Set {DATA_ENV} to the folder holding horse2zebra/ and facades/ "
            f"(e.g. {DATA_ENV}=/work/shared/datasets); got {value!r}."
        )
    return Path(value)


def _plain_transform(load_size: int, crop_size: int) -> T.Compose:
    return T.Compose(
        [
            T.Resize(load_size, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomCrop(crop_size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


class PlainUnpaired(Dataset):
    """The reference-style unpaired pipeline: PIL + torchvision transforms, B at random."""

    def __init__(self, root: Path, load_size: int, crop_size: int) -> None:
        self.files_a, self.files_b = list_images(root / "trainA"), list_images(root / "trainB")
        self.transform = _plain_transform(load_size, crop_size)

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, index: int) -> dict:
        a = Image.open(self.files_a[index % len(self.files_a)]).convert("RGB")
        b = Image.open(self.files_b[random.randint(0, len(self.files_b) - 1)]).convert("RGB")
        return {"A": self.transform(a), "B": self.transform(b)}


class PlainPaired(Dataset):
    """The reference-style aligned pipeline: split A|B with PIL, one crop/flip for both halves."""

    def __init__(self, root: Path, load_size: int, crop_size: int) -> None:
        self.files = list_images(root / "train")
        self.load_size, self.crop_size = load_size, crop_size
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        ab = Image.open(self.files[index]).convert("RGB")
        width, height = ab.size
        halves = [ab.crop((0, 0, width // 2, height)), ab.crop((width // 2, 0, width, height))]
        slack = self.load_size - self.crop_size
        top, left = random.randint(0, slack), random.randint(0, slack)
        flip = random.random() < 0.5
        out = []
        for half in halves:
            half = half.resize((self.load_size, self.load_size), Image.BICUBIC)
            half = half.crop((left, top, left + self.crop_size, top + self.crop_size))
            if flip:
                half = TVF.hflip(half)
            out.append(self.to_tensor(half))
        return {"A": out[1], "B": out[0]}


def _rate(dataset: Dataset, items: int, warmup: int) -> float:
    """Items per second of ``dataset[i]`` in this process."""
    length = len(dataset)
    for index in range(warmup):
        dataset[index % length]
    start = time.perf_counter()
    for index in range(items):
        dataset[(index + warmup) % length]
    return items / (time.perf_counter() - start)


# The mappings the consuming process applies: 8-bit photos, and the 16-bit set's percentile-like range.
_MAPPINGS = {
    torch.uint8: IntensityMapping.of_dtype("uint8", 3),
    torch.int32: IntensityMapping("uint16", (1200.0, 900.0, 1500.0, 1000.0), (58000.0, 59000.0, 57500.0, 58800.0)),
}


def _loader_rate(dataset: Dataset, workers: int, items: int) -> float:
    """Items per second through a DataLoader with ``workers`` processes (batch size 1), including
    the normalisation of uint8 batches in this process."""
    subset = Subset(dataset, range(min(items, len(dataset))))
    loader = DataLoader(subset, batch_size=1, num_workers=workers, shuffle=False)
    iterator = iter(loader)
    next(iterator)  # workers started before timing
    start = time.perf_counter()
    count = 0
    for batch in iterator:
        # What a module's prepare_images does to a batch of stored values.
        for key in IMAGE_KEYS:
            if key in batch and batch[key].dtype != torch.float32:
                _MAPPINGS[batch[key].dtype].normalize(batch[key])
        count += 1
    return count / (time.perf_counter() - start)


def _multiband_folder(scratch: Path, size: int, count: int) -> Path:
    """The synthetic 16-bit 4-band set (``count`` images in trainA and trainB), written once."""
    import tifffile

    root = scratch / f"multiband16_{size}_{count}"
    if (root / "done").is_file():
        return root
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    for domain in "AB":
        (root / f"train{domain}").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            smooth = np.stack([np.sin(3 * x + band + index) * np.cos(2 * y - band) for band in range(4)], -1)
            image = ((smooth + 1) * 30000 + rng.integers(0, 8, smooth.shape)).astype(np.uint16)
            tifffile.imwrite(
                root / f"train{domain}" / f"{index:04d}.tif", image, photometric="minisblack", planarconfig="contig"
            )
    (root / "done").write_text("")
    return root


class PlainMultiband(Dataset):
    """A hand-written pipeline for 16-bit 4-band TIFFs: tifffile, float resize, crop, flip, fixed scaling."""

    def __init__(self, root: Path, load_size: int, crop_size: int) -> None:
        self.files_a, self.files_b = sorted((root / "trainA").iterdir()), sorted((root / "trainB").iterdir())
        self.load_size, self.crop_size = load_size, crop_size

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def _one(self, path: Path) -> torch.Tensor:
        import tifffile

        image = torch.from_numpy(tifffile.imread(path).astype(np.float32)).permute(2, 0, 1)
        image = TVF.resize(image, [self.load_size, self.load_size], antialias=True)
        slack = self.load_size - self.crop_size
        top, left = random.randint(0, slack), random.randint(0, slack)
        image = image[:, top : top + self.crop_size, left : left + self.crop_size]
        if random.random() < 0.5:
            image = image.flip(-1)
        return image / 32767.5 - 1

    def __getitem__(self, index: int) -> dict:
        a = self._one(self.files_a[index % len(self.files_a)])
        return {"A": a, "B": self._one(self.files_b[random.randint(0, len(self.files_b) - 1)])}


def _datasets(name: str, folder: Path, load_size: int, crop_size: int, dtype: str):
    """(our dataset, the plain one, images per item) for one dataset name."""
    transform = ImageTransform("resize_and_crop", load_size, crop_size, flip=True, train=True, dtype=dtype)
    if name == "multiband16":
        native = ImageReader(4, "uint16")
        return (
            UnpairedDataset(folder / "trainA", folder / "trainB", transform, channels_a=native, channels_b=native),
            PlainMultiband(folder, load_size, crop_size),
            2,
        )
    if name == "horse2zebra":
        return (
            UnpairedDataset(folder / "trainA", folder / "trainB", transform),
            PlainUnpaired(folder, load_size, crop_size),
            2,
        )
    if name == "facades":
        return (
            PairedDataset(folder / "train", transform, direction="BtoA"),
            PlainPaired(folder, load_size, crop_size),
            1,
        )
    raise SystemExit(f"unknown dataset {name!r}: choose horse2zebra, facades or multiband16")


def main(
    datasets: List[str] = ["horse2zebra", "facades", "multiband16"],
    items: int = 300,
    warmup: int = 20,
    repeats: int = 3,
    load_size: int = 286,
    crop_size: int = 256,
    workers: Optional[List[int]] = None,
    scratch: Optional[Path] = None,
    save: Optional[Path] = None,
    baseline: Optional[Path] = None,
) -> None:
    """Print a markdown table of data pipeline throughput.

    Args:
        datasets: which of horse2zebra (unpaired) and facades (paired) to time.
        items: dataset items timed per measurement.
        warmup: items read before timing (file cache, allocator).
        repeats: measurements per pipeline (alternating pipelines); the best is reported, as
            other processes on the machine only ever slow a measurement down.
        load_size: resize target before the crop.
        crop_size: crop size.
        workers: DataLoader worker counts for the second table (default: 1, 2 and the number of
            CPUs); ``[]`` leaves the table out.
        scratch: where the synthetic 16-bit 4-band set is written (default: the system's temp folder).
        save: write the figures to this JSON file.
        baseline: a JSON file of ``save`` from another version: each figure's ratio to it is printed.
    """
    torch.set_num_threads(1)
    root = _data_root()
    worker_counts = sorted({1, 2, os.cpu_count() or 1}) if workers is None else workers
    rows, loader_rows = [], []
    for name in datasets:
        folder = root / name
        if name == "multiband16":
            count = min(300, items + warmup)
            folder = _multiband_folder(Path(scratch or tempfile.gettempdir()) / "cyclegan_pl_bench", load_size, count)
        ours, plain, per_item = _datasets(name, folder, load_size, crop_size, "float32")
        random.seed(0)
        best = {"plain": 0.0, "ours": 0.0}
        for _ in range(repeats):
            best["plain"] = max(best["plain"], _rate(plain, items, warmup) * per_item)
            best["ours"] = max(best["ours"], _rate(ours, items, warmup) * per_item)
        rows.append(
            (name, "plain tifffile + torch" if name == "multiband16" else "plain PIL + torchvision", best["plain"], 1.0)
        )
        rows.append((name, "cyclegan_pl", best["ours"], best["ours"] / best["plain"]))
        as_uint8, _, _ = _datasets(name, folder, load_size, crop_size, "uint8")
        for count in worker_counts:
            best = {"plain": 0.0, "float32": 0.0, "uint8": 0.0}
            for _ in range(repeats):
                for key, dataset in (("plain", plain), ("float32", ours), ("uint8", as_uint8)):
                    best[key] = max(best[key], _loader_rate(dataset, count, items) * per_item)
            loader_rows.append((name, count, best))
    figures: Dict[str, float] = {f"{name}/{pipeline}": rate for name, pipeline, rate, _ in rows}
    figures.update(
        {f"{name}/{count} workers/{key}": rate for name, count, best in loader_rows for key, rate in best.items()}
    )
    previous = json.loads(Path(baseline).read_text()) if baseline is not None else {}

    def against_baseline(key: str) -> str:
        return f" | {figures[key] / previous[key]:.2f}x" if key in previous else (" | -" if previous else "")

    extra = " | vs baseline" if previous else ""
    print(f"| dataset | pipeline | images/s per worker | ratio{extra} |")
    print("|---|---|---:|---:" + ("|---:" if previous else "") + "|")
    for name, pipeline, rate, ratio in rows:
        print(f"| {name} | {pipeline} | {rate:.0f} | {ratio:.2f}x{against_baseline(f'{name}/{pipeline}')} |")
    print(
        f"\nBest of {repeats} x {items} items after {warmup} warm-up items, torch.set_num_threads(1), "
        "in-process; an unpaired item counts 2 images (A and B), a paired item 1 image (the A|B "
        "file). Ratio: against the plain pipeline."
    )
    if loader_rows:
        columns = ["dataset", "workers", "plain images/s", "float32 batches", "uint8 batches"]
        print("\n| " + " | ".join([*columns, "uint8 / float32", "uint8 / plain"]) + extra + " |")
        print("|---|---:|---:|---:|---:|---:|---:" + ("|---:" if previous else "") + "|")
        for name, count, best in loader_rows:
            print(
                f"| {name} | {count} | {best['plain']:.0f} | {best['float32']:.0f} | {best['uint8']:.0f} | "
                f"{best['uint8'] / best['float32']:.2f}x | {best['uint8'] / best['plain']:.2f}x"
                f"{against_baseline(f'{name}/{count} workers/uint8')} |"
            )
        print(
            "\nWhole DataLoaders (batch 1), images/s in total; uint8 includes its normalisation in this process "
            "(multiband16: its native int32 batches, through a percentile mapping; its float32 column is the "
            "same stored values, as the workers cannot normalise them)."
        )
    if save is not None:
        Path(save).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    CLI(main)
