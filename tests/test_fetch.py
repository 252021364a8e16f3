"""The shared downloader and archive readers: size caps, deadlines and one-line messages (127.0.0.1 only)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from cyclegan_pl.errors import DownloadError
from cyclegan_pl.fetch import extract_archive, extract_tar_members

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
