"""Tiny batches and trainers for the module tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader


def _batch(size: int = 32, n: int = 1, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "A": torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
        "B": torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
        "A_paths": [f"a{i}.png" for i in range(n)],
        "B_paths": [f"b{i}.png" for i in range(n)],
    }


@pytest.fixture
def make_batch() -> Callable[..., dict]:
    """make_batch(size=32, n=1, seed=0): a dict batch of random images in [-1, 1]."""
    return _batch


@pytest.fixture
def fit_batches(make_trainer) -> Callable[..., pl.Trainer]:
    """fit_batches(module, batches, **trainer_kwargs): one epoch over the given batches."""

    def fit(module: pl.LightningModule, batches: list, **trainer_kwargs) -> pl.Trainer:
        trainer = make_trainer(**trainer_kwargs)
        trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
        return trainer

    return fit


@pytest.fixture(scope="module")
def measure():
    """The CUT learning test's measures (load_folder, colour_distance, structure), which the
    learning tests of the later methods use as they are."""
    spec = importlib.util.spec_from_file_location(
        "cut_learning_measure", Path(__file__).parent / "test_cut_learning.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
