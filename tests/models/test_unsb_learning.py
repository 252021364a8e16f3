"""UNSB learns on real images: a short CPU run on horse2zebra moves horses toward zebras.

The measure is the CUT learning test's (tests/models/test_cut_learning.py, used as is): the
Fréchet distance between the RGB distributions of two image sets, and the mean correlation of an
input's and its output's luminance. Measured here (200 iterations of batch 4 at 32 px with the
published command's weights, about 40 s on a 2-core CPU): horses 0.055 from the zebras; the
untrained 5-step output 0.55, structure -0.1; trained, 0.057 from the zebras and 0.16 from the
horses, structure 0.75; with 1 to 4 inference steps the colours are 0.061 to 0.057 from the
zebras and the structure falls from 0.84 to 0.77. The claims:
- UNSB brings the translated test horses several times nearer the zebras' colours than the
  untrained sampler, nearer the zebras than the horses, and keeps their structure;
- each further step of the sampler changes the image more: one step keeps more of the input's
  structure than the five the model was trained with (what fewer steps trade).
"""

from __future__ import annotations

from typing import Dict

import lightning.pytorch as pl
import pytest
import torch

from cyclegan_pl import UNSB, UnpairedDataModule

SIZE = 32
# 8 filters (the time-conditional generator has 9 blocks), 64 patches, batches of 4: about
# 0.2 s per iteration on a 2-core CPU; the published command's lambda_sb.
NETWORKS = dict(ngf=8, ndf=8, num_patches=64, lambda_sb=1.0)
BATCH_SIZE = 4
ITERATIONS = 200


def translated(module: UNSB, images: torch.Tensor, steps: int) -> torch.Tensor:
    module.inference_steps = steps
    module.reset_sampling()
    with torch.no_grad():
        return torch.cat([module.translate(chunk) for chunk in images.split(40)])


@pytest.fixture(scope="module")
def outcome(data_root, make_trainer, measure) -> Dict[str, float]:
    root = data_root / "horse2zebra"
    horses, zebras = measure.load_folder(root / "testA"), measure.load_folder(root / "testB")
    pl.seed_everything(0)
    module = UNSB(**NETWORKS)
    untrained = translated(module.eval(), horses, 5)
    data = UnpairedDataModule(
        str(root), load_size=36, crop_size=SIZE, batch_size=BATCH_SIZE, num_workers=0, max_val_size=1, second_a=True
    )
    # D, E, G and F: four optimizer steps per iteration; max_steps alone ends the run.
    trainer = make_trainer(max_steps=4 * ITERATIONS, max_epochs=None, num_sanity_val_steps=0)
    trainer.fit(module.train(), datamodule=data)
    module.eval()
    five, one = translated(module, horses, 5), translated(module, horses, 1)
    distance, structure = measure.colour_distance, measure.structure
    return {
        "horses": distance(horses, zebras),
        "untrained": distance(untrained, zebras),
        "unsb": distance(five, zebras),
        "unsb_to_horses": distance(five, horses),
        "structure": structure(horses, five),
        "untrained_structure": structure(horses, untrained),
        "one_step_structure": structure(horses, one),
    }


def test_unsb_moves_horses_toward_zebras_and_keeps_their_structure(outcome):
    assert outcome["unsb"] < 0.25 * outcome["untrained"], outcome
    assert outcome["unsb"] < 0.6 * outcome["unsb_to_horses"], outcome  # nearer the zebras than the horses
    assert outcome["structure"] > 0.6 and outcome["structure"] > outcome["untrained_structure"] + 0.5, outcome


def test_fewer_steps_change_the_image_less(outcome):
    assert outcome["one_step_structure"] > outcome["structure"] + 0.03, outcome
