"""The published dataset archives and a safe downloader for them.

:data:`DATASETS` maps a dataset name to a :class:`DatasetInfo` (its layout kind and archive).
Three names exist in both the CycleGAN (zip, unpaired ``trainA``/``trainB`` layout) and the
pix2pix (tar.gz, paired side-by-side layout) collections: ``facades``, ``maps`` and
``cityscapes``. The plain names are the pix2pix archives, since that is how these sets are
normally trained (aligned, e.g. facades label -> photo); the CycleGAN zips of the same sets are
``cyclegan_facades``, ``cyclegan_maps`` and ``cyclegan_cityscapes``.

:func:`download_dataset` fetches the archive into a staging folder beside the dataset folder
(:func:`~cyclegan_pl.fetch.fetch`: byte count against ``Content-Length``), checks and extracts it
there (:func:`~cyclegan_pl.fetch.extract_archive`), checks that every split folder of the layout
is there, and only then renames the staging folder into place
(:func:`~cyclegan_pl.files.atomic_folder`), so an interrupted or corrupt download never leaves a
half dataset that looks complete. Archives that hold one top-level folder (``horse2zebra/...``)
and archives that hold the splits directly are both handled.

The URL base can be changed with the ``base_url`` argument or the ``CYCLEGAN_PL_DATASET_URL``
environment variable (a folder holding ``NAME.zip`` / ``NAME.tar.gz`` files, e.g. a mirror).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Union

from cyclegan_pl.data.synthetic import make_demo_dataset, make_demo_multiband_dataset, make_demo_paired_dataset
from cyclegan_pl.errors import DownloadError
from cyclegan_pl.fetch import MAX_DATASET_MEMBER_BYTES, extract_archive, fetch
from cyclegan_pl.files import atomic_folder
from cyclegan_pl.registry import Registry

URL_ENV = "CYCLEGAN_PL_DATASET_URL"
CYCLEGAN_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"

#: Split folders each dataset kind needs, and its layout in words (shown in errors so files can be
#: put in place by hand).
REQUIRED_FOLDERS = {
    "unpaired": ("trainA", "trainB", "testA", "testB"),
    "paired": ("train", "test"),
    "images": ("train", "test"),
}
LAYOUTS = {
    "unpaired": "{root}/ holding image folders trainA/, trainB/, testA/, testB/ (optional valA/, valB/)",
    "paired": (
        "{root}/ holding folders train/, test/ (optional val/) of images with A and B side by "
        "side (A left, B right), or each holding A/ and B/ sub-folders with matching file names"
    ),
    "images": "{root}/ holding image folders train/, test/",
}

#: Junk that archives made on macOS carry, ignored when looking for the dataset folder.
_ARCHIVE_JUNK = {"__MACOSX", ".DS_Store"}


@dataclass(frozen=True)
class DatasetInfo:
    """A known dataset archive.

    Args:
        name: the registry name (also the folder name it is extracted to by default).
        kind: ``"unpaired"`` (trainA/trainB/testA/testB), ``"paired"`` (side-by-side A|B) or
            ``"images"`` (plain image folders, e.g. for colorization).
        filename: the archive's file name under ``base_url``.
        base_url: where the archive lives by default.
        make: for datasets the package generates itself (``demo``): a function writing the
            dataset into a folder; such datasets are made, never downloaded.
    """

    name: str
    kind: str
    filename: str
    base_url: str
    make: Optional[Callable[[Path], Path]] = None

    def url(self, base_url: Optional[str] = None) -> str:
        """The archive's URL, under ``base_url`` (or $CYCLEGAN_PL_DATASET_URL) when given."""
        base = base_url or os.environ.get(URL_ENV) or self.base_url
        return f"{base.rstrip('/')}/{self.filename}"

    def layout(self, root: Union[str, Path]) -> str:
        """The folder layout this dataset needs under ``root``."""
        return LAYOUTS[self.kind].format(root=str(root).rstrip("/\\"))


#: Known datasets by name.
DATASETS: Registry[DatasetInfo] = Registry("dataset")

_CYCLEGAN_UNPAIRED = (
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "iphone2dslr_flower",
    "ae_photos",
    "mini",
    "grumpifycat",
)
# The CycleGAN zips of sets that pix2pix also publishes (aligned) get a prefix.
_CYCLEGAN_CLASHING = ("maps", "cityscapes", "facades")
_PIX2PIX = ("cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps")

for _name in _CYCLEGAN_UNPAIRED:
    DATASETS.add(_name, DatasetInfo(_name, "unpaired", f"{_name}.zip", CYCLEGAN_BASE_URL))
for _name in _CYCLEGAN_CLASHING:
    DATASETS.add(
        f"cyclegan_{_name}",
        DatasetInfo(f"cyclegan_{_name}", "unpaired", f"{_name}.zip", CYCLEGAN_BASE_URL),
    )
DATASETS.add("mini_pix2pix", DatasetInfo("mini_pix2pix", "paired", "mini_pix2pix.zip", CYCLEGAN_BASE_URL))
DATASETS.add(
    "mini_colorization",
    DatasetInfo("mini_colorization", "images", "mini_colorization.zip", CYCLEGAN_BASE_URL),
)
for _name in _PIX2PIX:
    DATASETS.add(_name, DatasetInfo(_name, "paired", f"{_name}.tar.gz", PIX2PIX_BASE_URL))
del _name
# Generated locally, so `download=True` works offline: the README's demo uses it.
DATASETS.add("demo", DatasetInfo("demo", "unpaired", "", "", make=lambda target: make_demo_dataset(target)))
DATASETS.add(
    "demo_pix2pix",
    DatasetInfo("demo_pix2pix", "paired", "", "", make=lambda target: make_demo_paired_dataset(target)),
)
DATASETS.add(
    "demo_multiband",
    DatasetInfo("demo_multiband", "unpaired", "", "", make=lambda target: make_demo_multiband_dataset(target)),
)


def download_hint(name: Optional[str], root: Union[str, Path]) -> str:
    """How to get a dataset into ``root``: the CLI command and the option."""
    root = Path(root)
    if name and name in DATASETS:
        return (
            f"Download it with `python -m cyclegan_pl download {name} --root {root.parent}` or set "
            "`download=True` on the data module."
        )
    return (
        "Put your images in place, or for a published dataset set `dataset` and `download=True`, "
        f"or run `python -m cyclegan_pl download NAME --root {root.parent}` "
        f"(NAME one of: {', '.join(DATASETS.names())})."
    )


def missing_folders(target: Union[str, Path], kind: str) -> List[str]:
    """The folders of a ``kind`` dataset (see :data:`REQUIRED_FOLDERS`) that ``target`` lacks."""
    return [name for name in REQUIRED_FOLDERS[kind] if not (Path(target) / name).is_dir()]


def download_dataset(
    name: str,
    root: Union[str, Path] = "data",
    url: Optional[str] = None,
    base_url: Optional[str] = None,
    folder: Optional[str] = None,
    progress: bool = True,
    timeout: float = 60.0,
    overwrite: bool = False,
    max_member_bytes: int = MAX_DATASET_MEMBER_BYTES,
) -> Path:
    """Download and extract a known dataset into ``root/folder``.

    A folder that already holds every split folder of the dataset's layout is kept as it is
    (``overwrite`` replaces it); one that exists but lacks some is an error naming them, since
    downloading over it would mix two copies.

    Args:
        name: a name in :data:`DATASETS` (e.g. ``horse2zebra``, ``facades``).
        root: the folder that receives the dataset folder.
        url: the archive's full URL (default: the dataset's URL under ``base_url``).
        base_url: the folder URL holding the archives (default: $CYCLEGAN_PL_DATASET_URL, else
            the official servers).
        folder: the dataset folder's name inside ``root`` (default: ``name``).
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.
        overwrite: replace an existing dataset folder, complete or not.
        max_member_bytes: the largest file the archive may hold (default 256 MiB, far above any
            image of the published datasets); a larger member is refused before it is written.

    Returns:
        The dataset folder.

    Raises:
        DownloadError: the download or the archive failed (nothing is left behind), or an
            incomplete folder is in the way.
    """
    info = DATASETS.get(name)
    target = Path(root) / (folder or name)
    if target.exists() and not overwrite and any(target.iterdir()):
        missing = missing_folders(target, info.kind)
        if not missing:
            return target
        raise DownloadError(
            f"'{target}' exists but lacks {', '.join(m + '/' for m in missing)} of the {name} layout "
            f"({info.layout(target)}): complete it by hand, or download it again with "
            f"`python -m cyclegan_pl download {name} --root {target.parent} --overwrite`."
        )
    if info.make is not None:
        return info.make(target)
    source = url or info.url(base_url)
    manual_step = _manual_instructions(info, source, target)
    with atomic_folder(target, replace=True) as staging:
        archive = fetch(
            source,
            staging / ".archive",
            what=f"dataset '{name}'",
            manual_step=manual_step,
            progress=progress,
            timeout=timeout,
        )
        extracted = staging / ".extracted"
        try:
            extract_archive(archive, extracted, max_member_bytes)
        except DownloadError:
            raise
        except Exception as error:
            raise DownloadError(
                f"The archive downloaded from {source} is corrupt or truncated "
                f"({type(error).__name__}: {error}); nothing was extracted. Try again, or {manual_step}"
            ) from error
        archive.unlink()
        for entry in _dataset_folder(extracted, info).iterdir():
            if entry.name not in _ARCHIVE_JUNK:
                os.replace(entry, staging / entry.name)
        shutil.rmtree(extracted)
        missing = missing_folders(staging, info.kind)
        if missing:
            raise DownloadError(
                f"The archive from {source} does not hold {', '.join(m + '/' for m in missing)} of the "
                f"{name} layout; nothing was written. Check the URL, or {manual_step}"
            )
    return target


def _manual_instructions(info: DatasetInfo, source: str, target: Path) -> str:
    return f"download {source} by hand and extract it so that the files lie as {info.layout(target)}."


def _dataset_folder(staging: Path, info: DatasetInfo) -> Path:
    """The extracted dataset: the single top-level folder named like it, or the staging folder."""
    entries = [p for p in staging.iterdir() if p.name not in _ARCHIVE_JUNK]
    if not entries:
        raise DownloadError(f"the archive of '{info.name}' is empty")
    stem = info.filename.split(".")[0].lower()
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() in (info.name.lower(), stem):
        return entries[0]
    return staging
