"""BestCheckpoint keeps the best checkpoint by fid/a2b, and runs without FID values go on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn

from cyclegan_pl.callbacks import FID, BestCheckpoint


class SmallFeatures(nn.Module):
    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(images)).mean(dim=(2, 3))


def best(dirpath: Path) -> BestCheckpoint:
    return BestCheckpoint(
        dirpath=str(dirpath),
        monitor="fid/a2b",
        mode="min",
        save_top_k=1,
        filename="best{epoch:03d}",
        auto_insert_metric_name=False,
    )


def test_without_fid_values_training_goes_on_and_saves_no_best(tmp_path, cyclegan, tiny_data, trainer_for):
    callback = best(tmp_path / "checkpoints")
    last = ModelCheckpoint(dirpath=str(tmp_path / "checkpoints"), save_last=True, save_top_k=0)
    trainer = trainer_for(tmp_path, [callback, last], max_epochs=2, limit_train_batches=1, enable_checkpointing=True)
    trainer.fit(cyclegan(), datamodule=tiny_data())
    assert trainer.current_epoch == 2 and callback.best_model_path == ""
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    # What it guards against: Lightning's own ModelCheckpoint stops such a run.
    plain = ModelCheckpoint(dirpath=str(tmp_path / "plain"), monitor="fid/a2b", mode="min", save_top_k=1)
    trainer = trainer_for(tmp_path, [plain], max_epochs=1, limit_train_batches=1, enable_checkpointing=True)
    with pytest.raises(MisconfigurationException, match="fid/a2b"):
        trainer.fit(cyclegan(), datamodule=tiny_data())


def test_keeps_the_checkpoint_with_the_lowest_fid(tmp_path, cyclegan, tiny_data, trainer_for, probe):
    callback = best(tmp_path / "checkpoints")
    fid = FID(every_n_epochs=1, feature_extractor=SmallFeatures())
    values = probe("on_validation_end", lambda trainer, module: float(trainer.callback_metrics["fid/a2b"]))
    trainer = trainer_for(
        tmp_path, [fid, values, callback], max_epochs=3, limit_train_batches=1, enable_checkpointing=True
    )
    trainer.fit(cyclegan(lr=0.01), datamodule=tiny_data())
    assert len(values.records) == 3
    best_epoch = min(range(3), key=lambda epoch: values.records[epoch])
    assert Path(callback.best_model_path).name == f"best{best_epoch:03d}.ckpt"
    assert float(callback.best_model_score) == pytest.approx(min(values.records))
    assert len(list((tmp_path / "checkpoints").iterdir())) == 1


def test_its_folder_follows_default_root_dir_like_model_checkpoint():
    from jsonargparse import Namespace

    from cyclegan_pl.cli import _derive_run_folders

    callbacks = [
        Namespace(class_path=path, init_args=Namespace(dirpath=None))
        for path in ("lightning.pytorch.callbacks.ModelCheckpoint", "cyclegan_pl.callbacks.BestCheckpoint")
    ]
    config = Namespace(trainer=Namespace(default_root_dir="runs/x", callbacks=callbacks, logger=None))
    _derive_run_folders(config)
    assert [c.init_args.dirpath for c in callbacks] == ["runs/x/checkpoints", "runs/x/checkpoints"]
