"""Image folders (photographs, and 16-bit, float and multi-band images), preprocessing, data modules,
dataset downloads; LitData chunks (``streaming``)."""

from cyclegan_pl.data.base import EpochDataset, item_generator
from cyclegan_pl.data.datamodules import ImageDataModule, PairedDataModule, UnpairedDataModule, default_num_workers
from cyclegan_pl.data.download import DATASETS, DatasetInfo, download_dataset
from cyclegan_pl.data.folder import ImageFolderDataset, image_folder_loader
from cyclegan_pl.data.image import IMAGE_EXTENSIONS, is_image_file, list_images, read_image, require_images
from cyclegan_pl.data.intensity import IntensityMapping
from cyclegan_pl.data.native import read_native, write_native
from cyclegan_pl.data.output import OutputFormat
from cyclegan_pl.data.paired import PairedDataset
from cyclegan_pl.data.readers import ImageReader
from cyclegan_pl.data.samplers import EpochSampler, SizeGroupedBatchSampler
from cyclegan_pl.data.synthetic import make_demo_dataset, make_demo_multiband_dataset, make_demo_paired_dataset
from cyclegan_pl.data.transforms import PREPROCESS, Geometry, ImageTransform, to_float
from cyclegan_pl.data.unpaired import UnpairedDataset

# Imported on first use: they import litdata, which plain folder training does not need.
_STREAMING = {
    "StreamingPairedDataModule": "cyclegan_pl.data.streaming",
    "StreamingUnpairedDataModule": "cyclegan_pl.data.streaming",
    "optimize_images": "cyclegan_pl.data.chunks",
}


def __getattr__(name: str):
    if name in _STREAMING:
        import importlib

        return getattr(importlib.import_module(_STREAMING[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "PREPROCESS",
    "DatasetInfo",
    "EpochDataset",
    "EpochSampler",
    "Geometry",
    "ImageDataModule",
    "ImageFolderDataset",
    "ImageReader",
    "ImageTransform",
    "IntensityMapping",
    "OutputFormat",
    "PairedDataModule",
    "PairedDataset",
    "SizeGroupedBatchSampler",
    "StreamingPairedDataModule",
    "StreamingUnpairedDataModule",
    "UnpairedDataModule",
    "UnpairedDataset",
    "default_num_workers",
    "download_dataset",
    "image_folder_loader",
    "is_image_file",
    "item_generator",
    "list_images",
    "make_demo_dataset",
    "make_demo_multiband_dataset",
    "make_demo_paired_dataset",
    "optimize_images",
    "read_image",
    "read_native",
    "require_images",
    "to_float",
    "write_native",
]
