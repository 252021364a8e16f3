"""download-model against a local HTTP server (127.0.0.1 only, never the network)."""

from __future__ import annotations

import io
import socket
import tarfile
from types import SimpleNamespace
from typing import Dict, Union

import pytest
import torch
from torch import nn

from cyclegan_pl import CUT, CycleGAN, Pix2Pix, load_checkpoint
from cyclegan_pl.cli import main
from cyclegan_pl.commands import download_model
from cyclegan_pl.errors import DownloadError, OptionError
from cyclegan_pl.networks import PatchProjection, define_discriminator, define_generator
from cyclegan_pl.weights import published_models

PUBLISHED_MODELS = published_models()

CUT_ARCHIVE = "/CUT/pretrained_models.tar"


def reference_bytes(net: nn.Module) -> bytes:
    """The net's state_dict as the reference code of PyTorch < 0.4 saved it: InstanceNorm layers
    with running statistics (the published CycleGAN files hold them)."""
    state = {key: value.clone() for key, value in net.state_dict().items()}
    for name, module in net.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def published():
    """A full-size ResNet-9 generator (the architecture `horse2zebra` implies) and its file."""
    torch.manual_seed(0)
    net = define_generator("resnet_9blocks", ngf=64, norm="instance")
    return net, reference_bytes(net)


def state_bytes(net: nn.Module) -> bytes:
    """The net's state_dict as torch.save writes it (the CUT code's files, PyTorch >= 1.4)."""
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue()


def tar_bytes(members: Dict[str, Union[bytes, str]]) -> bytes:
    """An uncompressed tar of name -> content (bytes) or symbolic link target (str)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cut_archive():
    """The CUT archive's layout, two run folders under a top folder: horse2zebra's CUT run with G, D
    and F (the published sizes), its FastCUT run with G alone. One generator serves both: a full-size
    build is the slow part."""
    torch.manual_seed(0)
    gen = define_generator("resnet_9blocks", ngf=64, norm="instance", antialias=True)
    disc = define_discriminator("basic", ndf=64, antialias=True)
    projection = PatchProjection(gen.feature_channels([0, 4, 8, 12, 16]))
    gen_bytes = state_bytes(gen)
    body = tar_bytes(
        {
            "checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth": gen_bytes,
            "checkpoints/horse2zebra_cut_pretrained/latest_net_D.pth": state_bytes(disc),
            "checkpoints/horse2zebra_cut_pretrained/latest_net_F.pth": state_bytes(projection),
            "checkpoints/horse2zebra_cut_pretrained/train_opt.txt": b"not copied out",
            "checkpoints/horse2zebra_fastcut_pretrained/latest_net_G.pth": gen_bytes,
        }
    )
    return SimpleNamespace(gen=gen, disc=disc, projection=projection, body=body)


def assert_same(module: nn.Module, net: nn.Module) -> None:
    expected = net.state_dict()
    assert module.state_dict().keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(module.state_dict()[key], value), key


@pytest.fixture
def server(file_server, monkeypatch):
    """The shared 127.0.0.1 server (tests/conftest.py), as the mirror download-model uses."""
    monkeypatch.setenv("CYCLEGAN_PL_MODEL_URL", file_server.base)  # a mirror with the server's paths
    return file_server


def test_registry_has_the_published_names_and_urls():
    cyclegan = [name for name in PUBLISHED_MODELS.names() if PUBLISHED_MODELS.get(name).method == "cyclegan"]
    assert len(cyclegan) == 18
    assert PUBLISHED_MODELS.get("horse2zebra").url() == (
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    )
    # Names both families publish: the plain name is CycleGAN's, pix2pix's carries a prefix.
    assert PUBLISHED_MODELS.get("sat2map").method == "cyclegan"
    pix2pix = PUBLISHED_MODELS.get("pix2pix_sat2map")
    assert (pix2pix.method, pix2pix.generator, pix2pix.norm) == ("pix2pix", "unet_256", "batch")
    assert pix2pix.url() == "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/sat2map.pth"
    for name in ["edges2shoes", "map2sat", "facades_label2photo", "day2night"]:
        assert PUBLISHED_MODELS.get("pix2pix_" + name).url().endswith(f"/pix2pix/models-pytorch/{name}.pth")
    with pytest.raises(OptionError, match="pix2pix_edges2shoes"):
        PUBLISHED_MODELS.get("edges2shoes")
    cut = [name for name in PUBLISHED_MODELS.names() if PUBLISHED_MODELS.get(name).method == "cut"]
    assert sorted(cut) == sorted(
        f"{variant}_{name}"
        for variant in ("cut", "fastcut")
        for name in ("horse2zebra", "cat2dog", "cityscapes_label2photo")
    )
    cityscapes = PUBLISHED_MODELS.get("fastcut_cityscapes_label2photo")
    # FastCUT's published options (docs/method.md#cut-and-fastcut), written out here on purpose.
    fastcut = {"nce_idt": False, "lambda_nce": 10.0, "flip_equivariance": True}
    assert cityscapes.url() == "http://efrosgans.eecs.berkeley.edu/CUT/pretrained_models.tar"
    # Every published CUT network is blur-pooled.
    assert cityscapes.run_folder == "cityscapes_fastcut_pretrained"
    assert dict(cityscapes.hparams) == {"antialias": True, **fastcut}
    assert PUBLISHED_MODELS.get("cut_cat2dog").run_folder == "cat2dog_cut_pretrained"
    # CUT's options are the module's defaults.
    assert dict(PUBLISHED_MODELS.get("cut_cat2dog").hparams) == {"antialias": True}


def test_download_gives_a_checkpoint_that_translates_as_the_published_network(tmp_path, server, published, capsys):
    net, body = published
    server.routes["/cyclegan/pretrained_models/horse2zebra.pth"] = (body, "ok")
    ckpt = download_model("horse2zebra", root=tmp_path / "models", progress=False)
    assert ckpt == tmp_path / "models" / "horse2zebra.ckpt"
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["horse2zebra.ckpt", "horse2zebra.pth"]
    out = capsys.readouterr().out
    assert f"translate --ckpt_path {ckpt} --input data/horse2zebra/testA" in out

    module = load_checkpoint(ckpt)
    assert isinstance(module, CycleGAN) and module.trained_directions == ("AtoB",)
    x = torch.rand(1, 3, 36, 44, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(module.translate(x, "AtoB"), net(x)[..., :36, :44], rtol=0, atol=0)
    with pytest.raises(OptionError, match="BtoA generator was never trained"):
        module.translate(x, "BtoA")
    assert module.card_info["dataset"] == "horse2zebra" and "configs/h2z.yaml" in module.card_info["command"]

    # A second call keeps the files; nothing is downloaded again.
    requests = len(server.requests)
    assert download_model("horse2zebra", root=tmp_path / "models", progress=False) == ckpt
    assert len(server.requests) == requests


def test_translate_command_on_a_real_test_image(tmp_path, server, published, data_root):
    from PIL import Image

    from cyclegan_pl.commands import translate

    server.routes["/cyclegan/pretrained_models/zebra2horse.pth"] = (published[1], "ok")
    main(["download-model", "zebra2horse", "--root", str(tmp_path / "models")])
    image = sorted((data_root / "horse2zebra" / "testB").iterdir())[0]
    translate(tmp_path / "models" / "zebra2horse.ckpt", image, tmp_path / "out", device="cpu")
    assert Image.open(tmp_path / "out" / f"{image.stem}.png").size == Image.open(image).size


@pytest.mark.parametrize("how", ["dropped", "truncated"])
def test_a_broken_download_leaves_nothing_and_says_what_to_do(tmp_path, server, published, capsys, how):
    body = published[1]
    if how == "truncated":  # a short file with a matching Content-Length: only loading it can tell
        body = body[: len(body) * 2 // 3]
    server.routes["/cyclegan/pretrained_models/horse2zebra.pth"] = (body, "dropped" if how == "dropped" else "ok")
    root = tmp_path / "models"
    with pytest.raises(SystemExit) as exit_info:
        main(["download-model", "horse2zebra", "--root", str(root)])
    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert [line for line in message.splitlines() if line.strip()][0].startswith("error: ")  # after the progress bar
    assert f"{server.base}/cyclegan/pretrained_models/horse2zebra.pth" in message
    assert f"save it as {root / 'horse2zebra.pth'}" in message and "import-reference" in message
    assert not root.exists() or list(root.iterdir()) == []


def test_a_file_of_another_architecture_is_refused(tmp_path, server):
    torch.manual_seed(0)
    server.routes["/cyclegan/pretrained_models/style_monet.pth"] = (
        reference_bytes(define_generator("resnet_6blocks", ngf=64)),
        "ok",
    )
    server.routes["/pix2pix/models-pytorch/facades_label2photo.pth"] = (
        reference_bytes(define_generator("unet_32", ngf=8, norm="batch")),
        "ok",
    )
    with pytest.raises(DownloadError, match=r"not the resnet_9blocks generator(.|\n)*resnet_6blocks"):
        download_model("style_monet", root=tmp_path, progress=False)
    with pytest.raises(DownloadError, match=r"not the unet_256 generator \(batch norm\)(.|\n)*unet_32"):
        download_model("pix2pix_facades_label2photo", root=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_file_put_in_place_by_hand_is_converted_offline(tmp_path, published):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/horse2zebra.pth"
    with pytest.raises(DownloadError) as error:
        download_model("horse2zebra", root=tmp_path, url=closed, progress=False, timeout=5)
    assert closed in str(error.value) and list(tmp_path.iterdir()) == []

    (tmp_path / "horse2zebra.pth").write_bytes(published[1])
    module = load_checkpoint(download_model("horse2zebra", root=tmp_path, url=closed, progress=False))
    assert module.gen_ab.state_dict()["model.1.weight"].equal(published[0].state_dict()["model.1.weight"])


def test_pix2pix_models_make_pix2pix_checkpoints(tmp_path, server, monkeypatch):
    # A full unet_256 is 200 MB: the architecture is shrunk here; the check it must pass is the same.
    import dataclasses

    from cyclegan_pl.weights import published

    small = dataclasses.replace(PUBLISHED_MODELS.get("pix2pix_edges2shoes"), generator="unet_32")
    monkeypatch.setattr(published, "published_model", lambda name: small)
    torch.manual_seed(0)
    net = define_generator("unet_32", ngf=64, norm="batch", dropout=True)
    server.routes["/pix2pix/models-pytorch/edges2shoes.pth"] = (reference_bytes(net), "ok")
    module = load_checkpoint(download_model("pix2pix_edges2shoes", root=tmp_path, progress=False))
    assert isinstance(module, Pix2Pix) and module.hparams.dropout is True
    module.eval_mode = True
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(module.translate(x), net.eval()(x), rtol=0, atol=0)


def test_cut_models_come_out_of_one_archive_downloaded_once(tmp_path, server, cut_archive, capsys):
    server.routes[CUT_ARCHIVE] = (cut_archive.body, "ok")
    root = tmp_path / "models"
    ckpt = download_model("cut_horse2zebra", root=root, progress=False)
    assert ckpt == root / "cut_horse2zebra.ckpt"
    assert sorted(p.name for p in (root / "cut_horse2zebra").iterdir()) == [
        "latest_net_D.pth",
        "latest_net_F.pth",
        "latest_net_G.pth",
    ]
    assert f"translate --ckpt_path {ckpt} --input data/horse2zebra/testA" in capsys.readouterr().out

    module = load_checkpoint(ckpt)
    assert isinstance(module, CUT) and module.trained_directions == ("AtoB",)
    assert (module.hparams.nce_idt, module.hparams.lambda_nce, module.hparams.flip_equivariance) == (True, 1.0, False)
    assert_same(module.gen, cut_archive.gen)
    assert_same(module.disc, cut_archive.disc)
    assert_same(module.projection, cut_archive.projection)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(module.translate(x, "AtoB"), cut_archive.gen(x), rtol=0, atol=0)
    with pytest.raises(OptionError, match="CUT translates AtoB only"):
        module.translate(x, "BtoA")
    assert "configs/h2z_cut.yaml" in module.card_info["command"]

    # FastCUT comes out of the archive already there, with FastCUT's options for `fit --ckpt_path`.
    main(["download-model", "fastcut_horse2zebra", "--root", str(root)])
    assert server.requests.count(CUT_ARCHIVE) == 1
    assert "disc, projection not found" in capsys.readouterr().out  # its folder holds G alone
    fast = load_checkpoint(root / "fastcut_horse2zebra.ckpt")
    assert isinstance(fast, CUT)
    assert (fast.hparams.nce_idt, fast.hparams.lambda_nce, fast.hparams.flip_equivariance) == (False, 10.0, True)
    assert sorted(p.name for p in root.iterdir()) == [
        "cut_horse2zebra",
        "cut_horse2zebra.ckpt",
        "cut_pretrained_models.tar",
        "fastcut_horse2zebra",
        "fastcut_horse2zebra.ckpt",
    ]

    # A run folder already there (copied by hand) needs neither the archive nor the network.
    (root / "cut_pretrained_models.tar").unlink()
    (root / "cut_horse2zebra.ckpt").unlink()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/pretrained_models.tar"
    assert download_model("cut_horse2zebra", root=root, url=closed, progress=False) == root / "cut_horse2zebra.ckpt"


def test_a_cut_archive_without_the_run_folder_or_with_other_networks_is_refused(tmp_path, server):
    torch.manual_seed(0)
    small = define_generator("resnet_9blocks", ngf=8, norm="instance", antialias=True)  # not the published width
    body = tar_bytes({"pretrained_models/cat2dog_fastcut_pretrained/latest_net_G.pth": state_bytes(small)})
    server.routes[CUT_ARCHIVE] = (body, "ok")
    root = tmp_path / "models"
    archive = root / "cut_pretrained_models.tar"
    with pytest.raises(DownloadError) as error:
        download_model("cut_cat2dog", root=root, progress=False)
    message = str(error.value)
    assert f"{archive} (downloaded from {server.base}{CUT_ARCHIVE}) holds no run folder cat2dog_cut_pretrained/" in (
        message
    )
    assert "It was removed" in message and f"into {root / 'cut_cat2dog'}/" in message
    assert list(root.iterdir()) == []

    with pytest.raises(DownloadError, match=r"does not hold the anti-aliased resnet_9blocks generator(.|\n)*ngf"):
        download_model("fastcut_cat2dog", root=root, progress=False)
    assert list(root.iterdir()) == []  # neither the archive nor the copied folder is left

    # An archive already there is kept (other names may need it); the message says how to replace it.
    archive.write_bytes(body)
    with pytest.raises(DownloadError, match=r"holds no run folder cat2dog_cut_pretrained/.*--overwrite"):
        download_model("cut_cat2dog", root=root, progress=False)
    assert [p.name for p in root.iterdir()] == [archive.name]
    assert server.requests.count(CUT_ARCHIVE) == 2


@pytest.mark.parametrize(
    "member, content, refusal",
    [
        ("../horse2zebra_cut_pretrained/latest_net_G.pth", b"x", "unsafe path in archive"),
        ("checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth", "/etc/passwd", "not a regular file"),
    ],
)
def test_an_unsafe_member_of_the_cut_archive_is_refused(tmp_path, server, member, content, refusal):
    server.routes[CUT_ARCHIVE] = (tar_bytes({member: content}), "ok")
    root = tmp_path / "models"
    with pytest.raises(DownloadError, match=f"{refusal}: '{member}'|'{member}' is {refusal}"):
        download_model("cut_horse2zebra", root=root, progress=False)
    assert list(root.iterdir()) == [] and not (tmp_path / "horse2zebra_cut_pretrained").exists()


# --- integrity: the published files' sha256 ------------------------------------------------


def _with_sha256(monkeypatch, name: str, sha256):
    """The entry ``name`` with another recorded sha256, as download_model finds it."""
    import dataclasses

    from cyclegan_pl.weights import published

    entry = dataclasses.replace(PUBLISHED_MODELS.get(name), sha256=sha256)
    monkeypatch.setattr(
        published, "published_model", lambda wanted: entry if wanted == name else PUBLISHED_MODELS.get(wanted)
    )
    return entry


def _sha256(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


def test_every_recorded_sha256_is_64_hex_digits_or_unknown():
    for name in PUBLISHED_MODELS.names():
        sha256 = PUBLISHED_MODELS.get(name).sha256
        assert sha256 is None or (len(sha256) == 64 and set(sha256) <= set("0123456789abcdef")), name


def test_a_download_of_the_recorded_sha256_is_converted(tmp_path, server, published, monkeypatch, capsys):
    _with_sha256(monkeypatch, "horse2zebra", _sha256(published[1]))
    server.routes["/cyclegan/pretrained_models/horse2zebra.pth"] = (published[1], "ok")
    ckpt = download_model("horse2zebra", root=tmp_path, progress=False)
    assert isinstance(load_checkpoint(ckpt), CycleGAN)
    assert "architecture only" not in capsys.readouterr().out


def test_a_download_of_another_sha256_is_refused_naming_both_and_nothing_is_kept(
    tmp_path, server, published, monkeypatch
):
    recorded = _sha256(b"the published file")
    _with_sha256(monkeypatch, "horse2zebra", recorded)
    server.routes["/cyclegan/pretrained_models/horse2zebra.pth"] = (published[1], "ok")
    with pytest.raises(DownloadError) as error:
        download_model("horse2zebra", root=tmp_path, progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert recorded in message and _sha256(published[1]) in message and "verify=False" in message
    assert list(tmp_path.iterdir()) == []


def test_verify_false_accepts_a_deliberate_mirror(tmp_path, server, published, monkeypatch, capsys):
    _with_sha256(monkeypatch, "horse2zebra", _sha256(b"the published file"))
    server.routes["/cyclegan/pretrained_models/horse2zebra.pth"] = (published[1], "ok")
    with pytest.raises(SystemExit):
        main(["download-model", "horse2zebra", "--root", str(tmp_path)])
    assert "--verify=False" in capsys.readouterr().err  # the option as the command line takes it
    main(["download-model", "horse2zebra", "--root", str(tmp_path), "--verify", "false"])
    assert isinstance(load_checkpoint(tmp_path / "horse2zebra.ckpt"), CycleGAN)


def test_a_file_put_in_place_by_hand_is_verified_and_kept_when_refused(tmp_path, published, monkeypatch):
    _with_sha256(monkeypatch, "horse2zebra", _sha256(b"the published file"))
    (tmp_path / "horse2zebra.pth").write_bytes(published[1])
    with pytest.raises(DownloadError, match=f"{tmp_path / 'horse2zebra.pth'} has sha256 {_sha256(published[1])}"):
        download_model("horse2zebra", root=tmp_path, url="http://127.0.0.1:9/unused.pth", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["horse2zebra.pth"]  # the user's file stays
    assert (tmp_path / "horse2zebra.pth").read_bytes() == published[1]


def test_the_cut_archive_is_verified_downloaded_or_in_place(tmp_path, server, cut_archive, monkeypatch):
    recorded = _sha256(b"the published archive")
    _with_sha256(monkeypatch, "cut_horse2zebra", recorded)
    server.routes[CUT_ARCHIVE] = (cut_archive.body, "ok")
    root = tmp_path / "models"
    with pytest.raises(DownloadError, match=f"has sha256 {_sha256(cut_archive.body)}, but .* {recorded}"):
        download_model("cut_horse2zebra", root=root, progress=False)
    assert list(root.iterdir()) == []
    archive = root / "cut_pretrained_models.tar"
    archive.write_bytes(cut_archive.body)  # in place by hand: refused, kept
    with pytest.raises(DownloadError, match=f"{archive} has sha256"):
        download_model("cut_horse2zebra", root=root, progress=False)
    assert [p.name for p in root.iterdir()] == [archive.name]
    _with_sha256(monkeypatch, "cut_horse2zebra", _sha256(cut_archive.body))
    assert isinstance(load_checkpoint(download_model("cut_horse2zebra", root=root, progress=False)), CUT)


def test_a_model_without_a_recorded_sha256_says_it_is_checked_by_its_architecture_only(
    tmp_path, server, published, monkeypatch, capsys
):
    _with_sha256(monkeypatch, "horse2zebra", None)
    server.routes["/cyclegan/pretrained_models/horse2zebra.pth"] = (published[1], "ok")
    main(["download-model", "horse2zebra", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "no sha256 of the published horse2zebra file is recorded" in out and "architecture only" in out


# --- --overwrite replaces files only with complete, verified ones ----------------------------


@pytest.mark.parametrize("failure", ["truncated", "dropped", "other_sha256"])
def test_overwrite_with_a_failing_download_keeps_the_previous_files(tmp_path, server, published, monkeypatch, failure):
    route = "/cyclegan/pretrained_models/horse2zebra.pth"
    body = published[1]
    if failure == "other_sha256":
        _with_sha256(monkeypatch, "horse2zebra", _sha256(body))
    server.routes[route] = (body, "ok")
    ckpt = download_model("horse2zebra", root=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    torch.manual_seed(1)
    other = reference_bytes(define_generator("resnet_9blocks", ngf=64, norm="instance"))
    served = {"truncated": (body[: len(body) // 2], "ok"), "dropped": (other, "dropped"), "other_sha256": (other, "ok")}
    server.routes[route] = served[failure]
    with pytest.raises(DownloadError):
        download_model("horse2zebra", root=tmp_path, progress=False, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file either
    assert isinstance(load_checkpoint(ckpt), CycleGAN)


def test_overwrite_of_a_cut_model_with_a_bad_archive_keeps_the_archive_and_the_run_folder(
    tmp_path, server, cut_archive
):
    root = tmp_path / "models"
    server.routes[CUT_ARCHIVE] = (cut_archive.body, "ok")
    download_model("cut_horse2zebra", root=root, progress=False)

    def snapshot():
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    before = snapshot()
    torch.manual_seed(0)
    small = define_generator("resnet_9blocks", ngf=8, norm="instance", antialias=True)  # not the published width
    for body in (
        tar_bytes({"checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth": state_bytes(small)}),  # refused on import
        tar_bytes({"checkpoints/other/latest_net_G.pth": state_bytes(small)}),  # no run folder
        cut_archive.body[: len(cut_archive.body) // 3],  # cut short: not a readable tar
    ):
        server.routes[CUT_ARCHIVE] = (body, "ok")
        with pytest.raises(DownloadError):
            download_model("cut_horse2zebra", root=root, progress=False, overwrite=True)
        assert snapshot() == before
        assert sorted(p.name for p in root.iterdir()) == [
            "cut_horse2zebra",
            "cut_horse2zebra.ckpt",
            "cut_pretrained_models.tar",
        ]
