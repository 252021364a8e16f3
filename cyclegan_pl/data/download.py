"""The published dataset archives and a safe downloader for them.

:data:`DATASETS` maps a dataset name to a :class:`DatasetInfo` (its layout kind and archive).
Three names exist in both the CycleGAN (zip, unpaired ``trainA``/``trainB`` layout) and the
pix2pix (tar.gz, paired side-by-side layout) collections: ``facades``, ``maps`` and
``cityscapes``. The plain names are the pix2pix archives, since that is how these sets are
normally trained (aligned, e.g. facades label -> photo); the CycleGAN zips of the same sets are
``cyclegan_facades``, ``cyclegan_maps`` and ``cyclegan_cityscapes``.

:func:`download_dataset` uses ``urllib`` only. It streams the archive into a temporary file inside
``root``, checks it (byte count equals ``Content-Length``, every zip member's CRC / the whole
tar.gz read through), extracts it into a temporary folder inside ``root`` and only then
``os.replace``-s the dataset folder into place, so an interrupted or corrupt download never leaves
a half dataset that looks complete. Archives that hold one top-level folder (``horse2zebra/...``)
and archives that hold the splits directly are both handled.

The URL base can be changed with the ``base_url`` argument or the ``CYCLEGAN_PL_DATASET_URL``
environment variable (a folder holding ``NAME.zip`` / ``NAME.tar.gz`` files, e.g. a mirror).
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from cyclegan_pl.data.synthetic import make_demo_dataset, make_demo_paired_dataset
from cyclegan_pl.registry import Registry

URL_ENV = "CYCLEGAN_PL_DATASET_URL"
CYCLEGAN_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"

#: Folder layout each dataset kind needs, shown in errors so files can be put in place by hand.
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
DATASETS: Registry[DatasetInfo] = Registry("dataset", option="data.dataset")

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


class DatasetDownloadError(RuntimeError):
    """A download or extraction failed; the message says how to put the files in place by hand."""


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


def download_dataset(
    name: str,
    root: Union[str, Path] = "data",
    url: Optional[str] = None,
    base_url: Optional[str] = None,
    folder: Optional[str] = None,
    progress: bool = True,
    timeout: float = 60.0,
    overwrite: bool = False,
) -> Path:
    """Download and extract a known dataset into ``root/folder``.

    Args:
        name: a name in :data:`DATASETS` (e.g. ``horse2zebra``, ``facades``).
        root: the folder that receives the dataset folder.
        url: the archive's full URL (default: the dataset's URL under ``base_url``).
        base_url: the folder URL holding the archives (default: $CYCLEGAN_PL_DATASET_URL, else
            the official servers).
        folder: the dataset folder's name inside ``root`` (default: ``name``).
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.
        overwrite: replace an existing dataset folder (otherwise it is kept and returned).

    Returns:
        The dataset folder.

    Raises:
        DatasetDownloadError: the download or the archive failed; nothing is left behind.
    """
    info = DATASETS.get(name)
    root = Path(root)
    target = root / (folder or name)
    if target.exists() and not overwrite and any(target.iterdir()):
        return target
    if info.make is not None:
        return info.make(target)
    source = url or info.url(base_url)
    root.mkdir(parents=True, exist_ok=True)
    archive_suffix = ".zip" if info.filename.endswith(".zip") else ".tar.gz"
    fd, part_name = tempfile.mkstemp(prefix=f".{name}-", suffix=archive_suffix + ".part", dir=root)
    os.close(fd)
    part = Path(part_name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-extract-", dir=root))
    try:
        _fetch(source, part, progress=progress, timeout=timeout, info=info, target=target)
        try:
            if archive_suffix == ".zip":
                _check_and_extract_zip(part, staging)
            else:
                _check_and_extract_tar(part, staging)
        except DatasetDownloadError:
            raise
        except Exception as error:
            raise DatasetDownloadError(
                f"The archive downloaded from {source} is corrupt or truncated "
                f"({type(error).__name__}: {error}); nothing was extracted. Try again, or "
                f"{_manual_instructions(info, source, target)}"
            ) from error
        content = _dataset_folder(staging, info)
        if target.exists():
            shutil.rmtree(target)
        os.replace(content, target)
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _manual_instructions(info: DatasetInfo, source: str, target: Path) -> str:
    return (
        f"download {source} by hand and extract it so that the files lie as "
        f"{info.layout(target)}."
    )


def _fetch(
    source: str, destination: Path, progress: bool, timeout: float, info: DatasetInfo, target: Path
) -> None:
    received = 0
    expected: Optional[int] = None
    try:
        with urllib.request.urlopen(source, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            bar = _progress_bar(expected, f"{info.name}", progress)
            try:
                with open(destination, "wb") as out:
                    while True:
                        chunk = response.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            finally:
                bar.close()
    except (urllib.error.URLError, OSError, ValueError, EOFError) as error:
        reason = getattr(error, "reason", None) or error
        raise DatasetDownloadError(
            f"Could not download dataset '{info.name}' from {source} ({type(error).__name__}: "
            f"{reason}; {received} bytes received). Check the network (or set the mirror "
            f"${URL_ENV}), or {_manual_instructions(info, source, target)}"
        ) from error
    except Exception as error:  # http.client.IncompleteRead and friends
        raise DatasetDownloadError(
            f"The download of '{info.name}' from {source} stopped after {received} bytes "
            f"({type(error).__name__}: {error}). Try again, or "
            f"{_manual_instructions(info, source, target)}"
        ) from error
    if expected is not None and received != expected:
        raise DatasetDownloadError(
            f"The download of '{info.name}' from {source} is incomplete: {received} of {expected} "
            f"bytes. Try again, or {_manual_instructions(info, source, target)}"
        )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: Optional[int], description: str, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with lightning, but the download must not depend on it
        return _NoBar()
    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=description, file=sys.stderr
    )


def _check_and_extract_zip(archive: Path, destination: Path) -> None:
    with zipfile.ZipFile(archive) as handle:
        broken = handle.testzip()
        if broken is not None:
            raise DatasetDownloadError(f"zip member '{broken}' fails its CRC check")
        for member in handle.namelist():
            _check_member_path(member)
        handle.extractall(destination)


def _check_and_extract_tar(archive: Path, destination: Path) -> None:
    # Read everything once: gzip checks its CRC and length only at the end of the stream.
    with tarfile.open(archive, "r:*") as handle:
        for member in handle:
            _check_member_path(member.name)
            if member.issym() or member.islnk():
                _check_member_path(os.path.join(os.path.dirname(member.name), member.linkname))
            if member.isfile():
                stream = handle.extractfile(member)
                if stream is not None:
                    while stream.read(1 << 20):
                        pass
    with tarfile.open(archive, "r:*") as handle:
        if hasattr(tarfile, "data_filter"):
            handle.extractall(destination, filter="data")
        else:  # Python without extraction filters: paths were checked above
            handle.extractall(destination)


def _check_member_path(member: str) -> None:
    normalized = member.replace("\\", "/")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":") or ".." in parts:
        raise DatasetDownloadError(f"unsafe path in archive: '{member}' (refusing to extract)")


def _dataset_folder(staging: Path, info: DatasetInfo) -> Path:
    """The extracted dataset: the single top-level folder named like it, or the staging folder."""
    entries = [p for p in staging.iterdir() if p.name not in _ARCHIVE_JUNK]
    if not entries:
        raise DatasetDownloadError(f"the archive of '{info.name}' is empty")
    stem = info.filename.split(".")[0].lower()
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() in (info.name.lower(), stem):
        return entries[0]
    for junk in _ARCHIVE_JUNK:
        path = staging / junk
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return staging
