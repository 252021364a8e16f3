"""LightningDataModules for unpaired (CycleGAN) and paired (pix2pix) image folders.

Loaders:

* train: shuffled by :class:`~cyclegan_pl.data.datasets.EpochSampler` (order from ``(seed,
  epoch)``; it yields ``(epoch, index)`` so every per-item random choice depends on ``(seed,
  epoch, index)`` only, see :mod:`cyclegan_pl.data.datasets`), ``drop_last=False``, persistent
  workers when ``num_workers > 0``. Lightning adds its distributed wrapper under DDP and calls
  ``set_epoch`` on the sampler every epoch; no DistributedSampler is made here.
* val / test: no shuffle, no random crop or flip (evaluation transforms: ``load_size =
  crop_size``, centre crops, see :mod:`cyclegan_pl.data.transforms`); unpaired val/test items
  pair A ``i mod |A|`` with B ``i mod |B|``.
* predict: every image of ``predict_dir`` (or the source domain's test images) at its own size,
  batched by equal size (:class:`~cyclegan_pl.data.datasets.SizeGroupedBatchSampler`).

``seed=None`` takes the seed of ``seed_everything`` ($PL_GLOBAL_SEED), else 0.
``num_workers=None`` means ``min(4, CPUs available to this process)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, SequentialSampler, Subset, default_collate

from cyclegan_pl.data.datasets import (
    DataLayoutError,
    EpochSampler,
    ImageFolderDataset,
    PairedDataset,
    SizeGroupedBatchSampler,
    UnpairedDataset,
    is_separate_pair_layout,
    require_images,
)
from cyclegan_pl.data.download import DATASETS, LAYOUTS, download_dataset, download_hint
from cyclegan_pl.data.transforms import PREPROCESS, ImageTransform

Direction = Literal["AtoB", "BtoA"]
Split = Literal["train", "val", "test"]


def default_num_workers() -> int:
    """``min(4, CPUs available to this process)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus))


class _ImageDataModule(LightningDataModule):
    """What both data modules share: options, loaders, download, sample batches."""

    kind: str = "unpaired"

    def _init_common(
        self,
        root: str,
        dataset: Optional[str],
        batch_size: int,
        val_batch_size: Optional[int],
        num_workers: Optional[int],
        pin_memory: bool,
        load_size: int,
        crop_size: int,
        preprocess: str,
        flip: bool,
        max_dataset_size: Optional[int],
        max_val_size: Optional[int],
        serial_batches: bool,
        input_nc: int,
        output_nc: int,
        download: bool,
        skip_bad_images: bool,
        seed: Optional[int],
        predict_dir: Optional[str],
    ) -> None:
        PREPROCESS.get(preprocess)  # unknown names fail here, listing the choices
        for option, value in (("input_nc", input_nc), ("output_nc", output_nc)):
            if value not in (1, 3):
                raise ValueError(f"`{option}` must be 1 (grayscale) or 3 (RGB), got {value}")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
        self.root = Path(root)
        self.dataset_name = dataset or self.root.name
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.pin_memory = pin_memory
        self.load_size, self.crop_size = load_size, crop_size
        self.preprocess, self.flip = preprocess, flip
        self.max_dataset_size, self.max_val_size = max_dataset_size, max_val_size
        self.serial_batches = serial_batches
        self.input_nc, self.output_nc = input_nc, output_nc
        self.download = download
        self.skip_bad_images = skip_bad_images
        self._seed = seed
        self.predict_dir = Path(predict_dir) if predict_dir else None
        self.train_transform = ImageTransform(preprocess, load_size, crop_size, flip, train=True)
        self.eval_transform = ImageTransform(preprocess, load_size, crop_size, False, train=False)
        self.datasets: Dict[str, Dataset] = {}
        self._said_val_is_test = False

    # -- options -----------------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """The base seed: the ``seed`` option, else $PL_GLOBAL_SEED, else 0."""
        if self._seed is not None:
            return self._seed
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def layout(self) -> str:
        """The folder layout this module reads, for error messages."""
        return LAYOUTS[self.kind].format(root=str(self.root))

    def hint(self) -> str:
        return download_hint(self.dataset_name, self.root)

    def _required_folders(self) -> List[Path]:
        raise NotImplementedError

    # -- Lightning hooks ---------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Download the dataset when ``download=True`` and its folders are missing.

        Lightning calls this on one process per node (local rank 0) only.
        """
        if not self.download or all(p.is_dir() for p in self._required_folders()):
            return
        if self.dataset_name not in DATASETS:
            raise ValueError(
                f"`download=True` needs a known dataset name, but `dataset` is "
                f"'{self.dataset_name}'. Set `dataset` to one of: {', '.join(DATASETS.names())}; "
                f"or put the files in place by hand: {self.layout()}."
            )
        download_dataset(self.dataset_name, self.root.parent, folder=self.root.name)

    def setup(self, stage: Optional[str] = None) -> None:
        if not self.root.is_dir() and not (stage == "predict" and self.predict_dir is not None):
            raise DataLayoutError(
                f"Dataset folder '{self.root}' does not exist. Expected layout: {self.layout()}. "
                f"{self.hint()}"
            )
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
        }.get(stage or "", ("train", "val", "test"))
        for split in wanted:
            self.get_dataset(split)

    def get_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (``train``, ``val``, ``test`` or ``predict``), built once."""
        if split not in self.datasets:
            builders = {
                "train": self._build_train,
                "val": lambda: self._capped(self._build_eval("val")),
                "test": lambda: self._build_eval("test"),
                "predict": self._build_predict,
            }
            if split not in builders:
                raise ValueError(f"unknown split {split!r}; use one of {', '.join(builders)}")
            self.datasets[split] = builders[split]()
        return self.datasets[split]

    def _capped(self, dataset: Dataset) -> Dataset:
        if self.max_val_size is not None and self.max_val_size < len(dataset):
            return Subset(dataset, range(self.max_val_size))
        return dataset

    def _build_train(self) -> Dataset:
        raise NotImplementedError

    def _build_eval(self, split: str) -> Dataset:
        raise NotImplementedError

    def _build_predict(self) -> Dataset:
        raise NotImplementedError

    def _say_val_is_test(self, folders: str) -> None:
        if not self._said_val_is_test:
            rank_zero_info(f"No validation folders in '{self.root}': validating on {folders}.")
            self._said_val_is_test = True

    # -- loaders -----------------------------------------------------------------------------

    def _loader_options(self) -> Dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory and torch.cuda.is_available(),
            "persistent_workers": self.num_workers > 0,
        }

    def train_dataloader(self) -> DataLoader:
        dataset = self.get_dataset("train")
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        sampler = EpochSampler(len(dataset), shuffle=not self.serial_batches, seed=self.seed)
        sampler.set_epoch(epoch)
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, drop_last=False, **self._loader_options()
        )

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.get_dataset(split), batch_size=self.val_batch_size, shuffle=False, **self._loader_options()
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        dataset = self.get_dataset("predict")
        assert isinstance(dataset, ImageFolderDataset)
        batch_sampler = SizeGroupedBatchSampler(
            SequentialSampler(dataset), self.val_batch_size, drop_last=False, sizes=dataset.sizes()
        )
        options = self._loader_options()
        options["persistent_workers"] = False
        return DataLoader(dataset, batch_sampler=batch_sampler, **options)

    def sample_batch(self, n: int = 4, split: str = "val") -> Dict[str, Any]:
        """The first ``n`` items of ``split`` (evaluation transforms), collated: a fixed batch.

        The same call always returns the same images, so sample grids are comparable across
        epochs and runs. ``split`` is ``"val"``, ``"test"`` or ``"train"`` (the training files
        with evaluation transforms).
        """
        if split == "train":
            dataset = self._build_eval("train")
        else:
            dataset = self.get_dataset(split)
        count = min(n, len(dataset))
        return default_collate([dataset[i] for i in range(count)])


class UnpairedDataModule(_ImageDataModule):
    """Unaligned image folders for CycleGAN: ``trainA``, ``trainB``, ``testA``, ``testB``.

    Batches: ``A`` and ``B`` float tensors (N, C, H, W) in [-1, 1], ``A_paths`` and ``B_paths``
    lists of file paths. An epoch has max(|A|, |B|) items: A is taken in order (mod |A|), B at
    random (a function of seed, epoch and index, so a resumed run sees the same pairs) or in
    order with ``serial_batches``. Validation uses ``valA``/``valB`` when both exist, else
    ``testA``/``testB``.

    Args:
        root: The dataset folder holding trainA, trainB, testA, testB (e.g. data/horse2zebra).
        dataset: Known dataset name used by ``download`` (default: the name of ``root``).
        batch_size: Training batch size.
        val_batch_size: Batch size of the validation, test and predict loaders (default: batch_size).
        num_workers: DataLoader worker processes per loader (default: min(4, CPUs available)).
        pin_memory: Pin batches in page-locked memory (only when CUDA is available).
        load_size: Size images are resized to before the random crop when training.
        crop_size: Size of the training crop; validation/test images are resized to it directly.
        preprocess: One of resize_and_crop, crop, scale_width, scale_width_and_crop, none.
        flip: Random horizontal flips when training.
        max_dataset_size: Use at most this many files of each folder (default: all).
        max_val_size: Use at most this many validation items (default: all).
        serial_batches: Take B images in order (and do not shuffle) instead of at random.
        input_nc: Channels of domain A images: 3 (RGB) or 1 (grayscale).
        output_nc: Channels of domain B images: 3 or 1.
        download: Download ``dataset`` into ``root`` when its folders are missing.
        skip_bad_images: Skip unreadable image files (one warning naming them) instead of failing.
        seed: Base seed of the shuffling, B pairing and jitter (default: the seed_everything seed, else 0).
        predict_dir: Folder (searched recursively) or image file to translate in predict
            (default: testA for AtoB, testB for BtoA).
        predict_direction: Which generator predict uses: AtoB reads domain A images, BtoA domain B.
    """

    kind = "unpaired"

    def __init__(
        self,
        root: str,
        dataset: Optional[str] = None,
        batch_size: int = 1,
        val_batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        pin_memory: bool = True,
        load_size: int = 286,
        crop_size: int = 256,
        preprocess: str = "resize_and_crop",
        flip: bool = True,
        max_dataset_size: Optional[int] = None,
        max_val_size: Optional[int] = None,
        serial_batches: bool = False,
        input_nc: int = 3,
        output_nc: int = 3,
        download: bool = False,
        skip_bad_images: bool = False,
        seed: Optional[int] = None,
        predict_dir: Optional[str] = None,
        predict_direction: Direction = "AtoB",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if predict_direction not in ("AtoB", "BtoA"):
            raise ValueError(f"`predict_direction` must be 'AtoB' or 'BtoA', got {predict_direction!r}")
        self.predict_direction = predict_direction
        self._init_common(
            root, dataset, batch_size, val_batch_size, num_workers, pin_memory, load_size,
            crop_size, preprocess, flip, max_dataset_size, max_val_size, serial_batches, input_nc,
            output_nc, download, skip_bad_images, seed, predict_dir,
        )  # fmt: skip

    def _required_folders(self) -> List[Path]:
        return [self.root / name for name in ("trainA", "trainB", "testA", "testB")]

    def _files(self, folder: str, domain: str) -> List[Path]:
        return require_images(
            self.root / folder, f"domain {domain} images", self.layout(), self.hint()
        )

    def _dataset(self, split: str, transform: ImageTransform, serial: bool) -> UnpairedDataset:
        folder_a, folder_b = self.root / f"{split}A", self.root / f"{split}B"
        return UnpairedDataset(
            folder_a,
            folder_b,
            transform,
            channels_a=self.input_nc,
            channels_b=self.output_nc,
            serial=serial,
            max_size=self.max_dataset_size,
            seed=self.seed,
            skip_bad_images=self.skip_bad_images,
            files_a=self._files(f"{split}A", "A"),
            files_b=self._files(f"{split}B", "B"),
        )

    def _build_train(self) -> Dataset:
        return self._dataset("train", self.train_transform, self.serial_batches)

    def _build_eval(self, split: str) -> Dataset:
        if split == "val":
            if (self.root / "valA").is_dir() and (self.root / "valB").is_dir():
                return self._dataset("val", self.eval_transform, serial=True)
            self._say_val_is_test("testA/testB")
            split = "test"
        return self._dataset(split, self.eval_transform, serial=True)

    def _build_predict(self) -> Dataset:
        source = "testA" if self.predict_direction == "AtoB" else "testB"
        channels = self.input_nc if self.predict_direction == "AtoB" else self.output_nc
        path = self.predict_dir or self.root / source
        return ImageFolderDataset(
            path,
            channels=channels,
            skip_bad_images=self.skip_bad_images,
            what="images to predict",
            expected=None if self.predict_dir else self.layout(),
            hint=None if self.predict_dir else self.hint(),
        )


class PairedDataModule(_ImageDataModule):
    """Aligned pairs for pix2pix: split folders ``train``, ``val``, ``test``.

    Each split holds side-by-side A|B images (A left, B right) or ``A/`` and ``B/`` sub-folders
    with matching file names. Both halves get the same crop and flip. Batches: ``A`` (the input
    after ``direction``) and ``B`` (the target) float tensors (N, C, H, W) in [-1, 1],
    ``A_paths`` and ``B_paths``. Validation uses ``val`` when it exists, else ``test``.

    Args:
        root: The dataset folder holding train, val, test (e.g. data/facades).
        dataset: Known dataset name used by ``download`` (default: the name of ``root``).
        direction: AtoB (left half / A is the input) or BtoA (right half / B is the input).
        batch_size: Training batch size.
        val_batch_size: Batch size of the validation, test and predict loaders (default: batch_size).
        num_workers: DataLoader worker processes per loader (default: min(4, CPUs available)).
        pin_memory: Pin batches in page-locked memory (only when CUDA is available).
        load_size: Size images are resized to before the random crop when training.
        crop_size: Size of the training crop; validation/test images are resized to it directly.
        preprocess: One of resize_and_crop, crop, scale_width, scale_width_and_crop, none.
        flip: Random horizontal flips when training (the same for both halves).
        max_dataset_size: Use at most this many pairs per split (default: all).
        max_val_size: Use at most this many validation pairs (default: all).
        serial_batches: Do not shuffle the training pairs.
        input_nc: Channels of the input images: 3 (RGB) or 1 (grayscale).
        output_nc: Channels of the target images: 3 or 1.
        download: Download ``dataset`` into ``root`` when its folders are missing.
        skip_bad_images: Skip unreadable image files (one warning naming them) instead of failing.
        seed: Base seed of the shuffling and jitter (default: the seed_everything seed, else 0).
        predict_dir: Folder (searched recursively) or image file of inputs to translate in
            predict (default: the input half of every test pair).
    """

    kind = "paired"

    def __init__(
        self,
        root: str,
        dataset: Optional[str] = None,
        direction: Direction = "AtoB",
        batch_size: int = 1,
        val_batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        pin_memory: bool = True,
        load_size: int = 286,
        crop_size: int = 256,
        preprocess: str = "resize_and_crop",
        flip: bool = True,
        max_dataset_size: Optional[int] = None,
        max_val_size: Optional[int] = None,
        serial_batches: bool = False,
        input_nc: int = 3,
        output_nc: int = 3,
        download: bool = False,
        skip_bad_images: bool = False,
        seed: Optional[int] = None,
        predict_dir: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"`direction` must be 'AtoB' or 'BtoA', got {direction!r}")
        self.direction = direction
        self._init_common(
            root, dataset, batch_size, val_batch_size, num_workers, pin_memory, load_size,
            crop_size, preprocess, flip, max_dataset_size, max_val_size, serial_batches, input_nc,
            output_nc, download, skip_bad_images, seed, predict_dir,
        )  # fmt: skip

    def _required_folders(self) -> List[Path]:
        return [self.root / "train", self.root / "test"]

    def _split_folder(self, split: str) -> Path:
        folder = self.root / split
        if not folder.is_dir():
            raise DataLayoutError(
                f"Folder '{folder}' ({split} pairs) does not exist. Expected layout: "
                f"{self.layout()}. {self.hint()}"
            )
        if not is_separate_pair_layout(folder):
            require_images(folder, f"{split} pairs", self.layout(), self.hint())
        return folder

    def _dataset(self, split: str, transform: ImageTransform) -> PairedDataset:
        return PairedDataset(
            self._split_folder(split),
            transform,
            direction=self.direction,
            input_nc=self.input_nc,
            output_nc=self.output_nc,
            max_size=self.max_dataset_size,
            seed=self.seed,
            skip_bad_images=self.skip_bad_images,
        )

    def _build_train(self) -> Dataset:
        return self._dataset("train", self.train_transform)

    def _build_eval(self, split: str) -> Dataset:
        if split == "val" and not (self.root / "val").is_dir():
            self._say_val_is_test("test")
            split = "test"
        return self._dataset(split, self.eval_transform)

    def _build_predict(self) -> Dataset:
        if self.predict_dir is not None:
            return ImageFolderDataset(self.predict_dir, channels=self.input_nc, skip_bad_images=self.skip_bad_images)
        folder = self._split_folder("test")
        if is_separate_pair_layout(folder):
            side = "A" if self.direction == "AtoB" else "B"
            return ImageFolderDataset(
                folder / side, channels=self.input_nc, skip_bad_images=self.skip_bad_images
            )
        return ImageFolderDataset(
            folder,
            channels=self.input_nc,
            half="left" if self.direction == "AtoB" else "right",
            skip_bad_images=self.skip_bad_images,
        )
