"""cyclegan_pl: CycleGAN and pix2pix as PyTorch Lightning modules.

The names a config or notebook needs are importable from here: the modules (``CycleGAN``,
``Pix2Pix``), the datamodules (``UnpairedDataModule``, ``PairedDataModule``) and the callbacks
(``ImageBuffer``, ``LinearDecay``, ``SampleGrid``, ``FID``, ``ImageWriter``).
"""

from cyclegan_pl.callbacks import FID, ImageBuffer, ImageWriter, LinearDecay, SampleGrid
from cyclegan_pl.data import PairedDataModule, UnpairedDataModule
from cyclegan_pl.models import CycleGAN, Pix2Pix, load_checkpoint

__version__ = "0.1.0"

__all__ = [
    "FID",
    "CycleGAN",
    "ImageBuffer",
    "ImageWriter",
    "LinearDecay",
    "PairedDataModule",
    "Pix2Pix",
    "SampleGrid",
    "UnpairedDataModule",
    "__version__",
    "load_checkpoint",
]
