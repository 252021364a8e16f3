"""DCLGAN learns on real images: a short CPU run on horse2zebra moves both directions' colours.

The measure is the CUT learning test's (tests/models/test_cut_learning.py, used as is): the
Fréchet distance between the RGB distributions of two image sets, and the mean correlation of an
input's and its output's luminance. Measured here (250 iterations of batch 4 at 32 px, about 40 s
on a 2-core CPU): horses 0.055 from the zebras; the untrained outputs 0.55 from the zebras (horses
translated) and 0.64 from the horses (zebras translated); trained, the translated horses 0.10 from
the zebras and 0.24 from the horses, the translated zebras 0.34 from the horses. The luminance
correlation is -0.65 for the horses and -0.35 for the zebras (untrained -0.05): at this scale
DCLGAN keeps the layout but inverts the brightness. Its PatchNCE compares G_A's features of the
input with G_B's features of the output, two encoders that both learn, so an invertible change of
the output can satisfy it (CUT's one encoder gives no such freedom); the identity terms only tie
each generator to its own domain's images. The claims:
- the translated horses are several times nearer the zebras' colours than the untrained output,
  and nearer the zebras than the horses;
- the translated zebras are much nearer the horses' colours than the untrained output (the second
  direction learns as well, more slowly);
- the outputs keep the inputs' layout up to the sign of the brightness (|correlation| above 0.5
  for the horses, 0.2 for the zebras; untrained 0.05).
The cosines are computed with ``nce_pairwise="matmul"``: the same losses as the authors'
broadcast to about 1e-9 (tests/test_losses.py), 20 times faster on a CPU.
"""

from __future__ import annotations

from typing import Dict

import lightning.pytorch as pl
import pytest
import torch

from cyclegan_pl import DCLGAN, UnpairedDataModule

SIZE = 32
# 8 filters, a 6-block anti-aliased ResNet (nce_layers 4..16 reach its fifth block), 64 patches,
# batches of 4: about 0.15 s per iteration on a 2-core CPU.
NETWORKS = dict(generator="resnet_6blocks", ngf=8, ndf=8, num_patches=64, nce_pairwise="matmul")
BATCH_SIZE = 4
ITERATIONS = 250


def translated(module: DCLGAN, images: torch.Tensor, direction: str) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([module.translate(chunk, direction) for chunk in images.split(40)])


@pytest.fixture(scope="module")
def outcome(data_root, make_trainer, measure) -> Dict[str, float]:
    root = data_root / "horse2zebra"
    horses, zebras = measure.load_folder(root / "testA"), measure.load_folder(root / "testB")
    pl.seed_everything(0)
    module = DCLGAN(**NETWORKS)
    untrained_b, untrained_a = translated(module.eval(), horses, "AtoB"), translated(module, zebras, "BtoA")
    data = UnpairedDataModule(
        str(root), load_size=36, crop_size=SIZE, batch_size=BATCH_SIZE, num_workers=0, max_val_size=1
    )
    # D, G and the heads: three optimizer steps per iteration; max_steps alone ends the run.
    trainer = make_trainer(max_steps=3 * ITERATIONS, max_epochs=None, num_sanity_val_steps=0)
    trainer.fit(module.train(), datamodule=data)
    module.eval()
    fake_b, fake_a = translated(module, horses, "AtoB"), translated(module, zebras, "BtoA")
    distance, structure = measure.colour_distance, measure.structure
    return {
        "horses": distance(horses, zebras),
        "untrained_b": distance(untrained_b, zebras),
        "untrained_a": distance(untrained_a, horses),
        "untrained_structure": structure(horses, untrained_b),
        "fake_b": distance(fake_b, zebras),
        "fake_b_to_horses": distance(fake_b, horses),
        "fake_a": distance(fake_a, horses),
        "structure_b": structure(horses, fake_b),
        "structure_a": structure(zebras, fake_a),
    }


def test_dclgan_moves_horses_toward_zebras(outcome):
    assert outcome["fake_b"] < 0.25 * outcome["untrained_b"], outcome
    assert outcome["fake_b"] < 0.6 * outcome["fake_b_to_horses"], outcome  # nearer the zebras than the horses


def test_dclgan_moves_zebras_toward_horses(outcome):
    assert outcome["fake_a"] < 0.75 * outcome["untrained_a"], outcome


def test_dclgan_keeps_the_layout_up_to_the_sign_of_the_brightness(outcome):
    assert abs(outcome["untrained_structure"]) < 0.2, outcome
    assert abs(outcome["structure_b"]) > 0.5 and abs(outcome["structure_a"]) > 0.2, outcome
