"""The web page: started on a free local port and called through gradio_client, as a browser would."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_pl import UNSB, CycleGAN
from cyclegan_pl.commands.app import app, translate_image

gradio_client = pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail on any connection to another host than this one (Gradio must not phone home)."""
    elsewhere = []
    connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            elsewhere.append(address)
            raise OSError(f"test: no network ({address})")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
    assert elsewhere == []


def test_the_page_translates_a_real_image_at_its_own_size(tmp_path, data_root, loopback_only):
    torch.manual_seed(0)
    module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    module.trained_directions = ("AtoB",)  # as a published (one-generator) model
    folder = module.save_pretrained(tmp_path / "h2z", name="tiny_h2z")
    image_path = sorted((data_root / "horse2zebra" / "testA").iterdir())[0]
    image = Image.open(image_path)
    cropped = tmp_path / "odd.png"  # a size the generator cannot take directly: padded, cropped back
    image.crop((0, 0, 203, 150)).save(cropped)

    page = app(folder, port=_free_port(), device="cpu", block=False)
    try:
        client = gradio_client.Client(page.local_url, verbose=False)
        for path in (image_path, cropped):
            result = client.predict(gradio_client.handle_file(str(path)), "AtoB", api_name="/translate")
            output = Image.open(result)
            source = Image.open(path)
            assert output.size == source.size
            expected = translate_image(module, source, "AtoB")
            assert np.array_equal(np.asarray(output.convert("RGB")), np.asarray(expected))  # PNG: lossless
        with pytest.raises(Exception, match="BtoA"):  # not offered, and refused if asked
            client.predict(gradio_client.handle_file(str(cropped)), "BtoA", api_name="/translate")
    finally:
        page.close()


def test_without_gradio_the_command_names_the_extra(tmp_path, monkeypatch, capsys):
    import sys

    from cyclegan_pl.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(SystemExit):
        main(["app", "--ckpt_path", str(tmp_path / "missing.ckpt")])
    assert "error: The app needs the gradio package: pip install 'cyclegan_pl[app]'" in capsys.readouterr().err


def _page_error(client, path) -> str:
    with pytest.raises(Exception) as error:  # gradio_client's AppError carries the page's message
        client.predict(gradio_client.handle_file(str(path)), "AtoB", api_name="/translate")
    return str(error.value)


@pytest.fixture
def tiny_folder(tmp_path):
    torch.manual_seed(0)
    module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    return module, module.save_pretrained(tmp_path / "h2z")


def test_tiny_and_non_image_uploads_get_an_answer_each(tmp_path, tiny_folder, loopback_only):
    module, folder = tiny_folder
    page = app(folder, port=_free_port(), device="cpu", block=False)
    try:
        client = gradio_client.Client(page.local_url, verbose=False)
        for width, height in [(1, 1), (3, 2), (4, 4)]:
            path = tmp_path / f"tiny_{width}x{height}.png"
            Image.new("RGB", (width, height), (250, 10, 10)).save(path)
            output = Image.open(client.predict(gradio_client.handle_file(str(path)), "AtoB", api_name="/translate"))
            assert output.size == (width, height)
        text = tmp_path / "notes.png"
        text.write_text("not an image at all")
        message = _page_error(client, text)
        assert "notes.png" in message and "not an image" in message
        empty = tmp_path / "empty.jpg"
        empty.write_bytes(b"")
        assert "empty.jpg" in _page_error(client, empty)
    finally:
        page.close()


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path, tiny_folder, loopback_only, monkeypatch):
    from PIL import ImageFile

    module, folder = tiny_folder
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    page = app(folder, port=_free_port(), device="cpu", block=False, max_pixels=10_000, concurrency=2, queue_size=5)
    try:
        assert (page._queue.default_concurrency_limit, page._queue.max_size) == (2, 5)
        client = gradio_client.Client(page.local_url, verbose=False)
        large = tmp_path / "large.png"
        Image.new("RGB", (200, 100), (0, 0, 250)).save(large)  # 20000 pixels: compresses to a few hundred bytes
        decoded.clear()
        message = _page_error(client, large)
        assert "large.png" in message and "200x100" in message and "10000" in message and "max_pixels" in message
        assert (200, 100) not in decoded  # refused from the header: never decoded
        small = tmp_path / "small.png"
        Image.new("RGB", (100, 100), (0, 0, 250)).save(small)  # at the limit: translated
        output = Image.open(client.predict(gradio_client.handle_file(str(small)), "AtoB", api_name="/translate"))
        assert output.size == (100, 100)
    finally:
        page.close()


@pytest.mark.parametrize("option", ["max_pixels", "concurrency", "queue_size"])
def test_app_limits_must_be_positive(tmp_path, tiny_folder, option):
    from cyclegan_pl.errors import OptionError

    with pytest.raises(OptionError, match=f"{option}=0"):
        app(tiny_folder[1], port=_free_port(), device="cpu", block=False, **{option: 0})


def test_a_sampler_translates_every_upload_from_its_seed(tmp_path, tiny_folder):
    from cyclegan_pl.errors import OptionError

    torch.manual_seed(0)
    module = UNSB(ngf=8, ndf=8, nce_layers=(0, 4)).eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8))
    first, again = translate_image(module, image, "AtoB"), translate_image(module, image, "AtoB")
    assert np.array_equal(np.asarray(first), np.asarray(again))  # not the next draws of one stream
    module.choose_sampling(seed=7)
    assert not np.array_equal(np.asarray(translate_image(module, image, "AtoB")), np.asarray(first))
    # A one-pass method has no seed to take: refused before the page starts.
    with pytest.raises(OptionError, match="seed=7: CycleGAN translates in one deterministic pass"):
        app(tiny_folder[1], port=_free_port(), device="cpu", block=False, seed=7)


def test_uploads_over_the_tiling_threshold_are_translated_in_tiles(tmp_path, tiny_folder, loopback_only, monkeypatch):
    from cyclegan_pl.models import base
    from cyclegan_pl.networks.tiling import Tiling

    module, folder = tiny_folder
    calls = []
    real = base.translate_tiled
    monkeypatch.setattr(base, "translate_tiled", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    tiling = Tiling(tile=32, overlap=8, above=50 * 50)
    page = app(folder, port=_free_port(), device="cpu", block=False, tiling=tiling)
    try:
        client = gradio_client.Client(page.local_url, verbose=False)
        pixels = (np.random.default_rng(0).random((90, 70, 3)) * 255).astype(np.uint8)
        for name, image in (("small.png", pixels[:40, :40]), ("big.png", pixels)):
            Image.fromarray(image).save(tmp_path / name)
            output = Image.open(
                client.predict(gradio_client.handle_file(str(tmp_path / name)), "AtoB", api_name="/translate")
            )
            assert output.size == image.shape[1::-1]
        assert len(calls) == 1  # the big upload only
        expected = module.translate(torch.from_numpy(pixels).permute(2, 0, 1)[None], tiling=tiling)[0]
        got = torch.from_numpy(np.array(output)).permute(2, 0, 1).float()
        assert (got - ((expected + 1) / 2 * 255).clamp(0, 255)).abs().max() <= 1
    finally:
        page.close()
