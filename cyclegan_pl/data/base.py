"""What the datasets share: per-item random streams, epochs, and skipping unreadable images.

Determinism and exact resume
----------------------------
Every random choice of an item (the B index of an unpaired item, its crop and flip) comes from a
fresh ``torch.Generator`` seeded with a hash of ``(seed, epoch, index)`` (:func:`item_generator`).
No state lives in worker processes, so resuming at epoch ``e`` reproduces the pairs and jitter of
an uninterrupted run without saving any RNG state, whatever the number of workers.

The epoch reaches the workers through the indices: :class:`~cyclegan_pl.data.samplers.EpochSampler`
(used by the training loader) yields ``(epoch, index)`` tuples and has ``set_epoch``, which
Lightning calls at the start of every epoch (also through the ``DistributedSamplerWrapper`` it
puts around the sampler under DDP). Persistent workers hold a copy of the dataset made once, so a
``set_epoch`` on the main process' dataset would never reach them; an epoch carried by each index
always does. Indexing a dataset with a plain ``int`` uses the epoch given to its own
``set_epoch`` (default 0).

Bad images
----------
A file that cannot be decoded raises :class:`~cyclegan_pl.errors.BadImageError` naming it.
With ``skip_bad_images=True`` a dataset (1) checks every file cheaply when it is built
(:func:`~cyclegan_pl.data.image.quick_check`: header, PNG CRCs, JPEG end marker), drops the bad
ones and reports them in a single warning with their count and names, and (2) if a file still fails
when it is decoded, uses the next readable file of the same list instead (deterministic: the next
index, wrapping around) and warns once for that file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Set, Tuple, TypeVar, Union

import torch
from torch.utils.data import Dataset

from cyclegan_pl.data.image import quick_check
from cyclegan_pl.errors import BadImageError
from cyclegan_pl.seeding import hash_seed

T = TypeVar("T")
Key = Union[int, Tuple[int, int]]

#: at most this many file names are listed in one warning or error
_MAX_NAMES = 20


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator seeded from ``(seed, epoch, index)`` only: same triple, same random draws."""
    return torch.Generator().manual_seed(hash_seed(seed, epoch, index))


def format_names(paths: Sequence[str]) -> str:
    shown = ", ".join(f"'{p}'" for p in paths[:_MAX_NAMES])
    more = len(paths) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def warn_once_per_rank(message: str) -> None:
    try:
        from lightning.pytorch.utilities import rank_zero_warn
    except ImportError:  # pragma: no cover - lightning is a dependency
        warnings.warn(message, stacklevel=3)
    else:
        rank_zero_warn(message)


class BadImageSkipper:
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
            warn_once_per_rank(
                f"skip_bad_images: skipping {len(names)} unreadable image file(s) of the {name}: {format_names(names)}."
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
                    # The one place where skipping is an option: say so here, not in every image error.
                    raise error.with_advice("Or set skip_bad_images=True to skip unreadable files.") from error
                bad.add(candidate)
                self.skipped[error.path] = error.reason
                warnings.warn(
                    f"skip_bad_images: skipping unreadable image '{error.path}' ({error.reason}); "
                    f"{len(self.skipped)} file(s) skipped so far in this process.",
                    stacklevel=2,
                )
        raise BadImageError(key, "no readable image left in this list")


class EpochDataset(Dataset):
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
