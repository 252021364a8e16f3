"""Downloading a file and unpacking an archive safely: what dataset and model downloads share.

:func:`fetch` streams a URL (``urllib`` only) into a staging file beside the destination with a
progress bar on stderr, checks the byte count against ``Content-Length`` and renames the file
into place (:func:`~cyclegan_pl.files.atomic_file`), so an interrupted download never leaves a
file that looks complete. :func:`extract_archive` checks a zip (every member's CRC) or tar archive
(read through once, which checks gzip's CRC and length) before extracting anything, and refuses
members whose paths would leave the destination or that are larger than a cap (declared sizes are
checked before anything is written, and every member's bytes are counted while they are read).
:func:`extract_tar_members` copies a few named members of a large tar out, each to a file of the
caller's choosing, without unpacking the rest, under the same cap.
Every failure is a :class:`~cyclegan_pl.errors.DownloadError` naming the URL and how to put the
file in place by hand.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Iterator, Mapping, Optional

from cyclegan_pl.errors import DownloadError, UserError
from cyclegan_pl.files import atomic_file

_CHUNK = 1 << 20
#: The largest file :func:`extract_tar_members` writes by default: network weights. The largest
#: published generator (pix2pix's unet_256) is 218 MB; twice that is no plausible weights file.
MAX_MODEL_FILE_BYTES = 512 << 20
#: The largest member :func:`extract_archive` writes by default: the dataset archives hold images
#: of at most a few MB each.
MAX_DATASET_MEMBER_BYTES = 256 << 20


def fetch(
    url: str, destination: Path, *, what: str, manual_step: str, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download ``url`` into ``destination``; only a complete download gets that name.

    Args:
        url: what to download (``http(s)://`` or ``file://``).
        destination: the file to write; its folder is created.
        what: what is downloaded, for the progress bar and messages (e.g. ``dataset 'horse2zebra'``).
        manual_step: how to do it by hand, appended to every error (e.g. "download URL by hand
            and extract it so that ...").
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.

    Raises:
        DownloadError: the server could not be reached, the transfer stopped or came short.
    """
    received = 0
    expected: Optional[int] = None
    try:
        with atomic_file(destination) as tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            with _progress(expected, what, progress) as advance, open(tmp, "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
            if expected is not None and received != expected:
                raise DownloadError(
                    f"The download of {what} from {url} is incomplete: {received} of {expected} bytes. "
                    f"Try again, or {manual_step}"
                )
    except UserError:  # incomplete, or the disk is full: already one clear line
        raise
    except (urllib.error.URLError, OSError, ValueError, EOFError) as error:
        reason = getattr(error, "reason", None) or error
        raise DownloadError(
            f"Could not download {what} from {url} ({type(error).__name__}: {reason}; {received} bytes "
            f"received). Check the network, or {manual_step}"
        ) from error
    except Exception as error:  # http.client.IncompleteRead and friends
        raise DownloadError(
            f"The download of {what} from {url} stopped after {received} bytes ({type(error).__name__}: "
            f"{error}). Try again, or {manual_step}"
        ) from error
    return destination


class _progress:
    """A rich progress bar on stderr (or nothing), as a context giving ``advance(n_bytes)``."""

    def __init__(self, total: Optional[int], description: str, enabled: bool) -> None:
        self.total, self.description, self.enabled = total, description, enabled
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.stop()


def extract_archive(archive: Path, destination: Path, max_member_bytes: int = MAX_DATASET_MEMBER_BYTES) -> None:
    """Check a ``.zip`` or tar (``.tar``, ``.tar.gz``...) archive completely, then extract it.

    Args:
        archive: the archive.
        destination: the folder that receives its content.
        max_member_bytes: the largest file the archive may hold (default
            :data:`MAX_DATASET_MEMBER_BYTES`, for dataset archives of images): a member declaring
            more is refused before anything is written, and one that turns out longer than its
            header says is stopped at this size.

    Raises:
        DownloadError: a member fails its check, is larger than ``max_member_bytes``, or would be
            written outside ``destination`` (``..``, absolute paths, links pointing out).
        zipfile.BadZipFile, tarfile.TarError, EOFError, OSError: the archive is corrupt or
            truncated (callers add the URL to the message).
    """
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, destination, max_member_bytes)
        return
    # Read everything once: gzip checks its CRC and length only at the end of the stream, and
    # each member's real length is counted (a sparse member is far larger than the archive).
    with tarfile.open(archive, "r:*") as handle:
        for member in handle:
            _check_member_path(member.name)
            if member.issym() or member.islnk():
                _check_member_path(os.path.join(os.path.dirname(member.name), member.linkname))
            if member.isfile():
                _check_member_size(member.name, member.size, max_member_bytes)
                stream = handle.extractfile(member)
                if stream is not None:
                    _copy_limited(stream, None, member.name, max_member_bytes)
    # The second pass reads the same members through the same reader, whose lengths were all
    # counted above, so nothing it writes can be larger than max_member_bytes.
    with tarfile.open(archive, "r:*") as handle:
        if hasattr(tarfile, "data_filter"):
            handle.extractall(destination, filter="data")
        else:  # Python without extraction filters: paths were checked above
            handle.extractall(destination)


def _extract_zip(archive: Path, destination: Path, max_member_bytes: int) -> None:
    with zipfile.ZipFile(archive) as handle:
        members = handle.infolist()
        for info in members:
            _check_member_path(info.filename)
            if not info.is_dir():
                _check_member_size(info.filename, info.file_size, max_member_bytes)
        for info in members:  # every member's CRC before anything is written
            if not info.is_dir():
                with _zip_member(handle, info) as stream:
                    _copy_limited(stream, None, info.filename, max_member_bytes)
        for info in members:
            target = destination.joinpath(
                *[p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]
            )
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with _zip_member(handle, info) as stream, open(target, "wb") as out:
                _copy_limited(stream, out, info.filename, max_member_bytes)


@contextlib.contextmanager
def _zip_member(handle: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[IO[bytes]]:
    try:
        with handle.open(info) as stream:
            yield stream
    except zipfile.BadZipFile as error:
        raise DownloadError(f"zip member '{info.filename}' fails its check ({error})") from None


def extract_tar_members(
    archive: Path, members: Mapping[str, Path], max_member_bytes: int = MAX_MODEL_FILE_BYTES
) -> None:
    """Copy the named members of a tar archive into the given files, leaving the rest unread.

    Args:
        archive: the tar archive (compressed or not).
        members: member name in the archive -> the file to write (written atomically).
        max_member_bytes: the largest file to write (default :data:`MAX_MODEL_FILE_BYTES`, for
            network weights): a member declaring more is refused before anything is written, and
            one that turns out longer than its header says is stopped at this size.

    Raises:
        DownloadError: a member is missing, is not a regular file (a link, a folder), is larger
            than ``max_member_bytes``, or its path would leave the archive's folder (``..``,
            absolute): the archive is not to be trusted, even though the destinations are the caller's.
        tarfile.TarError, EOFError, OSError: the archive is corrupt or truncated (callers add the
            URL to the message).
    """
    with tarfile.open(archive, "r:*") as handle:
        for name, destination in members.items():
            _check_member_path(name)
            try:
                member = handle.getmember(name)
            except KeyError:
                raise DownloadError(f"archive member '{name}' is missing") from None
            if not member.isfile():
                raise DownloadError(f"archive member '{name}' is not a regular file (refusing to extract)")
            _check_member_size(name, member.size, max_member_bytes)
            stream = handle.extractfile(member)
            assert stream is not None  # a regular file always has content
            with atomic_file(destination) as tmp, open(tmp, "wb") as out:
                _copy_limited(stream, out, name, max_member_bytes)


def _check_member_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise DownloadError(
            f"archive member '{name}' is {size} bytes, over the limit of {limit} bytes (refusing to extract; "
            "pass a larger max_member_bytes if the file is genuine)"
        )


def _copy_limited(stream: IO[bytes], out: Optional[IO[bytes]], name: str, limit: int) -> int:
    """Copy (or, with ``out`` None, read) a member, refusing it as soon as it passes ``limit`` bytes."""
    copied = 0
    while chunk := stream.read(_CHUNK):
        copied += len(chunk)
        if copied > limit:
            raise DownloadError(
                f"archive member '{name}' holds more than the limit of {limit} bytes, more than its header "
                "says (refusing to extract)"
            )
        if out is not None:
            out.write(chunk)
    return copied


def _check_member_path(member: str) -> None:
    normalized = member.replace("\\", "/")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":") or ".." in parts:
        raise DownloadError(f"unsafe path in archive: '{member}' (refusing to extract)")
