"""Image reading: formats, modes, EXIF, 16-bit, bad files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_pl.data import ImageTransform, UnpairedDataset, is_image_file, list_images, read_image
from cyclegan_pl.data.image import pil_to_tensor, quick_check, read_image_size
from cyclegan_pl.errors import BadImageError, DataLayoutError, ImageTooLargeError


def test_listing_ignores_non_images_and_accepts_any_case(awkward_folder):
    folder = next(iter(awkward_folder.values())).parent
    names = [p.name for p in list_images(folder)]
    assert "notes.txt" not in names and ".hidden.png" not in names
    assert sorted(names) == sorted(awkward_folder)
    for upper in ("upper.JPG", "upper.PNG", "upper.TIF", "upper.WEBP", "upper.BMP"):
        assert upper in names


@pytest.mark.parametrize("channels", [3, 1])
def test_every_awkward_file_reads_with_the_asked_channels(awkward_folder, channels):
    for name, path in awkward_folder.items():
        image = read_image(path, channels)
        assert image.dtype == torch.uint8, name
        assert image.shape[0] == channels, name
        assert image.ndim == 3, name


def test_rgb_formats_agree_with_pil(awkward_folder):
    for name in ("upper.JPG", "upper.PNG", "upper.TIF", "upper.WEBP", "upper.BMP", "cmyk.jpg", "palette.png"):
        path = awkward_folder[name]
        expected = np.asarray(Image.open(path).convert("RGB")).astype(int)
        got = read_image(path).permute(1, 2, 0).numpy().astype(int)
        assert got.shape == expected.shape, name
        assert np.abs(got - expected).mean() < 1.0, name


def test_grayscale_becomes_rgb_and_back(awkward_folder):
    rgb = read_image(awkward_folder["gray.png"], 3)
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])
    gray = read_image(awkward_folder["upper.PNG"], 1)
    expected = np.asarray(Image.open(awkward_folder["upper.PNG"]).convert("L")).astype(int)
    assert np.abs(gray[0].numpy().astype(int) - expected).max() <= 1


def test_alpha_is_composited_on_white(awkward_folder, helpers):
    image = read_image(awkward_folder["rgba.png"])
    assert (image[:, :, :10] == 255).all()  # transparent strip: white, not the stored black
    stored = helpers.gradient_rgb(30, 50)
    assert np.abs(image[:, :, 10:].permute(1, 2, 0).numpy().astype(int) - stored[:, 10:]).max() == 0
    gray_alpha = read_image(awkward_folder["gray_alpha.png"], 1)
    assert gray_alpha.shape == (1, 30, 50)


@pytest.mark.parametrize("name", ["sixteen.png", "int32.tif"])
def test_sixteen_bit_is_scaled_not_clipped(awkward_folder, name):
    image = read_image(awkward_folder[name])
    unit = image.float() * (2 / 255) - 1
    assert torch.allclose(unit[:, :, :25], torch.ones(()))  # 65535 -> white, +1
    assert unit[:, :, 25:].abs().max() < 0.01  # 32768 -> mid gray, about 0


def test_sixteen_bit_big_endian_mode():
    values = np.full((4, 6), 65535, np.uint16)
    image = Image.frombytes("I;16B", (6, 4), values.astype(">u2").tobytes())
    assert (pil_to_tensor(image, 3) == 255).all()


def test_exif_orientation_is_applied(awkward_folder):
    path = awkward_folder["rotated.jpg"]
    stored = Image.open(path)
    assert stored.size == (50, 30)  # stored landscape, W x H
    image = read_image(path)
    assert tuple(image.shape[1:]) == (50, 30)  # displayed portrait: H=50, W=30
    assert read_image_size(path) == (50, 30)
    # orientation 6 = rotate 90 degrees clockwise: the stored top-left corner ends top-right
    stored_rgb = np.asarray(stored.convert("RGB")).astype(int)
    rotated = np.rot90(stored_rgb, k=-1)
    assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - rotated).mean() < 1.0


def test_tiny_and_non_square_images_give_crop_size_output(awkward_folder):
    for preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        transform = ImageTransform(preprocess, load_size=36, crop_size=32, train=True)
        for name in ("tiny.png", "upper.PNG", "rotated.jpg"):
            out = transform(read_image(awkward_folder[name]), torch.Generator().manual_seed(0))
            assert out.shape == (3, 32, 32), (preprocess, name)


def test_truncated_jpeg_error_names_the_file(tmp_path, helpers):
    path = helpers.write_truncated_jpeg(tmp_path / "broken.jpg")
    with pytest.raises(BadImageError, match="broken.jpg"):
        read_image(path)
    assert quick_check(path) is not None
    assert quick_check(helpers.save_rgb(tmp_path / "fine.jpg", 20, 20)) is None


def test_text_file_named_like_an_image_is_a_bad_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("hello")
    with pytest.raises(BadImageError, match="fake.png"):
        read_image(path)


def test_bad_images_raise_without_skip_and_are_skipped_with_one_warning(tmp_path, helpers):
    helpers.make_awkward_folder(tmp_path / "A")
    helpers.write_truncated_jpeg(tmp_path / "A" / "zz_truncated.jpg")
    for i in range(3):
        helpers.save_rgb(tmp_path / "B" / f"{i}.png", 20, 20)
    transform = ImageTransform("resize_and_crop", 36, 32)
    strict = UnpairedDataset(tmp_path / "A", tmp_path / "B", transform, serial=True)
    bad_index = [p.name for p in strict.files_a].index("zz_truncated.jpg")
    with pytest.raises(BadImageError, match="zz_truncated.jpg"):
        strict[bad_index]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lenient = UnpairedDataset(tmp_path / "A", tmp_path / "B", transform, serial=True, skip_bad_images=True)
    messages = [str(w.message) for w in caught if "skip_bad_images" in str(w.message)]
    assert len(messages) == 1
    assert "1 unreadable" in messages[0] and "zz_truncated.jpg" in messages[0]
    assert "zz_truncated.jpg" not in [p.name for p in lenient.files_a]
    for i in range(len(lenient)):
        assert lenient[i]["A"].shape == (3, 32, 32)


def test_only_a_dataset_suggests_skip_bad_images(tmp_path, helpers):
    # read_image is what translate, evaluate and the app call: none of them has skip_bad_images.
    path = helpers.write_truncated_jpeg(tmp_path / "A" / "broken.jpg")
    with pytest.raises(BadImageError) as error:
        read_image(path)
    message = str(error.value)
    assert "broken.jpg" in message and "replace or delete it" in message and "\n" not in message
    assert "skip_bad_images" not in message
    for i in range(2):
        helpers.save_rgb(tmp_path / "B" / f"{i}.png", 20, 20)
    dataset = UnpairedDataset(tmp_path / "A", tmp_path / "B", ImageTransform("resize_and_crop", 36, 32), serial=True)
    with pytest.raises(BadImageError) as error:
        dataset[0]
    assert "broken.jpg" in str(error.value) and "skip_bad_images=True" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("read", [read_image, read_image_size])
def test_an_image_over_the_pixel_limit_is_not_called_corrupt(tmp_path, monkeypatch, read):
    path = tmp_path / "huge.bmp"  # BMP: decoded by PIL, whose decompression-bomb guard applies
    Image.new("RGB", (40, 30), (1, 2, 3)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageTooLargeError) as error:
        read(path)
    message = str(error.value)
    assert isinstance(error.value, BadImageError)
    assert "huge.bmp" in message and "1200 pixels" in message and "limit of 200 pixels" in message
    assert "corrupt" not in message and "\n" not in message


def test_a_file_failing_only_at_decode_time_is_replaced_deterministically(tmp_path, helpers):
    for i in range(4):
        helpers.save_rgb(tmp_path / "A" / f"{i}.png", 20, 20, seed=i)
        helpers.save_rgb(tmp_path / "B" / f"{i}.png", 20, 20, seed=i)
    transform = ImageTransform("resize_and_crop", 36, 32)
    dataset = UnpairedDataset(tmp_path / "A", tmp_path / "B", transform, serial=True, skip_bad_images=True)
    # corrupt after the up-front check: the PNG header stays, the pixel data goes
    data = (tmp_path / "A" / "1.png").read_bytes()
    (tmp_path / "A" / "1.png").write_bytes(data[:60])
    with pytest.warns(UserWarning, match=r"1\.png"):
        item = dataset[1]
    assert Path(item["A_paths"]).name == "2.png"  # the next readable index
    assert Path(dataset[1]["A_paths"]).name == "2.png"


# --- files and folders as users have them ----------------------------------------------------


def _png(path, size=(8, 8), color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_symlink_loops_are_followed_once_with_one_warning(tmp_path):
    folder = tmp_path / "trainA"
    for i in range(3):
        _png(folder / f"{i}.png")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)
    with pytest.warns(UserWarning, match="loop") as record:
        found = list_images(folder)
    assert [p.name for p in found] == ["0.png", "1.png", "2.png"]
    assert len([w for w in record if "link" in str(w.message)]) == 1


def test_a_linked_folder_outside_the_tree_is_read(tmp_path):
    _png(tmp_path / "elsewhere" / "x.png")
    _png(tmp_path / "trainA" / "a.png")
    (tmp_path / "trainA" / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert [p.relative_to(tmp_path / "trainA").as_posix() for p in list_images(tmp_path / "trainA")] == [
        "a.png",
        "more/x.png",
    ]


def test_output_folder_inside_the_input_is_left_out(tmp_path):
    _png(tmp_path / "in" / "a.png")
    _png(tmp_path / "in" / "out" / "a.png")
    assert list_images(tmp_path / "in", exclude=[tmp_path / "in" / "out"]) == [tmp_path / "in" / "a.png"]


def test_an_animated_gif_reads_its_first_frame_and_says_so(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert is_image_file(path)
    with pytest.warns(UserWarning, match=r"anim\.gif.*2 frames.*first"):
        image = read_image(path)
    assert image.shape == (3, 8, 8)
    assert image[0].float().mean() > image[2].float().mean()  # red: the first frame


def test_a_one_pixel_wide_pair_names_the_file(tmp_path):
    from cyclegan_pl.data.image import split_halves

    with pytest.raises(DataLayoutError, match=r"thin\.png.*1 pixel wide"):
        split_halves(torch.zeros(3, 8, 1), tmp_path / "thin.png")


def test_a_png_size_is_read_without_decoding_it(tmp_path, monkeypatch):
    # A few hundred bytes of PNG can describe a huge image: its size must come from the header.
    # (PIL decodes the whole PNG to look for an EXIF chunk after the pixel data.)
    from PIL import ImageFile

    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200), (10, 20, 30)).save(path)
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    assert read_image_size(path) == (200, 300)
    assert decoded == []


@pytest.mark.parametrize("channels", [1, 3])
def test_to_uint8_in_bands_of_rows_equals_the_whole_image_formula(channels):
    from cyclegan_pl.data.image import to_uint8

    image = torch.rand(channels, 600, 37, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1
    expected = ((image + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0).to(torch.uint8).permute(1, 2, 0).numpy()
    got = to_uint8(image)
    np.testing.assert_array_equal(got, expected[:, :, 0] if channels == 1 else expected)
