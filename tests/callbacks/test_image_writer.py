from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_pl.callbacks import ImageWriter

# (relative path, (height, width)): mixed sizes, formats and folder depths.
SOURCES = [
    ("top.png", (64, 64)),
    ("same_size.jpg", (64, 64)),
    ("sub/wide.png", (30, 45)),
    ("sub/deeper/odd.jpg", (17, 33)),
]


def make_folder(root, mode="RGB"):
    for index, (relpath, (height, width)) in enumerate(SOURCES):
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).convert(mode).save(path)
    return root


def output_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("channels", [3, 1])
def test_predict_writes_every_image_at_its_own_size(tmp_path, cyclegan, trainer_for, channels):
    from cyclegan_pl.data import UnpairedDataModule

    source = make_folder(tmp_path / "in", "RGB" if channels == 3 else "L")
    (tmp_path / "dataset").mkdir()
    data = UnpairedDataModule(
        root=str(tmp_path / "dataset"),
        predict_dir=str(source),
        val_batch_size=2,
        num_workers=0,
        input_nc=channels,
        output_nc=channels,
    )
    model = cyclegan(input_nc=channels, output_nc=channels)
    out = tmp_path / "out"
    writer = ImageWriter(out)
    trainer = trainer_for(tmp_path, [writer])
    assert trainer.predict(model, datamodule=data, return_predictions=False) is None
    expected = sorted(relpath.rsplit(".", 1)[0] + ".png" for relpath, _ in SOURCES)
    assert output_files(out) == expected
    for relpath, (height, width) in SOURCES:
        with Image.open(out / (relpath.rsplit(".", 1)[0] + ".png")) as image:
            assert image.size == (width, height)
            assert image.mode == ("RGB" if channels == 3 else "L")
    assert writer.written == len(SOURCES)


def prediction(values, relpaths, size=(5, 7), channels=3):
    images = torch.stack([torch.full((channels, *size), float(v)) for v in values])
    return {"images": images, "path": [f"/data/{r}" for r in relpaths], "relpath": list(relpaths)}


def write(writer, pred):
    writer.write_on_batch_end(None, None, pred, None, None, 0, 0)


def test_pixel_values_extension_and_atomic_files(tmp_path):
    writer = ImageWriter(tmp_path, extension="jpg")
    writer.on_predict_start(None, None)
    write(writer, prediction([-1.0, 1.0], ["a/x.png", "y.tif"]))
    assert output_files(tmp_path) == ["a/x.jpg", "y.jpg"]  # no temporary files left behind
    assert np.asarray(Image.open(tmp_path / "a/x.jpg")).max() <= 2
    assert np.asarray(Image.open(tmp_path / "y.jpg")).min() >= 253

    png = ImageWriter(tmp_path / "png")
    png.on_predict_start(None, None)
    write(png, prediction([-1.0, 0.0, 1.0], ["lo.png", "mid.png", "hi.png"], channels=1))
    values = [np.asarray(Image.open(tmp_path / "png" / name)) for name in ("lo.png", "mid.png", "hi.png")]
    assert [v.ndim for v in values] == [2, 2, 2]
    assert [int(v[0, 0]) for v in values] == [0, 127, 255]  # (x + 1) / 2 * 255, truncated like the reference


def test_overwrite_false_keeps_existing_files(tmp_path):
    first = ImageWriter(tmp_path)
    first.on_predict_start(None, None)
    write(first, prediction([1.0], ["x.png"]))
    again = ImageWriter(tmp_path, overwrite=False)
    again.on_predict_start(None, None)
    write(again, prediction([-1.0, -1.0], ["x.png", "new.png"]))
    assert np.asarray(Image.open(tmp_path / "x.png")).min() == 255
    assert again.skipped == 1 and again.written == 1


def test_two_sources_with_one_output_name_is_an_error(tmp_path):
    writer = ImageWriter(tmp_path)
    writer.on_predict_start(None, None)
    with pytest.raises(ValueError, match="same output"):
        write(writer, prediction([0.0, 0.0], ["d/x.jpg", "d/x.png"]))


def test_relpaths_cannot_leave_the_output_folder(tmp_path):
    writer = ImageWriter(tmp_path / "out")
    assert writer.target_path("../../etc/x.jpg", None) == tmp_path / "out" / "x.png"
    assert writer.target_path(None, "/some/where/y.JPG") == tmp_path / "out" / "y.png"


def test_unknown_extension_names_the_option():
    with pytest.raises(ValueError, match="extension 'xyz' is not an image type"):
        ImageWriter("out", extension="xyz")
