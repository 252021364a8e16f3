"""The web page: started on a free local port and called through gradio_client, as a browser would."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_pl import CycleGAN
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
