"""Count, per rank, the collectives that the networks' forwards run during fit and validate.

Each generator and discriminator forward performs an ``all_reduce`` (as SyncBatchNorm does in
the reference's train-mode inference), so a callback or hook that decides on one rank alone to
run a forward (a sample grid, FID, checkpointing) makes the ranks' counts differ. gloo may pair
mismatched collectives silently where NCCL would hang: counting shows it either way.

    python tests/scripts/ddp_collectives.py cyclegan|pix2pix|cut|dclgan|unsb OUT_DIR
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from cyclegan_pl import (
    CUT,
    DCLGAN,
    FID,
    UNSB,
    CycleGAN,
    ImagePoolCallback,
    PairedDataModule,
    Pix2Pix,
    SampleGrid,
    UnpairedDataModule,
)
from cyclegan_pl.data.synthetic import make_demo_dataset, make_demo_paired_dataset

kind, out = sys.argv[1], Path(sys.argv[2])
counts = {"forwards": 0}


def collective_forward(module: nn.Module, inputs, output) -> None:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(torch.ones(1))
        counts["forwards"] += 1


class SmallFeatures(nn.Module):
    """A stand-in for Inception: pooled colours (no weights to download)."""

    def forward(self, images):
        return nn.functional.adaptive_avg_pool2d(images.float(), 2).flatten(1)


pl.seed_everything(0)
if kind == "cyclegan":
    data = make_demo_dataset(out / "data", n_train=4, n_test=3, size=36)
    module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, val_batch_size=1)
    callbacks = [ImagePoolCallback(pool_size=4)]
elif kind == "cut":
    data = make_demo_dataset(out / "data", n_train=4, n_test=3, size=36)
    # resnet_9blocks keeps the published nce_layers; its grids add idt_B, a forward of its own.
    module = CUT(ngf=8, ndf=8, num_patches=16)
    datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, val_batch_size=1)
    callbacks = []
elif kind == "dclgan":
    data = make_demo_dataset(out / "data", n_train=4, n_test=3, size=36)
    module = DCLGAN(ngf=8, ndf=8, num_patches=16)
    datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, val_batch_size=1)
    callbacks = []
elif kind == "unsb":
    data = make_demo_dataset(out / "data", n_train=4, n_test=3, size=36)
    # The path runs t + 1 generator calls per chain: the same t on every rank keeps the counts equal.
    module = UNSB(ngf=8, ndf=8, num_patches=16)
    datamodule = UnpairedDataModule(
        str(data), load_size=36, crop_size=32, num_workers=0, val_batch_size=1, second_a=True
    )
    callbacks = []
else:
    data = make_demo_paired_dataset(out / "data", n_train=4, n_test=3, size=36)
    module = Pix2Pix(generator="unet_32", ngf=8, ndf=8)
    datamodule = PairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, val_batch_size=1)
    callbacks = []
for network in [*module.generators(), *module.discriminators()]:
    network.register_forward_hook(collective_forward)

trainer = pl.Trainer(
    accelerator="cpu",
    devices=2,
    strategy="ddp_find_unused_parameters_true",
    max_epochs=2,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    default_root_dir=out,
    callbacks=[
        *callbacks,
        # every_n_epochs=3 > max_epochs: the grid of the last epoch is rendered in on_fit_end.
        SampleGrid(num_images=2, every_n_epochs=3),
        FID(every_n_epochs=1, feature_extractor=SmallFeatures()),
        ModelCheckpoint(dirpath=out / "ckpt", save_last=True),
    ],
)
trainer.fit(module, datamodule=datamodule)
after_fit = counts["forwards"]
trainer.validate(module, datamodule=datamodule, verbose=False)
# (predict is left out: Lightning gives the ranks uneven shares of the images to predict, so
# networks whose every forward is a collective cannot predict on several processes at all;
# SyncBatchNorm layers use local statistics at inference, see test_modules.)
result = {"fit": after_fit, "validate": counts["forwards"] - after_fit}
(out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))
