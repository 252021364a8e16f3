"""Tiny models, in-memory data and trainers for the callback tests, handed out as fixtures."""

from __future__ import annotations

from typing import Callable, Dict, List

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cyclegan_pl.models import CycleGAN, Pix2Pix

SIZE = 32


def image_for(index: int, channels: int = 3, size: int = SIZE, salt: int = 0) -> torch.Tensor:
    """A fixed image in [-1, 1] per (index, salt)."""
    generator = torch.Generator().manual_seed(1000 * salt + index)
    return torch.rand(channels, size, size, generator=generator) * 2 - 1


class TinyPairs(Dataset):
    """Dict items like the data package's: A, B in [-1, 1], A_paths, B_paths.

    With ``random_b`` every read of an item draws a new B, as an unaligned dataset does.
    """

    def __init__(self, length: int = 4, random_b: bool = False) -> None:
        self.length = length
        self.random_b = random_b

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict:
        b = torch.rand(3, SIZE, SIZE) * 2 - 1 if self.random_b else image_for(index, salt=1)
        return {"A": image_for(index), "B": b, "A_paths": f"a/{index}.png", "B_paths": f"b/{index}.png"}


class TinyDataModule(pl.LightningDataModule):
    def __init__(self, train_len: int = 4, val_len: int = 4, batch_size: int = 2, random_b: bool = False) -> None:
        super().__init__()
        self.train_len, self.val_len, self.batch_size, self.random_b = train_len, val_len, batch_size, random_b

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TinyPairs(self.train_len), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TinyPairs(self.val_len, random_b=self.random_b), batch_size=self.batch_size)


def tiny_cyclegan(**kwargs) -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8, **kwargs)


def tiny_pix2pix(**kwargs) -> Pix2Pix:
    torch.manual_seed(0)
    return Pix2Pix(generator="unet_32", ngf=8, ndf=8, **kwargs)


class Probe(pl.Callback):
    """Runs a function at a chosen hook and keeps what it returns."""

    def __init__(self, hook: str, fn: Callable) -> None:
        self.records: list = []
        setattr(self, hook, lambda trainer, pl_module, *args: self.records.append(fn(trainer, pl_module)))


@pytest.fixture
def tiny_data() -> Callable[..., TinyDataModule]:
    """tiny_data(train_len=4, val_len=4, batch_size=2, random_b=False): dict batches of 32 px images."""
    return TinyDataModule


@pytest.fixture
def cyclegan() -> Callable[..., CycleGAN]:
    """cyclegan(**kwargs): a seeded CycleGAN with resnet_2blocks generators, ngf = ndf = 8."""
    return tiny_cyclegan


@pytest.fixture
def pix2pix() -> Callable[..., Pix2Pix]:
    """pix2pix(**kwargs): a seeded Pix2Pix with a unet_32 generator, ngf = ndf = 8."""
    return tiny_pix2pix


@pytest.fixture
def trainer_for(make_trainer) -> Callable[..., pl.Trainer]:
    """trainer_for(root, callbacks, max_epochs=1, **kwargs): a quiet Trainer writing under ``root``
    that runs validation when asked (no sanity check)."""

    def build(root, callbacks: List[pl.Callback], max_epochs: int = 1, **kwargs) -> pl.Trainer:
        options = dict(max_epochs=max_epochs, limit_val_batches=None, num_sanity_val_steps=0)
        return make_trainer(default_root_dir=str(root), callbacks=callbacks, **{**options, **kwargs})

    return build


@pytest.fixture
def probe() -> Callable[[str, Callable], Probe]:
    """probe(hook, fn): a callback that records fn(trainer, module) at the hook."""
    return Probe
