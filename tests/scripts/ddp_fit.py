"""Fit a tiny model with `strategy="ddp"` on 2 CPU processes; each rank saves its weights.

Run as a script (Lightning's DDP launcher starts rank 1 by re-running this command):
    python tests/scripts/ddp_fit.py cyclegan|pix2pix|cut|dclgan|unsb OUT_DIR
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from cyclegan_pl import (
    CUT,
    DCLGAN,
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
pl.seed_everything(0)
if kind == "cyclegan":
    data = make_demo_dataset(out / "data", n_train=6, n_test=2, size=36)
    module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0)
    callbacks = [ImagePoolCallback(pool_size=4)]
elif kind == "cut":
    data = make_demo_dataset(out / "data", n_train=6, n_test=2, size=36)
    # resnet_9blocks keeps the published nce_layers; identity NCE and flips make every draw count.
    module = CUT(ngf=8, ndf=8, num_patches=16, flip_equivariance=True)
    datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0)
    callbacks = []
elif kind == "dclgan":
    data = make_demo_dataset(out / "data", n_train=6, n_test=2, size=36)
    # resnet_9blocks keeps the published nce_layers; both directions' patch positions are drawn.
    module = DCLGAN(ngf=8, ndf=8, num_patches=16)
    datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0)
    callbacks = []
elif kind == "unsb":
    data = make_demo_dataset(out / "data", n_train=6, n_test=2, size=36)
    # Half of G never gets a gradient; the step index (and so the path length) is the same on both ranks.
    module = UNSB(ngf=8, ndf=8, num_patches=16, lambda_sb=1.0)
    datamodule = UnpairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, second_a=True)
    callbacks = []
else:
    data = make_demo_paired_dataset(out / "data", n_train=6, n_test=2, size=36)
    module = Pix2Pix(generator="unet_32", ngf=8, ndf=8)
    datamodule = PairedDataModule(str(data), load_size=36, crop_size=32, num_workers=0, batch_size=2)
    callbacks = []
initial = {k: v.clone() for k, v in module.state_dict().items()}
trainer = pl.Trainer(
    accelerator="cpu",
    devices=2,
    strategy="ddp_find_unused_parameters_true",  # each step leaves the other networks without gradients
    # The accelerator is the CPU even on a GPU host, and SyncBatchNorm needs CUDA tensors: on CPU
    # DDP broadcasts the BN buffers from rank 0 instead.
    sync_batchnorm=False,
    max_epochs=1,
    logger=CSVLogger(out / "logs"),
    enable_progress_bar=False,
    enable_model_summary=False,
    log_every_n_steps=1,
    callbacks=[*callbacks, SampleGrid(num_images=2), ModelCheckpoint(dirpath=out / "ckpt", save_last=True)],
)
trainer.fit(module, datamodule=datamodule)
# Parameters must agree across ranks. BatchNorm running statistics are buffers that DDP
# broadcasts from rank 0 at each step's start, so after the last step they agree only with
# SyncBatchNorm (CUDA); checkpoints hold rank 0's.
state = {k: v.detach().cpu() for k, v in module.named_parameters()}
changed = any(not torch.equal(state[k], initial[k]) for k in state)
torch.save(
    {"state_dict": state, "changed": changed, "world_size": trainer.world_size}, out / f"rank{trainer.global_rank}.pt"
)
