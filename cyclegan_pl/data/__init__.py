"""Image folders, preprocessing, data modules and dataset downloads."""

from cyclegan_pl.data.datamodules import PairedDataModule, UnpairedDataModule, default_num_workers
from cyclegan_pl.data.datasets import (
    DataLayoutError,
    EpochSampler,
    ImageFolderDataset,
    PairedDataset,
    SizeGroupedBatchSampler,
    UnpairedDataset,
    item_generator,
)
from cyclegan_pl.data.download import (
    DATASETS,
    DatasetDownloadError,
    DatasetInfo,
    download_dataset,
)
from cyclegan_pl.data.image import IMAGE_EXTENSIONS, BadImageError, is_image_file, list_images, read_image
from cyclegan_pl.data.synthetic import make_demo_dataset, make_demo_paired_dataset
from cyclegan_pl.data.transforms import PREPROCESS, Geometry, ImageTransform, to_float

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "PREPROCESS",
    "BadImageError",
    "DataLayoutError",
    "DatasetDownloadError",
    "DatasetInfo",
    "EpochSampler",
    "Geometry",
    "ImageFolderDataset",
    "ImageTransform",
    "PairedDataModule",
    "PairedDataset",
    "SizeGroupedBatchSampler",
    "UnpairedDataModule",
    "UnpairedDataset",
    "default_num_workers",
    "download_dataset",
    "is_image_file",
    "item_generator",
    "list_images",
    "make_demo_dataset",
    "make_demo_paired_dataset",
    "read_image",
    "to_float",
]
