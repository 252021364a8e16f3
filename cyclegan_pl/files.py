"""Files: written so that a crash never leaves a half-written one, read without running code.

Every file the package writes (checkpoints, sample grids, translated images, exports, results
pages, downloaded datasets) goes through :func:`atomic_file` or :func:`atomic_folder`:

* the content is written to a temporary name in the target's own folder, flushed to disk, then
  renamed over the target with ``os.replace``, which is atomic within one file system: readers
  and a rerun after a crash see the previous file or the complete new one, never a truncated one;
* the file gets the permissions a plain ``open()`` would give it under the current umask
  (temporary files are created private, which must not leak into the result);
* a temporary file or folder left by a killed writer (its process is gone) is removed on the
  next write of the same target; only names this package makes count (``.<name>.cyclegan_pl-tmp-
  <host>-<pid>-<random>.tmp``), so a user's ``.result.png.keep.tmp`` is never touched;
* a full disk or quota stops with :class:`~cyclegan_pl.errors.DiskFullError` naming the target,
  whatever library did the writing.

Every ``torch.save`` file the package reads (checkpoints, ``.pth`` weights) goes through
:func:`load_torch_file`: a pickle can run any code it names, and people exchange checkpoints, so
only tensors and plain data are accepted, and every way a file can be wrong (missing, truncated,
not a PyTorch file, holding code) becomes one :class:`~cyclegan_pl.errors.CheckpointError` line
naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Union

import torch

from cyclegan_pl.errors import CheckpointError, DiskFullError

PathLike = Union[str, "os.PathLike[str]"]

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Libraries that write through C++ (torch.jit.save, ONNX) lose the errno; below this much free
# space a failed write is taken to be a full disk.
_NEARLY_FULL_BYTES = 16 << 20
# Temporary files of writers on another host (whose process cannot be asked) are only removed
# once they are this old.
_STALE_SECONDS = 3600
# Every temporary name carries this marker, the host and the writer's process id, so that the
# clean-up recognizes what this package made and whether its writer is gone; anything else beside
# a target (".result.png.keep.tmp", a user's folder) is never touched.
_MARKER = "cyclegan_pl-tmp"


def host_name() -> str:
    """This machine's name as the package writes it into temporary and lock files (letters and digits)."""
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _temporary_name(target: Path) -> str:
    return f".{target.name}.{_MARKER}-{host_name()}-{os.getpid()}-"


def _remove_stale_temporaries(target: Path) -> None:
    pattern = re.compile(
        re.escape(f".{target.name}.{_MARKER}-") + r"(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp"
    )
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    host = host_name()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or entry.is_symlink():
            continue
        if match["host"] == host:
            if process_alive(int(match["pid"])):
                continue
        else:
            with contextlib.suppress(OSError):
                if time.time() - entry.stat(follow_symlinks=False).st_mtime < _STALE_SECONDS:
                    continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def process_alive(pid: int) -> bool:
    """Whether a process of this machine with this id exists (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_path(path: Union[str, Path], directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except OSError:
        return  # not every file system lets a folder be opened for this
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_disk_full(error: BaseException, folder: Path) -> bool:
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if "No space left on device" in str(current) or "Disk quota exceeded" in str(current):
            return True
        current = current.__cause__ or current.__context__
    if isinstance(error, RuntimeError):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    return False


def _disk_full_error(target: Path) -> DiskFullError:
    free = "unknown"
    with contextlib.suppress(OSError):
        free = f"{shutil.disk_usage(target.parent).free / 2**20:.1f} MiB"
    return DiskFullError(
        f"No space left on the device (or quota) while writing {target} ({free} free): free some space "
        "and run again; the previous version of the file, if any, is unchanged."
    )


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it replaces ``path``.

    The block writes the whole content to the yielded path (by name or by opening it). On
    success the file is flushed to disk, given the umask's permissions and renamed over
    ``path``; on any error it is removed and ``path`` is left as it was.

    Args:
        path: the final file; its folder is created when missing.

    Raises:
        DiskFullError: the disk or quota is full (the original error is chained).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_name(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(error, Exception) and _is_disk_full(error, target.parent):
            raise _disk_full_error(target) from error
        raise
    _fsync_path(target.parent, directory=True)


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` through :func:`atomic_file`.

    The content goes through a Python file object, so a full disk surfaces as an ``OSError``
    with its errno instead of torch's generic writer error.
    """
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def _staging_folder_beside(target: Path) -> Path:
    """A new, empty temporary folder next to ``target`` (stale ones of dead processes removed first)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    return Path(tempfile.mkdtemp(prefix=_temporary_name(target), suffix=".tmp", dir=target.parent))


@contextlib.contextmanager
def atomic_folder(path: PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; once the block succeeds it becomes ``path``.

    Args:
        path: the final folder.
        replace: remove an existing ``path`` first. Without it an existing, non-empty ``path`` is
            an error (an empty one is replaced).

    Raises:
        FileExistsError: ``path`` exists, is not empty, and ``replace`` is False.
        DiskFullError: the disk or quota is full.
    """
    target = Path(path)
    staging = _staging_folder_beside(target)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if target.exists():
            if replace:
                shutil.rmtree(target)
            elif any(target.iterdir()):
                raise FileExistsError(f"{target} exists and is not empty")
            else:
                target.rmdir()
        os.replace(staging, target)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, Exception) and _is_disk_full(error, target.parent):
            raise _disk_full_error(target) from error
        raise
    _fsync_path(target.parent, directory=True)


@contextlib.contextmanager
def staging_folder(path: PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``, removed with what is left in it at the end.

    For files that must be complete and checked before they replace others in ``path``: the
    block writes them here, checks them, and moves each into place (``os.replace``); a failure
    leaves ``path`` as it was. A folder left by a killed process is removed like any temporary
    of :func:`atomic_file`.

    Args:
        path: the folder the files are meant for (it need not exist).
    """
    target = Path(path)
    staging = _staging_folder_beside(target)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def file_sha256(path: PathLike) -> str:
    """The sha256 of a file as 64 lowercase hex digits, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path: PathLike, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """Load a ``torch.save`` file as tensors and plain data only; nothing in it is executed.

    Args:
        path: the file (a Lightning ``.ckpt``, a ``.pth`` state_dict...).
        what: what the file should be, for messages (e.g. ``"--ckpt_path"``, ``"weights file"``).
        map_location: where tensors go (default: CPU).

    Raises:
        CheckpointError: the file is missing, a folder, truncated, not a PyTorch file, or holds
            objects whose loading would run code; the one-line message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist.")
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder, not a checkpoint file.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{what} {path} {_unpickling_problem(error, path)}") from None
    except PermissionError as error:
        raise CheckpointError(f"{what} {path} cannot be read ({error.strerror}).") from None
    except Exception as error:  # noqa: BLE001 - whatever torch.load trips over is a property of the file
        # (text and random bytes fail in the legacy unpickler with KeyError/IndexError, a cut
        # zip with RuntimeError or BadZipFile, an empty file with EOFError)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{what} {path} is truncated or not a PyTorch file ({first_line}); copy it again or pass another file."
        ) from None


def _unpickling_problem(error: pickle.UnpicklingError, path: Path) -> str:
    message = str(error)
    if "Unsupported operand" in message:
        # Not a pickle at all (an HTML page behind a login, text...): nothing in it names code.
        return f"is not a PyTorch file (it begins with {_first_bytes(path)!r}); copy it again or pass another file."
    if "Weights only load failed" in message or "weights_only" in message:
        names = sorted(set(_GLOBAL_NAME.findall(message)))
        named = f" ({', '.join(names)})" if names else ""
        return (
            f"was refused: loading it would run code it names{named}, and checkpoints are only "
            "read as tensors and plain data. Use a checkpoint written by cyclegan_pl or a plain "
            "state_dict of tensors."
        )
    return f"is not a PyTorch checkpoint ({message.splitlines()[0] if message else 'cannot unpickle'})."


def _first_bytes(path: Path, count: int = 40) -> str:
    try:
        with open(path, "rb") as handle:
            start = handle.read(count)
    except OSError:
        return ""
    return " ".join("".join(c if c.isprintable() else " " for c in start.decode("latin-1")).split())
