"""One LightningModule per method; each registers itself in :data:`cyclegan_pl.methods.METHODS`."""

from cyclegan_pl.methods import METHODS
from cyclegan_pl.models.base import ImageTranslationModule, Translation
from cyclegan_pl.models.cut import CUT
from cyclegan_pl.models.cyclegan import CycleGAN
from cyclegan_pl.models.dclgan import DCLGAN
from cyclegan_pl.models.pix2pix import Pix2Pix
from cyclegan_pl.models.unsb import UNSB, UNSBSampling

__all__ = [
    "CUT",
    "DCLGAN",
    "METHODS",
    "CycleGAN",
    "ImageTranslationModule",
    "Pix2Pix",
    "Translation",
    "UNSB",
    "UNSBSampling",
]
