"""Data modules on the shared real images ($CYCLEGAN_PL_DATA) and in a Lightning Trainer."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_pl.data import PairedDataModule, UnpairedDataModule
from cyclegan_pl.data.transforms import to_float
from cyclegan_pl.errors import DataLayoutError

SMALL = dict(load_size=72, crop_size=64, num_workers=0)


def _check_images(tensor: torch.Tensor, shape) -> None:
    assert tuple(tensor.shape) == tuple(shape)
    assert tensor.dtype == torch.uint8  # the data modules' batch contract; modules normalise on the device
    tensor = to_float(tensor)
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    assert tensor.max() - tensor.min() > 0.5  # real content, not a constant


@pytest.mark.parametrize("name", ["horse2zebra", "summer2winter_yosemite"])
def test_unpaired_real_batches(data_root, name):
    dm = UnpairedDataModule(str(data_root / name), batch_size=4, max_val_size=6, **SMALL)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    _check_images(batch["A"], (4, 3, 64, 64))
    _check_images(batch["B"], (4, 3, 64, 64))
    assert len(batch["A_paths"]) == 4 and all(Path(p).is_file() for p in batch["B_paths"])
    assert all(f"/{name}/trainA/" in p for p in batch["A_paths"])
    val = list(dm.val_dataloader())
    assert sum(len(b["A_paths"]) for b in val) == 6
    _check_images(val[0]["A"], (4, 3, 64, 64))
    dm.setup("test")
    test = next(iter(dm.test_dataloader()))
    assert "/testA/" in test["A_paths"][0] and "/testB/" in test["B_paths"][0]


def test_unpaired_epoch_size_matches_the_folders(data_root):
    dm = UnpairedDataModule(str(data_root / "horse2zebra"), **SMALL)
    dm.setup("fit")
    train = dm.get_dataset("train")
    assert (len(train.files_a), len(train.files_b)) == (300, 307)
    assert len(train) == 307
    assert len(dm.get_dataset("val")) == 140  # testA 120, testB 140


def test_grayscale_zebras_become_rgb(data_root):
    folder = data_root / "horse2zebra" / "trainB"
    gray = sorted(p.name for p in folder.iterdir() if Image.open(p).mode == "L")
    assert len(gray) == 7
    dm = UnpairedDataModule(str(data_root / "horse2zebra"), serial_batches=True, **SMALL)
    dm.setup("fit")
    train = dm.get_dataset("train")
    names = [p.name for p in train.files_b]
    for name in gray:
        item = train[names.index(name)]
        assert Path(item["B_paths"]).name == name
        _check_images(item["B"], (3, 64, 64))
        assert torch.equal(item["B"][0], item["B"][1]) and torch.equal(item["B"][1], item["B"][2])


def test_names_with_spaces(data_root):
    root = data_root / "summer2winter_yosemite"
    dm = UnpairedDataModule(str(root), val_batch_size=2, **SMALL)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert " " in batch["relpath"][0] and Path(batch["path"][0]).is_file()
    _check_images(batch["image"], (2, 3, 256, 256))  # predict: the file's own size
    assert (root / "testA" / batch["relpath"][0]).is_file()


def test_grayscale_input_channels(data_root):
    dm = UnpairedDataModule(str(data_root / "horse2zebra"), input_nc=1, batch_size=2, **SMALL)
    batch = dm.sample_batch(2)
    _check_images(batch["A"], (2, 1, 64, 64))
    _check_images(batch["B"], (2, 3, 64, 64))


def test_predict_btoa_reads_domain_b(data_root):
    dm = UnpairedDataModule(str(data_root / "horse2zebra"), predict_direction="BtoA", **SMALL)
    dm.setup("predict")
    assert len(dm.get_dataset("predict")) == 140


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_facades_real_batches(data_root, direction):
    dm = PairedDataModule(str(data_root / "facades"), direction=direction, batch_size=2, **SMALL)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    _check_images(batch["A"], (2, 3, 64, 64))
    _check_images(batch["B"], (2, 3, 64, 64))
    assert len(dm.get_dataset("train")) == 400 and len(dm.get_dataset("val")) == 100
    dm.setup("predict")
    predict = next(iter(dm.predict_dataloader()))
    _check_images(predict["image"], (2, 3, 256, 256))  # one half of a 512x256 file


def test_facades_btoa_swaps_the_halves(data_root):
    root = str(data_root / "facades")
    forward, backward = PairedDataModule(root, **SMALL), PairedDataModule(root, direction="BtoA", **SMALL)
    a, b = forward.sample_batch(3), backward.sample_batch(3)
    assert torch.equal(a["A"], b["B"]) and torch.equal(a["B"], b["A"])
    assert not torch.equal(a["A"], a["B"])
    photo = Image.open(a["A_paths"][0]).convert("RGB")
    left = photo.crop((0, 0, 256, 256)).resize((64, 64), Image.BICUBIC)
    expected = torch.from_numpy(np.asarray(left).copy()).permute(2, 0, 1) / 127.5 - 1
    assert (to_float(a["A"][0]) - expected).abs().mean() < 0.02  # AtoB input = left half = photo
    predict = PairedDataModule(root, direction="BtoA", **SMALL)
    predict.setup("predict")
    item = predict.get_dataset("predict")[0]
    full = Image.open(item["path"]).convert("RGB")
    right = torch.from_numpy(np.asarray(full.crop((256, 0, 512, 256))).copy())
    assert torch.equal(item["image"], right.permute(2, 0, 1))  # uint8, the unchanged right half


def test_sample_batch_is_fixed(data_root):
    dm = UnpairedDataModule(str(data_root / "horse2zebra"), **SMALL)
    first, second = dm.sample_batch(3), dm.sample_batch(3)
    assert torch.equal(first["A"], second["A"]) and torch.equal(first["B"], second["B"])
    assert first["A"].shape == (3, 3, 64, 64)
    assert [Path(p).name for p in first["A_paths"]] == sorted(p.name for p in (Path(dm.root) / "testA").iterdir())[:3]


def test_workers(data_root):
    dm = UnpairedDataModule(
        str(data_root / "horse2zebra"), batch_size=2, num_workers=2, max_dataset_size=8, load_size=72, crop_size=64
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    batches = list(loader)
    assert sum(len(b["A_paths"]) for b in batches) == 8
    _check_images(batches[0]["A"], (2, 3, 64, 64))


def test_val_falls_back_to_test_and_says_so(tmp_path, helpers, caplog):
    helpers.make_unpaired(tmp_path / "set", n_a=2, n_b=3, size=20)
    dm = UnpairedDataModule(str(tmp_path / "set"), load_size=20, crop_size=16, num_workers=0)
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
        dm.setup("validate")
    messages = [r.getMessage() for r in caplog.records if "validating on" in r.getMessage()]
    assert len(messages) == 1 and "testA/testB" in messages[0]
    helpers.make_unpaired(tmp_path / "set", n_a=1, n_b=1, size=20, splits=("val",))
    with_val = UnpairedDataModule(str(tmp_path / "set"), load_size=20, crop_size=16, num_workers=0)
    with_val.setup("validate")
    assert "/valA/" in with_val.sample_batch(1)["A_paths"][0]


def test_missing_root_error_says_what_to_do(tmp_path):
    dm = UnpairedDataModule(str(tmp_path / "horse2zebra"), num_workers=0)
    with pytest.raises(DataLayoutError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert str(tmp_path / "horse2zebra") in message
    assert "trainA" in message and "testB" in message
    assert "python -m cyclegan_pl download horse2zebra --root" in message and "download=True" in message


def test_missing_domain_folder_error(tmp_path, helpers):
    helpers.make_unpaired(tmp_path / "set", n_a=2, n_b=2, size=20)
    for file in (tmp_path / "set" / "trainB").iterdir():
        file.unlink()
    dm = UnpairedDataModule(str(tmp_path / "set"), num_workers=0)
    with pytest.raises(DataLayoutError, match="trainB.*no image files.*Expected layout"):
        dm.setup("fit")
    paired = PairedDataModule(str(tmp_path / "set"), num_workers=0)
    with pytest.raises(DataLayoutError, match="train.*does not exist.*side by side"):
        paired.setup("fit")


def test_download_needs_a_known_name(tmp_path):
    dm = UnpairedDataModule(str(tmp_path / "my_photos"), download=True, num_workers=0)
    with pytest.raises(ValueError, match="known dataset name"):
        dm.prepare_data()


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="input_nc=0: images have at least one channel"):
        UnpairedDataModule(str(tmp_path), input_nc=0)
    # Other band counts than gray and RGB are read natively, not as 8-bit photos.
    with pytest.raises(ValueError, match="image_mode=8bit reads photos as 1 or 3 channels; input_nc=2"):
        UnpairedDataModule(str(tmp_path), input_nc=2, image_mode="8bit")
    with pytest.raises(ValueError, match="normalization=range needs value_range"):
        UnpairedDataModule(str(tmp_path), normalization="range")
    with pytest.raises(ValueError, match="preprocess"):
        PairedDataModule(str(tmp_path), preprocess="zoom")


class _Recorder(pl.LightningModule):
    """Sees batches without training anything (a parameter so optimizers have something)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = {}
        self.predicted = []

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(zip(batch["A_paths"], batch["B_paths"], strict=True))
        return (self.weight * batch["A"].mean()).sum()

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def predict_step(self, batch, batch_idx):
        self.predicted.append((tuple(batch["image"].shape), list(batch["relpath"])))
        return batch["relpath"]


def test_fit_pairs_change_per_epoch_and_repeat_across_runs(tmp_path, helpers, make_trainer):
    helpers.make_unpaired(tmp_path / "set", n_a=4, n_b=12, size=16)

    def run(num_workers: int) -> dict:
        # A module of one's own takes float batches (ours normalise uint8 batches themselves).
        dm = UnpairedDataModule(
            str(tmp_path / "set"),
            batch_size=3,
            load_size=16,
            crop_size=16,
            num_workers=num_workers,
            seed=5,
            batch_dtype="float32",
        )
        model = _Recorder()
        make_trainer(max_epochs=2).fit(model, dm)
        return model.seen

    first, again = run(0), run(1)
    assert first == again  # same pairs with or without (persistent) workers
    assert len(first[0]) == 12 and sorted(first[0]) != sorted(first[1])


def test_predict_groups_sizes_in_a_trainer(tmp_path, make_trainer):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (h, w) in enumerate([(20, 28), (24, 24), (20, 28), (24, 24), (20, 28)]):
        Image.new("RGB", (w, h), (i * 40, 0, 0)).save(folder / f"{i}.png")
    dm = UnpairedDataModule(str(tmp_path / "unused"), predict_dir=str(folder), val_batch_size=2, num_workers=0)
    model = _Recorder()
    out = make_trainer().predict(model, datamodule=dm)
    assert sorted(name for batch in out for name in batch) == [f"{i}.png" for i in range(5)]
    assert [shape for shape, _ in model.predicted] == [(2, 3, 20, 28), (2, 3, 24, 24), (1, 3, 20, 28)]


@pytest.mark.parametrize("kind", ["unpaired", "paired"])
def test_uint8_batches_normalised_on_the_device_equal_float_batches(data_root, kind):
    if kind == "unpaired":
        make = lambda dtype: UnpairedDataModule(  # noqa: E731
            str(data_root / "horse2zebra"), batch_size=2, batch_dtype=dtype, seed=3, max_dataset_size=4, **SMALL
        )
    else:
        make = lambda dtype: PairedDataModule(  # noqa: E731
            str(data_root / "facades"), batch_size=2, batch_dtype=dtype, seed=3, max_dataset_size=4, **SMALL
        )
    batches = {}
    for dtype in ("uint8", "float32"):
        dm = make(dtype)
        dm.setup("fit")
        batches[dtype] = [next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))]
    for as_uint8, as_float in zip(batches["uint8"], batches["float32"], strict=True):
        for key in ("A", "B"):
            assert as_uint8[key].dtype == torch.uint8 and as_float[key].dtype == torch.float32
            torch.testing.assert_close(to_float(as_uint8[key]), as_float[key], rtol=0, atol=1e-6)
