"""Two unaligned image folders: the CycleGAN and CUT training data."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch

from cyclegan_pl.data.base import BadImageSkipper, EpochDataset, Key, item_generator
from cyclegan_pl.data.image import require_images
from cyclegan_pl.data.readers import ImageReader, as_reader
from cyclegan_pl.data.transforms import ImageTransform
from cyclegan_pl.errors import DataLayoutError
from cyclegan_pl.seeding import hash_seed

PathLike = Union[str, Path]


class UnpairedDataset(EpochDataset):
    """Two unaligned image folders (CycleGAN).

    An epoch has ``max(|A|, |B|)`` items. Item ``i`` holds A image ``i mod |A|`` and a B image
    drawn at random from ``(seed, epoch, i)``, or B image ``i mod |B|`` when ``serial`` is set.

    Two options serve the CUT-family recipes (DCLGAN, UNSB; docs/method.md#data-of-the-cut-family):
    ``transform_from_epoch`` switches to another transform from an epoch on (the authors resize
    straight to the crop size in the learning-rate decay half), and ``second_a`` adds ``A2``, a
    domain-A image independent of ``A`` (UNSB's second data loader).

    Args:
        dir_a: folder of domain A images (searched recursively).
        dir_b: folder of domain B images.
        transform: preprocessing applied to both (independent random crops and flips, as in the
            reference).
        channels_a: how A images are read: 3 (RGB) or 1 (grayscale) 8-bit photos, or an
            :class:`~cyclegan_pl.data.readers.ImageReader` (native reading: any bands and dtype).
        channels_b: likewise for B images.
        serial: take B in order instead of at random.
        max_size: keep only the first ``max_size`` files of each folder.
        seed: base seed of the per-item random draws.
        skip_bad_images: skip unreadable files instead of raising (see module doc).
        files_a: the A file list, when already listed (``dir_a`` is then only used in messages).
        files_b: the B file list, likewise.
        transform_from_epoch: ``(epoch, transform)``: items of that 0-based epoch and later are
            transformed with ``transform`` instead (``A2`` keeps ``transform``, as UNSB's second
            loader does).
        second_a: each item also holds ``A2`` and ``A2_paths``: A image ``order[i] mod |A|``, where
            ``order`` is a permutation of the epoch's items drawn from ``(seed, epoch)`` apart from
            the training order, with its own crop and flip from ``(seed, epoch, i)``. Over an epoch
            ``A2`` runs through the items in an independent random order, as a second shuffled
            loader over the same folders would (in order with ``serial``).
    """

    def __init__(
        self,
        dir_a: PathLike,
        dir_b: PathLike,
        transform: ImageTransform,
        channels_a: Union[int, ImageReader] = 3,
        channels_b: Union[int, ImageReader] = 3,
        serial: bool = False,
        max_size: Optional[int] = None,
        seed: int = 0,
        skip_bad_images: bool = False,
        files_a: Optional[List[Path]] = None,
        files_b: Optional[List[Path]] = None,
        transform_from_epoch: Optional[Tuple[int, ImageTransform]] = None,
        second_a: bool = False,
    ) -> None:
        super().__init__(seed)
        self.dir_a, self.dir_b = Path(dir_a), Path(dir_b)
        files_a = files_a if files_a is not None else require_images(dir_a, "domain A images")
        files_b = files_b if files_b is not None else require_images(dir_b, "domain B images")
        self.skipper = BadImageSkipper(skip_bad_images)
        (files_a,) = self.skipper.drop_unreadable([files_a], f"folder '{self.dir_a}'")
        (files_b,) = self.skipper.drop_unreadable([files_b], f"folder '{self.dir_b}'")
        self.files_a = files_a[:max_size] if max_size is not None else files_a
        self.files_b = files_b[:max_size] if max_size is not None else files_b
        for files, folder in ((self.files_a, self.dir_a), (self.files_b, self.dir_b)):
            if not files:
                raise DataLayoutError(f"Folder '{folder}' has no readable image files left.")
        self.transform = transform
        self.read_a = as_reader(channels_a, f"'{self.dir_a}'")
        self.read_b = as_reader(channels_b, f"'{self.dir_b}'")
        self.serial = serial
        self.transform_from_epoch = transform_from_epoch
        self.second_a = second_a
        self._second_order: Tuple[int, Optional[torch.Tensor]] = (-1, None)

    def transform_for(self, epoch: int) -> ImageTransform:
        """The transform of A and B in ``epoch`` (see ``transform_from_epoch``)."""
        if self.transform_from_epoch is not None and epoch >= self.transform_from_epoch[0]:
            return self.transform_from_epoch[1]
        return self.transform

    def second_a_index(self, index: int, epoch: Optional[int] = None) -> int:
        """The A file index of item ``index``'s ``A2`` in ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self.serial:  # a second loader in serial order runs through the items in order too
            return index % len(self.files_a)
        cached_epoch, order = self._second_order
        if cached_epoch != epoch or order is None:
            generator = torch.Generator().manual_seed(hash_seed(self.seed, epoch, -1, _SECOND_A_STREAM))
            order = torch.randperm(len(self), generator=generator)
            self._second_order = (epoch, order)
        return int(order[index]) % len(self.files_a)

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def b_index(self, index: int, epoch: Optional[int] = None) -> int:
        """The B file index paired with item ``index`` in ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        return self._draw_b_index(index, item_generator(self.seed, epoch, index))

    def _draw_b_index(self, index: int, generator: torch.Generator) -> int:
        return draw_b_index(index, len(self.files_b), generator, self.serial)

    def __getitem__(self, key: Key) -> Dict[str, object]:
        epoch, index = self._split_key(key)
        # One generator per item, drawn in a fixed order: B index, then A's and B's jitter.
        generator = item_generator(self.seed, epoch, index)
        count_a, count_b = len(self.files_a), len(self.files_b)
        b_index = self._draw_b_index(index, generator)
        a_index, image_a = self.skipper.first_readable(
            "A", count_a, index % count_a, lambda i: (i, self.read_a(self.files_a[i]))
        )
        b_index, image_b = self.skipper.first_readable(
            "B", count_b, b_index, lambda i: (i, self.read_b(self.files_b[i]))
        )
        transform = self.transform_for(epoch)
        item = {
            "A": transform(image_a, generator),
            "B": transform(image_b, generator),
            "A_paths": str(self.files_a[a_index]),
            "B_paths": str(self.files_b[b_index]),
        }
        if self.second_a:
            second_index, image_a2 = self.skipper.first_readable(
                "A", count_a, self.second_a_index(index, epoch), lambda i: (i, self.read_a(self.files_a[i]))
            )
            jitter = torch.Generator().manual_seed(hash_seed(self.seed, epoch, index, _SECOND_A_STREAM))
            item["A2"] = self.transform(image_a2, jitter)
            item["A2_paths"] = str(self.files_a[second_index])
        return item


def draw_b_index(index: int, count_b: int, generator: torch.Generator, serial: bool = False) -> int:
    """The B image of unpaired item ``index``: ``index mod count_b`` when ``serial``, else a uniform
    draw from the item's generator (the first draw of that generator; the jitter of A, then of B,
    follows). The folder and the streamed datasets pair their items through this one function.
    """
    if serial:
        return index % count_b
    return int(torch.randint(count_b, (1,), generator=generator))


# Distinguishes the draws of A2 (its order, its jitter) from the item's own (seed, epoch, index) ones.
_SECOND_A_STREAM = 2
