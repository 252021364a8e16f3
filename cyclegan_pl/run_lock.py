"""One run at a time in a run folder: a lock file that a crashed run does not leave blocking.

Two ``fit`` runs given the same ``--trainer.default_root_dir`` would write into the same
``checkpoints/``, ``config.yaml``, samples and logs, each overwriting the other's. The command
line therefore takes :class:`RunLock` on the folder before the Trainer writes anything, and
releases it when the command ends, however it ends (see :mod:`cyclegan_pl.cli`).

The lock is the file ``<folder>/.cyclegan_pl.lock``, held with ``flock`` for the whole run (the
kernel releases it when the holding process dies, even by SIGKILL) and holding its owner's
process id, host, start time and command, so that a refusal says which run is using the folder:

* held by a live process: refused;
* left by a process of this host that is gone (a crash, a kill): taken over, with a note;
* left by a process of another host: refused, since whether it still runs cannot be seen from
  here; the message says to delete the file once that run has ended;
* a normal end removes it.

On file systems without ``flock`` the owner's process id decides alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import lightning.pytorch as pl

from cyclegan_pl.errors import RunFolderInUseError
from cyclegan_pl.files import host_name, process_alive

#: The lock file's name in a run folder.
LOCK_NAME = ".cyclegan_pl.lock"
# errnos of file systems that do not implement flock.
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL)


class RunLock:
    """The lock of one run folder (see the module doc).

    Args:
        folder: the run folder (``default_root_dir``); created when the lock is taken.
        command: what the owner runs, for messages of later runs (default: this process's arguments).
    """

    def __init__(self, folder: Union[str, Path], command: Optional[str] = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command if command is not None else " ".join(["python -m cyclegan_pl", *sys.argv[1:]])
        self._fd: Optional[int] = None
        self._pid: Optional[int] = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._fd is not None and self._pid == os.getpid()

    def acquire(self) -> Optional[str]:
        """Take the lock; None when taken, else why the folder is in use (one line for the user).

        Raises:
            OSError: the folder or the lock file cannot be created.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        for _attempt in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                locked = _flock(fd)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                return self._in_use(owner, "is running")
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # its owner removed it meanwhile: take the new one
                os.close(fd)
                continue
            refusal = self._take_over(fd, _read_owner(fd), locked)
            if refusal is not None:
                os.close(fd)
                return refusal
            self._write_owner(fd)
            self._fd, self._pid = fd, os.getpid()
            return None
        return f"{self.folder} is being taken by other runs at this moment ({self.path}); try again."

    def release(self) -> None:
        """Remove the lock file and let go of the lock (nothing when this process does not hold it)."""
        if not self.held:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)
        os.close(fd)

    def _take_over(self, fd: int, owner: Dict[str, Any], locked: bool) -> Optional[str]:
        """Why a lock file left in place blocks this run, or None (taken over, with a note)."""
        pid = owner.get("pid")
        if not isinstance(pid, int):
            return None  # empty or unreadable: left by nothing that runs
        if owner.get("host") != host_name():
            return self._in_use(
                owner,
                f"may still be running: delete {self.path} if it has ended (a run of another host cannot be seen "
                "from here)",
            )
        if pid != os.getpid() and process_alive(pid) and not locked:
            return self._in_use(owner, "is running")
        print(
            f"note: {self.path} was left by a run that is gone (pid {pid} on this host, started "
            f"{owner.get('started', 'at an unknown time')}); this run takes {self.folder} over."
        )
        return None

    def _in_use(self, owner: Dict[str, Any], state: str) -> str:
        who = f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}"
        started = f", started {owner['started']}" if owner.get("started") else ""
        command = f": {owner['command']}" if owner.get("command") else ""
        return (
            f"{self.folder} is the run folder of another run ({who}{started}{command}), which {state}. Give this "
            "run another --trainer.default_root_dir, or wait for that run to end (resume it then with "
            "--ckpt_path last)."
        )

    def _write_owner(self, fd: int) -> None:
        owner = {
            "pid": os.getpid(),
            "host": host_name(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        os.fsync(fd)


def _flock(fd: int) -> bool:
    """Lock ``fd`` exclusively without waiting; False where the file system has no locks.

    Raises:
        BlockingIOError: another process holds it.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError as error:
        if error.errno in _NO_LOCKS:
            return False
        raise
    return True


def _read_owner(fd: int) -> Dict[str, Any]:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        owner = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


class RunLockAgreement(pl.Callback):
    """Every process of a run takes rank 0's decision on the run folder, at the Trainer's first callback hook.

    Rank 0 decides (:meth:`RunLock.acquire`, before the Trainer runs) and broadcasts its refusal,
    if any, through the strategy in ``setup``: every process then stops with the same error, or
    every process goes on, so none waits in a collective for processes that left. The command
    line puts it first among the callbacks, before the one that writes ``config.yaml``.

    Args:
        refusal: rank 0's refusal (None: the folder is this run's); ignored on the other ranks.
    """

    def __init__(self, refusal: Optional[str] = None) -> None:
        super().__init__()
        self.refusal = refusal

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        refusal = trainer.strategy.broadcast(self.refusal if trainer.global_rank == 0 else None, src=0)
        if refusal is not None:
            raise RunFolderInUseError(refusal)


__all__ = ["LOCK_NAME", "RunLock", "RunLockAgreement"]
