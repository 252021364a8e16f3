"""The shared downloader and archive readers: size caps, deadlines and one-line messages (127.0.0.1 only)."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from cyclegan_pl.errors import DownloadError
from cyclegan_pl.fetch import extract_archive, extract_tar_members, fetch

MB = 1_000_000


def sparse_tar(path: Path, name: str, size: int) -> Path:
    """A tar.gz of a few hundred bytes whose one member unpacks to ``size`` bytes (a PAX sparse file)."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = 1
        info.pax_headers = {
            "GNU.sparse.major": "0",
            "GNU.sparse.minor": "1",
            "GNU.sparse.name": name,
            "GNU.sparse.size": str(size),
            "GNU.sparse.map": "0,1",
        }
        archive.addfile(info, io.BytesIO(b"x"))
    return path


def plain_tar(path: Path, members: dict) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def extract_one(how: str, archive: Path, name: str, destination: Path, **cap) -> Path:
    """Extract ``name`` with extract_tar_members (``members``) or extract_archive (``all``); its file."""
    if how == "members":
        extract_tar_members(archive, {name: destination / "out.pth"}, **cap)
        return destination / "out.pth"
    extract_archive(archive, destination, **cap)
    return destination / name


@pytest.mark.parametrize("how", ["members", "all"])
def test_a_sparse_member_over_the_default_cap_is_refused_before_anything_is_written(tmp_path, how):
    # 600 MB from a 200-byte archive: more than any generator file or dataset image.
    archive = sparse_tar(tmp_path / "run.tar.gz", "run/latest_net_G.pth", 600 * MB)
    destination = tmp_path / "out"
    with pytest.raises(DownloadError, match=r"run/latest_net_G\.pth' is 600000000 bytes, over the limit") as error:
        extract_one(how, archive, "run/latest_net_G.pth", destination)
    assert "max_member_bytes" in str(error.value) and "\n" not in str(error.value)
    assert not destination.exists() or not any(destination.rglob("*"))


@pytest.mark.parametrize("how", ["members", "all"])
def test_the_cap_is_the_callers(tmp_path, how):
    archive = plain_tar(tmp_path / "run.tar.gz", {"run/net.pth": b"w" * 1000})
    with pytest.raises(DownloadError, match=r"1000 bytes, over the limit of 999 bytes"):
        extract_one(how, archive, "run/net.pth", tmp_path / "refused", max_member_bytes=999)
    assert (
        extract_one(how, archive, "run/net.pth", tmp_path / "kept", max_member_bytes=1000).read_bytes() == b"w" * 1000
    )


@pytest.mark.parametrize("how", ["members", "all"])
def test_a_member_longer_than_its_header_says_stops_at_the_cap(tmp_path, monkeypatch, how):
    archive = plain_tar(tmp_path / "run.tar.gz", {"run/net.pth": b"w" * 10})

    def endless(self, member):  # a reader that trusts a header which under-states the size
        return io.BytesIO(b"w" * 5000)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", endless)
    with pytest.raises(DownloadError, match=r"run/net\.pth' holds more than the limit of 1000 bytes"):
        extract_one(how, archive, "run/net.pth", tmp_path / "out", max_member_bytes=1000)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_a_zip_member_over_the_cap_is_refused(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("data/trainA/big.png", b"\0" * 5000)  # deflates to a few bytes
        handle.writestr("data/trainA/small.png", b"\0" * 10)
    with pytest.raises(DownloadError, match=r"big\.png' is 5000 bytes, over the limit of 4096 bytes"):
        extract_archive(archive, tmp_path / "out", max_member_bytes=4096)
    assert not (tmp_path / "out").exists()
    extract_archive(archive, tmp_path / "out", max_member_bytes=5000)
    assert (tmp_path / "out" / "data" / "trainA" / "big.png").read_bytes() == b"\0" * 5000


def download(server, tmp_path, how: str, body: bytes = b"12345", **options):
    """fetch ``body`` served in mode ``how``; (the error, seconds taken), or (None, seconds)."""
    server.routes["/file.bin"] = (body, how)
    start = time.monotonic()
    try:
        fetch(server.base + "/file.bin", tmp_path / "file.bin", what="a file", manual_step="copy it.", **options)
    except DownloadError as error:
        return error, time.monotonic() - start
    return None, time.monotonic() - start


def test_a_server_trickling_bytes_trips_the_minimum_rate(tmp_path, file_server):
    # One byte every 0.2 s never trips a 1 s read timeout; 20 bytes would take 4 s.
    error, seconds = download(file_server, tmp_path, "slow", b"x" * 20, progress=False, timeout=1)
    assert error is not None and seconds < 3
    message = str(error)
    assert "slower than 1024 bytes/s" in message and "min_rate" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_the_whole_download_has_a_deadline(tmp_path, file_server):
    file_server.trickle = (100, 0.1)  # 1000 bytes/s: fast enough, but 3000 bytes take 3 s
    error, seconds = download(file_server, tmp_path, "slow", b"x" * 3000, progress=False, deadline=1, min_rate=10)
    assert error is not None and seconds < 2.5
    assert "did not finish within 1 s" in str(error) and "deadline" in str(error)
    assert list(tmp_path.iterdir()) == []


def test_the_deadline_covers_a_server_trickling_its_headers(tmp_path, file_server):
    file_server.trickle = (1, 0.1)  # ~40 header bytes: 4 s
    error, seconds = download(file_server, tmp_path, "slow_head", progress=False, timeout=1, deadline=1)
    assert error is not None and seconds < 2.5
    assert "did not finish within 1 s" in str(error)
    assert list(tmp_path.iterdir()) == []


def test_a_slow_but_steady_download_within_the_limits_completes(tmp_path, file_server):
    file_server.trickle = (200, 0.05)
    error, _ = download(
        file_server, tmp_path, "slow", b"y" * 1000, progress=False, timeout=1, min_rate=100, deadline=30
    )
    assert error is None and (tmp_path / "file.bin").read_bytes() == b"y" * 1000


@pytest.mark.parametrize("length", ["-5", "five"])
def test_a_bogus_content_length_is_one_clear_line(tmp_path, file_server, length):
    file_server.length = length
    error, _ = download(file_server, tmp_path, "length", progress=False)
    message = str(error)
    assert f"invalid Content-Length '{length}'" in message and "copy it." in message
    assert "of -5 bytes" not in message and "invalid literal" not in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_loop_is_one_line(tmp_path, file_server):
    error, _ = download(file_server, tmp_path, "loop", progress=False)
    message = str(error)
    assert "\n" not in message and "redirects in a loop" in message and file_server.base in message
    assert list(tmp_path.iterdir()) == []
