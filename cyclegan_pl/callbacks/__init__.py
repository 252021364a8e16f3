"""Lightning callbacks: image buffer, LR schedule, sample grids, FID and prediction writing."""

from cyclegan_pl.callbacks.fid import FID, FIDUnavailableError, build_fid_metric
from cyclegan_pl.callbacks.image_buffer import ImageBuffer, ImagePool
from cyclegan_pl.callbacks.linear_decay import LinearDecay
from cyclegan_pl.callbacks.prediction_writer import ImageWriter
from cyclegan_pl.callbacks.sample_grid import SampleGrid

__all__ = [
    "FID",
    "FIDUnavailableError",
    "ImageBuffer",
    "ImagePool",
    "ImageWriter",
    "LinearDecay",
    "SampleGrid",
    "build_fid_metric",
]
