"""Lightning callbacks: image pool, LR schedule, sample grids, FID and image writing."""

from cyclegan_pl.callbacks.fid import FID, build_fid_metric
from cyclegan_pl.callbacks.image_pool import ImagePool, ImagePoolCallback
from cyclegan_pl.callbacks.image_writer import ImageWriter
from cyclegan_pl.callbacks.linear_decay import LinearDecay
from cyclegan_pl.callbacks.sample_grid import SampleGrid

__all__ = [
    "FID",
    "ImagePool",
    "ImagePoolCallback",
    "ImageWriter",
    "LinearDecay",
    "SampleGrid",
    "build_fid_metric",
]
