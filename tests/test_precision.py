"""Mixed precision through the Trainer's `precision` flag, for both modules (tiny: bf16 is slow on CPU)."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision
from torch.utils.data import DataLoader

from cyclegan_pl import DCLGAN, UNSB, CycleGAN, Pix2Pix

MODULES = {
    "cyclegan": lambda: CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8),
    "pix2pix": lambda: Pix2Pix(generator="unet_32", ngf=8, ndf=8),
    "dclgan": lambda: DCLGAN(generator="resnet_2blocks", nce_layers=(4, 8, 12, 13), ngf=8, ndf=8, num_patches=16),
    "unsb": lambda: UNSB(ngf=8, ndf=8, num_patches=16, lambda_sb=1.0),
}


def batches(n: int = 2) -> list:
    generator = torch.Generator().manual_seed(0)
    image = lambda: torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1  # noqa: E731
    # A2: UNSB's second A batch (the other methods ignore it).
    return [{"A": image(), "B": image(), "A2": image(), "A_paths": ["a"], "B_paths": ["b"]} for _ in range(n)]


@pytest.fixture
def fit(make_trainer):
    """fit(module, **trainer_kwargs): one epoch over two tiny batches."""

    def run(module, **trainer_kwargs) -> pl.Trainer:
        trainer = make_trainer(**trainer_kwargs)
        trainer.fit(module, DataLoader(batches(), batch_size=None))
        return trainer

    return run


@pytest.mark.parametrize(
    "kind, precision",
    [
        ("cyclegan", "bf16-mixed"),
        ("cyclegan", "16-mixed"),
        ("pix2pix", "bf16-mixed"),
        ("pix2pix", "16-mixed"),
        ("dclgan", "bf16-mixed"),
        ("unsb", "bf16-mixed"),
    ],
)
def test_mixed_precision_trains(kind, precision, fit):
    module = MODULES[kind]()
    initial = copy.deepcopy(module.state_dict())
    if precision == "16-mixed":
        # The Trainer flag silently turns 16-mixed into bf16 on CPU; the plugin keeps fp16 and
        # its GradScaler, which is what a GPU run of `--trainer.precision 16-mixed` uses.
        scaler = torch.amp.GradScaler("cpu")
        trainer = fit(module, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
        assert trainer.precision_plugin.scaler is scaler and scaler._scale is not None
    else:
        trainer = fit(module, precision=precision)
    assert trainer.global_step == 2 * len(module.optimizer_names)  # 2 batches x one step per optimizer
    params = dict(module.named_parameters())
    assert all(torch.isfinite(p).all() for p in params.values())
    assert any(not torch.equal(p, initial[name]) for name, p in params.items())
    assert torch.isfinite(trainer.logged_metrics["loss/g_epoch"])


@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix"])
def test_fp16_overflow_is_skipped_by_the_scaler(kind, fit):
    module = MODULES[kind]()
    initial = copy.deepcopy(module.state_dict())
    # A loss scale this large overflows every fp16 gradient: each step must be skipped and the
    # scale lowered, never applied as inf/NaN to the weights.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**60)
    fit(module, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    assert scaler.get_scale() < 2.0**60
    for name, value in module.named_parameters():
        assert torch.isfinite(value).all(), name
        assert torch.equal(value, initial[name]), name
