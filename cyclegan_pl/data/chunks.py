"""Image folders as LitData chunks (``litdata.optimize``), and opening them again without risk.

What :func:`optimize_images` writes
-----------------------------------
One LitData dataset (``index.json`` and ``chunk-*.bin`` files) per split, in the image folders'
layout: ``trainA/ trainB/ testA/ testB/`` (and ``valA/ valB/``) for unpaired folders, ``train/
test/ val/`` for paired ones, the output folder itself for a single folder of images. Every item
is one record (:func:`pack_record`): the file name(s) and the image file(s) byte for byte as they
lie on disk (a JPEG stays that JPEG; nothing is decoded or encoded again). The items keep the
folder datasets' order (sorted relative paths), so item ``i`` of a split is file ``i`` of its
folder. A split is finished when it holds ``cyclegan_pl_chunks.json`` (:data:`MARKER`: what the
records are, how many, a digest of the source files), which is written after everything else.

A local output is written into a hidden staging folder beside it and renamed into place when every
split is done (:func:`cyclegan_pl.files.atomic_folder`): an interrupted run leaves no output,
only the staging folder, which the next run removes. Towards an object-store URL (``s3://``,
``gs://``), LitData uploads each split's chunks and index and the marker follows last. Running
again on a finished output of the same files does nothing.

Opening chunks without running code from them
---------------------------------------------
LitData chooses the decoder of each field by the name ``index.json`` gives it, and some decoders
unpickle (``pickle``, ``graph``): a crafted ``index.json`` would make reading a chunk run code.
So (1) :func:`open_split` checks the marker and ``index.json`` first (format, version, one field
stored as ``bytes``, no compression or encryption, plain chunk file names, the item count), and
(2) every reader gets :func:`safe_serializers`, in which every decoder but ``bytes`` refuses to
run: an index changed after the check still only ever yields bytes, which :func:`unpack_record`
parses with bounds checks.

LitData details handled here: before 0.2.70 it asks PyPI for a newer version whenever a dataset is
made (``LITDATA_DISABLE_VERSION_CHECK=1`` is set before it is imported, so nothing goes to the
network unasked); ``optimize`` empties its cache folders (``$TMPDIR/chunks`` and
``$TMPDIR/data`` by default, shared by every user of the machine) before it starts, so each
conversion gets private ones; its SIGINT handler ends the process with status 0 and stays
installed, so Ctrl-C is kept a ``KeyboardInterrupt`` during the conversion.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Optional, Sequence, Set, Tuple, Union

from cyclegan_pl.data.base import BadImageSkipper
from cyclegan_pl.data.image import require_images
from cyclegan_pl.data.paired import is_separate_pair_layout, pair_files
from cyclegan_pl.errors import BadImageError, DataLayoutError, OptionError, StorageError
from cyclegan_pl.files import atomic_file, atomic_folder

# Before litdata is imported: it reads the variable once, and versions before 0.2.70 then ask PyPI
# for a newer one each time a dataset or a conversion is made. A user's own opt-in is kept.
if "LITDATA_CHECK_UPDATES" not in os.environ:
    os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")

import litdata  # noqa: E402  (the variable above must be set first)
from litdata.streaming.serializers import _SERIALIZERS, BytesSerializer, Serializer  # noqa: E402

PathLike = Union[str, "os.PathLike[str]"]

#: The file that marks a finished split, written last.
MARKER = "cyclegan_pl_chunks.json"
FORMAT = "cyclegan_pl.chunks"
FORMAT_VERSION = 1
INDEX = "index.json"

#: What the records of a split hold, by content kind: names first, then the image files.
CONTENTS: Dict[str, Tuple[str, ...]] = {
    "images": ("name", "image"),
    "side_by_side": ("name", "image"),
    "separate": ("name_a", "name_b", "image_a", "image_b"),
}
Layout = Literal["auto", "unpaired", "paired", "folder"]
UNPAIRED_SPLITS = ("trainA", "trainB", "testA", "testB", "valA", "valB")
PAIRED_SPLITS = ("train", "test", "val")
#: The object stores a conversion is written to and read from (through LitData).
REMOTE_SCHEMES = ("s3", "gs")

_RECORD_MAGIC = b"CGPL"
_RECORD_VERSION = 1
_LENGTH = struct.Struct("<I")
_CHUNK_FILE = re.compile(r"chunk-\d+-\d+\.bin")
# A record of one file must not make the reader allocate without bound: the biggest index.json
# and marker we read, and the default cap on one image file.
_MAX_INDEX_BYTES = 64 << 20
_MAX_MARKER_BYTES = 1 << 20
DEFAULT_MAX_IMAGE_BYTES = 256 << 20
# What LitData's index.json says of a record that is one bytes string.
_BYTES_LEAF_SPEC = [1, {"type": None, "context": None, "children_spec": []}]


# --- records ------------------------------------------------------------------------------------


def pack_record(parts: Sequence[bytes]) -> bytes:
    """One item: ``CGPL``, version, part count, each part's length (u32), then the parts."""
    header = _RECORD_MAGIC + bytes([_RECORD_VERSION, len(parts)])
    return header + b"".join(_LENGTH.pack(len(part)) for part in parts) + b"".join(parts)


def unpack_record(data: bytes, parts: int, where: str) -> List[bytes]:
    """The ``parts`` byte strings of a record; a record of another shape is a :class:`DataLayoutError`.

    Args:
        data: the record (bytes, or a view of a chunk's memory).
        parts: how many parts it must hold.
        where: the split and item, named in the error.
    """
    view = memoryview(data)
    start = len(_RECORD_MAGIC) + 2 + parts * _LENGTH.size
    if (
        len(view) < start
        or view[: len(_RECORD_MAGIC)] != _RECORD_MAGIC
        or view[len(_RECORD_MAGIC)] != _RECORD_VERSION
        or view[len(_RECORD_MAGIC) + 1] != parts
    ):
        raise DataLayoutError(f"{where} is not a cyclegan_pl record of {parts} parts; convert the folders again.")
    offset = len(_RECORD_MAGIC) + 2
    lengths = [_LENGTH.unpack_from(view, offset + i * _LENGTH.size)[0] for i in range(parts)]
    if start + sum(lengths) != len(view):
        raise DataLayoutError(f"{where} is damaged (its parts do not add up to its size); convert the folders again.")
    pieces = []
    for length in lengths:
        pieces.append(bytes(view[start : start + length]))  # one copy per part, none of the whole record
        start += length
    return pieces


def encode_name(name: str) -> bytes:
    # surrogateescape keeps file names that are not valid UTF-8 (bytes from another system).
    return name.encode("utf-8", "surrogateescape")


def decode_name(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# --- what a conversion reads --------------------------------------------------------------------


@dataclass
class SplitPlan:
    """One split of a conversion: where it goes, what its records hold, and its files.

    Attributes:
        name: the split's folder in the output (``trainA``, ``train``...; ``""`` for a single folder).
        content: a key of :data:`CONTENTS`.
        names: per item, the names stored in the record (one, or two for separate pairs).
        files: per item, the image files stored in the record.
        digest: sha256 of the content kind, names and file sizes: what "the same source" means.
    """

    name: str
    content: str
    names: List[Tuple[str, ...]]
    files: List[Tuple[str, ...]]
    digest: str = ""


def detect_layout(source: Path) -> str:
    """``unpaired`` (trainA/ and trainB/), ``paired`` (train/) or ``folder`` (anything else)."""
    if (source / "trainA").is_dir() and (source / "trainB").is_dir():
        return "unpaired"
    if (source / "train").is_dir():
        return "paired"
    return "folder"


def plan_conversion(
    source: PathLike,
    layout: Layout = "auto",
    skip_bad_images: bool = False,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> Tuple[str, List[SplitPlan]]:
    """The layout and the splits a conversion of ``source`` writes.

    Args:
        source: the dataset folder (or one folder of images).
        layout: ``unpaired``, ``paired``, ``folder`` or ``auto`` (:func:`detect_layout`).
        skip_bad_images: leave out files that fail a cheap integrity check (one warning naming them).
        max_image_bytes: refuse image files larger than this.

    Raises:
        DataLayoutError: a folder the layout needs is missing or holds no images.
        BadImageError: a file is over ``max_image_bytes``.
    """
    source = Path(source)
    if not source.exists():
        raise DataLayoutError(f"Source folder '{source}' does not exist.")
    if layout == "auto":
        layout = detect_layout(source)
    if layout == "unpaired":
        for name in ("trainA", "trainB"):
            if not (source / name).is_dir():
                raise DataLayoutError(
                    f"Folder '{source / name}' does not exist: an unpaired dataset holds trainA/, trainB/ "
                    "(and testA/, testB/, valA/, valB/)."
                )
        plans = [_images_plan(source / name, name) for name in UNPAIRED_SPLITS if (source / name).is_dir()]
    elif layout == "paired":
        if not (source / "train").is_dir():
            raise DataLayoutError(
                f"Folder '{source / 'train'}' does not exist: a paired dataset holds train/ (and test/, val/), "
                "each with side-by-side A|B images or A/ and B/ sub-folders."
            )
        plans = [_pairs_plan(source / name, name) for name in PAIRED_SPLITS if (source / name).is_dir()]
    elif layout == "folder":
        plans = [_images_plan(source, "")]
    else:
        raise OptionError(f"layout={layout!r}: use auto, unpaired, paired or folder.", option="layout")
    skipper = BadImageSkipper(skip_bad_images)
    for plan in plans:
        _drop_unreadable(plan, skipper, source)
        _check_sizes(plan, max_image_bytes)
        plan.digest = _digest(plan)
    return layout, plans


def _images_plan(folder: Path, name: str) -> SplitPlan:
    files = require_images(folder, "images to convert")
    root = folder if folder.is_dir() else folder.parent
    return SplitPlan(name, "images", [(p.relative_to(root).as_posix(),) for p in files], [(str(p),) for p in files])


def _pairs_plan(folder: Path, name: str) -> SplitPlan:
    if is_separate_pair_layout(folder):
        files_a, files_b = pair_files(folder / "A", folder / "B")
        names = [
            (a.relative_to(folder / "A").as_posix(), b.relative_to(folder / "B").as_posix())
            for a, b in zip(files_a, files_b, strict=True)
        ]
        return SplitPlan(name, "separate", names, [(str(a), str(b)) for a, b in zip(files_a, files_b, strict=True)])
    files = require_images(folder, f"{name} pairs (side-by-side A|B images)")
    return SplitPlan(
        name, "side_by_side", [(p.relative_to(folder).as_posix(),) for p in files], [(str(p),) for p in files]
    )


def _drop_unreadable(plan: SplitPlan, skipper: BadImageSkipper, source: Path) -> None:
    if not skipper.skip_bad_images:
        return
    width = len(plan.files[0])
    groups = [[Path(files[i]) for files in plan.files] for i in range(width)]
    kept = skipper.drop_unreadable(groups, f"folder '{source / plan.name}'")
    keep = {tuple(str(p) for p in item) for item in zip(*kept, strict=True)}
    pairs = [(names, files) for names, files in zip(plan.names, plan.files, strict=True) if files in keep]
    if not pairs:
        raise DataLayoutError(f"Folder '{source / plan.name}' has no readable image files left.")
    plan.names, plan.files = [n for n, _ in pairs], [f for _, f in pairs]


def _check_sizes(plan: SplitPlan, max_image_bytes: int) -> None:
    for files in plan.files:
        for path in files:
            size = os.stat(path).st_size
            if size > max_image_bytes:
                raise BadImageError(
                    path,
                    f"{size} bytes, over the limit of {max_image_bytes} bytes for one image file",
                    "Shrink it, leave it out, or raise max_image_bytes.",
                )


def _digest(plan: SplitPlan) -> str:
    sizes = [[os.stat(path).st_size for path in files] for files in plan.files]
    text = json.dumps([plan.content, plan.names, sizes], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def record_of(content: str, names: List[Tuple[str, ...]], files: List[Tuple[str, ...]], cap: int, index: int) -> bytes:
    """The record of item ``index`` (what the conversion's workers run, one call per item)."""
    images = []
    for path in files[index]:
        with open(path, "rb") as handle:
            data = handle.read(cap + 1)
        if len(data) > cap:
            raise BadImageError(path, f"grew past {cap} bytes while being converted")
        images.append(data)
    return pack_record([encode_name(name) for name in names[index]] + images)


# --- markers and index checks -------------------------------------------------------------------


def marker_for(plan: SplitPlan) -> Dict[str, Any]:
    from cyclegan_pl.version import __version__

    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "content": plan.content,
        "parts": list(CONTENTS[plan.content]),
        "count": len(plan.files),
        "source_digest": plan.digest,
        "written_by": f"cyclegan_pl {__version__}",
    }


def parse_marker(text: str, where: str) -> Dict[str, Any]:
    """A marker's fields, or a :class:`DataLayoutError` naming ``where``."""
    try:
        marker = json.loads(text)
    except ValueError as error:
        raise DataLayoutError(f"'{where}' is not a cyclegan_pl chunk marker ({error}).") from None
    ok = (
        isinstance(marker, dict)
        and marker.get("format") == FORMAT
        and marker.get("content") in CONTENTS
        and isinstance(marker.get("count"), int)
        and marker["count"] > 0
    )
    if not ok:
        raise DataLayoutError(f"'{where}' is not a cyclegan_pl chunk marker; convert the folders again with optimize.")
    if marker.get("version") != FORMAT_VERSION:
        raise DataLayoutError(
            f"'{where}' was written in chunk format version {marker.get('version')}; this cyclegan_pl reads "
            f"version {FORMAT_VERSION}: convert the folders again with optimize."
        )
    return marker


def check_index(index: Any, count: int, where: str) -> None:
    """Refuse an ``index.json`` that is not exactly what a conversion writes (see the module doc)."""
    config = index.get("config") if isinstance(index, dict) else None
    chunks = index.get("chunks") if isinstance(index, dict) else None
    problem = None
    if not isinstance(config, dict) or not isinstance(chunks, list):
        problem = "it is not a LitData chunk index"
    elif config.get("data_format") != ["bytes"]:
        problem = f"its records are stored as {config.get('data_format')!r}, not as one bytes field"
    elif _loads_json(config.get("data_spec")) != _BYTES_LEAF_SPEC or config.get("item_loader") != "PyTreeLoader":
        problem = "its records are not single bytes strings"
    elif config.get("compression") or config.get("encryption"):
        problem = "it is compressed or encrypted, which optimize never does"
    elif not all(isinstance(c, dict) and _CHUNK_FILE.fullmatch(str(c.get("filename", ""))) for c in chunks):
        problem = "it names chunk files other than chunk-N-M.bin"
    elif sum(int(c.get("chunk_size", 0)) for c in chunks) != count:
        problem = f"it lists {sum(int(c.get('chunk_size', 0)) for c in chunks)} items where the marker says {count}"
    if problem:
        raise DataLayoutError(
            f"Chunk folder '{where}' is not a cyclegan_pl conversion: {problem}. Convert the folders again with "
            "optimize."
        )


def _loads_json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _read_text(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise DataLayoutError(f"'{path}' is larger than {limit} bytes: not a file optimize writes.")
    return data.decode("utf-8", "replace")


class _RefusedDecoder(Serializer):
    """Stands in for each LitData decoder but ``bytes``: conversions store bytes only, and some of
    LitData's decoders (``pickle``, ``graph``) would run code named in a chunk."""

    def __init__(self, name: str) -> None:
        self.name = name

    def serialize(self, item: Any) -> Tuple[bytes, Optional[str]]:
        raise DataLayoutError(f"cyclegan_pl chunks store bytes only, not {self.name}.")

    def deserialize(self, data: bytes) -> Any:
        raise DataLayoutError(
            f"Refused to decode a chunk field stored as {self.name!r}: cyclegan_pl chunks hold bytes only, and "
            "this decoder could run code from the file. Convert the folders again with optimize."
        )

    def can_serialize(self, item: Any) -> bool:
        return False


def safe_serializers() -> Dict[str, Serializer]:
    """LitData's decoders by name, every one but ``bytes`` replaced by a refusal."""
    return {name: BytesSerializer() if name == "bytes" else _RefusedDecoder(name) for name in _SERIALIZERS}


# --- where the chunks are -----------------------------------------------------------------------


def is_url(location: str) -> bool:
    """Whether ``location`` is an object-store URL (``scheme://...``) rather than a local path."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", str(location)) is not None


def join(location: str, name: str) -> str:
    """``location/name`` for a path or a URL; ``location`` itself for the empty name."""
    if not name:
        return str(location)
    return f"{str(location).rstrip('/')}/{name}"


def check_remote(location: str, option: str) -> None:
    scheme = str(location).split("://", 1)[0].lower()
    if scheme not in REMOTE_SCHEMES:
        raise OptionError(
            f"{option}={location}: use a local folder or an {' or '.join(s + '://' for s in REMOTE_SCHEMES)} URL.",
            option=option,
        )


_CREDENTIAL_ERRORS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "DefaultCredentialsError",
    "RefreshError",
    "_CredentialsUnavailableError",
}
_CREDENTIAL_HINTS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or run where an instance role "
    "provides them",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run "
    "`gcloud auth application-default login`",
}
_SCHEME_PACKAGES = {"gs": "google-cloud-storage"}


@contextlib.contextmanager
def storage_errors(location: str) -> Iterator[None]:
    """Turn a missing credential or client library for ``location`` into one :class:`StorageError` line."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - classified by storage_error, re-raised otherwise
        translated = storage_error(error, location)
        if translated is None:
            raise
        raise translated from None


def storage_error(error: BaseException, location: str) -> Optional[StorageError]:
    """The one-line error for ``error`` when it is a missing credential or client library, else None."""
    scheme = str(location).split("://", 1)[0].lower()
    for cause in _causes(error):
        if type(cause).__name__ in _CREDENTIAL_ERRORS:
            hint = _CREDENTIAL_HINTS.get(scheme, "provide the storage credentials in the environment")
            return StorageError(f"No credentials to reach {location} ({type(cause).__name__}): {hint}.")
        if isinstance(cause, ModuleNotFoundError) and scheme in _SCHEME_PACKAGES:
            package = _SCHEME_PACKAGES[scheme]
            return StorageError(f"{location}: {scheme}:// URLs need {package}: pip install {package}.")
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _provider(location: str) -> Any:
    from litdata.streaming.fs_provider import _get_fs_provider

    return _get_fs_provider(location, {})


# The callers name what they reach in errors: each runs these inside storage_errors(location).
def _remote_exists(location: str) -> bool:
    return bool(_provider(location).exists(location))


def _remote_is_empty(location: str) -> bool:
    return bool(_provider(location).is_empty(location))


def _remote_read(location: str, limit: int) -> str:
    with tempfile.TemporaryDirectory(prefix="cyclegan_pl-chunks-") as folder:
        local = Path(folder) / "file"
        _provider(location).download_file(location, str(local))
        return _read_text(local, limit)


def _remote_write(location: str, text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cyclegan_pl-chunks-") as folder:
        local = Path(folder) / "file"
        local.write_text(text)
        _provider(location).upload_file(str(local), location)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkSplit:
    """A finished split of a conversion, checked by :func:`open_split`.

    Attributes:
        location: its folder (a local path or a URL).
        content: a key of :data:`CONTENTS`.
        count: its number of items.
    """

    location: str
    content: str
    count: int

    def item_name(self, index: int) -> str:
        return f"item {index} of chunk folder '{self.location}'"


def open_split(location: str, contents: Sequence[str], what: str) -> ChunkSplit:
    """Check a split folder's marker and ``index.json``; the split, or a one-line error.

    Args:
        location: the split's folder or URL.
        contents: the record kinds the caller reads (keys of :data:`CONTENTS`).
        what: what the caller expects there, for messages (e.g. "domain A training images").

    Raises:
        DataLayoutError: missing folder, marker or index, or chunks of another layout or origin.
        StorageError: an object-store URL without credentials or client library.
    """
    location = str(location)
    remote = is_url(location)
    if remote:
        check_remote(location, "root")
        with storage_errors(location):
            if not _remote_exists(join(location, MARKER)):
                raise DataLayoutError(
                    f"{location} ({what}) holds no {MARKER}: it is not a finished conversion. Convert the image "
                    "folders with `python -m cyclegan_pl optimize --source FOLDER --output URL`."
                )
            marker_text = _remote_read(join(location, MARKER), _MAX_MARKER_BYTES)
            index_text = _remote_read(join(location, INDEX), _MAX_INDEX_BYTES)
        marker = parse_marker(marker_text, join(location, MARKER))
    else:
        folder = Path(location)
        _check_local_split(folder, what)
        marker = parse_marker(_read_text(folder / MARKER, _MAX_MARKER_BYTES), str(folder / MARKER))
        index_text = _read_text(folder / INDEX, _MAX_INDEX_BYTES)
    if marker["content"] not in contents:
        raise DataLayoutError(
            f"Chunk folder '{location}' holds {marker['content']} records, not {what}: it was converted from another "
            "layout. Point the data module at the conversion of the right dataset."
        )
    try:
        index = json.loads(index_text)
    except ValueError:
        index = None
    check_index(index, marker["count"], location)
    return ChunkSplit(location, marker["content"], marker["count"])


def _check_local_split(folder: Path, what: str) -> None:
    convert = "Convert the image folders with `python -m cyclegan_pl optimize --source FOLDER --output FOLDER`."
    if not folder.is_dir():
        raise DataLayoutError(f"Chunk folder '{folder}' ({what}) does not exist. {convert}")
    has_marker, has_index = (folder / MARKER).is_file(), (folder / INDEX).is_file()
    if has_marker and not has_index:
        raise DataLayoutError(f"Chunk folder '{folder}' has no {INDEX} (the chunks' index is missing). {convert}")
    if not has_marker and has_index:
        raise DataLayoutError(
            f"Chunk folder '{folder}' holds LitData chunks that cyclegan_pl's optimize did not write (no {MARKER}). "
            f"{convert}"
        )
    if not has_marker:
        raise DataLayoutError(f"Chunk folder '{folder}' ({what}) holds no {INDEX} and no {MARKER}. {convert}")


def streaming_options(cache_dir: Optional[str], max_cache_size: Optional[str]) -> Dict[str, Any]:
    """The keyword arguments every ``StreamingDataset`` made here gets."""
    # One record decoded per read: a record is one bytes string (no decoding to share), and LitData's
    # default reads windows of items ahead, which makes each random read of a B image 3x slower.
    options: Dict[str, Any] = {"serializers": safe_serializers(), "batch_decode": 0}
    if cache_dir is not None:
        options["cache_dir"] = cache_dir
    if max_cache_size is not None:
        options["max_cache_size"] = max_cache_size
    return options


def record_reader(split: ChunkSplit, cache_dir: Optional[str] = None, max_cache_size: Optional[str] = None) -> Any:
    """A ``litdata.StreamingDataset`` over ``split`` for random access (``reader[i]`` is record ``i``)."""
    with storage_errors(split.location):
        return litdata.StreamingDataset(split.location, **streaming_options(cache_dir, max_cache_size))


# --- writing ------------------------------------------------------------------------------------


@dataclass
class ConversionReport:
    """What :func:`optimize_images` did.

    Attributes:
        output: the output folder or URL.
        layout: the layout converted.
        counts: items per split (``""`` is the output itself for a single folder).
        written: the splits written this time (the others were up to date).
    """

    output: str
    layout: str
    counts: Dict[str, int]
    written: List[str]


def optimize_images(
    source: PathLike,
    output: str,
    layout: Layout = "auto",
    chunk_bytes: str = "64MB",
    num_workers: int = 1,
    overwrite: bool = False,
    skip_bad_images: bool = False,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    progress: bool = True,
) -> ConversionReport:
    """Convert an image-folder dataset into LitData chunks with ``litdata.optimize`` (module doc).

    Args:
        source: the dataset folder: trainA/ trainB/ ... (unpaired), train/ test/ ... (paired), or one
            folder of images.
        output: a local folder (created; must not exist unless it is a finished conversion) or an
            ``s3://`` / ``gs://`` URL.
        layout: ``auto`` (from the folders), ``unpaired``, ``paired`` or ``folder``.
        chunk_bytes: target size of one chunk file (LitData's ``chunk_bytes``, e.g. ``64MB``).
        num_workers: processes writing chunks (each split is shared out in order).
        overwrite: replace an output that holds a conversion of other files (never anything else).
        skip_bad_images: leave out files that fail a cheap integrity check, with one warning.
        max_image_bytes: refuse image files larger than this.
        progress: show LitData's progress bar (on stderr) and a line per split.

    Raises:
        DataLayoutError: the source is missing or empty, or the output holds other files.
        OptionError: an unusable option, or an output of other files without ``overwrite``.
        StorageError: an object-store URL without credentials or client library.
    """
    if num_workers < 1:
        raise OptionError(f"num_workers={num_workers}: must be >= 1.", option="num_workers")
    output = str(output)
    if is_url(output):
        check_remote(output, "output")
    layout, plans = plan_conversion(source, layout, skip_bad_images, max_image_bytes)
    counts = {plan.name: len(plan.files) for plan in plans}
    writer = _RemoteOutput(output, overwrite) if is_url(output) else _LocalOutput(Path(output), overwrite)
    written = writer.write(plans, _SplitWriter(chunk_bytes, num_workers, max_image_bytes, progress))
    if progress:
        if written:
            print(f"{output} is ready: {_describe(counts)}.")
        else:
            print(f"{output} already holds this conversion ({_describe(counts)}): nothing to do.")
    return ConversionReport(output, layout, counts, written)


def _describe(counts: Dict[str, int]) -> str:
    return ", ".join(f"{name or 'images'} {count}" for name, count in counts.items())


@dataclass
class _SplitWriter:
    chunk_bytes: str
    num_workers: int
    max_image_bytes: int
    progress: bool

    def write(self, plan: SplitPlan, location: str, shown: str, mode: Optional[str] = None) -> None:
        """One split through ``litdata.optimize`` into ``location`` (``shown`` in the progress line)."""
        if self.progress:
            print(f"{plan.name or 'images'}: {len(plan.files)} items -> {shown}", flush=True)
        fn = functools.partial(record_of, plan.content, plan.names, plan.files, self.max_image_bytes)
        with _litdata_conversion(self.progress):
            litdata.optimize(
                fn=fn,
                inputs=list(range(len(plan.files))),
                output_dir=location,
                chunk_bytes=self.chunk_bytes,
                num_workers=min(self.num_workers, len(plan.files)),
                start_method="fork" if sys.platform.startswith("linux") else None,
                # Items keep the folders' order: item i of a split is file i of its folder.
                keep_data_ordered=True,
                reorder_files=False,
                mode=mode,
                verbose=self.progress,
            )


@contextlib.contextmanager
def _litdata_conversion(progress: bool) -> Iterator[None]:
    """Around ``litdata.optimize``: private cache folders, Ctrl-C kept, its chatter on stdout dropped."""
    from litdata.processing import data_processor

    private = tempfile.mkdtemp(prefix="cyclegan_pl-optimize-")
    variables = {
        "DATA_OPTIMIZER_CACHE_FOLDER": os.path.join(private, "chunks"),
        "DATA_OPTIMIZER_DATA_CACHE_FOLDER": os.path.join(private, "data"),
    }
    saved = {name: os.environ.get(name) for name in variables}
    sigint = signal.getsignal(signal.SIGINT)
    children = set(multiprocessing.active_children())
    os.environ.update(variables)
    # LitData installs, once per run, a SIGINT handler that exits with status 0 (and leaves it
    # installed): its module sees a signal module whose SIGINT installs are ignored instead.
    data_processor.signal = types.SimpleNamespace(signal=_ignore_sigint_install, SIGINT=signal.SIGINT)
    try:
        with warnings.catch_warnings():
            # A single image bigger than chunk_bytes gets a chunk of its own: nothing to act on.
            warnings.filterwarnings("ignore", message="An item was larger than the target chunk size")
            with contextlib.redirect_stdout(io.StringIO()):  # the progress bar is on stderr
                yield
    except BaseException:
        # LitData's workers are not daemons, and each starts a helper process of its own: one
        # blocked on a file would keep an interrupted process from exiting, or outlive it. Only the
        # processes this conversion started are ended, by their ids.
        workers = set(multiprocessing.active_children()) - children
        helpers = _descendants({worker.pid for worker in workers if worker.pid is not None})
        for worker in workers:
            worker.terminate()
        for pid in helpers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        raise
    finally:
        data_processor.signal = signal
        signal.signal(signal.SIGINT, sigint)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(private, ignore_errors=True)


def _descendants(pids: Set[int]) -> List[int]:
    """The processes below ``pids`` (children, grandchildren...), from /proc; none where there is no /proc."""
    parents: Dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry}/stat") as handle:
                    # "pid (name) state ppid ...": the name may hold spaces and parentheses.
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
    found: List[int] = []
    frontier = set(pids)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found.extend(sorted(frontier))
    return found


def _ignore_sigint_install(signum: int, handler: Any) -> None:
    if signum != signal.SIGINT:
        signal.signal(signum, handler)


def _written_index(location: str) -> Any:
    if is_url(location):
        with storage_errors(location):
            return json.loads(_remote_read(join(location, INDEX), _MAX_INDEX_BYTES))
    return json.loads(_read_text(Path(location) / INDEX, _MAX_INDEX_BYTES))


class _LocalOutput:
    """A local output: up to date, or written whole into a staging folder and renamed into place."""

    def __init__(self, target: Path, overwrite: bool) -> None:
        self.target = target
        self.overwrite = overwrite

    def write(self, plans: List[SplitPlan], writer: _SplitWriter) -> List[str]:
        state = self._state(plans)
        if state == "up to date":
            return []
        if state == "foreign":
            raise DataLayoutError(
                f"Output folder '{self.target}' exists and holds files that optimize did not write; it is left as "
                "it is. Choose another output folder."
            )
        if state == "other conversion" and not self.overwrite:
            raise OptionError(
                f"Output folder '{self.target}' holds a conversion of other files (or of another layout); pass "
                "overwrite=True to replace it, or choose another output folder.",
                option="overwrite",
            )
        with atomic_folder(self.target, replace=state == "other conversion") as staging:
            for plan in plans:
                folder = staging / plan.name if plan.name else staging
                folder.mkdir(parents=True, exist_ok=True)
                writer.write(plan, str(folder), str(self.target / plan.name))
                check_index(_written_index(str(folder)), len(plan.files), str(self.target / plan.name))
                with atomic_file(folder / MARKER) as tmp:
                    tmp.write_text(json.dumps(marker_for(plan), indent=1))
        return [plan.name for plan in plans]

    def _state(self, plans: List[SplitPlan]) -> str:
        """``absent``, ``up to date``, ``other conversion`` (ours, of other files) or ``foreign``."""
        if not self.target.exists():
            return "absent"
        if not self.target.is_dir():
            return "foreign"
        if not any(self.target.iterdir()):
            return "absent"  # an empty folder is replaced
        if not _is_conversion(self.target):
            return "foreign"
        names = {plan.name for plan in plans}
        if names == {""}:
            present = {""} if (self.target / MARKER).is_file() else set()
        else:
            present = set() if (self.target / MARKER).is_file() else {e.name for e in self.target.iterdir()}
        if present != names:
            return "other conversion"
        for plan in plans:
            marker_path = self.target / plan.name / MARKER
            try:
                marker = parse_marker(_read_text(marker_path, _MAX_MARKER_BYTES), str(marker_path))
            except (OSError, DataLayoutError):
                return "other conversion"
            if marker.get("source_digest") != plan.digest or not (self.target / plan.name / INDEX).is_file():
                return "other conversion"
        return "up to date"


def _is_conversion(folder: Path) -> bool:
    """Whether everything in ``folder`` is what optimize writes: one split, or split folders of them."""
    entries = list(folder.iterdir())
    if (folder / MARKER).is_file():
        return all(
            entry.is_file() and (entry.name in (MARKER, INDEX) or _CHUNK_FILE.fullmatch(entry.name))
            for entry in entries
        )
    return bool(entries) and all(entry.is_dir() and _is_conversion(entry) for entry in entries)


class _RemoteOutput:
    """An object-store output: each split written by LitData, then its marker; finished splits kept."""

    def __init__(self, url: str, overwrite: bool) -> None:
        self.url = url
        self.overwrite = overwrite

    def write(self, plans: List[SplitPlan], writer: _SplitWriter) -> List[str]:
        written = []
        for plan in plans:
            location = join(self.url, plan.name)
            marker_location = join(location, MARKER)
            mode = None
            with storage_errors(location):
                finished = _remote_exists(marker_location)
                marker_text = _remote_read(marker_location, _MAX_MARKER_BYTES) if finished else ""
                empty = finished or _remote_is_empty(location)
            if finished:
                if parse_marker(marker_text, marker_location).get("source_digest") == plan.digest:
                    continue
                mode = self._replace(location, "holds a conversion of other files")
            elif not empty:
                mode = self._replace(location, "is not empty (an interrupted conversion, or other files)")
            with storage_errors(location):
                writer.write(plan, location, location, mode)
            check_index(_written_index(location), len(plan.files), location)
            with storage_errors(location):
                _remote_write(marker_location, json.dumps(marker_for(plan), indent=1))
            written.append(plan.name)
        return written

    def _replace(self, location: str, why: str) -> str:
        if not self.overwrite:
            raise OptionError(
                f"{location} {why}; pass overwrite=True to replace what is there, or choose another URL.",
                option="overwrite",
            )
        return "overwrite"
