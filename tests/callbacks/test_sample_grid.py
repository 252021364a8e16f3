from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image

from cyclegan_pl.callbacks import SampleGrid

TILE, PAD = 32, 2


def grid_side(count: int) -> int:
    return count * (TILE + PAD) + PAD


def column(grid: np.ndarray, col: int) -> np.ndarray:
    left = PAD + col * (TILE + PAD)
    return grid[:, left : left + TILE]


def test_two_epochs_write_grids_of_the_same_inputs(tmp_path, cyclegan, tiny_data, trainer_for):
    grids = SampleGrid(every_n_epochs=1, num_images=3)
    trainer = trainer_for(tmp_path, [grids], max_epochs=2, limit_val_batches=0)
    # random_b: every read of a validation item draws a new B, so only caching keeps it fixed.
    trainer.fit(cyclegan(), datamodule=tiny_data(val_len=5, random_b=True))
    files = sorted((tmp_path / "samples").iterdir())
    assert [f.name for f in files] == ["epoch_0001.png", "epoch_0002.png"]  # fit end adds no duplicate
    first, second = (np.asarray(Image.open(f)) for f in files)
    assert first.shape == second.shape == (grid_side(3), grid_side(6), 3)
    assert np.array_equal(column(first, 0), column(second, 0))  # real_A
    assert np.array_equal(column(first, 3), column(second, 3))  # real_B
    assert not np.array_equal(column(first, 1), column(second, 1))  # fake_B changed with training


def test_every_n_epochs_and_fit_end(tmp_path, cyclegan, tiny_data, trainer_for):
    trainer = trainer_for(
        tmp_path, [SampleGrid(every_n_epochs=2, num_images=1)], max_epochs=3, limit_val_batches=0, limit_train_batches=1
    )
    trainer.fit(cyclegan(), datamodule=tiny_data())
    assert sorted(f.name for f in (tmp_path / "samples").iterdir()) == ["epoch_0002.png", "epoch_0003.png"]


def test_grid_goes_to_the_logger_folder_and_tensorboard(tmp_path, cyclegan, tiny_data, trainer_for, monkeypatch):
    logger = TensorBoardLogger(tmp_path, name="tb")
    added = []
    monkeypatch.setattr(
        type(logger.experiment),
        "add_image",
        lambda self, tag, image, global_step=None: added.append((tag, tuple(image.shape), global_step)),
    )
    trainer = trainer_for(
        tmp_path,
        [SampleGrid(num_images=2, dirname="grids")],
        max_epochs=1,
        limit_val_batches=0,
        logger=[logger, CSVLogger(tmp_path, name="csv")],
    )
    trainer.fit(cyclegan(), datamodule=tiny_data())
    assert (tmp_path / "tb" / "version_0" / "grids" / "epoch_0001.png").is_file()
    assert added == [("grids", (3, grid_side(2), grid_side(6)), trainer.global_step)]


def test_pix2pix_grid_and_datamodule_sample_batch(pix2pix, tiny_data):
    calls = []

    class WithSampleBatch(tiny_data):
        def sample_batch(self, n, split):
            calls.append((n, split))
            return {
                "A": torch.zeros(n, 3, 20, 28),
                "B": torch.ones(n, 3, 20, 28),
                "A_paths": [f"{i}.png" for i in range(n)],
                "B_paths": [f"{i}.png" for i in range(n)],
            }

    trainer = fake_trainer(WithSampleBatch())
    grids = SampleGrid(num_images=2)
    samples = grids._fixed_samples(trainer)
    assert calls == [(2, "val")] and len(samples) == 2
    grid = grids.render(pix2pix(), samples)
    # Sides not a multiple of the U-Net's 32 are padded and cropped back by translate.
    assert grid.shape == (3, 2 * (20 + PAD) + PAD, 3 * (28 + PAD) + PAD)
    grids._fixed_samples(trainer)
    assert len(calls) == 1  # fetched once


class _SingleProcess:
    """The one strategy method SampleGrid calls: agreement between ranks (here: one rank)."""

    def reduce_boolean_decision(self, decision, all=True):
        return decision


def fake_trainer(datamodule, rank: int = 0, root: str = "."):
    attributes = {"datamodule": datamodule, "global_rank": rank, "loggers": [], "global_step": 0}
    return type("T", (), {**attributes, "default_root_dir": root, "strategy": _SingleProcess()})()


def test_other_ranks_render_but_write_nothing(tmp_path, cyclegan, tiny_data, monkeypatch):
    # With SyncBatchNorm each forward is a collective: rank 1 must run the same forwards as rank 0.
    grids = SampleGrid(num_images=2)
    rendered = []
    original = grids.render
    monkeypatch.setattr(grids, "render", lambda module, samples: rendered.append(1) or original(module, samples))
    datamodule = tiny_data()
    datamodule.setup("fit")
    assert grids.save_grid(fake_trainer(datamodule, rank=1, root=str(tmp_path)), cyclegan(), 1) is None
    assert rendered == [1] and not list(tmp_path.rglob("*.png"))
    assert grids.save_grid(fake_trainer(datamodule, rank=0, root=str(tmp_path)), cyclegan(), 1) is not None
    assert rendered == [1, 1] and len(list(tmp_path.rglob("*.png"))) == 1


def test_with_the_data_package_datamodules(tmp_path, cyclegan, pix2pix, trainer_for):
    from cyclegan_pl.callbacks import FID
    from cyclegan_pl.data import PairedDataModule, UnpairedDataModule, make_demo_dataset, make_demo_paired_dataset

    options = dict(batch_size=2, num_workers=0, load_size=32, crop_size=32, max_val_size=4)
    cases = [
        (cyclegan(), UnpairedDataModule(str(make_demo_dataset(tmp_path / "u", 4, 4, 32)), **options), 6),
        (pix2pix(), PairedDataModule(str(make_demo_paired_dataset(tmp_path / "p", 4, 4, 32)), **options), 3),
    ]
    for index, (model, data, columns) in enumerate(cases):
        root = tmp_path / f"run{index}"
        fid = FID(
            every_n_epochs=1,
            feature_extractor=torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
            ),
        )
        trainer = trainer_for(root, [SampleGrid(num_images=2), fid], max_epochs=1, limit_train_batches=1)
        trainer.fit(model, datamodule=data)
        grid = np.asarray(Image.open(root / "samples" / "epoch_0001.png"))
        assert grid.shape == (grid_side(2), grid_side(columns), 3)
        assert "fid/a2b" in trainer.callback_metrics


def test_falls_back_to_the_test_set_without_validation_data():
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    class TestOnly(pl.LightningDataModule):
        def test_dataloader(self):
            return DataLoader([{"A": torch.full((1,), float(i))} for i in range(5)])

    trainer = type("T", (), {"datamodule": TestOnly(), "global_rank": 0})()
    samples = SampleGrid(num_images=3)._fetch_samples(trainer)
    assert [float(sample["A"]) for sample in samples] == [0.0, 1.0, 2.0]
