"""Exact resume: 2 epochs straight equal 1 epoch + `fit(ckpt_path=...)` + 1 epoch, bit for bit."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from cyclegan_pl import (
    CUT,
    DCLGAN,
    UNSB,
    CycleGAN,
    ImagePoolCallback,
    LinearDecay,
    PairedDataModule,
    Pix2Pix,
    UnpairedDataModule,
)
from cyclegan_pl.data.synthetic import make_demo_dataset, make_demo_paired_dataset
from cyclegan_pl.weights import SafeCheckpointIO


def make_parts(kind: str, data: Path, seed: int):
    pl.seed_everything(seed)
    if kind == "cyclegan":
        module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
        datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, seed=7)
        callbacks = [ImagePoolCallback(pool_size=3), LinearDecay(n_epochs=1, n_epochs_decay=1)]
    elif kind == "cut":
        # Identity NCE and the flip: the patch positions and the coin must be drawn again alike.
        module = CUT(
            generator="resnet_2blocks",
            nce_layers=(0, 4, 8, 12, 13),
            ngf=8,
            ndf=8,
            flip_equivariance=True,
            num_patches=32,
        )
        datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, seed=7)
        callbacks = [LinearDecay(n_epochs=1, n_epochs_decay=1)]
    elif kind == "dclgan":
        module = DCLGAN(generator="resnet_2blocks", nce_layers=(4, 8, 12, 13), ngf=8, ndf=8, num_patches=32)
        # The second epoch resizes without cropping (the decay half of the CUT-family data).
        datamodule = UnpairedDataModule(
            str(data), load_size=36, crop_size=32, num_workers=0, seed=7, resize_to_crop_from_epoch=1
        )
        callbacks = [LinearDecay(n_epochs=1, n_epochs_decay=1)]
    elif kind == "unsb":
        # The step index, the path's noise and latents, the patch positions and A2 must come again alike.
        module = UNSB(ngf=8, ndf=8, num_patches=32, lambda_sb=1.0, tau=0.1)
        datamodule = UnpairedDataModule(
            str(data), load_size=36, crop_size=32, num_workers=0, seed=7, resize_to_crop_from_epoch=1, second_a=True
        )
        callbacks = [LinearDecay(n_epochs=1, n_epochs_decay=1)]
    else:
        # unet_64 has a block with dropout, so the random stream of the step matters.
        module = Pix2Pix(generator="unet_64", ngf=8, ndf=8)
        datamodule = PairedDataModule(str(data), load_size=72, crop_size=64, num_workers=0, seed=7)
        callbacks = [LinearDecay(n_epochs=1, n_epochs_decay=1)]
    return module, datamodule, callbacks


def trainer(root: Path, max_epochs: int, callbacks: list) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        plugins=[SafeCheckpointIO()],
        callbacks=[*callbacks, ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)],
    )


@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix", "cut", "dclgan", "unsb"])
def test_resume_equals_uninterrupted_run(kind, tmp_path):
    data = tmp_path / "data"
    if kind != "pix2pix":
        make_demo_dataset(data, n_train=5, n_test=2, size=40)
    else:
        make_demo_paired_dataset(data, n_train=4, n_test=2, size=64)

    module, datamodule, callbacks = make_parts(kind, data, seed=0)
    trainer(tmp_path / "straight", 2, callbacks).fit(module, datamodule=datamodule)
    straight = module.state_dict()

    module, datamodule, callbacks = make_parts(kind, data, seed=0)
    trainer(tmp_path / "resumed", 1, callbacks).fit(module, datamodule=datamodule)
    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    # A new process would start from other random states and weights: the checkpoint and the
    # per-epoch seeding must bring everything back.
    module, datamodule, callbacks = make_parts(kind, data, seed=123)
    resumed_trainer = trainer(tmp_path / "resumed", 2, callbacks)
    resumed_trainer.fit(module, datamodule=datamodule, ckpt_path=str(last))

    assert resumed_trainer.current_epoch == 2
    for key, value in straight.items():
        assert torch.equal(module.state_dict()[key], value), key
    # The second epoch ran at the decayed rate: factor(1) = 1 - 1/2 (DCLGAN's heads from their own 1e-3).
    for optimizer in resumed_trainer.optimizers:
        assert optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["initial_lr"] * 0.5)
        assert optimizer.param_groups[0]["initial_lr"] in (2e-4, 1e-3)
