"""Downloading a file and unpacking an archive safely: what dataset and model downloads share.

:func:`fetch` streams a URL (``urllib`` only) into a staging file beside the destination with a
progress bar on stderr, checks the byte count against ``Content-Length`` and renames the file
into place (:func:`~cyclegan_pl.files.atomic_file`), so an interrupted download never leaves a
file that looks complete. :func:`extract_archive` checks a zip (every member's CRC) or tar archive
(read through once, which checks gzip's CRC and length) before extracting anything, and refuses
members whose paths would leave the destination. :func:`extract_tar_members` copies a few named
members of a large tar out, each to a file of the caller's choosing, without unpacking the rest.
Every failure is a :class:`~cyclegan_pl.errors.DownloadError` naming the URL and how to put the
file in place by hand.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Mapping, Optional

from cyclegan_pl.errors import DownloadError, UserError
from cyclegan_pl.files import atomic_file

_CHUNK = 1 << 20


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


def extract_archive(archive: Path, destination: Path) -> None:
    """Check a ``.zip`` or tar (``.tar``, ``.tar.gz``...) archive completely, then extract it.

    Raises:
        DownloadError: a member fails its check or would be written outside ``destination``
            (``..``, absolute paths, links pointing out).
        zipfile.BadZipFile, tarfile.TarError, EOFError, OSError: the archive is corrupt or
            truncated (callers add the URL to the message).
    """
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            broken = handle.testzip()
            if broken is not None:
                raise DownloadError(f"zip member '{broken}' fails its CRC check")
            for member in handle.namelist():
                _check_member_path(member)
            handle.extractall(destination)
        return
    # Read everything once: gzip checks its CRC and length only at the end of the stream.
    with tarfile.open(archive, "r:*") as handle:
        for member in handle:
            _check_member_path(member.name)
            if member.issym() or member.islnk():
                _check_member_path(os.path.join(os.path.dirname(member.name), member.linkname))
            if member.isfile():
                stream = handle.extractfile(member)
                if stream is not None:
                    while stream.read(_CHUNK):
                        pass
    with tarfile.open(archive, "r:*") as handle:
        if hasattr(tarfile, "data_filter"):
            handle.extractall(destination, filter="data")
        else:  # Python without extraction filters: paths were checked above
            handle.extractall(destination)


def extract_tar_members(archive: Path, members: Mapping[str, Path]) -> None:
    """Copy the named members of a tar archive into the given files, leaving the rest unread.

    Args:
        archive: the tar archive (compressed or not).
        members: member name in the archive -> the file to write (written atomically).

    Raises:
        DownloadError: a member is missing, is not a regular file (a link, a folder), or its path
            would leave the archive's folder (``..``, absolute): the archive is not to be trusted,
            even though the destinations are the caller's.
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
            stream = handle.extractfile(member)
            assert stream is not None  # a regular file always has content
            with atomic_file(destination) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(stream, out, _CHUNK)


def _check_member_path(member: str) -> None:
    normalized = member.replace("\\", "/")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":") or ".." in parts:
        raise DownloadError(f"unsafe path in archive: '{member}' (refusing to extract)")
