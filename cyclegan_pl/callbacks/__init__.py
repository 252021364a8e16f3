"""Lightning callbacks: image pool, LR schedule, sample grids, FID, image writing, results pages."""

from cyclegan_pl.callbacks.best_checkpoint import BestCheckpoint
from cyclegan_pl.callbacks.fid import FID, build_fid_metric
from cyclegan_pl.callbacks.image_pool import ImagePool, ImagePoolCallback
from cyclegan_pl.callbacks.image_writer import ImageWriter
from cyclegan_pl.callbacks.linear_decay import LinearDecay
from cyclegan_pl.callbacks.results_page import ResultsPage
from cyclegan_pl.callbacks.sample_grid import SampleGrid

__all__ = [
    "BestCheckpoint",
    "FID",
    "ImagePool",
    "ImagePoolCallback",
    "ImageWriter",
    "LinearDecay",
    "ResultsPage",
    "SampleGrid",
    "build_fid_metric",
]
