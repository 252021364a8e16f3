"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach the network: wandb runs offline and syncs nothing.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# ...and nothing downloads implicitly (FID's Inception weights): offline paths are what we test.
os.environ.setdefault("CYCLEGAN_PL_OFFLINE", "1")

DATA_ENV = "CYCLEGAN_PL_DATA"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-image datasets, from $CYCLEGAN_PL_DATA; skips when it is not set."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(
            f"needs the shared real images: set {DATA_ENV} to the shared datasets folder (CI sets ../shared/datasets)"
        )
    root = Path(value)
    if not root.is_dir():
        pytest.fail(f"{DATA_ENV}={value} is not a folder")
    return root
