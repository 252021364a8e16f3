"""CUT learns on real images: a short CPU run on horse2zebra moves horses toward zebras.

Measure: at 32 px the stripes are a few pixels wide, but the domains still differ plainly in
colour (brown horses, black-and-white zebras), so "toward domain B" is measured on colours: the
Fréchet distance between Gaussians fitted to the RGB values of every pixel of two image sets
(FID's formula on 3-d pixel features instead of Inception's). It is 0 for identical colour
statistics, and between testA and testB it is ten times what two halves of testB give, so a
move toward testB is well above sampling noise. Structure is the correlation of each input's and
output's luminance, averaged over the images (1 for any brightness/contrast change of the input).

The claims, each checked against the untrained generator and the other run (measured here:
horses 0.055 from the zebras, zebra halves 0.005 apart; untrained output 0.55; CUT 0.072 from the
zebras and 0.20 from the horses, structure 0.84; NCE alone 0.36, structure 0.83; untrained
structure -0.05):
- CUT (GAN + PatchNCE) brings the translated test horses several times nearer the zebras'
  colours than the untrained output, nearer the zebras than the horses, and keeps their structure;
- PatchNCE alone (no GAN) keeps the structure just as well, but nothing pulls its colours toward
  the zebras: the adversarial term is what moves the output toward domain B.
The whole module takes about a minute on a 2-core CPU (CUT 250 iterations, NCE alone 100).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from cyclegan_pl import CUT, UnpairedDataModule
from cyclegan_pl.metrics import fid_from_features

SIZE = 32
# Small enough for a CPU: 8 filters, a 6-block anti-aliased ResNet (the published nce_layers reach
# the fifth block), 64 patches per layer, batches of 4 (about 0.17 s per iteration here).
NETWORKS = dict(generator="resnet_6blocks", ngf=8, ndf=8, num_patches=64)
BATCH_SIZE = 4


def load_folder(folder: Path) -> torch.Tensor:
    """Every image of a test folder at SIZE x SIZE (bicubic), in [-1, 1]."""
    images = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            small = image.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)
        images.append(pil_to_tensor(small).float() / 127.5 - 1)
    return torch.stack(images)


def colour_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fréchet distance between the RGB distributions of all pixels of two image sets."""
    pixels = lambda images: images.permute(0, 2, 3, 1).reshape(-1, 3).double()  # noqa: E731
    return fid_from_features(pixels(x), pixels(y))


def structure(inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Mean over images of the correlation between input and output luminance."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    a, b = ((images * weights).sum(1).flatten(1) for images in (inputs, outputs))
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)).mean())


def translated(module: CUT, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([module.translate(chunk, "AtoB") for chunk in images.split(40)])


def train(make_trainer, root: Path, iterations: int, **options) -> CUT:
    """The CUT iteration on horse2zebra's training images (36 -> random 32 crops, flips)."""
    pl.seed_everything(0)
    module = CUT(**NETWORKS, **options)
    data = UnpairedDataModule(
        str(root), load_size=36, crop_size=SIZE, batch_size=BATCH_SIZE, num_workers=0, max_val_size=1
    )
    # D, G and F steps: three optimizer steps per iteration; max_steps alone ends the run.
    trainer = make_trainer(max_steps=3 * iterations, max_epochs=None, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    return module.eval()


@pytest.fixture(scope="module")
def outcome(data_root, make_trainer) -> Dict[str, float]:
    root = data_root / "horse2zebra"
    horses, zebras = load_folder(root / "testA"), load_folder(root / "testB")
    pl.seed_everything(0)
    untrained = translated(CUT(**NETWORKS).eval(), horses)
    cut = translated(train(make_trainer, root, iterations=250), horses)
    # Its structure settles sooner; colours it never learns, however long it runs.
    nce_only = translated(train(make_trainer, root, iterations=100, lambda_gan=0.0), horses)
    return {
        "horses": colour_distance(horses, zebras),
        "zebra_halves": colour_distance(zebras[::2], zebras[1::2]),
        "untrained": colour_distance(untrained, zebras),
        "cut": colour_distance(cut, zebras),
        "cut_to_horses": colour_distance(cut, horses),
        "nce_only": colour_distance(nce_only, zebras),
        "cut_structure": structure(horses, cut),
        "nce_only_structure": structure(horses, nce_only),
        "untrained_structure": structure(horses, untrained),
    }


def test_the_measure_separates_the_domains(outcome):
    assert outcome["horses"] > 5 * outcome["zebra_halves"], outcome


def test_cut_moves_horses_toward_zebras_and_keeps_their_structure(outcome):
    assert outcome["cut"] < 0.25 * outcome["untrained"], outcome
    assert outcome["cut"] < 0.6 * outcome["cut_to_horses"], outcome  # nearer the zebras than the horses
    assert outcome["cut_structure"] > 0.7, outcome


def test_patch_nce_alone_keeps_structure_but_not_the_move(outcome):
    assert outcome["nce_only_structure"] > 0.75, outcome
    assert outcome["nce_only_structure"] > outcome["untrained_structure"] + 0.2, outcome
    assert outcome["nce_only"] > 2 * outcome["cut"], outcome
