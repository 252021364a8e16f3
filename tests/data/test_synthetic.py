"""The generated demo datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_pl.data import PairedDataModule, UnpairedDataModule, make_demo_dataset, make_demo_paired_dataset
from cyclegan_pl.errors import UserError


def test_demo_dataset_layout_and_domains(tmp_path):
    root = make_demo_dataset(tmp_path / "demo", n_train=6, n_test=2, size=32, seed=1)
    for folder, count in (("trainA", 6), ("trainB", 6), ("testA", 2), ("testB", 2)):
        files = sorted((root / folder).glob("*.png"))
        assert len(files) == count
        assert Image.open(files[0]).size == (32, 32)
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary folder left

    def blue_share(folder: str) -> float:
        pixels = np.concatenate([np.asarray(Image.open(p)).reshape(-1, 3) for p in (root / folder).glob("*.png")])
        return float(((pixels[:, 2] > pixels[:, 0] + 60) & (pixels[:, 2] > pixels[:, 1])).mean())

    assert blue_share("trainA") < 0.01 < blue_share("trainB")  # the domains differ visibly


def test_demo_dataset_is_deterministic_and_idempotent(tmp_path):
    first = make_demo_dataset(tmp_path / "a", n_train=3, n_test=1, size=24, seed=3)
    second = make_demo_dataset(tmp_path / "b", n_train=3, n_test=1, size=24, seed=3)
    for path in sorted(first.rglob("*.png")):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()
    stamp = (first / "trainA" / "A_00000.png").stat().st_mtime_ns
    make_demo_dataset(tmp_path / "a", n_train=3, n_test=1, size=24, seed=3)
    assert (first / "trainA" / "A_00000.png").stat().st_mtime_ns == stamp  # complete: skipped
    make_demo_dataset(tmp_path / "a", n_train=4, n_test=1, size=24, seed=3)  # other parameters: rebuilt
    assert len(list((first / "trainA").glob("*.png"))) == 4


def test_demo_dataset_never_overwrites_user_data(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photo.jpg").write_bytes(b"precious")
    with pytest.raises(UserError, match="mine.*not a demo dataset"):
        make_demo_dataset(tmp_path / "mine", n_train=1, n_test=1)
    assert (tmp_path / "mine" / "photo.jpg").read_bytes() == b"precious"


def test_demo_datasets_load_in_the_data_modules(tmp_path):
    unpaired = make_demo_dataset(tmp_path / "demo", n_train=4, n_test=2, size=32)
    dm = UnpairedDataModule(str(unpaired), batch_size=2, load_size=36, crop_size=32, num_workers=0)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["A"].shape == (2, 3, 32, 32)
    paired = make_demo_paired_dataset(tmp_path / "pairs", n_train=4, n_test=2, size=32)
    assert Image.open(next((paired / "train").glob("*.png"))).size == (64, 32)
    pm = PairedDataModule(str(paired), batch_size=2, load_size=36, crop_size=32, num_workers=0)
    pm.setup("fit")
    batch = next(iter(pm.train_dataloader()))
    assert batch["A"].shape == batch["B"].shape == (2, 3, 32, 32)
    assert not torch.equal(batch["A"], batch["B"])
