"""Atomic writes (modes, stale temporaries, full disks) and reading torch files without running code."""

from __future__ import annotations

import errno
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cyclegan_pl.errors import CheckpointError, DiskFullError, UserError
from cyclegan_pl.files import atomic_file, atomic_folder, atomic_torch_save, load_torch_file


class Payload:
    """Unpickling this object runs ``Path(marker).touch()``: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def payload_file(path: Path, marker: Path, wrap=lambda payload: {"state_dict": {}, "extra": payload}) -> Path:
    torch.save(wrap(Payload(marker)), path)
    return path


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_written_files_get_the_umask_mode_not_a_private_one(tmp_path, umask_022):
    with atomic_file(tmp_path / "grid.png") as tmp:
        tmp.write_bytes(b"x")
    atomic_torch_save({"w": torch.ones(1)}, tmp_path / "last.ckpt")
    with atomic_folder(tmp_path / "dataset") as staging:
        (staging / "a.png").write_bytes(b"x")
    assert (tmp_path / "grid.png").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "dataset").stat().st_mode & 0o777 == 0o755


def _killed_writer(target: Path) -> Path:
    """Run a writer of ``target`` in another process that dies half-way; the temporary file it leaves."""
    code = (
        "import os, sys\n"
        "from cyclegan_pl.files import atomic_file\n"
        "with atomic_file(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    print(tmp.name, flush=True)\n"
        "    os._exit(0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=True)
    return target.parent / result.stdout.strip()


def test_a_killed_writers_temporary_file_is_removed_on_the_next_save(tmp_path):
    stale = _killed_writer(tmp_path / "last.ckpt")
    other = _killed_writer(tmp_path / "other.ckpt")  # another target's: not ours to touch now
    assert stale.exists() and other.exists()
    with atomic_file(tmp_path / "last.ckpt") as running:  # a writer that is still running (this process)
        running.write_bytes(b"being written")
        atomic_torch_save({"generation": 1}, tmp_path / "last.ckpt")
        assert running.exists()
    assert not stale.exists()
    assert other.exists()


def test_user_files_that_only_look_like_temporaries_are_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lookalikes = [
        tmp_path / ".result.png.keep.tmp",
        tmp_path / f".result.png.{int(dead.stdout)}-mine.tmp",  # a number, but not our marker
        tmp_path / ".result.png.old.tmp",  # a folder
    ]
    lookalikes[0].write_text("the user's")
    lookalikes[1].write_text("the user's")
    lookalikes[2].mkdir()
    (lookalikes[2] / "notes.txt").write_text("the user's")
    day_ago = time.time() - 86400
    for path in lookalikes:
        os.utime(path, (day_ago, day_ago))
    with atomic_file(tmp_path / "result.png") as tmp:
        tmp.write_bytes(b"png")
    assert [path.name for path in lookalikes if not path.exists()] == []
    assert (lookalikes[2] / "notes.txt").read_text() == "the user's"


def test_a_full_disk_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"generation": 0}, target)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(DiskFullError, match=r"No space left.*last\.ckpt") as error:
        atomic_torch_save({"generation": 1}, target)
    assert isinstance(error.value, UserError) and len(str(error.value).splitlines()) == 1
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"generation": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_torch_writer_errors_that_lose_the_errno_count_as_full_when_the_disk_is(tmp_path, monkeypatch):
    # torch's C++ writer reports "[enforce fail at inline_container.cc] ... unexpected pos" only.
    from collections import namedtuple

    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: Usage(100, 100, 0))
    with pytest.raises(DiskFullError), atomic_file(tmp_path / "net.pt"):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")


def test_payload_never_runs_and_the_error_names_the_file_and_the_code(tmp_path):
    marker = tmp_path / "payload_ran"
    path = payload_file(tmp_path / "shared.ckpt", marker)
    with pytest.raises(CheckpointError, match=r"shared\.ckpt was refused: loading it would run code") as error:
        load_torch_file(path, "--ckpt_path")
    assert len(str(error.value).splitlines()) == 1
    assert not marker.exists()


def test_a_web_page_saved_as_weights_is_not_called_code(tmp_path):
    # What a download behind a login page or a wrong link gives.
    path = tmp_path / "latest_net_G.pth"
    path.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>login</body></html>\n")
    with pytest.raises(CheckpointError) as error:
        load_torch_file(path, "weights file")
    message = str(error.value)
    assert "would run code" not in message and "\n" not in message
    assert f"weights file {path} is not a PyTorch file" in message and "<!DOCTYPE html>" in message


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"hello, I am a text file\n", "not a PyTorch"),
        # random bytes may look like any pickle opcode, a code-naming one included
        (random.Random(0).randbytes(4096), "not a PyTorch|was refused"),
        ("truncated", "truncated"),
        ("folder", "is a folder"),
        ("missing", "does not exist"),
    ],
)
def test_unreadable_files_are_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "model.pth"
    if content == "truncated":
        torch.save({"w": torch.randn(1000)}, path)
        path.write_bytes(path.read_bytes()[:1500])
    elif content == "folder":
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_torch_file(path, "weights file")
    message = str(error.value)
    assert str(path) in message and len(message.splitlines()) == 1
    assert re.search(expected, message) or "truncated or not a PyTorch file" in message
