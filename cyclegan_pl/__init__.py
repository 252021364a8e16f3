"""cyclegan_pl: CycleGAN, pix2pix, CUT, DCLGAN and UNSB as PyTorch Lightning modules.

The names a config or notebook needs are importable from here: the modules (``CycleGAN``,
``Pix2Pix``, ``CUT``, ``DCLGAN``, ``UNSB``) and ``load_checkpoint``, the datamodules (``UnpairedDataModule``,
``PairedDataModule``), the callbacks (``ImagePoolCallback``, ``LinearDecay``, ``SampleGrid``,
``FID``, ``ImageWriter``, ``ResultsPage``), and the base class of the errors a user must fix
(``UserError``).
"""

from cyclegan_pl.callbacks import FID, ImagePoolCallback, ImageWriter, LinearDecay, ResultsPage, SampleGrid
from cyclegan_pl.data import PairedDataModule, UnpairedDataModule
from cyclegan_pl.errors import UserError
from cyclegan_pl.models import CUT, DCLGAN, UNSB, CycleGAN, Pix2Pix, UNSBSampling
from cyclegan_pl.version import __version__
from cyclegan_pl.weights import load_checkpoint

__all__ = [
    "CUT",
    "DCLGAN",
    "FID",
    "CycleGAN",
    "ImagePoolCallback",
    "ImageWriter",
    "LinearDecay",
    "PairedDataModule",
    "Pix2Pix",
    "ResultsPage",
    "SampleGrid",
    "UNSB",
    "UNSBSampling",
    "UnpairedDataModule",
    "UserError",
    "__version__",
    "load_checkpoint",
]
