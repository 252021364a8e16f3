"""LightningDataModules for unpaired (CycleGAN, CUT) and paired (pix2pix) image folders.

Loaders:

* train: shuffled by :class:`~cyclegan_pl.data.samplers.EpochSampler` (order from ``(seed,
  epoch)``; it yields ``(epoch, index)`` so every per-item random choice depends on ``(seed,
  epoch, index)`` only, see :mod:`cyclegan_pl.data.base`), ``drop_last=False``, persistent
  workers when ``num_workers > 0``. Lightning adds its distributed wrapper under DDP and calls
  ``set_epoch`` on the sampler every epoch; no DistributedSampler is made here.
* val / test: no shuffle, no random crop or flip (evaluation transforms: ``load_size =
  crop_size``, centre crops, see :mod:`cyclegan_pl.data.transforms`); unpaired val/test items
  pair A ``i mod |A|`` with B ``i mod |B|``.
* predict: every image of ``predict_dir`` (or the source domain's test images) at its own size,
  batched by equal size (:func:`~cyclegan_pl.data.folder.image_folder_loader`).

The options both data modules share are declared once, on :class:`ImageDataModule`; each module
adds its own. They live in ``self.hparams`` only (what checkpoints and ``--print_config`` show is
what the loaders use).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from cyclegan_pl.data.download import DATASETS, LAYOUTS, download_dataset, download_hint
from cyclegan_pl.data.folder import ImageFolderDataset, image_folder_loader
from cyclegan_pl.data.image import require_images, split_halves
from cyclegan_pl.data.intensity import IntensityMapping, Normalization, percentile_mapping
from cyclegan_pl.data.paired import PairedDataset, is_separate_pair_layout
from cyclegan_pl.data.readers import ImageMode, ImageReader, choose_reader
from cyclegan_pl.data.samplers import EpochSampler
from cyclegan_pl.data.transforms import PREPROCESS, BatchDtype, ImageTransform
from cyclegan_pl.data.unpaired import UnpairedDataset
from cyclegan_pl.directions import Direction, check_direction
from cyclegan_pl.errors import DataLayoutError, OptionError
from cyclegan_pl.networks.tiling import Tiling

Split = Literal["train", "val", "test"]
PreprocessMode = PREPROCESS.choices()
DatasetName = DATASETS.choices()


def default_num_workers() -> int:
    """``min(4, CPUs available to this process)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus))


class ImageDataModule(LightningDataModule):
    """What both data modules share: options, loaders, download, sample batches.

    Args:
        root: The dataset folder (e.g. data/horse2zebra).
        dataset: Known dataset name used by ``download`` (default: the name of ``root``).
        batch_size: Training batch size.
        val_batch_size: Batch size of the validation, test and predict loaders (default: batch_size).
        num_workers: DataLoader worker processes per loader (default: min(4, CPUs available)).
        pin_memory: Pin batches in page-locked memory (only when CUDA is available).
        batch_dtype: ``uint8`` hands out the stored values (uint8 for 8-bit images: a quarter
            of the bytes through worker processes and to the GPU; int32 / float64 for images read
            natively), which the modules normalise to [-1, 1] on their device with the data's
            intensity mapping; ``float32`` normalises 8-bit images in the workers, for models of
            your own that expect float batches.
        load_size: Size images are resized to before the random crop when training.
        crop_size: Size of the training crop; validation/test images are resized to it directly.
        preprocess: How training images are resized and cropped (evaluation: see the module doc).
        flip: Random horizontal flips when training (the same for both halves of a pair).
        max_dataset_size: Use at most this many files of each folder / pairs of each split (default: all).
        max_val_size: Use at most this many validation items (default: all).
        serial_batches: Take the training items in order (and unpaired B images in order, not at random).
        input_nc: Channels (bands) of the input domain's images: 3 (RGB) or 1 (grayscale) for
            photos; any count for images read natively.
        output_nc: Channels (bands) of the output domain's images.
        image_mode: How files are read: ``8bit`` photos (gray or RGB, 16-bit files scaled to 8
            bits), ``native`` (the stored values and bands: 16-bit and float PNG/TIFF/.npy, every
            file of a domain alike), or ``auto`` (native when a domain's first file is not 8-bit
            gray/RGB or is a .npy array).
        normalization: How each band's stored values map to [-1, 1]: ``dtype`` (the dtype's full
            range: 0..255 for 8-bit, 0..65535 for 16-bit), ``range`` (``value_range`` for every
            band) or ``percentile`` (per band, ``percentiles`` of the training images, computed
            once and kept in the model's checkpoint).
        value_range: (low, high) stored values mapped to -1 and +1 with ``normalization=range``.
        percentiles: (low, high) percentiles, 0..100, with ``normalization=percentile``.
        normalization_images: Training images (evenly spaced) the percentiles are computed from
            (default: all).
        download: Download ``dataset`` into ``root`` when its folders are missing.
        skip_bad_images: Skip unreadable image files (one warning naming them) instead of failing.
        seed: Base seed of the shuffling, pairing and jitter (default: the seed_everything seed, else 0).
        predict_dir: Folder (searched recursively) or image file to translate in predict
            (default: the source domain's test images).
        predict_tiling: Translate large images in tiles in predict (``tile``, ``overlap``...,
            see :class:`~cyclegan_pl.networks.tiling.Tiling`); None translates them whole.
    """

    #: the folder layout this module reads (a key of ``LAYOUTS``)
    kind: str = "unpaired"

    def __init__(
        self,
        root: str,
        *,
        dataset: Optional[DatasetName] = None,  # type: ignore[valid-type]
        batch_size: int = 1,
        val_batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        pin_memory: bool = True,
        batch_dtype: BatchDtype = "uint8",
        load_size: int = 286,
        crop_size: int = 256,
        preprocess: PreprocessMode = "resize_and_crop",  # type: ignore[valid-type]
        flip: bool = True,
        max_dataset_size: Optional[int] = None,
        max_val_size: Optional[int] = None,
        serial_batches: bool = False,
        input_nc: int = 3,
        output_nc: int = 3,
        image_mode: ImageMode = "auto",
        normalization: Normalization = "dtype",
        value_range: Optional[Tuple[float, float]] = None,
        percentiles: Tuple[float, float] = (0.5, 99.5),
        normalization_images: Optional[int] = None,
        download: bool = False,
        skip_bad_images: bool = False,
        seed: Optional[int] = None,
        predict_dir: Optional[str] = None,
        predict_tiling: Optional[Tiling] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        PREPROCESS.get(preprocess)  # unknown names fail here, listing the choices
        for option, value in (("input_nc", input_nc), ("output_nc", output_nc)):
            if value < 1:
                raise OptionError(f"{option}={value}: images have at least one channel.", option=option)
        if image_mode == "8bit" and not {input_nc, output_nc} <= {1, 3}:
            raise OptionError(
                f"image_mode=8bit reads photos as 1 or 3 channels; input_nc={input_nc}, output_nc={output_nc} need "
                "image_mode=native (or auto).",
                option=("image_mode", "input_nc", "output_nc"),
            )
        if normalization == "range" and value_range is None:
            raise OptionError(
                "normalization=range needs value_range=(low, high), the stored values mapped to -1 and +1.",
                option=("normalization", "value_range"),
            )
        if batch_size < 1:
            raise OptionError(f"batch_size={batch_size}: must be >= 1.", option="batch_size")
        # Built now so that bad sizes fail at once, not at the first batch.
        self.train_transform, self.eval_transform = self._transforms()
        self.datasets: Dict[str, Dataset] = {}
        self._readers: Optional[Dict[str, ImageReader]] = None
        self._mappings: Optional[Dict[str, IntensityMapping]] = None
        self._said_val_is_test = False

    # -- options -----------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.hparams.root)

    @property
    def dataset_name(self) -> str:
        return self.hparams.dataset or self.root.name

    @property
    def num_workers(self) -> int:
        workers = self.hparams.num_workers
        return default_num_workers() if workers is None else workers

    @property
    def val_batch_size(self) -> int:
        return self.hparams.val_batch_size or self.hparams.batch_size

    @property
    def seed(self) -> int:
        """The base seed: the ``seed`` option, else $PL_GLOBAL_SEED, else 0."""
        if self.hparams.seed is not None:
            return self.hparams.seed
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    @property
    def input_nc(self) -> int:
        return self.hparams.input_nc

    @property
    def output_nc(self) -> int:
        return self.hparams.output_nc

    def _transforms(self) -> tuple:
        hp = self.hparams
        train = ImageTransform(hp.preprocess, hp.load_size, hp.crop_size, hp.flip, train=True, dtype=hp.batch_dtype)
        evaluation = ImageTransform(hp.preprocess, hp.load_size, hp.crop_size, False, train=False, dtype=hp.batch_dtype)
        return train, evaluation

    def layout(self) -> str:
        """The folder layout this module reads, for error messages."""
        return LAYOUTS[self.kind].format(root=str(self.root))

    def hint(self) -> str:
        return download_hint(self.dataset_name, self.root)

    def required_folders(self) -> List[Path]:
        """The folders a complete dataset has (download checks them)."""
        raise NotImplementedError

    # -- how the images are read and normalised ----------------------------------------------

    def domain_files(self, domain: str) -> Tuple[List[Path], Optional[str]]:
        """The training images of ``domain`` (``A``: the input, ``B``: the target; the test images
        when there is no training folder) and the half of each file that holds them
        (``left``/``right`` for side-by-side pairs, else None)."""
        raise NotImplementedError

    def readers(self) -> Dict[str, ImageReader]:
        """How each domain's files are read (``A`` input, ``B`` target), chosen once from its first
        training image (``image_mode``; :mod:`cyclegan_pl.data.readers`)."""
        if self._readers is None:
            hp = self.hparams
            readers = {}
            for domain, option in (("A", "input_nc"), ("B", "output_nc")):
                files, _ = self.domain_files(domain)
                readers[domain] = choose_reader(hp.image_mode, files[0], hp[option], f"domain {domain}", option)
            if hp.batch_dtype == "float32" and (
                any(reader.native for reader in readers.values()) or hp.normalization != "dtype"
            ):
                raise OptionError(
                    "batch_dtype=float32 normalises 8-bit images over 0..255 in the workers; images read natively "
                    "or another normalization are normalised by the modules: use batch_dtype=uint8.",
                    option=("batch_dtype", "normalization"),
                )
            self._readers = readers
        return self._readers

    def intensity_mappings(self) -> Dict[str, IntensityMapping]:
        """How each domain's stored values map to [-1, 1] (``normalization``), computed once.

        A module takes these when it is fitted with this data module (a checkpoint's own mapping
        replaces them on resume), keeps them with its weights and maps its outputs back to the
        data's units with them.
        """
        if self._mappings is None:
            hp = self.hparams
            mappings = {}
            for domain, reader in self.readers().items():
                dtype = reader.dtype or "uint8"
                if hp.normalization == "dtype":
                    mappings[domain] = IntensityMapping.of_dtype(dtype, reader.channels)
                elif hp.normalization == "range":
                    mappings[domain] = IntensityMapping.of_range(dtype, reader.channels, hp.value_range)
                else:
                    files, half = self.domain_files(domain)
                    chosen = _evenly_spaced(files, hp.normalization_images)
                    load = functools.partial(_read_half, reader, half)
                    mappings[domain] = percentile_mapping(chosen, load, dtype, reader.channels, hp.percentiles)
            self._mappings = mappings
        return self._mappings

    # -- Lightning hooks ---------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Download the dataset when ``download=True`` and one of its folders is missing.

        Lightning calls this on one process per node (local rank 0) only.
        """
        if not self.hparams.download or all(p.is_dir() for p in self.required_folders()):
            return
        if self.dataset_name not in DATASETS:
            raise OptionError(
                f"download=True needs a known dataset name, but dataset={self.dataset_name}. Set dataset= one of: "
                f"{', '.join(DATASETS.names())}; or put the files in place by hand: {self.layout()}.",
                option=("download", "dataset"),
            )
        download_dataset(self.dataset_name, self.root.parent, folder=self.root.name)

    def setup(self, stage: Optional[str] = None) -> None:
        if not self.root.is_dir() and not (stage == "predict" and self.hparams.predict_dir is not None):
            raise DataLayoutError(
                f"Dataset folder '{self.root}' does not exist. Expected layout: {self.layout()}. {self.hint()}"
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
        cap = self.hparams.max_val_size
        if cap is not None and cap < len(dataset):
            return Subset(dataset, range(cap))
        return dataset

    def _build_train(self) -> Dataset:
        raise NotImplementedError

    def _build_eval(self, split: str) -> Dataset:
        raise NotImplementedError

    def _predict_source(self) -> tuple:
        """(path, domain, half, direction) of the images ``predict`` reads by default: where they
        are, the domain they belong to, the half of side-by-side files, and the translation the
        model applies to them."""
        raise NotImplementedError

    def _build_predict(self) -> Dataset:
        hp = self.hparams
        predict_dir = hp.predict_dir
        path, domain, half, direction = self._predict_source()
        if predict_dir is not None:
            # Images of their own: they tell how they are read.
            option = "input_nc" if domain == "A" else "output_nc"
            first = require_images(predict_dir, "images to predict")[0]
            reader = choose_reader(hp.image_mode, first, hp[option], "images to predict", option)
        else:
            reader = self.readers()[domain]
        return ImageFolderDataset(
            predict_dir or path,
            channels=reader,
            half=None if predict_dir else half,
            skip_bad_images=self.hparams.skip_bad_images,
            expected=None if predict_dir else self.layout(),
            hint=None if predict_dir else self.hint(),
            dtype=self.hparams.batch_dtype,
            direction=direction,
            tiling=self.hparams.predict_tiling,
        )

    def _say_val_is_test(self, folders: str) -> None:
        if not self._said_val_is_test:
            rank_zero_info(f"No validation folders in '{self.root}': validating on {folders}.")
            self._said_val_is_test = True

    # -- loaders -----------------------------------------------------------------------------

    def _loader_options(self) -> Dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "pin_memory": self.hparams.pin_memory and torch.cuda.is_available(),
            "persistent_workers": self.num_workers > 0,
        }

    def train_dataloader(self) -> DataLoader:
        dataset = self.get_dataset("train")
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        sampler = EpochSampler(len(dataset), shuffle=not self.hparams.serial_batches, seed=self.seed)
        sampler.set_epoch(epoch)
        return DataLoader(
            dataset, batch_size=self.hparams.batch_size, sampler=sampler, drop_last=False, **self._loader_options()
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
        return image_folder_loader(dataset, self.val_batch_size, self.num_workers, self.hparams.pin_memory)

    def sample_batch(self, n: int = 4, split: str = "val") -> Dict[str, Any]:
        """The first ``n`` items of ``split`` (evaluation transforms), collated: a fixed batch.

        The same call always returns the same images, so sample grids are comparable across
        epochs and runs. ``split`` is ``"val"``, ``"test"`` or ``"train"`` (the training files
        with evaluation transforms).
        """
        dataset = self._build_eval("train") if split == "train" else self.get_dataset(split)
        count = min(n, len(dataset))
        return default_collate([dataset[i] for i in range(count)])


def _evenly_spaced(files: Sequence[Path], count: Optional[int]) -> List[Path]:
    if count is None or count >= len(files):
        return list(files)
    return [files[int(i * len(files) / count)] for i in range(count)]


def _read_half(reader: ImageReader, half: Optional[str], path: Path):
    image = reader(path)
    if half is None:
        return image
    left, right = split_halves(image, path)
    return left if half == "left" else right


class UnpairedDataModule(ImageDataModule):
    """Unaligned image folders for CycleGAN and CUT: ``trainA``, ``trainB``, ``testA``, ``testB``.

    Batches: ``A`` and ``B`` float tensors (N, C, H, W) in [-1, 1], ``A_paths`` and ``B_paths``
    lists of file paths. An epoch has max(|A|, |B|) items: A is taken in order (mod |A|), B at
    random (a function of seed, epoch and index, so a resumed run sees the same pairs) or in
    order with ``serial_batches``. Validation uses ``valA``/``valB`` when both exist, else
    ``testA``/``testB``. ``input_nc`` is domain A's channels, ``output_nc`` domain B's.

    Two options, off by default, reproduce the data of the CUT-family code (DCLGAN, UNSB;
    docs/method.md#data-of-the-cut-family); their configs turn them on.

    Args:
        root: The dataset folder holding trainA, trainB, testA, testB (e.g. data/horse2zebra).
        predict_direction: Which generator predict uses: AtoB reads domain A images (testA by
            default), BtoA domain B images (testB).
        resize_to_crop_from_epoch: From this 0-based epoch on, training images are resized
            straight to ``crop_size`` (as if ``load_size`` were ``crop_size``: no random crop with
            ``resize_and_crop``; flips kept), as the CUT-family code does in the learning-rate
            decay half. Set it to the schedule's ``n_epochs``; None (default) crops all along.
        second_a: Each training item also holds ``A2`` (and ``A2_paths``): another domain-A image,
            independent of ``A`` (its own shuffled order, crop and flip, from seed, epoch and
            index; random crops in every epoch), which UNSB's second data loader provides.
    """

    kind = "unpaired"

    def __init__(
        self,
        root: str,
        *,
        predict_direction: Direction = "AtoB",
        resize_to_crop_from_epoch: Optional[int] = None,
        second_a: bool = False,
        **kwargs: Any,
    ) -> None:
        check_direction(predict_direction, what="predict_direction")
        if resize_to_crop_from_epoch is not None and resize_to_crop_from_epoch < 0:
            raise OptionError(
                f"resize_to_crop_from_epoch={resize_to_crop_from_epoch}: must be a 0-based epoch (>= 0), or None.",
                option="resize_to_crop_from_epoch",
            )
        super().__init__(root, **kwargs)

    @property
    def predict_direction(self) -> Direction:
        return self.hparams.predict_direction

    def required_folders(self) -> List[Path]:
        return [self.root / name for name in ("trainA", "trainB", "testA", "testB")]

    def domain_files(self, domain: str) -> Tuple[List[Path], Optional[str]]:
        split = "train" if (self.root / f"train{domain}").is_dir() else "test"
        files = require_images(self.root / f"{split}{domain}", f"domain {domain} images", self.layout(), self.hint())
        return files[: self.hparams.max_dataset_size], None

    def _late_transform(self) -> Optional[Tuple[int, ImageTransform]]:
        """``resize_to_crop_from_epoch`` and the training transform with ``load_size = crop_size``."""
        hp = self.hparams
        if hp.resize_to_crop_from_epoch is None:
            return None
        late = ImageTransform(hp.preprocess, hp.crop_size, hp.crop_size, hp.flip, train=True, dtype=hp.batch_dtype)
        return hp.resize_to_crop_from_epoch, late

    def _dataset(self, split: str, transform: ImageTransform, serial: bool, train: bool = False) -> UnpairedDataset:
        files = {
            domain: require_images(
                self.root / f"{split}{domain}", f"domain {domain} images", self.layout(), self.hint()
            )
            for domain in "AB"
        }
        readers = self.readers()
        for domain in "AB":
            readers[domain].check_all(files[domain][: self.hparams.max_dataset_size])
        return UnpairedDataset(
            self.root / f"{split}A",
            self.root / f"{split}B",
            transform,
            channels_a=readers["A"],
            channels_b=readers["B"],
            serial=serial,
            max_size=self.hparams.max_dataset_size,
            seed=self.seed,
            skip_bad_images=self.hparams.skip_bad_images,
            files_a=files["A"],
            files_b=files["B"],
            transform_from_epoch=self._late_transform() if train else None,
            second_a=self.hparams.second_a and train,
        )

    def _build_train(self) -> Dataset:
        return self._dataset("train", self.train_transform, self.hparams.serial_batches, train=True)

    def _build_eval(self, split: str) -> Dataset:
        if split == "val":
            if (self.root / "valA").is_dir() and (self.root / "valB").is_dir():
                return self._dataset("val", self.eval_transform, serial=True)
            self._say_val_is_test("testA/testB")
            split = "test"
        return self._dataset(split, self.eval_transform, serial=True)

    def _predict_source(self) -> tuple:
        if self.predict_direction == "AtoB":
            return self.root / "testA", "A", None, "AtoB"
        return self.root / "testB", "B", None, "BtoA"


class PairedDataModule(ImageDataModule):
    """Aligned pairs for pix2pix: split folders ``train``, ``val``, ``test``.

    Each split holds side-by-side A|B images (A left, B right) or ``A/`` and ``B/`` sub-folders
    with matching file names. Both halves get the same crop and flip. Batches: ``A`` (the input
    after ``direction``) and ``B`` (the target) float tensors (N, C, H, W) in [-1, 1],
    ``A_paths`` and ``B_paths``. Validation uses ``val`` when it exists, else ``test``.
    ``input_nc`` and ``output_nc`` are the channels of the input and the target after
    ``direction``.

    Args:
        root: The dataset folder holding train, val, test (e.g. data/facades).
        direction: AtoB (left half / A is the input) or BtoA (right half / B is the input).
    """

    kind = "paired"

    def __init__(self, root: str, *, direction: Direction = "AtoB", **kwargs: Any) -> None:
        check_direction(direction, what="direction")
        super().__init__(root, **kwargs)

    @property
    def direction(self) -> Direction:
        return self.hparams.direction

    def required_folders(self) -> List[Path]:
        return [self.root / "train", self.root / "test"]

    def _split_folder(self, split: str) -> Path:
        folder = self.root / split
        if not folder.is_dir():
            raise DataLayoutError(
                f"Folder '{folder}' ({split} pairs) does not exist. Expected layout: {self.layout()}. {self.hint()}"
            )
        if not is_separate_pair_layout(folder):
            require_images(folder, f"{split} pairs", self.layout(), self.hint())
        return folder

    def domain_files(self, domain: str) -> Tuple[List[Path], Optional[str]]:
        folder = self._split_folder("train" if (self.root / "train").is_dir() else "test")
        cap = self.hparams.max_dataset_size
        if is_separate_pair_layout(folder):
            # The input domain (A) is the A/ folder, or B/ with direction BtoA.
            side = domain if self.direction == "AtoB" else {"A": "B", "B": "A"}[domain]
            return require_images(folder / side, f"paired {side} images")[:cap], None
        files = require_images(folder, "side-by-side A|B images")[:cap]
        return files, "left" if (domain == "A") == (self.direction == "AtoB") else "right"

    def _dataset(self, split: str, transform: ImageTransform) -> PairedDataset:
        folder = self._split_folder(split)
        readers = self.readers()
        return PairedDataset(
            folder,
            transform,
            direction=self.direction,
            input_nc=readers["A"],
            output_nc=readers["B"],
            max_size=self.hparams.max_dataset_size,
            seed=self.seed,
            skip_bad_images=self.hparams.skip_bad_images,
        )

    def _build_train(self) -> Dataset:
        return self._dataset("train", self.train_transform)

    def _build_eval(self, split: str) -> Dataset:
        if split == "val" and not (self.root / "val").is_dir():
            self._say_val_is_test("test")
            split = "test"
        return self._dataset(split, self.eval_transform)

    def _predict_source(self) -> tuple:
        # The model's input is always its A: ``direction`` already chose which half that is.
        folder = self._split_folder("test")
        if is_separate_pair_layout(folder):
            return folder / ("A" if self.direction == "AtoB" else "B"), "A", None, "AtoB"
        return folder, "A", "left" if self.direction == "AtoB" else "right", "AtoB"
