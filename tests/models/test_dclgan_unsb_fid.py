"""FID during training and the best checkpoint for DCLGAN (both directions) and UNSB (its seeded
multi-step sampler: validating twice gives the same FID)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from cyclegan_pl import DCLGAN, FID, UNSB, UnpairedDataModule
from cyclegan_pl.callbacks import BestCheckpoint
from cyclegan_pl.data.synthetic import make_demo_dataset
from cyclegan_pl.metrics import StandInFeatures


def parts(kind: str, root: Path):
    data = make_demo_dataset(root / "data", n_train=3, n_test=3, size=36)
    if kind == "dclgan":
        module = DCLGAN(ngf=8, ndf=8, num_patches=16)
        datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0)
    else:
        module = UNSB(ngf=8, ndf=8, num_patches=16, tau=1.0)
        datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, second_a=True)
    return module, datamodule


@pytest.mark.parametrize("kind", ["dclgan", "unsb"])
def test_fid_is_logged_and_the_best_checkpoint_kept(kind, tmp_path, make_trainer):
    pl.seed_everything(0)
    module, datamodule = parts(kind, tmp_path)
    best = BestCheckpoint(
        dirpath=str(tmp_path / "checkpoints"), monitor="fid/a2b", mode="min", save_top_k=1, filename="best{epoch:03d}"
    )
    fid = FID(every_n_epochs=1, feature_extractor=StandInFeatures())
    trainer = make_trainer(
        max_epochs=2, limit_val_batches=None, num_sanity_val_steps=0, enable_checkpointing=True, callbacks=[fid, best]
    )
    trainer.fit(module, datamodule=datamodule)
    expected = {"fid/a2b", "fid/b2a"} if kind == "dclgan" else {"fid/a2b"}
    assert expected <= set(trainer.callback_metrics)
    assert ("fid/b2a" in trainer.callback_metrics) == (kind == "dclgan")  # UNSB translates A -> B only
    assert all(torch.isfinite(trainer.callback_metrics[name]) for name in expected)
    assert Path(best.best_model_path).is_file()

    first = float(trainer.validate(module, datamodule=datamodule, verbose=False)[0]["fid/a2b"])
    again = float(trainer.validate(module, datamodule=datamodule, verbose=False)[0]["fid/a2b"])
    # DCLGAN is deterministic; UNSB's sampler restarts from its seed at every validation.
    assert again == first
