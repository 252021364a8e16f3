"""The pool of generated images CycleGAN trains its discriminators on (Shrivastava et al. 2017), resumable."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from cyclegan_pl.errors import OptionError

_SEED_MASK = (1 << 63) - 1
# The pools' names in checkpoints written by 0.2.0.
_LEGACY_POOL_NAMES = ("a", "b")


def pool_seed(seed: int, rank: int, index: int) -> int:
    """A distinct 63-bit seed for each (seed option, process rank, pool index)."""
    return (seed * 1_000_003 + rank * 7_919 + index) & _SEED_MASK


class ImagePool:
    """A history of generated images that the discriminator is trained on.

    Per image (docs/method.md#image-pool): while the pool holds fewer than ``size`` images, store the new
    image and return it; once full, with probability 0.5 return a stored image chosen at
    random and store the new one in its place, otherwise return the new image. ``size`` 0
    returns its input unchanged.

    All randomness comes from the pool's own ``torch.Generator``, so ``state_dict`` /
    ``load_state_dict`` make a resumed run draw exactly what an uninterrupted one would.

    Args:
        size: number of images kept; 0 turns the pool into a pass-through.
        generator: source of the pool's random choices (a CPU generator); a fresh unseeded
            one when None.
    """

    def __init__(self, size: int, generator: Optional[torch.Generator] = None) -> None:
        if size < 0:
            raise OptionError(f"pool size must be >= 0, got {size}.")
        self.size = size
        self.generator = generator if generator is not None else torch.Generator()
        self.images: List[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, images: Tensor) -> Tensor:
        """Return a batch of the same shape: new images and/or images from the history."""
        if self.size == 0:
            return images
        returned = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                returned.append(image)
                continue
            swap = torch.rand((), generator=self.generator).item() < 0.5
            if not swap:
                returned.append(image)
                continue
            slot = int(torch.randint(self.size, (), generator=self.generator).item())
            returned.append(self.images[slot].to(device=image.device, dtype=image.dtype))
            self.images[slot] = image.clone()
        return torch.stack(returned)

    def state_dict(self) -> Dict[str, Any]:
        """Stored images (moved to CPU) and the generator state."""
        return {
            "size": self.size,
            "images": [image.cpu() for image in self.images],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Dict[str, Any], restore_generator: bool = True) -> None:
        """Restore images (on CPU; moved to the incoming device when drawn) and generator state.

        Args:
            state: a dict from ``state_dict``.
            restore_generator: also restore the random stream (False keeps this pool's own).
        """
        images = list(state.get("images", []))
        if len(images) > self.size:
            rank_zero_warn(
                f"ImagePoolCallback: the checkpoint's pool holds {len(images)} images but pool_size is "
                f"{self.size}; keeping the first {self.size}."
            )
            images = images[: self.size]
        self.images = [image.clone() for image in images]
        if restore_generator and "generator" in state:
            self.generator.set_state(state["generator"])


class ImagePoolCallback(pl.Callback):
    """Give a method's discriminators a history of fakes (CycleGAN's published 50-image pools).

    At ``fit`` setup one :class:`ImagePool` per pool the module declares (``image_pools``;
    CycleGAN: ``fake_A`` and ``fake_B``) is attached to it (``attach_image_pools``). The pools'
    contents and random streams are saved in Lightning checkpoints and restored on resume. Each
    process seeds its pools from ``seed``, its global rank and the pool's place, so DDP processes
    draw independently. Models that declare no pools (Pix2Pix, CUT: their references use none)
    are left untouched, with one warning.

    A checkpoint holds rank 0's pools (Lightning saves callback state from rank 0): on a
    multi-process resume every rank restores those images, rank 0 also its random stream and
    the other ranks a fresh stream of their own, so only rank 0's draws continue exactly.

    Args:
        pool_size: images stored per direction; 0 disables the pools (D sees current fakes).
        seed: base seed of the pools' random choices (combined with the process rank).
    """

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        super().__init__()
        if pool_size < 0:
            raise OptionError(f"ImagePoolCallback pool_size must be >= 0 (0 disables it), got {pool_size}.")
        self.pool_size = pool_size
        self.seed = seed
        self.pools: Dict[str, ImagePool] = {}
        self._pending_state: Optional[Dict[str, Any]] = None
        self._rank = 0
        self._warned_no_pools = False

    def _make_pools(self, names: Sequence[str], rank: int) -> Dict[str, ImagePool]:
        return {
            name: ImagePool(self.pool_size, torch.Generator().manual_seed(pool_seed(self.seed, rank, index)))
            for index, name in enumerate(names)
        }

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        names = tuple(getattr(pl_module, "image_pools", ()))
        if not names:
            if not self._warned_no_pools:
                rank_zero_warn(
                    f"ImagePoolCallback has no effect on {type(pl_module).__name__}: it draws no fakes from image "
                    "pools (its reference trains without them). Remove the callback to silence this."
                )
                self._warned_no_pools = True
            return
        if tuple(self.pools) != names or self._rank != trainer.global_rank:
            # A second fit with the same callback continues with the same history.
            self._rank = trainer.global_rank
            self.pools = self._make_pools(names, self._rank)
        if self._pending_state is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None
        pl_module.attach_image_pools(self.pools)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not self.pools:
            return
        # A later fit of the same module without this callback must not keep drawing from it.
        if getattr(pl_module, "attached_pools", None) == self.pools:
            pl_module.detach_image_pools()

    def state_dict(self) -> Dict[str, Any]:
        if not self.pools:
            return dict(self._pending_state) if self._pending_state is not None else {}
        return {
            "pool_size": self.pool_size,
            "seed": self.seed,
            "pools": {name: pool.state_dict() for name, pool in self.pools.items()},
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if not state_dict:
            return
        if self.pools:
            self._apply_state(state_dict)
        else:
            # Lightning restores callbacks after setup today; keep the state for setup otherwise.
            self._pending_state = state_dict

    def _apply_state(self, state: Dict[str, Any]) -> None:
        saved_pools = dict(state.get("pools", {}))
        if list(saved_pools) == list(_LEGACY_POOL_NAMES):
            # 0.2.0 named the pools a and b, in the order the module declares them.
            saved_pools = dict(zip(self.pools, saved_pools.values(), strict=False))
        # Only rank 0's stream was saved; other ranks keep their own so they stay independent.
        restore_generator = self._rank == 0 and state.get("seed", self.seed) == self.seed
        for name, pool in self.pools.items():
            if name in saved_pools:
                pool.load_state_dict(saved_pools[name], restore_generator=restore_generator)
