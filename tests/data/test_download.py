"""Dataset downloads against a local HTTP server (127.0.0.1 only, never the network)."""

from __future__ import annotations

import io
import socket
import tarfile
import zipfile

import pytest

from cyclegan_pl.data import DATASETS, PairedDataModule, UnpairedDataModule, download_dataset
from cyclegan_pl.errors import DownloadError, UserError


def _png_bytes(helpers, seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(helpers.gradient_rgb(16, 16, seed)).save(buffer, "PNG")
    return buffer.getvalue()


def unpaired_zip(helpers, top: str = "horse2zebra", folders=("trainA", "trainB", "testA", "testB")) -> bytes:
    """A zip holding ``top/trainA ... top/testB`` (like the CycleGAN archives)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, folder in enumerate(folders):
            for j in range(2):
                archive.writestr(f"{top}/{folder}/{j}.png", _png_bytes(helpers, i * 10 + j))
    return buffer.getvalue()


def paired_tar(helpers, members=None) -> bytes:
    """A tar.gz holding ``train/`` and ``test/`` at its top level (no dataset folder)."""
    buffer = io.BytesIO()
    members = members or {f"{split}/{j}.png": _png_bytes(helpers, j) for split in ("train", "test") for j in range(2)}
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _archive(helpers, kind: str, **kwargs):
    """(file name, bytes) of a good archive of the given kind."""
    if kind == "zip":
        return "horse2zebra.zip", unpaired_zip(helpers, **kwargs)
    return "facades.tar.gz", paired_tar(helpers)


def test_registry_knows_the_reference_archives():
    for name in ("horse2zebra", "summer2winter_yosemite", "monet2photo", "grumpifycat", "mini", "ae_photos"):
        assert DATASETS.get(name).kind == "unpaired"
        assert DATASETS.get(name).url() == f"http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
    for name in ("facades", "maps", "cityscapes", "night2day", "edges2handbags", "edges2shoes"):
        assert DATASETS.get(name).kind == "paired"
        assert DATASETS.get(name).url() == f"http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
    assert DATASETS.get("cyclegan_facades").url().endswith("/cyclegan/datasets/facades.zip")
    assert DATASETS.get("cyclegan_facades").kind == "unpaired"
    with pytest.raises(ValueError, match="horse2zebra"):
        DATASETS.get("horse2zebr")


def test_good_zip_with_top_folder(tmp_path, file_server, helpers):
    file_server.routes["/horse2zebra.zip"] = (unpaired_zip(helpers), "ok")
    target = download_dataset("horse2zebra", tmp_path, base_url=file_server.base, progress=False)
    assert target == tmp_path / "horse2zebra"
    assert sorted(p.name for p in target.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    assert [p.name for p in tmp_path.iterdir()] == ["horse2zebra"]  # no temporary leftovers


def test_good_tar_without_top_folder_via_env(tmp_path, file_server, helpers, monkeypatch):
    file_server.routes["/facades.tar.gz"] = (paired_tar(helpers), "no_length")
    monkeypatch.setenv("CYCLEGAN_PL_DATASET_URL", file_server.base + "/")
    target = download_dataset("facades", tmp_path, folder="my_facades", progress=True)
    assert target == tmp_path / "my_facades"
    assert sorted(p.name for p in target.iterdir()) == ["test", "train"]
    assert [p.name for p in tmp_path.iterdir()] == ["my_facades"]


def test_existing_complete_dataset_is_kept(tmp_path, file_server):
    for folder in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / "horse2zebra" / folder).mkdir(parents=True)
    assert download_dataset("horse2zebra", tmp_path, base_url=file_server.base) == tmp_path / "horse2zebra"
    assert file_server.requests == []


def test_incomplete_dataset_names_what_is_missing_and_offers_overwrite(tmp_path, file_server, helpers):
    (tmp_path / "horse2zebra" / "trainA").mkdir(parents=True)
    with pytest.raises(DownloadError, match=r"lacks trainB/, testA/, testB/.*--overwrite") as error:
        download_dataset("horse2zebra", tmp_path, base_url=file_server.base)
    assert isinstance(error.value, UserError)
    name, body = _archive(helpers, "zip")
    file_server.routes["/" + name] = (body, "ok")
    target = download_dataset("horse2zebra", tmp_path, base_url=file_server.base, progress=False, overwrite=True)
    assert sorted(p.name for p in target.iterdir() if p.is_dir()) == ["testA", "testB", "trainA", "trainB"]


def test_archive_without_a_domain_folder_is_refused(tmp_path, file_server, helpers):
    name, body = _archive(helpers, "zip", folders=("trainA", "testA", "testB"))
    file_server.routes["/" + name] = (body, "ok")
    with pytest.raises(DownloadError, match="trainB"):
        download_dataset(name.split(".")[0], tmp_path, base_url=file_server.base, progress=False)
    assert not (tmp_path / name.split(".")[0]).exists()


@pytest.mark.parametrize("archive", ["zip", "tar"])
def test_server_stopping_mid_way_leaves_nothing(tmp_path, file_server, helpers, archive):
    name, body = _archive(helpers, archive)
    file_server.routes["/" + name] = (body, "dropped")
    with pytest.raises(DownloadError) as error:
        download_dataset(name.split(".")[0], tmp_path, base_url=file_server.base, progress=False, timeout=10)
    message = str(error.value)
    assert file_server.base + "/" + name in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("archive", ["zip", "tar"])
def test_corrupt_archive_with_consistent_length_leaves_nothing(tmp_path, file_server, helpers, archive):
    name, body = _archive(helpers, archive)
    cut = body[: int(len(body) * 0.7)]
    file_server.routes["/" + name] = (cut, "ok")
    with pytest.raises(DownloadError, match="corrupt or truncated") as error:
        download_dataset(name.split(".")[0], tmp_path, base_url=file_server.base, progress=False)
    assert "trainA" in str(error.value) or "train/" in str(error.value)  # the manual layout
    assert list(tmp_path.iterdir()) == []


def test_zip_with_bad_crc_is_refused(tmp_path, file_server, helpers):
    body = bytearray(unpaired_zip(helpers))
    marker = body.find(b"IDAT")  # inside the first PNG's bytes, stored deflated: flip a byte
    body[marker + 40] ^= 0xFF
    file_server.routes["/horse2zebra.zip"] = (bytes(body), "ok")
    with pytest.raises(DownloadError):
        download_dataset("horse2zebra", tmp_path, base_url=file_server.base, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unsafe_tar_member_is_refused(tmp_path, file_server, helpers):
    file_server.routes["/facades.tar.gz"] = (paired_tar(helpers, {"../evil.txt": b"x", "train/0.png": b"y"}), "ok")
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="unsafe"):
        download_dataset("facades", root, base_url=file_server.base, progress=False)
    assert not (tmp_path / "evil.txt").exists() and list(root.iterdir()) == []


def test_an_archive_member_over_the_cap_is_refused_and_leaves_nothing(tmp_path, file_server, helpers):
    name, body = _archive(helpers, "zip")
    file_server.routes["/" + name] = (body, "ok")
    with pytest.raises(DownloadError, match=r"over the limit of 100 bytes"):
        download_dataset("horse2zebra", tmp_path, base_url=file_server.base, progress=False, max_member_bytes=100)
    assert list(tmp_path.iterdir()) == []


def test_no_network_names_the_url_and_the_layout(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/horse2zebra.zip"
    with pytest.raises(DownloadError) as error:
        download_dataset("horse2zebra", tmp_path, url=url, progress=False, timeout=5)
    message = str(error.value)
    assert url in message
    assert f"{tmp_path / 'horse2zebra'}/ holding image folders trainA/, trainB/, testA/, testB/" in message
    assert list(tmp_path.iterdir()) == []


def test_datamodule_prepare_data_downloads(tmp_path, file_server, helpers, monkeypatch):
    file_server.routes["/horse2zebra.zip"] = (unpaired_zip(helpers), "ok")
    file_server.routes["/facades.tar.gz"] = (paired_tar(helpers), "ok")
    monkeypatch.setenv("CYCLEGAN_PL_DATASET_URL", file_server.base)
    unpaired = UnpairedDataModule(
        str(tmp_path / "data" / "horse2zebra"), download=True, load_size=16, crop_size=16, num_workers=0
    )
    unpaired.prepare_data()
    unpaired.setup("fit")
    assert next(iter(unpaired.train_dataloader()))["A"].shape == (1, 3, 16, 16)
    paired = PairedDataModule(
        str(tmp_path / "data" / "labels"), dataset="facades", download=True, load_size=16, crop_size=16, num_workers=0
    )
    paired.prepare_data()
    paired.setup("fit")
    assert (tmp_path / "data" / "labels" / "train").is_dir()
    assert next(iter(paired.train_dataloader()))["B"].shape == (1, 3, 16, 16)
