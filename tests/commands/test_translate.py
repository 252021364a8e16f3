"""``translate`` through the command line: any image size, nothing of the user's overwritten, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from cyclegan_pl import CycleGAN
from cyclegan_pl.weights.reference_import import save_imported_checkpoint

TINY_SIDES = [(1, 1), (2, 3), (4, 4), (3, 17)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    return save_imported_checkpoint(module, 0, {}, tmp_path_factory.mktemp("model") / "m.ckpt")


def _image(path: Path, width: int = 20, height: int = 16, colour=(200, 30, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), colour).save(path)
    return path


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(result) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_tiny_images_come_back_at_their_size(tmp_path, ckpt, cli_in_process):
    for height, width in TINY_SIDES:
        _image(tmp_path / "in" / f"{height}x{width}.png", width, height, (height * 40, width * 10, 90))
    cli_in_process(
        "translate", "--ckpt_path", str(ckpt), "--input", "in", "--output", "out", "--device", "cpu", cwd=tmp_path
    )
    for height, width in TINY_SIDES:
        assert Image.open(tmp_path / "out" / f"{height}x{width}.png").size == (width, height)


@pytest.mark.parametrize(
    "input, output",
    [
        ("photos", "photos"),  # the same folder
        ("photos", "photos/./"),  # spelled otherwise
        ("photos/a.png", "photos"),  # one file into its own folder
        ("photos/a.png", "link_to_photos"),  # through a symbolic link
    ],
)
def test_an_output_that_would_overwrite_an_input_image_is_refused(tmp_path, ckpt, cli_in_process, input, output):
    _image(tmp_path / "photos" / "a.png")
    _image(tmp_path / "photos" / "b.png", colour=(10, 200, 30))
    (tmp_path / "link_to_photos").symlink_to(tmp_path / "photos")
    before = _files(tmp_path / "photos")
    result = cli_in_process(
        "translate", "--ckpt_path", str(ckpt), "--input", input, "--output", output, "--device", "cpu",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    line = _one_error_line(result)
    assert f"--output={Path(output)}" in line and "a.png" in line
    assert _files(tmp_path / "photos") == before


def test_two_inputs_of_one_output_name_are_refused_before_anything_is_written(tmp_path, ckpt, cli_in_process):
    _image(tmp_path / "in" / "x.jpg")
    _image(tmp_path / "in" / "x.png")
    result = cli_in_process(
        "translate", "--ckpt_path", str(ckpt), "--input", "in", "--output", "out", "--device", "cpu",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert "x.jpg" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("output", ["a_file.txt", "a_file.txt/out", "/dev/null/out"])
def test_an_output_that_is_a_file_or_cannot_be_made_is_one_line(tmp_path, ckpt, cli_in_process, output):
    _image(tmp_path / "in" / "a.png")
    (tmp_path / "a_file.txt").write_text("mine")
    result = cli_in_process(
        "translate", "--ckpt_path", str(ckpt), "--input", "in", "--output", output, "--device", "cpu",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert f"--output={output}" in _one_error_line(result)
    assert (tmp_path / "a_file.txt").read_text() == "mine"


def test_an_image_that_fails_mid_run_leaves_only_complete_outputs(tmp_path, ckpt, cli_in_process):
    # The images before it are translated and kept (a rerun replaces them); no half-written or
    # temporary file is left behind.
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        Image.fromarray(noise).save(_image(tmp_path / "in" / name))
    broken = tmp_path / "in" / "d.jpg"
    broken.write_bytes(broken.read_bytes()[:-300])  # a valid header, a body cut short: fails when decoded
    result = cli_in_process(
        "translate", "--ckpt_path", str(ckpt), "--input", "in", "--output", "out", "--device", "cpu",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert "d.jpg" in _one_error_line(result)
    # (the loader reads one batch ahead, so the image before the broken one may not be written)
    written = [p.name for p in sorted((tmp_path / "out").iterdir())]
    assert written in (["a.png", "b.png"], ["a.png", "b.png", "c.png"])
    for name in written:
        Image.open(tmp_path / "out" / name).load()  # complete files only
