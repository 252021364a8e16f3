"""Index samplers: epochs carried with every index, and batches of equal-size images."""

from __future__ import annotations

import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import BatchSampler, Sampler

from cyclegan_pl.data.base import item_generator


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
    (distributed / index-tracking) sampler when predicting; Lightning then rebuilds it from
    ``(sampler, batch_size, drop_last)`` alone, so the sizes default to the sampler's dataset's.

    Args:
        sampler: the indices (e.g. ``SequentialSampler(dataset)``).
        batch_size: images per batch.
        drop_last: drop the incomplete batches.
        sizes: ``(height, width)`` of every dataset index (default: ``sampler.data_source.sizes()``).
    """

    def __init__(
        self,
        sampler: Union[Sampler[int], Sequence[int]],
        batch_size: int,
        drop_last: bool = False,
        sizes: Optional[Sequence[Tuple[int, int]]] = None,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if sizes is None:
            dataset = getattr(sampler, "data_source", None)
            if not hasattr(dataset, "sizes"):
                raise ValueError("SizeGroupedBatchSampler needs `sizes` or a sampler over a dataset with sizes()")
            sizes = dataset.sizes()
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
