"""Training from LitData chunks: the folder data modules' items, streamed.

:func:`cyclegan_pl.data.chunks.optimize_images` (the ``optimize`` command) converts image folders
into chunks; the data modules here read them, from a local folder or an ``s3://`` / ``gs://`` URL:

* training streams one split with ``litdata.StreamingDataset`` and ``StreamingDataLoader``: LitData
  shards the chunks over every process of every node and over the loader's workers, shuffles them
  from ``(seed, epoch)``, and each epoch yields every item once (under DDP LitData gives each
  process the same number of items, leaving out the remainder: fewer than processes x batch size
  items, others each epoch). The loader's position is saved in checkpoints by Lightning
  (``state_dict``), so a run resumed mid-epoch sees the batches an uninterrupted run would;
* each record becomes the folder datasets' item through the same code: an unpaired item ``i``
  holds A image ``i`` and the B image :func:`~cyclegan_pl.data.unpaired.draw_b_index` draws from
  ``(seed, epoch, i)`` (read by random access to the B chunks), and both get
  :class:`~cyclegan_pl.data.transforms.ImageTransform`'s jitter from the same generator, in the same
  order; pairs go through the paired helpers. Items are uint8 (or float32) like the folders'.
  A streamed unpaired epoch is one pass over domain A (|A| items; the folder module's epochs have
  max(|A|, |B|) items, A repeating when B is larger), so item ``i < |A|`` of an epoch equals the
  folder dataset's item ``i`` of the same seed and epoch;
* validation, test and sample grids read their split by random access (a map-style dataset, which
  Lightning shards as it does the folders').

Epochs: LitData counts them from 1 in the loader; the items use the trainer's (from 0).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch
from litdata import StreamingDataLoader, StreamingDataset
from litdata.streaming.sampler import ChunkedIndex
from torch.utils.data import DataLoader, Dataset

from cyclegan_pl.data.base import EpochDataset, Key, item_generator
from cyclegan_pl.data.chunks import (
    ChunkSplit,
    decode_name,
    is_url,
    join,
    open_split,
    record_reader,
    storage_error,
    storage_errors,
    streaming_options,
    unpack_record,
)
from cyclegan_pl.data.datamodules import PairedDataModule, UnpairedDataModule
from cyclegan_pl.data.image import decode_image
from cyclegan_pl.data.paired import side_by_side_channels, sized_like_source, split_side_by_side
from cyclegan_pl.data.readers import ImageReader, as_reader
from cyclegan_pl.data.transforms import ImageTransform
from cyclegan_pl.data.unpaired import draw_b_index
from cyclegan_pl.errors import BadImageError, DataLayoutError, OptionError

#: Builds an item from (epoch, index, record).
Assemble = Callable[[int, int, bytes], Dict[str, Any]]

_BAD_IMAGE_ADVICE = "Or convert the folders again with `optimize --skip_bad_images true`, which leaves such files out."


class ChunkRecords:
    """Random access to a split's records (``records[i]`` is the bytes of item ``i``).

    The LitData reader is opened in each process on first use, so this object travels to loader
    workers without LitData's open files and threads.
    """

    def __init__(self, split: ChunkSplit, cache_dir: Optional[str] = None, max_cache_size: Optional[str] = None):
        self.split = split
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self._reader: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return self.split.count

    def __getitem__(self, index: int) -> bytes:
        if self._reader is None or self._pid != os.getpid():
            self._reader = record_reader(self.split, self.cache_dir, self.max_cache_size)
            self._pid = os.getpid()
        try:  # (not a context manager: this runs for every item)
            return self._reader[int(index)]
        except Exception as error:
            translated = storage_error(error, self.split.location)
            if translated is None:
                raise
            raise translated from None

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "_reader": None, "_pid": -1}


def _decode(data: bytes, channels: int, path: str) -> torch.Tensor:
    try:
        return decode_image(data, channels, path)
    except BadImageError as error:
        raise error.with_advice(_BAD_IMAGE_ADVICE) from error


class UnpairedItems:
    """Unpaired items from A records: B drawn and read by random access, as :class:`UnpairedDataset` does.

    Args:
        split_a: domain A's split.
        records_b: domain B's records.
        transform: preprocessing of both images (independent crops and flips, A's first).
        channels_a: 3 (RGB) or 1 (gray) for A.
        channels_b: 3 or 1 for B.
        serial: B image ``index mod |B|`` instead of a random one.
        seed: base seed of the per-item draws.
    """

    def __init__(
        self,
        split_a: ChunkSplit,
        records_b: ChunkRecords,
        transform: ImageTransform,
        channels_a: int,
        channels_b: int,
        serial: bool,
        seed: int,
    ) -> None:
        self.split_a, self.records_b = split_a, records_b
        self.transform = transform
        self.channels_a, self.channels_b = channels_a, channels_b
        self.serial, self.seed = serial, seed

    def __call__(self, epoch: int, index: int, record_a: bytes) -> Dict[str, Any]:
        generator = item_generator(self.seed, epoch, index)
        split_b = self.records_b.split
        b_index = draw_b_index(index, split_b.count, generator, self.serial)
        name_a, data_a = unpack_record(record_a, 2, self.split_a.item_name(index % self.split_a.count))
        name_b, data_b = unpack_record(self.records_b[b_index], 2, split_b.item_name(b_index))
        path_a, path_b = join(self.split_a.location, decode_name(name_a)), join(split_b.location, decode_name(name_b))
        image_a = _decode(data_a, self.channels_a, path_a)
        image_b = _decode(data_b, self.channels_b, path_b)
        return {
            "A": self.transform(image_a, generator),
            "B": self.transform(image_b, generator),
            "A_paths": path_a,
            "B_paths": path_b,
        }


class PairedItems:
    """Aligned pairs from pair records, as :class:`PairedDataset` makes them.

    Args:
        split: the pairs' split (side-by-side files or separate A and B files).
        transform: preprocessing applied identically to both images.
        direction: ``AtoB`` or ``BtoA``.
        input_nc: channels of the input (3 or 1).
        output_nc: channels of the target.
        seed: base seed of the per-item draws.
    """

    def __init__(
        self, split: ChunkSplit, transform: ImageTransform, direction: str, input_nc: int, output_nc: int, seed: int
    ) -> None:
        self.split = split
        self.transform = transform
        self.direction = direction
        self.input_nc, self.output_nc = input_nc, output_nc
        self.seed = seed

    def __call__(self, epoch: int, index: int, record: bytes) -> Dict[str, Any]:
        where = self.split.item_name(index)
        if self.split.content == "separate":
            name_a, name_b, data_a, data_b = unpack_record(record, 4, where)
            path_a = join(self.split.location, "A/" + decode_name(name_a))
            path_b = join(self.split.location, "B/" + decode_name(name_b))
            if self.direction == "BtoA":
                (data_a, path_a), (data_b, path_b) = (data_b, path_b), (data_a, path_a)
            source, target = sized_like_source(
                _decode(data_a, self.input_nc, path_a), _decode(data_b, self.output_nc, path_b)
            )
        else:
            name, data = unpack_record(record, 2, where)
            path_a = path_b = join(self.split.location, decode_name(name))
            both = _decode(data, side_by_side_channels(self.input_nc, self.output_nc), path_a)
            source, target = split_side_by_side(both, path_a, self.direction, self.input_nc, self.output_nc)
        image_a, image_b = self.transform.apply_same([source, target], item_generator(self.seed, epoch, index))
        return {"A": image_a, "B": image_b, "A_paths": path_a, "B_paths": path_b}


class StreamedItems(StreamingDataset):
    """A split streamed by ``litdata.StreamingDataset``, each record made into an item.

    Item ``i`` of the split in epoch ``e`` (the trainer's, from 0) is ``assemble(e, i, record)``.
    The LitData epoch, which its loader counts from 1, is one more.

    Args:
        split: the split streamed.
        assemble: makes the items (:class:`UnpairedItems`, :class:`PairedItems`).
        shuffle: LitData's shuffling of chunks and items (from ``seed`` and the epoch).
        seed: the shuffling's seed.
        cache_dir: where chunks of a URL are kept (default: LitData's).
        max_cache_size: how much of them (default: LitData's).
    """

    def __init__(
        self,
        split: ChunkSplit,
        assemble: Assemble,
        shuffle: bool,
        seed: int,
        cache_dir: Optional[str] = None,
        max_cache_size: Optional[str] = None,
    ) -> None:
        with storage_errors(split.location):
            super().__init__(
                split.location,
                shuffle=shuffle,
                seed=seed % 2**32,
                **streaming_options(cache_dir, max_cache_size),
            )
        self.split = split
        self.assemble = assemble

    def __getitem__(self, index: Any) -> Dict[str, Any]:
        try:
            record = super().__getitem__(index)
        except Exception as error:
            translated = storage_error(error, self.split.location)
            if translated is None:
                raise
            raise translated from None
        position = index.index if isinstance(index, ChunkedIndex) else int(index)
        return self.assemble(self.current_epoch - 1, position, record)


class ResumableStreamingLoader(StreamingDataLoader):
    """LitData's ``StreamingDataLoader``, whose epoch resumed from a checkpoint is replayed only once.

    LitData forgets that it resumed only when that epoch's iterator runs to its end, but Lightning
    stops asking for batches once it has had the loader's length: every later epoch would then
    replay the resumed epoch's remainder again. The epoch after the resumed one starts afresh here.
    """

    _resumed_epoch_started = False

    def load_state_dict(self, obj: Dict[str, Any]) -> None:
        """Restore the loader's position; stopped mid-epoch, it must be in these chunks, shuffled alike."""
        super().load_state_dict(obj)
        if not self.restore:
            return  # an epoch's end: the next epoch starts afresh, whatever changed
        saved, dataset = obj.get("dataset") or {}, self.dataset
        changes = []
        if saved.get("input_dir_url") != dataset.input_dir.url or (
            dataset.input_dir.url is None and saved.get("input_dir_path") != dataset.input_dir.path
        ):
            was = saved.get("input_dir_url") or saved.get("input_dir_path")
            changes.append(f"the chunks at {was}, not {dataset.input_dir.url or dataset.input_dir.path} (root)")
        if saved.get("seed", dataset.seed) != dataset.seed:
            changes.append(f"seed {saved['seed']}, not {dataset.seed} (seed)")
        if saved.get("shuffle", dataset.shuffle) != dataset.shuffle:
            changes.append(f"shuffle={saved['shuffle']}, not {dataset.shuffle} (serial_batches)")
        if changes:
            raise OptionError(
                f"The checkpoint stopped mid-epoch at a place in {'; '.join(changes)}: resume with the data "
                "options it was trained with, or from a checkpoint saved at the end of an epoch."
            )

    def __iter__(self) -> Iterator[Any]:
        # Decided on the first batch, as LitData's own iterator decides (iter() alone does nothing).
        if self.restore and self._resumed_epoch_started:
            self.restore = False
        self._resumed_epoch_started = self.restore
        yield from super().__iter__()


class ChunkItems(EpochDataset):
    """Map-style items of a split by random access (validation, test, sample grids).

    Args:
        length: number of items.
        records: the records item ``i`` is made from (record ``i mod len(records)``).
        assemble: makes the items (:class:`UnpairedItems`, :class:`PairedItems`: their seed is the items').
    """

    def __init__(self, length: int, records: ChunkRecords, assemble: Assemble) -> None:
        super().__init__(getattr(assemble, "seed", 0))
        self.length = length
        self.records = records
        self.assemble = assemble

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: Key) -> Dict[str, Any]:
        epoch, index = self._split_key(key)
        return self.assemble(epoch, index, self.records[index % len(self.records)])


class _StreamingOptions:
    """What both streaming data modules share (mixed in before the folder module they extend)."""

    def _check_streaming_options(self) -> None:
        hp = self.hparams  # type: ignore[attr-defined]
        refused = {
            "download": (hp.download, "chunks are made from folders with `python -m cyclegan_pl optimize`"),
            "skip_bad_images": (hp.skip_bad_images, "pass it to optimize, which then leaves unreadable files out"),
            "max_dataset_size": (hp.max_dataset_size is not None, "convert a smaller folder instead"),
            "image_mode": (
                hp.image_mode == "native",
                "chunks are decoded as 8-bit photos; train 16-bit, float or multi-band images from their folders",
            ),
            "normalization": (
                hp.normalization != "dtype",
                "chunks are decoded as 8-bit photos, mapped over 0..255; use normalization=dtype or the folders",
            ),
        }
        for option, (given, what) in refused.items():
            if given:
                raise OptionError(f"{option}={getattr(hp, option)} does not apply to streamed chunks: {what}.", option)

    def readers(self) -> Dict[str, ImageReader]:
        """Chunks hold encoded files decoded as 8-bit photos of ``input_nc``/``output_nc`` channels."""
        if self._readers is None:  # type: ignore[has-type]
            self._readers = {"A": as_reader(self.input_nc, "domain A"), "B": as_reader(self.output_nc, "domain B")}  # type: ignore[attr-defined]
        return self._readers

    @property
    def location(self) -> str:
        """The chunk root as given: a local folder or a URL."""
        return str(self.hparams.root)  # type: ignore[attr-defined]

    def layout(self) -> str:
        return f"the output of `python -m cyclegan_pl optimize` for this layout ({super().layout()})"  # type: ignore[misc]

    def hint(self) -> str:
        return "Convert the image folders with `python -m cyclegan_pl optimize --source FOLDER --output ROOT`."

    def required_folders(self) -> list:
        return []

    def prepare_data(self) -> None:
        """Nothing to download: the chunks are made by ``optimize``."""

    def setup(self, stage: Optional[str] = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in wanted.get(stage or "", ("train", "val", "test")):
            self.get_dataset(split)  # type: ignore[attr-defined]

    def _split(self, name: str, contents: tuple, what: str) -> ChunkSplit:
        location = join(self.location, name)
        if not is_url(location) and os.path.isdir(self.location) and not os.path.isdir(location):
            present = sorted(entry.name for entry in os.scandir(self.location) if entry.is_dir())
            raise DataLayoutError(
                f"Chunk folder '{self.location}' has no {name}/ ({what}); it holds "
                f"{', '.join(present) or 'no split folders'}. Expected: {self.layout()}. {self.hint()}"
            )
        return open_split(location, contents, what)

    def _has_split(self, name: str) -> bool:
        location = join(self.location, name)
        if is_url(location):
            try:
                open_split(location, ("images", "side_by_side", "separate"), name)
            except DataLayoutError:
                return False
            return True
        return os.path.isdir(location)

    def _records(self, split: ChunkSplit) -> ChunkRecords:
        hp = self.hparams  # type: ignore[attr-defined]
        return ChunkRecords(split, hp.cache_dir, hp.max_cache_size)

    def _stream(self, split: ChunkSplit, assemble: Assemble) -> StreamedItems:
        hp = self.hparams  # type: ignore[attr-defined]
        return StreamedItems(
            split,
            assemble,
            not hp.serial_batches,
            self.seed,
            hp.cache_dir,
            hp.max_cache_size,  # type: ignore[attr-defined]
        )

    def train_dataloader(self) -> DataLoader:
        # Made here, not kept from setup: LitData reads the processes' ranks when a dataset is made,
        # and only the loader is sure to be asked for once they are all running.
        dataset = self.datasets["train"] = self._build_train()  # type: ignore[attr-defined]
        hp = self.hparams  # type: ignore[attr-defined]
        loader = ResumableStreamingLoader(
            dataset,
            batch_size=hp.batch_size,
            num_workers=self.num_workers,  # type: ignore[attr-defined]
            pin_memory=hp.pin_memory and torch.cuda.is_available(),
        )
        trainer = self.trainer  # type: ignore[attr-defined]
        # The loader counts epochs itself (from 1, one per pass); start it at the trainer's, so a
        # run resumed without the loader's state (an end-of-epoch checkpoint) keeps the epochs.
        loader.current_epoch = trainer.current_epoch if trainer is not None else 0
        return loader

    def _predict_without_folder(self) -> None:
        if self.hparams.predict_dir is None:  # type: ignore[attr-defined]
            raise OptionError(
                "predict_dir=None: streamed chunks are read for training and evaluation; predict translates a "
                "folder of images: pass predict_dir=FOLDER (or use `python -m cyclegan_pl translate`).",
                option="predict_dir",
            )


class StreamingUnpairedDataModule(_StreamingOptions, UnpairedDataModule):
    """:class:`UnpairedDataModule`'s items streamed from LitData chunks (``python -m cyclegan_pl optimize``).

    ``root`` holds the converted ``trainA``, ``trainB``, ``testA``, ``testB`` (and ``valA``,
    ``valB``) splits. Batches are the folder module's (uint8 ``A``/``B``, ``A_paths``/``B_paths``),
    and so are the options, except ``download``, ``skip_bad_images`` and ``max_dataset_size``, which
    belong to ``optimize`` here. An epoch is one pass over domain A (see the module doc).

    Args:
        root: The converted dataset: a local folder or an s3:// or gs:// URL (object-store URLs are not
            tested in CI; credentials come from the environment, as for the AWS or Google tools).
        cache_dir: Where chunks read from a URL are kept (default: LitData's, ~/.lightning/chunks).
        max_cache_size: How much of that folder to use, e.g. 100GB (default: LitData's).
    """

    def __init__(
        self, root: str, *, cache_dir: Optional[str] = None, max_cache_size: Optional[str] = None, **kwargs: Any
    ) -> None:
        super().__init__(root, **kwargs)
        self._check_streaming_options()

    def _unpaired_items(self, split: str, transform: ImageTransform, serial: bool) -> tuple:
        split_a = self._split(f"{split}A", ("images",), f"domain A {split} images")
        split_b = self._split(f"{split}B", ("images",), f"domain B {split} images")
        items = UnpairedItems(
            split_a, self._records(split_b), transform, self.input_nc, self.output_nc, serial, self.seed
        )
        return split_a, items

    def _build_train(self) -> Dataset:
        split_a, items = self._unpaired_items("train", self.train_transform, self.hparams.serial_batches)
        return self._stream(split_a, items)

    def _build_eval(self, split: str) -> Dataset:
        if split == "val":
            if self._has_split("valA") and self._has_split("valB"):
                split = "val"
            else:
                self._say_val_is_test("testA/testB")
                split = "test"
        split_a, items = self._unpaired_items(split, self.eval_transform, serial=True)
        count_b = items.records_b.split.count
        return ChunkItems(max(split_a.count, count_b), self._records(split_a), items)

    def _predict_source(self) -> tuple:
        self._predict_without_folder()
        if self.predict_direction == "AtoB":
            return None, self.input_nc, None, "AtoB"
        return None, self.output_nc, None, "BtoA"


class StreamingPairedDataModule(_StreamingOptions, PairedDataModule):
    """:class:`PairedDataModule`'s items streamed from LitData chunks (``python -m cyclegan_pl optimize``).

    ``root`` holds the converted ``train``, ``test`` (and ``val``) splits, each of side-by-side
    A|B files or of separate A and B files. Batches and options are the folder module's, except
    ``download``, ``skip_bad_images`` and ``max_dataset_size`` (see :class:`StreamingUnpairedDataModule`).

    Args:
        root: The converted dataset: a local folder or an s3:// or gs:// URL (not tested in CI).
        cache_dir: Where chunks read from a URL are kept (default: LitData's, ~/.lightning/chunks).
        max_cache_size: How much of that folder to use, e.g. 100GB (default: LitData's).
    """

    def __init__(
        self, root: str, *, cache_dir: Optional[str] = None, max_cache_size: Optional[str] = None, **kwargs: Any
    ) -> None:
        super().__init__(root, **kwargs)
        self._check_streaming_options()

    def _pairs(self, split: str, transform: ImageTransform) -> tuple:
        chunk_split = self._split(split, ("side_by_side", "separate"), f"{split} pairs")
        items = PairedItems(chunk_split, transform, self.direction, self.input_nc, self.output_nc, self.seed)
        return chunk_split, items

    def _build_train(self) -> Dataset:
        return self._stream(*self._pairs("train", self.train_transform))

    def _build_eval(self, split: str) -> Dataset:
        if split == "val" and not self._has_split("val"):
            self._say_val_is_test("test")
            split = "test"
        chunk_split, items = self._pairs(split, self.eval_transform)
        return ChunkItems(chunk_split.count, self._records(chunk_split), items)

    def _predict_source(self) -> tuple:
        self._predict_without_folder()
        return None, self.input_nc, None, "AtoB"


__all__: List[str] = [
    "ChunkItems",
    "ChunkRecords",
    "PairedItems",
    "ResumableStreamingLoader",
    "StreamedItems",
    "StreamingPairedDataModule",
    "StreamingUnpairedDataModule",
    "UnpairedItems",
]
