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
import socket
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Iterator, List, Mapping, Optional

from cyclegan_pl.errors import DownloadError, UserError
from cyclegan_pl.files import atomic_file

_CHUNK = 1 << 20
#: The largest file :func:`extract_tar_members` writes by default: network weights. The largest
#: published generator (pix2pix's unet_256) is 218 MB; twice that is no plausible weights file.
MAX_MODEL_FILE_BYTES = 512 << 20
#: The largest member :func:`extract_archive` writes by default: the dataset archives hold images
#: of at most a few MB each.
MAX_DATASET_MEMBER_BYTES = 256 << 20


#: The default total time a download may take: the largest published dataset (8.6 GB) at 200 kB/s.
DEFAULT_DEADLINE = 12 * 3600.0
#: The default slowest transfer accepted, in bytes per second, averaged over each ``timeout`` seconds.
DEFAULT_MIN_RATE = 1024.0


def fetch(
    url: str,
    destination: Path,
    *,
    what: str,
    manual_step: str,
    progress: bool = True,
    timeout: float = 60.0,
    deadline: float = DEFAULT_DEADLINE,
    min_rate: float = DEFAULT_MIN_RATE,
) -> Path:
    """Download ``url`` into ``destination``; only a complete download gets that name.

    Three limits keep a slow or hostile server from holding the download forever: ``timeout``
    for a server that sends nothing, ``min_rate`` for one that trickles (a byte every second
    never trips a read timeout) and ``deadline`` for the whole transfer, the connection and the
    server's headers included.

    Args:
        url: what to download (``http(s)://`` or ``file://``).
        destination: the file to write; its folder is created.
        what: what is downloaded, for the progress bar and messages (e.g. ``dataset 'horse2zebra'``).
        manual_step: how to do it by hand, appended to every error (e.g. "download URL by hand
            and extract it so that ...").
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read; also the span over
            which ``min_rate`` is measured.
        deadline: seconds the whole download may take (default 12 hours: the largest published
            dataset, 8.6 GB, at 200 kB/s).
        min_rate: the slowest transfer accepted, in bytes per second averaged over each
            ``timeout`` seconds (default 1024).

    Raises:
        DownloadError: the server could not be reached, was too slow, sent a bogus header, or the
            transfer stopped or came short; one line naming the URL.
    """
    received = 0
    watch = _Watchdog()
    timer = threading.Timer(deadline, watch.expire)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        opener = urllib.request.build_opener(_WatchedHTTPHandler(watch), _WatchedHTTPSHandler(watch))
        with atomic_file(destination) as tmp, opener.open(url, timeout=timeout) as response:
            expected = _content_length(response.headers.get("Content-Length"))
            # read1 returns what one system call brings: a trickling server cannot keep us
            # inside a read that waits for a full chunk.
            read = getattr(response, "read1", response.read)
            window_start, window_bytes = time.monotonic(), 0
            with _progress(expected, what, progress) as advance, open(tmp, "wb") as out:
                while chunk := read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    window_bytes += len(chunk)
                    advance(len(chunk))
                    now = time.monotonic()
                    if watch.expired or now - started > deadline:
                        break
                    if now - window_start >= max(timeout, 1.0):
                        if window_bytes / (now - window_start) < min_rate:
                            raise DownloadError(
                                f"The download of {what} from {url} is slower than {min_rate:g} bytes/s "
                                f"({window_bytes} bytes in {now - window_start:.1f} s; {received} bytes received): "
                                f"try again later or pass a lower min_rate, or {manual_step}"
                            )
                        window_start, window_bytes = now, 0
            if watch.expired or time.monotonic() - started > deadline:
                raise _deadline_error(what, url, deadline, received, manual_step)
            if expected is not None and received != expected:
                raise DownloadError(
                    f"The download of {what} from {url} is incomplete: {received} of {expected} bytes. "
                    f"Try again, or {manual_step}"
                )
    except UserError:  # incomplete, too slow, or the disk is full: already one clear line
        raise
    except _BogusHeader as error:
        raise DownloadError(
            f"The server of {what} at {url} sent an invalid Content-Length '{error}', so the download cannot be "
            f"checked for completeness. Try again later, or {manual_step}"
        ) from None
    except urllib.error.HTTPError as error:
        if watch.expired:
            raise _deadline_error(what, url, deadline, received, manual_step) from error
        problem = f"HTTP {error.code} {_one_line(error.reason)}"
        if "infinite loop" in str(error.reason):  # urllib's two-line message for a redirect loop
            problem = f"the server redirects in a loop (HTTP {error.code})"
        raise DownloadError(
            f"Could not download {what} from {url}: {problem}. Check the URL, or {manual_step}"
        ) from error
    except (urllib.error.URLError, OSError, ValueError, EOFError) as error:
        if watch.expired:
            raise _deadline_error(what, url, deadline, received, manual_step) from error
        reason = getattr(error, "reason", None) or error
        raise DownloadError(
            f"Could not download {what} from {url} ({type(error).__name__}: {_one_line(reason)}; {received} bytes "
            f"received). Check the network, or {manual_step}"
        ) from error
    except Exception as error:  # http.client.IncompleteRead and friends
        if watch.expired:
            raise _deadline_error(what, url, deadline, received, manual_step) from error
        raise DownloadError(
            f"The download of {what} from {url} stopped after {received} bytes ({type(error).__name__}: "
            f"{_one_line(error)}). Try again, or {manual_step}"
        ) from error
    finally:
        timer.cancel()
    return destination


class _BogusHeader(Exception):
    """A Content-Length that is not a byte count (its text is the message)."""


def _content_length(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():  # negative, empty, words: http.client itself would ignore it
        raise _BogusHeader(value)
    return int(text)


def _one_line(reason: object) -> str:
    return " ".join(str(reason).split())


def _deadline_error(what: str, url: str, deadline: float, received: int, manual_step: str) -> DownloadError:
    return DownloadError(
        f"The download of {what} from {url} did not finish within {deadline:g} s ({received} bytes received): "
        f"try again later or pass a longer deadline, or {manual_step}"
    )


class _Watchdog:
    """The sockets of one download, shut down when its deadline passes (waking any blocked read)."""

    def __init__(self) -> None:
        self.expired = False
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(connection_class: type, watch: _Watchdog) -> type:
    class Watched(connection_class):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)

    return Watched


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    """urllib's HTTP handler whose connections report their sockets to a :class:`_Watchdog`."""

    def __init__(self, watch: _Watchdog) -> None:
        super().__init__()
        self.watch = watch

    def do_open(self, http_class, req, **http_conn_args):  # noqa: ANN001 - urllib's signature
        return super().do_open(_watched(http_class, self.watch), req, **http_conn_args)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    """The same for HTTPS."""

    def __init__(self, watch: _Watchdog) -> None:
        super().__init__()
        self.watch = watch

    def do_open(self, http_class, req, **http_conn_args):  # noqa: ANN001 - urllib's signature
        return super().do_open(_watched(http_class, self.watch), req, **http_conn_args)


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
