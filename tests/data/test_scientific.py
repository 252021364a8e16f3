"""Scientific images end to end: 16-bit, float and multi-band data keep their values from file to file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from cyclegan_pl import CUT, CycleGAN, ImagePoolCallback, PairedDataModule, Pix2Pix, UnpairedDataModule
from cyclegan_pl.commands import export, translate
from cyclegan_pl.data.intensity import IntensityMapping
from cyclegan_pl.data.native import encode_png16, native_info, read_native, write_native
from cyclegan_pl.data.output import OutputFormat
from cyclegan_pl.errors import BadImageError, DataLayoutError, OptionError
from cyclegan_pl.weights import load_checkpoint

SIZE = 32
BANDS = 4


def multiband_image(rng: np.random.Generator, offset: int) -> np.ndarray:
    """(H, W, 4) uint16: smooth fields over most of the range plus detail in the lowest bits."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    phase = rng.uniform(0, 6.28)
    smooth = np.stack([np.sin(3 * x + band + phase) * np.cos(2 * y - band) for band in range(BANDS)], -1)
    fine = rng.integers(0, 4, size=smooth.shape)  # the two lowest bits: lost at 8 bits
    return (offset + (smooth + 1) / 2 * 40000 + fine).astype(np.uint16)


def write_tiff(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, photometric="minisblack", planarconfig="contig")


@pytest.fixture(scope="module")
def multiband(tmp_path_factory) -> Path:
    """trainA/B, testA/B of 16-bit 4-band TIFFs; domain B is brighter (offset 12000)."""
    root = tmp_path_factory.mktemp("multiband")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("test", 2)):
        for domain, offset in (("A", 0), ("B", 12000)):
            for index in range(count):
                write_tiff(root / f"{split}{domain}" / f"{index}.tif", multiband_image(rng, offset))
    return root


def datamodule(root: Path, **options) -> UnpairedDataModule:
    defaults = dict(input_nc=BANDS, output_nc=BANDS, load_size=SIZE, crop_size=SIZE, num_workers=0, batch_size=2)
    return UnpairedDataModule(str(root), **{**defaults, **options})


def files_of(folder: Path) -> list:
    return sorted(folder.iterdir())


# --- reading, normalising and writing ------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["dtype", "percentile"])
def test_identity_round_trip_loses_at_most_one_lsb(multiband, tmp_path, normalization):
    dm = datamodule(multiband, normalization=normalization, flip=False, preprocess="none")
    dm.setup("test")
    mapping = dm.intensity_mappings()["A"]
    dataset = dm.get_dataset("test")
    item = dataset[0]
    assert item["A"].dtype == torch.int32 and item["A"].shape == (BANDS, SIZE, SIZE)
    written = OutputFormat().write(mapping.normalize(item["A"]), mapping, tmp_path / "back")
    assert written.suffix == ".tif"  # four bands: PNG cannot hold them
    back = tifffile.imread(written)
    original = tifffile.imread(item["A_paths"])
    assert back.dtype == np.uint16 and back.shape == original.shape
    assert np.abs(back.astype(np.int64) - original.astype(np.int64)).max() <= 1


def test_the_photo_path_loses_the_low_bits(tmp_path):
    """What 0.2.0 did with 16-bit files, read as 8-bit photos: 16-bit gray PNGs lose 8 bits; natively none."""
    gray16_pairs(tmp_path / "pairs")
    options = dict(
        input_nc=1, output_nc=1, load_size=SIZE, crop_size=SIZE, num_workers=0, flip=False, preprocess="none"
    )
    with pytest.raises(OptionError, match="image_mode=8bit reads photos as 1 or 3 channels"):
        datamodule(tmp_path, image_mode="8bit")
    errors = {}
    for mode in ("8bit", "native"):
        dm = PairedDataModule(str(tmp_path / "pairs"), image_mode=mode, **options)
        dm.setup("test")
        item = dm.get_dataset("test")[0]
        mapping = dm.intensity_mappings()["A"]
        written = OutputFormat(depth="uint16").write(mapping.normalize(item["A"]), mapping, tmp_path / mode)
        back = read_native(written).to(torch.int64) * (257 if mode == "8bit" else 1)
        errors[mode] = (back - read_native(item["A_paths"]).to(torch.int64)).abs().max().item()
    assert errors["native"] == 0 and errors["8bit"] > 100


def test_integer_values_are_normalised_in_float32_within_a_hundredth_of_a_level():
    # Percentile-like bounds, with fractions: the float32 path against the float64 formula.
    mapping = IntensityMapping("uint16", (1200.25, 0.0, 30000.5), (58000.75, 65535.0, 30010.0))
    values = torch.randint(0, 65536, (2, 3, 40, 30), dtype=torch.int32)
    values[:, 2] = torch.randint(29990, 30020, (2, 40, 30), dtype=torch.int32)  # a band 10 levels wide
    normalized = mapping.normalize(values)
    scale, offset = mapping.scale_offset()
    exact = values.to(torch.float64) * scale + offset
    assert normalized.dtype == torch.float32
    assert ((normalized.to(torch.float64) - exact).abs() / scale).max() < 0.01


def test_percentiles_equal_numpys(multiband):
    dm = datamodule(multiband, normalization="percentile", percentiles=(0.5, 99.5))
    mappings = dm.intensity_mappings()
    for domain in "AB":
        values = np.concatenate([tifffile.imread(f).reshape(-1, BANDS) for f in files_of(multiband / f"train{domain}")])
        assert mappings[domain].dtype == "uint16"
        assert mappings[domain].low == tuple(np.percentile(values, 0.5, axis=0))
        assert mappings[domain].high == tuple(np.percentile(values, 99.5, axis=0))


def test_float_arrays_and_16_bit_pngs_read_and_write_their_values(tmp_path):
    rng = np.random.default_rng(1)
    ct = rng.uniform(-1000, 3000, size=(12, 10)).astype(np.float32)
    np.save(tmp_path / "ct.npy", ct)
    assert native_info(tmp_path / "ct.npy").dtype == "float32"
    read = read_native(tmp_path / "ct.npy")
    assert read.dtype == torch.float64 and read.shape == (1, 12, 10) and np.array_equal(read[0].numpy(), ct)
    for bands in (1, 3):
        values = rng.integers(0, 65536, size=(7, 9, bands)).astype(np.uint16)
        (tmp_path / f"p{bands}.png").write_bytes(encode_png16(values))
        assert np.array_equal(read_native(tmp_path / f"p{bands}.png").permute(1, 2, 0).numpy(), values)
        write_native(values.astype(np.float64), tmp_path / f"w{bands}.png", "uint16")
        assert np.array_equal(read_native(tmp_path / f"w{bands}.png").permute(1, 2, 0).numpy(), values)
    gray = Image.open(tmp_path / "w1.png")
    assert gray.mode == "I;16"  # any viewer reads it as 16-bit gray
    with pytest.raises(OptionError, match="a .png file cannot hold 4 band"):
        write_native(np.zeros((2, 2, 4)), tmp_path / "x.png", "uint16")


def test_bad_files_are_one_line_naming_the_file(tmp_path, multiband):
    nan = np.ones((SIZE, SIZE), np.float32)
    nan[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(BadImageError, match=r"nan\.npy.*1 of its values are NaN or infinite"):
        read_native(tmp_path / "nan.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadImageError, match="holds Python objects"):
        native_info(tmp_path / "objects.npy")

    mixed = tmp_path / "mixed"
    for split in ("train", "test"):
        for domain in "AB":
            for index in range(2):
                write_tiff(
                    mixed / f"{split}{domain}" / f"{index}.tif", multiband_image(np.random.default_rng(index), 0)
                )
    write_tiff(mixed / "trainA" / "3band.tif", np.zeros((SIZE, SIZE, 3), np.uint16))
    write_tiff(mixed / "trainB" / "2_float.tif", np.zeros((SIZE, SIZE, BANDS), np.float32))
    dm = datamodule(mixed)
    with pytest.raises(DataLayoutError, match=r"'.*trainA/3band\.tif' holds 3 band\(s\) of uint16, but the domain A"):
        dm.setup("fit")
    with pytest.raises(OptionError, match=r"input_nc=3, but '.*trainA/0\.tif' \(domain A\) holds 4 band\(s\)"):
        datamodule(multiband, input_nc=3, output_nc=3).setup("fit")
    (mixed / "trainA" / "3band.tif").unlink()
    with pytest.raises(DataLayoutError, match=r"2_float\.tif' holds 4 band\(s\) of float32, but the domain B"):
        datamodule(mixed).setup("fit")


# --- training and translating ----------------------------------------------------------------------


@pytest.mark.parametrize("method", [CycleGAN, CUT], ids=["cyclegan", "cut"])
def test_a_tiny_model_fits_and_translates_into_16_bit_4_band_tiffs(method, multiband, tmp_path, make_trainer):
    dm = datamodule(multiband, normalization="percentile")
    options = dict(generator="resnet_2blocks") if method is CycleGAN else dict(num_patches=16)
    model = method(ngf=8, ndf=8, input_nc=BANDS, output_nc=BANDS, **options)
    make_trainer(callbacks=[ImagePoolCallback()]).fit(model, dm)
    assert model.intensity == dm.intensity_mappings()
    trainer = make_trainer()
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    assert load_checkpoint(tmp_path / "m.ckpt").intensity == model.intensity  # kept with the weights

    translate(tmp_path / "m.ckpt", multiband / "testA", tmp_path / "out")
    outputs = files_of(tmp_path / "out")
    assert [path.name for path in outputs] == ["0.tif", "1.tif"]
    low, high = np.array(model.intensity["B"].low), np.array(model.intensity["B"].high)
    for path in outputs:
        values = tifffile.imread(path)
        assert values.dtype == np.uint16 and values.shape == (SIZE, SIZE, BANDS)
        # In domain B's units: the generator's tanh keeps them within its percentile range.
        assert (values >= np.floor(low) - 1).all() and (values <= np.ceil(high) + 1).all()
        assert values.std() > 0


def test_the_folder_of_a_saved_model_keeps_its_mapping(tmp_path):
    model = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks", input_nc=BANDS, output_nc=BANDS)
    model.use_intensity({"A": IntensityMapping("uint16", (1.0,) * 4, (9.0,) * 4)})
    model.save_pretrained(tmp_path / "folder")
    assert load_checkpoint(tmp_path / "folder").intensity == model.intensity
    with pytest.raises(OptionError, match="domain A images arrive as uint8 values, but this model's domain A data"):
        model.translate(torch.zeros(1, BANDS, 8, 8, dtype=torch.uint8))
    with pytest.raises(OptionError, match="input_nc=4 but domain A's images have 3 band"):
        model.use_intensity({"A": IntensityMapping.of_dtype("uint16", 3)})


def gray16_pairs(root: Path) -> None:
    """A paired set of 16-bit gray PNGs: B is A inverted."""
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for index in range(2):
            image = (rng.random((SIZE, SIZE, 1)) * 65535).astype(np.uint16)
            for side, values in (("A", image), ("B", 65535 - image)):
                (root / split / side).mkdir(parents=True, exist_ok=True)
                (root / split / side / f"{index}.png").write_bytes(encode_png16(values))


def test_pix2pix_reads_and_writes_16_bit_gray_pngs(tmp_path, make_trainer):
    gray16_pairs(tmp_path / "pairs")
    dm = PairedDataModule(
        str(tmp_path / "pairs"), input_nc=1, output_nc=1, load_size=SIZE, crop_size=SIZE, num_workers=0
    )
    model = Pix2Pix(ngf=8, ndf=8, generator="unet_32", input_nc=1, output_nc=1)
    make_trainer().fit(model, dm)
    assert model.intensity["B"] == IntensityMapping.of_dtype("uint16", 1)
    model.save_pretrained(tmp_path / "model")
    translate(tmp_path / "model", tmp_path / "pairs" / "test" / "A", tmp_path / "out")
    with Image.open(tmp_path / "out" / "0.png") as image:
        assert image.mode == "I;16" and image.size == (SIZE, SIZE)
        assert np.asarray(image).max() > 255  # 16-bit values, not an 8-bit image in a 16-bit file


def test_exported_files_take_the_models_bands(tmp_path):
    model = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks", input_nc=BANDS, output_nc=2, lambda_identity=0)
    model.save_pretrained(tmp_path / "model")
    export(tmp_path / "model", tmp_path / "g.pt", height=16, width=16)
    program = torch.jit.load(str(tmp_path / "g.pt"))
    images = torch.rand(1, BANDS, 20, 12) * 2 - 1
    model.eval_mode = True
    torch.testing.assert_close(program(images), model.translate(images), rtol=0, atol=1e-5)
    assert program(images).shape == (1, 2, 20, 12)


# --- showing and measuring ---------------------------------------------------------------------------


def test_fid_on_multiband_images_is_refused_without_bands(tmp_path, make_trainer, multiband):
    from cyclegan_pl import FID

    model = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks", input_nc=BANDS, output_nc=BANDS)
    with pytest.raises(OptionError, match=r"FID and KID compare RGB images.*4 bands: set FID bands=\[r, g, b\]"):
        make_trainer(callbacks=[FID()], limit_train_batches=0).fit(model, datamodule(multiband))


def test_sample_grids_show_multiband_images_in_colour(tmp_path, make_trainer, multiband):
    from cyclegan_pl import SampleGrid

    model = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks", input_nc=BANDS, output_nc=BANDS)
    grids = SampleGrid(every_n_epochs=1, num_images=2, bands=[2, 1, 0])
    make_trainer(callbacks=[grids], default_root_dir=str(tmp_path)).fit(model, datamodule(multiband))
    (grid,) = sorted((tmp_path / "samples").glob("*.png"))
    with Image.open(grid) as image:
        assert image.mode == "RGB"
        colours = np.asarray(image).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 100  # stretched bands, not a flat picture
