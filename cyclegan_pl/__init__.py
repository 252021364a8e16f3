"""cyclegan_pl: CycleGAN and pix2pix as PyTorch Lightning modules."""

from cyclegan_pl.models import CycleGAN, Pix2Pix

__version__ = "0.1.0"

__all__ = ["CycleGAN", "Pix2Pix", "__version__"]
