"""Map-style datasets for unpaired, paired and single-folder images, and their samplers.

Determinism and exact resume
----------------------------
Every random choice of an item (the B index of an unpaired item, its crop and flip) comes from a
fresh ``torch.Generator`` seeded with a hash of ``(seed, epoch, index)`` (:func:`item_generator`).
No state lives in worker processes, so resuming at epoch ``e`` reproduces the pairs and jitter of
an uninterrupted run without saving any RNG state, whatever the number of workers.

The epoch reaches the workers through the indices: :class:`EpochSampler` (used by the training
loader) yields ``(epoch, index)`` tuples and has ``set_epoch``, which Lightning calls at the start
of every epoch (also through the ``DistributedSamplerWrapper`` it puts around the sampler under
DDP). Persistent workers hold a copy of the dataset made once, so a ``set_epoch`` on the main
process' dataset would never reach them; an epoch carried by each index always does. Indexing a
dataset with a plain ``int`` uses the epoch given to its own ``set_epoch`` (default 0).

Bad images
----------
A file that cannot be decoded raises :class:`~cyclegan_pl.data.image.BadImageError` naming it.
With ``skip_bad_images=True`` a dataset (1) checks every file cheaply when it is built
(:func:`~cyclegan_pl.data.image.quick_check`: header, PNG CRCs, JPEG end marker), drops the bad
ones and reports them in a single warning with their count and names, and (2) if a file still fails
when it is decoded, uses the next readable file of the same list instead (deterministic: the next
index, wrapping around) and warns once for that file.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, TypeVar, Union

import torch
from torch.utils.data import BatchSampler, Dataset, Sampler

from cyclegan_pl.data.image import (
    BadImageError,
    list_images,
    match_channels,
    quick_check,
    read_image,
    read_image_size,
    split_halves,
)
from cyclegan_pl.data.transforms import Geometry, ImageTransform, apply_geometry, to_float
from cyclegan_pl.seeding import hash_seed

PathLike = Union[str, Path]
T = TypeVar("T")
Key = Union[int, Tuple[int, int]]

#: at most this many file names are listed in one warning or error
_MAX_NAMES = 20


class DataLayoutError(FileNotFoundError):
    """A dataset folder is missing, empty or laid out differently from what the loader expects."""


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator seeded from ``(seed, epoch, index)`` only: same triple, same random draws."""
    return torch.Generator().manual_seed(hash_seed(seed, epoch, index))


def require_images(
    folder: PathLike,
    what: str = "images",
    expected: Optional[str] = None,
    hint: Optional[str] = None,
    max_size: Optional[int] = None,
) -> List[Path]:
    """The sorted image files under ``folder`` (recursive), or a :class:`DataLayoutError`.

    Args:
        folder: the folder to list (a single image file is returned as a one-item list).
        what: what the folder should hold, for the message (e.g. "domain A training images").
        expected: the expected layout, appended to the message.
        hint: how to get the data (e.g. the download command), appended to the message.
        max_size: keep only the first ``max_size`` files.
    """
    folder = Path(folder)
    if folder.is_file():
        files = [folder]
    elif not folder.is_dir():
        raise DataLayoutError(_layout_message(f"Folder '{folder}' ({what}) does not exist.", expected, hint))
    else:
        files = list_images(folder)
        if not files:
            raise DataLayoutError(
                _layout_message(
                    f"Folder '{folder}' ({what}) holds no image files (.jpg, .png, .bmp, .tif, .webp).",
                    expected,
                    hint,
                )
            )
    return files[:max_size] if max_size is not None else files


def _layout_message(problem: str, expected: Optional[str], hint: Optional[str]) -> str:
    parts = [problem]
    if expected:
        parts.append(f"Expected layout: {expected}.")
    if hint:
        parts.append(hint)
    return " ".join(parts)


def _names(paths: Sequence[str]) -> str:
    shown = ", ".join(f"'{p}'" for p in paths[:_MAX_NAMES])
    more = len(paths) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _warn(message: str) -> None:
    try:
        from lightning.pytorch.utilities import rank_zero_warn
    except ImportError:  # pragma: no cover - lightning is a dependency
        warnings.warn(message, stacklevel=3)
    else:
        rank_zero_warn(message)


class _BadImageSkipper:
    """The ``skip_bad_images`` bookkeeping shared by the datasets (see module doc)."""

    def __init__(self, skip_bad_images: bool) -> None:
        self.skip_bad_images = skip_bad_images
        self.skipped: Dict[str, str] = {}
        self._bad_indices: Dict[str, Set[int]] = {}

    def drop_unreadable(self, groups: Sequence[List[Path]], name: str) -> List[List[Path]]:
        """Drop the entries (aligned across ``groups``) whose files fail the quick check."""
        if not self.skip_bad_images:
            return [list(g) for g in groups]
        bad: Dict[str, str] = {}
        keep = []
        for i in range(len(groups[0])):
            problems = [(str(g[i]), quick_check(g[i])) for g in groups]
            problems = [(p, why) for p, why in problems if why is not None]
            bad.update(problems)
            if not problems:
                keep.append(i)
        if bad:
            self.skipped.update(bad)
            names = list(bad)
            _warn(
                f"skip_bad_images: skipping {len(names)} unreadable image file(s) of the {name}: "
                f"{_names(names)}."
            )
        return [[g[i] for i in keep] for g in groups]

    def first_readable(self, key: str, size: int, index: int, load: Callable[[int], T]) -> T:
        """``load(index)``, or under ``skip_bad_images`` ``load`` of the next readable index."""
        bad = self._bad_indices.setdefault(key, set())
        for step in range(size):
            candidate = (index + step) % size
            if candidate in bad:
                continue
            try:
                return load(candidate)
            except BadImageError as error:
                if not self.skip_bad_images:
                    raise
                bad.add(candidate)
                self.skipped[error.path] = error.reason
                warnings.warn(
                    f"skip_bad_images: skipping unreadable image '{error.path}' ({error.reason}); "
                    f"{len(self.skipped)} file(s) skipped so far in this process.",
                    stacklevel=2,
                )
        raise BadImageError(key, "no readable image left in this list")


class _EpochDataset(Dataset):
    """Shared (seed, epoch, index) handling."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch used when the dataset is indexed with plain integers."""
        self.epoch = int(epoch)

    def _split_key(self, key: Key) -> Tuple[int, int]:
        if isinstance(key, tuple):
            epoch, index = int(key[0]), int(key[1])
        else:
            epoch, index = self.epoch, int(key)
        length = len(self)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError(f"index {index} out of range for a dataset of {length} items")
        return epoch, index


class UnpairedDataset(_EpochDataset):
    """Two unaligned image folders (CycleGAN).

    An epoch has ``max(|A|, |B|)`` items. Item ``i`` holds A image ``i mod |A|`` and a B image
    drawn at random from ``(seed, epoch, i)``, or B image ``i mod |B|`` when ``serial`` is set.

    Args:
        dir_a: folder of domain A images (searched recursively).
        dir_b: folder of domain B images.
        transform: preprocessing applied to both (independent random crops and flips, as in the
            reference).
        channels_a: 3 (RGB) or 1 (grayscale) for A images.
        channels_b: 3 or 1 for B images.
        serial: take B in order instead of at random.
        max_size: keep only the first ``max_size`` files of each folder.
        seed: base seed of the per-item random draws.
        skip_bad_images: skip unreadable files instead of raising (see module doc).
        files_a: the A file list, when already listed (``dir_a`` is then only used in messages).
        files_b: the B file list, likewise.
    """

    def __init__(
        self,
        dir_a: PathLike,
        dir_b: PathLike,
        transform: ImageTransform,
        channels_a: int = 3,
        channels_b: int = 3,
        serial: bool = False,
        max_size: Optional[int] = None,
        seed: int = 0,
        skip_bad_images: bool = False,
        files_a: Optional[List[Path]] = None,
        files_b: Optional[List[Path]] = None,
    ) -> None:
        super().__init__(seed)
        self.dir_a, self.dir_b = Path(dir_a), Path(dir_b)
        files_a = files_a if files_a is not None else require_images(dir_a, "domain A images")
        files_b = files_b if files_b is not None else require_images(dir_b, "domain B images")
        self.skipper = _BadImageSkipper(skip_bad_images)
        (files_a,) = self.skipper.drop_unreadable([files_a], f"folder '{self.dir_a}'")
        (files_b,) = self.skipper.drop_unreadable([files_b], f"folder '{self.dir_b}'")
        self.files_a = files_a[:max_size] if max_size is not None else files_a
        self.files_b = files_b[:max_size] if max_size is not None else files_b
        for files, folder in ((self.files_a, self.dir_a), (self.files_b, self.dir_b)):
            if not files:
                raise DataLayoutError(f"Folder '{folder}' has no readable image files left.")
        self.transform = transform
        self.channels_a, self.channels_b = channels_a, channels_b
        self.serial = serial

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def b_index(self, index: int, epoch: Optional[int] = None) -> int:
        """The B file index paired with item ``index`` in ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        return self._draw_b_index(index, item_generator(self.seed, epoch, index))

    def _draw_b_index(self, index: int, generator: torch.Generator) -> int:
        if self.serial:
            return index % len(self.files_b)
        return int(torch.randint(len(self.files_b), (1,), generator=generator))

    def __getitem__(self, key: Key) -> Dict[str, object]:
        epoch, index = self._split_key(key)
        # One generator per item, drawn in a fixed order: B index, then A's and B's jitter.
        generator = item_generator(self.seed, epoch, index)
        count_a, count_b = len(self.files_a), len(self.files_b)
        b_index = self._draw_b_index(index, generator)
        a_index, image_a = self.skipper.first_readable(
            "A", count_a, index % count_a, lambda i: (i, read_image(self.files_a[i], self.channels_a))
        )
        b_index, image_b = self.skipper.first_readable(
            "B", count_b, b_index, lambda i: (i, read_image(self.files_b[i], self.channels_b))
        )
        return {
            "A": self.transform(image_a, generator),
            "B": self.transform(image_b, generator),
            "A_paths": str(self.files_a[a_index]),
            "B_paths": str(self.files_b[b_index]),
        }


class PairedDataset(_EpochDataset):
    """Aligned pairs (pix2pix): side-by-side ``A|B`` files, or ``A/`` and ``B/`` sub-folders.

    The layout is detected per split folder: when ``folder/A`` and ``folder/B`` both exist, files
    are paired by their path relative to those folders (the extension may differ); otherwise
    every image in ``folder`` holds A on its left half and B on its right half. Both halves get
    the same crop and flip. After ``direction``, ``A`` is the network input and ``B`` the target.

    Args:
        folder: the split folder (e.g. ``data/facades/train``).
        transform: preprocessing applied identically to both halves.
        direction: ``"AtoB"`` or ``"BtoA"`` (swap the halves / sub-folders).
        input_nc: channels of the input (3 or 1).
        output_nc: channels of the target (3 or 1).
        max_size: keep only the first ``max_size`` pairs.
        seed: base seed of the per-item random draws.
        skip_bad_images: skip unreadable files instead of raising (see module doc).
    """

    def __init__(
        self,
        folder: PathLike,
        transform: ImageTransform,
        direction: str = "AtoB",
        input_nc: int = 3,
        output_nc: int = 3,
        max_size: Optional[int] = None,
        seed: int = 0,
        skip_bad_images: bool = False,
    ) -> None:
        super().__init__(seed)
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        self.folder = Path(folder)
        self.direction = direction
        self.separate = is_separate_pair_layout(self.folder)
        self.skipper = _BadImageSkipper(skip_bad_images)
        if self.separate:
            files_a, files_b = pair_files(self.folder / "A", self.folder / "B")
            files_a, files_b = self.skipper.drop_unreadable([files_a, files_b], f"folder '{self.folder}'")
        else:
            (files_a,) = self.skipper.drop_unreadable(
                [require_images(self.folder, "side-by-side A|B images")], f"folder '{self.folder}'"
            )
            files_b = files_a
        if not files_a:
            raise DataLayoutError(f"Folder '{self.folder}' has no readable image files left.")
        if max_size is not None:
            files_a, files_b = files_a[:max_size], files_b[:max_size]
        self.files_a, self.files_b = files_a, files_b
        self.transform = transform
        self.input_nc, self.output_nc = input_nc, output_nc

    def __len__(self) -> int:
        return len(self.files_a)

    def _load(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(input, target) uint8 images of pair ``index``, after the direction."""
        if self.separate:
            swap = self.direction == "BtoA"
            source_path = self.files_b[index] if swap else self.files_a[index]
            target_path = self.files_a[index] if swap else self.files_b[index]
            source = read_image(source_path, self.input_nc)
            target = read_image(target_path, self.output_nc)
            if target.shape[-2:] != source.shape[-2:]:
                target = apply_geometry(target, Geometry(resize=tuple(source.shape[-2:])))
            return source, target
        both = read_image(self.files_a[index], 1 if max(self.input_nc, self.output_nc) == 1 else 3)
        left, right = split_halves(both)
        source, target = (right, left) if self.direction == "BtoA" else (left, right)
        return match_channels(source, self.input_nc), match_channels(target, self.output_nc)

    def paths(self, index: int) -> Tuple[str, str]:
        """(input, target) file paths of pair ``index`` after the direction."""
        a, b = str(self.files_a[index]), str(self.files_b[index])
        return (b, a) if self.direction == "BtoA" and self.separate else (a, b)

    def __getitem__(self, key: Key) -> Dict[str, object]:
        epoch, index = self._split_key(key)
        index, (source, target) = self.skipper.first_readable(
            "pairs", len(self), index, lambda i: (i, self._load(i))
        )
        image_a, image_b = self.transform.apply_same(
            [source, target], item_generator(self.seed, epoch, index)
        )
        path_a, path_b = self.paths(index)
        return {"A": image_a, "B": image_b, "A_paths": path_a, "B_paths": path_b}


def is_separate_pair_layout(folder: PathLike) -> bool:
    """Whether a paired split folder uses ``A/`` + ``B/`` sub-folders."""
    folder = Path(folder)
    return (folder / "A").is_dir() and (folder / "B").is_dir()


def pair_files(dir_a: Path, dir_b: Path) -> Tuple[List[Path], List[Path]]:
    """A and B files matched by relative path without extension; unmatched files are an error."""
    files_a = require_images(dir_a, "paired A images")
    files_b = require_images(dir_b, "paired B images")

    def stem(path: Path, root: Path) -> str:
        return path.relative_to(root).with_suffix("").as_posix()

    by_stem_b = {stem(p, dir_b): p for p in files_b}
    missing = [str(p) for p in files_a if stem(p, dir_a) not in by_stem_b]
    if missing:
        raise DataLayoutError(
            f"{len(missing)} file(s) in '{dir_a}' have no file of the same name in '{dir_b}': "
            f"{_names(missing)}. Paired A/B folders must hold files with matching names."
        )
    return files_a, [by_stem_b[stem(p, dir_a)] for p in files_a]


class ImageFolderDataset(Dataset):
    """Every image of a folder (recursively) or one image file, at its own size (prediction).

    Items are ``{"image": (C, H, W) float in [-1, 1], "path": str, "relpath": str}``; ``relpath``
    is relative to the folder (the file name for a single file), so outputs can mirror the input
    tree. Only normalisation is applied.

    Args:
        path: a folder or an image file.
        channels: 3 (RGB) or 1 (grayscale).
        half: ``"left"`` or ``"right"`` to keep one half of side-by-side A|B images, else None.
        skip_bad_images: drop files that fail the quick check, with one warning (a prediction
            has no substitute for a file that then fails to decode: that still raises).
        max_size: keep only the first ``max_size`` files.
        what: what the folder holds, for error messages.
        expected: expected layout, for error messages.
        hint: how to get the data, for error messages.
    """

    def __init__(
        self,
        path: PathLike,
        channels: int = 3,
        half: Optional[str] = None,
        skip_bad_images: bool = False,
        max_size: Optional[int] = None,
        what: str = "images to predict",
        expected: Optional[str] = None,
        hint: Optional[str] = None,
    ) -> None:
        if half not in (None, "left", "right"):
            raise ValueError(f"half must be None, 'left' or 'right', got {half!r}")
        self.root = Path(path)
        files = require_images(self.root, what, expected, hint)
        (files,) = _BadImageSkipper(skip_bad_images).drop_unreadable([files], f"'{self.root}'")
        if not files:
            raise DataLayoutError(f"'{self.root}' has no readable image files left.")
        self.files = files[:max_size] if max_size is not None else files
        self.channels = channels
        self.half = half
        self._sizes: Optional[List[Tuple[int, int]]] = None

    def __len__(self) -> int:
        return len(self.files)

    def relpath(self, index: int) -> str:
        if self.root.is_file():
            return self.root.name
        return self.files[index].relative_to(self.root).as_posix()

    def sizes(self) -> List[Tuple[int, int]]:
        """(height, width) of every item, from the file headers (computed once)."""
        if self._sizes is None:
            sizes = [read_image_size(p) for p in self.files]
            if self.half is not None:
                sizes = [(h, w // 2) for h, w in sizes]
            self._sizes = sizes
        return self._sizes

    def __getitem__(self, index: int) -> Dict[str, object]:
        image = read_image(self.files[index], self.channels)
        if self.half is not None:
            left, right = split_halves(image)
            image = left if self.half == "left" else right
        return {"image": to_float(image), "path": str(self.files[index]), "relpath": self.relpath(index)}


class EpochSampler(Sampler[Tuple[int, int]]):
    """Yields ``(epoch, index)`` for every index, shuffled from ``(seed, epoch)`` when asked.

    Lightning calls :meth:`set_epoch` before each epoch (forwarded through its distributed
    wrapper under DDP, which then shards this sampler's order), so the epoch travels with each
    index into the worker processes.

    Args:
        length: number of items.
        shuffle: random order (from ``seed`` and the epoch) instead of ``0..length-1``.
        seed: base seed of the order.
    """

    def __init__(self, length: int, shuffle: bool = True, seed: int = 0) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> List[int]:
        """The item order of the current epoch."""
        if not self.shuffle:
            return list(range(self.length))
        generator = item_generator(self.seed, self.epoch, -1)
        return torch.randperm(self.length, generator=generator).tolist()

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, index) for index in self.order()])

    def __len__(self) -> int:
        return self.length


class SizeGroupedBatchSampler(BatchSampler):
    """Batches of indices whose images have the same size, in file order otherwise.

    Indices are taken in the sampler's order; a batch is emitted as soon as ``batch_size``
    indices of one size are pending, and the incomplete batches left at the end follow in the
    order of their first index. With ``batch_size=1`` this is exactly the sampler's order. It
    subclasses ``BatchSampler`` with a ``sampler`` argument so Lightning can inject its
    (distributed / index-tracking) sampler when predicting.

    Args:
        sampler: the indices (e.g. ``SequentialSampler(dataset)``).
        batch_size: images per batch.
        drop_last: drop the incomplete batches.
        sizes: ``(height, width)`` of every dataset index.
    """

    def __init__(
        self,
        sampler: Union[Sampler[int], Sequence[int]],
        batch_size: int,
        drop_last: bool = False,
        sizes: Sequence[Tuple[int, int]] = (),
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.sizes = list(sizes)

    def __iter__(self) -> Iterator[List[int]]:
        pending: Dict[Tuple[int, int], List[int]] = {}
        first_position: Dict[Tuple[int, int], int] = {}
        for position, index in enumerate(self.sampler):
            size = tuple(self.sizes[index])
            bucket = pending.setdefault(size, [])
            if not bucket:
                first_position[size] = position
            bucket.append(index)
            if len(bucket) == self.batch_size:
                yield bucket
                pending[size] = []
        if self.drop_last:
            return
        leftovers = [(first_position[size], bucket) for size, bucket in pending.items() if bucket]
        for _, bucket in sorted(leftovers, key=lambda item: item[0]):
            yield bucket

    def __len__(self) -> int:
        counts: Dict[Tuple[int, int], int] = {}
        for index in self.sampler:
            size = tuple(self.sizes[index])
            counts[size] = counts.get(size, 0) + 1
        if self.drop_last:
            return sum(c // self.batch_size for c in counts.values())
        return sum(math.ceil(c / self.batch_size) for c in counts.values())
