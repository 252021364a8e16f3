"""The unpaired data options of the CUT-family recipes (DCLGAN, UNSB): no random crop in the decay
half (``resize_to_crop_from_epoch``) and a second, independent A image per item (``second_a``)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_pl import UnpairedDataModule
from cyclegan_pl.data.transforms import ImageTransform, apply_geometry
from cyclegan_pl.errors import OptionError
from cyclegan_pl.seeding import hash_seed


def module(root, **options) -> UnpairedDataModule:
    return UnpairedDataModule(str(root), load_size=48, crop_size=32, num_workers=0, seed=3, **options)


def read(path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()


def test_resize_to_crop_from_epoch_stops_cropping_from_that_epoch(tmp_path, helpers):
    helpers.make_unpaired(tmp_path / "set", n_a=3, n_b=3, size=40)
    dataset = module(tmp_path / "set", resize_to_crop_from_epoch=2, flip=False).get_dataset("train")
    whole = ImageTransform("resize_and_crop", 32, 32, flip=False, train=False, dtype="uint8")
    for epoch in range(4):
        item = dataset[(epoch, 0)]
        resized = whole(read(item["A_paths"]))
        # Before epoch 2: a random 32 px crop of the image at 48 px; from epoch 2: the whole image at 32 px.
        assert torch.equal(item["A"], resized) == (epoch >= 2), epoch
        assert item["A"].shape == (3, 32, 32)


def test_resize_to_crop_keeps_the_flips_and_off_by_default(tmp_path, helpers):
    helpers.make_unpaired(tmp_path / "set", n_a=8, n_b=8, size=40)
    late = module(tmp_path / "set", resize_to_crop_from_epoch=0).get_dataset("train")
    whole = ImageTransform("resize_and_crop", 32, 32, flip=False, train=False, dtype="uint8")
    flipped = 0
    for index in range(8):
        item = late[(0, index)]
        resized = whole(read(item["A_paths"]))
        assert torch.equal(item["A"], resized) or torch.equal(item["A"], resized.flip(-1))
        flipped += not torch.equal(item["A"], resized)
    assert 0 < flipped < 8
    plain = module(tmp_path / "set").get_dataset("train")
    assert plain.transform_from_epoch is None and not plain.second_a
    assert "A2" not in plain[(5, 0)]
    # Evaluation never switches.
    assert module(tmp_path / "set", resize_to_crop_from_epoch=0).get_dataset("val").transform_from_epoch is None


def test_second_a_is_an_independent_shuffle_of_domain_a(tmp_path, helpers):
    helpers.make_unpaired(tmp_path / "set", n_a=5, n_b=8, size=40)
    dataset = module(tmp_path / "set", second_a=True).get_dataset("train")
    for epoch in (0, 1):
        items = [dataset[(epoch, index)] for index in range(len(dataset))]
        second = [item["A2_paths"] for item in items]
        # An epoch of 8 items visits the 5 A images as a second shuffled loader would: a
        # permutation of the 8 items, each mod 5 (three images twice, two once).
        assert sorted(Counter(second).values()) == [1, 1, 2, 2, 2]
        assert second != [item["A_paths"] for item in items]
        for item in items:
            assert item["A2"].shape == item["A"].shape == (3, 32, 32) and item["A2"].dtype == torch.uint8
    assert [dataset[(0, i)]["A2_paths"] for i in range(8)] != [dataset[(1, i)]["A2_paths"] for i in range(8)]
    # The same (seed, epoch, index) gives the same A2 in any process; A and B are unchanged by it.
    again = module(tmp_path / "set", second_a=True).get_dataset("train")
    plain = module(tmp_path / "set").get_dataset("train")
    for index in range(8):
        ours, theirs, without = dataset[(1, index)], again[(1, index)], plain[(1, index)]
        assert torch.equal(ours["A2"], theirs["A2"]) and ours["A2_paths"] == theirs["A2_paths"]
        assert torch.equal(ours["A"], without["A"]) and torch.equal(ours["B"], without["B"])


def test_second_a_keeps_random_crops_in_the_decay_half(tmp_path, helpers):
    helpers.make_unpaired(tmp_path / "set", n_a=4, n_b=4, size=40)
    dataset = module(tmp_path / "set", second_a=True, resize_to_crop_from_epoch=0, flip=False).get_dataset("train")
    item = dataset[(0, 1)]
    # A2's crop is drawn from its own stream: the training transform at load_size 48.
    jitter = torch.Generator().manual_seed(hash_seed(3, 0, 1, 2))
    expected = ImageTransform("resize_and_crop", 48, 32, flip=False, train=True, dtype="uint8")
    geometry = expected.sample(40, 40, jitter)
    assert geometry.crop is not None
    assert torch.equal(item["A2"], apply_geometry(read(item["A2_paths"]), geometry))


def test_second_a_in_order_with_serial_batches(tmp_path, helpers):
    helpers.make_unpaired(tmp_path / "set", n_a=3, n_b=5, size=40)
    dataset = module(tmp_path / "set", second_a=True, serial_batches=True).get_dataset("train")
    assert [dataset.second_a_index(i, 0) for i in range(5)] == [0, 1, 2, 0, 1]


def test_batches_carry_a2_through_a_loader(tmp_path, helpers):
    helpers.make_unpaired(tmp_path / "set", n_a=4, n_b=4, size=40)
    dm = module(tmp_path / "set", second_a=True, batch_size=2)
    dm.setup("fit")

    class Holder:
        current_epoch = 0

    dm.trainer = Holder()
    batch = next(iter(dm.train_dataloader()))
    assert batch["A2"].shape == (2, 3, 32, 32) and len(batch["A2_paths"]) == 2


def test_bad_resize_epoch_is_refused(tmp_path):
    with pytest.raises(OptionError, match="resize_to_crop_from_epoch=-1"):
        UnpairedDataModule(str(tmp_path), resize_to_crop_from_epoch=-1)
