"""`test` with ResultsPage and `validate` with FID/KID on 1 or 2 CPU processes (DDP).

Run as a script (Lightning's DDP launcher starts rank 1 by re-running this command):
    python tests/scripts/ddp_evaluation.py DEVICES OUT_DIR
Rank 0 saves the logged FID/KID values to OUT_DIR/values_<DEVICES>.json.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from cyclegan_pl import FID, CycleGAN, ResultsPage, UnpairedDataModule
from cyclegan_pl.data.synthetic import make_demo_dataset
from cyclegan_pl.metrics import StandInFeatures

devices, out = int(sys.argv[1]), Path(sys.argv[2])
pl.seed_everything(0)
# 5 test images per domain: two processes get 3 items each, one of them a padding repeat.
data = make_demo_dataset(out / "data", n_train=2, n_test=5, size=32)
torch.manual_seed(0)
module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
datamodule = UnpairedDataModule(str(data), load_size=32, crop_size=32, num_workers=0, val_batch_size=2)
options = dict(
    accelerator="cpu",
    devices=devices,
    strategy="ddp_find_unused_parameters_true" if devices > 1 else "auto",
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
)
fid = FID(feature_extractor=StandInFeatures())
trainer = pl.Trainer(callbacks=[fid, ResultsPage(output_dir=str(out / f"results_{devices}"))], **options)
trainer.validate(module, datamodule=datamodule)
values = {key: float(trainer.callback_metrics[key]) for key in ("fid/a2b", "kid/a2b", "fid/b2a", "kid/b2a")}
trainer.test(module, datamodule=datamodule)
if trainer.is_global_zero:
    (out / f"values_{devices}.json").write_text(json.dumps(values))
