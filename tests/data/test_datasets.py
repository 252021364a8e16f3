"""Dataset indexing, determinism and samplers on small generated folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, SequentialSampler

from cyclegan_pl.data import (
    EpochSampler,
    ImageFolderDataset,
    ImageTransform,
    PairedDataset,
    SizeGroupedBatchSampler,
    UnpairedDataset,
    item_generator,
)
from cyclegan_pl.errors import DataLayoutError

TRAIN = ImageTransform("resize_and_crop", 36, 32, flip=True, train=True)
EVAL = ImageTransform("resize_and_crop", 36, 32, train=False)


def _unpaired(root: Path, **kwargs) -> UnpairedDataset:
    return UnpairedDataset(root / "trainA", root / "trainB", TRAIN, **kwargs)


def _names(paths) -> list:
    return [Path(p).name for p in paths]


def test_epoch_length_is_the_larger_domain(tmp_path, helpers):
    helpers.make_unpaired(tmp_path, n_a=3, n_b=7, splits=("train",))
    dataset = _unpaired(tmp_path)
    assert len(dataset) == 7
    a_names = [Path(dataset[i]["A_paths"]).name for i in range(7)]
    assert a_names == [f"A_{i % 3:03d}.png" for i in range(7)]  # A in order, mod |A|


def test_serial_batches_take_b_in_order(tmp_path, helpers):
    helpers.make_unpaired(tmp_path, n_a=5, n_b=3, splits=("train",))
    dataset = _unpaired(tmp_path, serial=True)
    assert [Path(dataset[i]["B_paths"]).name for i in range(5)] == [f"B_{i % 3:03d}.png" for i in range(5)]


def test_max_dataset_size_caps_each_domain(tmp_path, helpers):
    helpers.make_unpaired(tmp_path, n_a=6, n_b=9, splits=("train",))
    dataset = _unpaired(tmp_path, max_size=4)
    assert len(dataset.files_a) == 4 and len(dataset.files_b) == 4 and len(dataset) == 4
    assert _names(dataset.files_b) == [f"B_{i:03d}.png" for i in range(4)]


def test_b_sampling_depends_only_on_seed_epoch_index(tmp_path, helpers):
    helpers.make_unpaired(tmp_path, n_a=4, n_b=50, splits=("train",))
    first, second = _unpaired(tmp_path, seed=7), _unpaired(tmp_path, seed=7)
    order = [(0, 3), (2, 1), (1, 0), (0, 3)]  # access order must not matter
    picks = [first[key]["B_paths"] for key in order]
    assert picks[0] == picks[3]
    assert [second[key]["B_paths"] for key in reversed(order)] == list(reversed(picks))
    for key in order:
        a, b = first[key], second[key]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])  # jitter too
    epoch0 = [first[(0, i)]["B_paths"] for i in range(50)]
    epoch1 = [first[(1, i)]["B_paths"] for i in range(50)]
    other_seed = [_unpaired(tmp_path, seed=8)[(0, i)]["B_paths"] for i in range(50)]
    assert epoch0 != epoch1 and epoch0 != other_seed
    assert len(set(epoch0)) > 20  # spread over B, not stuck
    # set_epoch drives plain integer indexing
    first.set_epoch(1)
    assert [first[i]["B_paths"] for i in range(50)] == epoch1
    assert [first.files_b[first.b_index(i, epoch=1)] for i in range(5)] == [Path(p) for p in epoch1[:5]]


def test_item_generator_is_a_pure_function():
    draw = lambda *key: torch.rand(3, generator=item_generator(*key))  # noqa: E731
    assert torch.equal(draw(0, 1, 2), draw(0, 1, 2))
    assert not torch.equal(draw(0, 1, 2), draw(0, 2, 1))
    assert not torch.equal(draw(0, 1, 2), draw(1, 1, 2))


def test_epoch_sampler_order_and_epoch_in_keys():
    sampler = EpochSampler(10, shuffle=True, seed=3)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(10)) and {e for e, _ in first} == {0}
    sampler.set_epoch(4)
    fourth = list(sampler)
    assert {e for e, _ in fourth} == {4} and [i for _, i in fourth] != [i for _, i in first]
    again = EpochSampler(10, shuffle=True, seed=3)
    again.set_epoch(4)
    assert list(again) == fourth
    assert [i for _, i in EpochSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]


def test_workers_see_the_epoch_through_the_sampler(tmp_path, helpers):
    """Persistent workers keep their dataset copy; the epoch must still reach them."""
    helpers.make_unpaired(tmp_path, n_a=2, n_b=30, size=20, splits=("train",))
    dataset = _unpaired(tmp_path)
    sampler = EpochSampler(len(dataset), shuffle=False)
    loader = DataLoader(dataset, batch_size=30, sampler=sampler, num_workers=1, persistent_workers=True)
    seen = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        seen.append(next(iter(loader))["B_paths"])
    assert seen[0] == [dataset[(0, i)]["B_paths"] for i in range(30)]
    assert seen[1] == [dataset[(1, i)]["B_paths"] for i in range(30)]
    assert seen[0] != seen[1]


def test_paired_separate_folders_and_direction(tmp_path, helpers):
    for side, seed in (("A", 1), ("B", 2)):
        for name in ("x", "sub/y"):
            helpers.save_rgb(tmp_path / "train" / side / f"{name}.png", 40, 40, seed=seed)
    helpers.save_rgb(tmp_path / "train" / "B" / "x_extra.png", 40, 40)  # unmatched B files are ignored
    forward = PairedDataset(tmp_path / "train", EVAL)
    backward = PairedDataset(tmp_path / "train", EVAL, direction="BtoA")
    assert forward.separate and len(forward) == 2
    item, swapped = forward[0], backward[0]
    assert "/A/" in item["A_paths"] and "/B/" in item["B_paths"]
    assert torch.equal(item["A"], swapped["B"]) and torch.equal(item["B"], swapped["A"])
    assert swapped["A_paths"] == item["B_paths"]


def test_paired_separate_folders_unmatched_a_is_an_error(tmp_path, helpers):
    helpers.save_rgb(tmp_path / "train" / "A" / "x.png", 20, 20)
    helpers.save_rgb(tmp_path / "train" / "B" / "y.png", 20, 20)
    with pytest.raises(DataLayoutError, match="x.png"):
        PairedDataset(tmp_path / "train", EVAL)


def test_paired_grayscale_input(tmp_path, helpers):
    helpers.make_paired(tmp_path, count=2, size=40, splits=("train",))
    item = PairedDataset(tmp_path / "train", TRAIN, input_nc=1, output_nc=3)[0]
    assert item["A"].shape == (1, 32, 32) and item["B"].shape == (3, 32, 32)


def test_missing_and_empty_folders_name_the_folder(tmp_path):
    with pytest.raises(DataLayoutError, match="nowhere"):
        UnpairedDataset(tmp_path / "nowhere", tmp_path / "nowhere_B", TRAIN)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(DataLayoutError, match="empty.*no image files"):
        PairedDataset(tmp_path / "empty", TRAIN)


def _write_sized(folder: Path, sizes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        sub = folder / ("deep" if i % 2 else "") / f"{i:02d}.png"
        sub.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (i * 10, 0, 0)).save(sub)


def test_image_folder_dataset_keeps_own_size_and_relpath(tmp_path):
    _write_sized(tmp_path / "in", [(20, 30), (21, 33), (20, 30)])
    dataset = ImageFolderDataset(tmp_path / "in", channels=1)
    assert len(dataset) == 3
    relpaths = sorted(dataset[i]["relpath"] for i in range(3))
    assert relpaths == ["00.png", "02.png", "deep/01.png"]
    shapes = {dataset[i]["relpath"]: tuple(dataset[i]["image"].shape) for i in range(3)}
    assert shapes["deep/01.png"] == (1, 21, 33)
    single = ImageFolderDataset(tmp_path / "in" / "00.png")
    assert len(single) == 1 and single[0]["relpath"] == "00.png" and single[0]["image"].shape == (3, 20, 30)


def test_size_grouped_batches(tmp_path):
    sizes = [(20, 30), (24, 24), (20, 30), (20, 30), (24, 24), (16, 16), (20, 30)]
    _write_sized(tmp_path / "in", sizes)
    dataset = ImageFolderDataset(tmp_path / "in")
    batch_sampler = SizeGroupedBatchSampler(SequentialSampler(dataset), 2, sizes=dataset.sizes())
    batches = list(batch_sampler)
    assert len(batches) == len(batch_sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(dataset)))
    for batch in batches:
        assert len({dataset.sizes()[i] for i in batch}) == 1
    assert batches == list(batch_sampler)  # deterministic
    ones = list(SizeGroupedBatchSampler(SequentialSampler(dataset), 1, sizes=dataset.sizes()))
    assert ones == [[i] for i in range(len(dataset))]  # batch size 1 keeps file order
    loader = DataLoader(dataset, batch_sampler=batch_sampler)
    assert sum(len(b["path"]) for b in loader) == len(dataset)


def test_image_folder_halves(tmp_path, helpers):
    helpers.make_paired(tmp_path, count=1, size=40, splits=("test",))
    left = ImageFolderDataset(tmp_path / "test", half="left")
    right = ImageFolderDataset(tmp_path / "test", half="right")
    assert left.sizes() == [(40, 40)] and left[0]["image"].shape == (3, 40, 40)
    assert (left[0]["image"][1] == -1).all() and (right[0]["image"][0] == -1).all()


def test_epoch_sampler_under_lightnings_distributed_wrapper():
    """Under DDP Lightning wraps the sampler; set_epoch must still reach it, ranks must not overlap."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    shards = []
    for rank in range(2):
        wrapper = DistributedSamplerWrapper(EpochSampler(10, shuffle=True, seed=1), num_replicas=2, rank=rank)
        wrapper.set_epoch(3)
        shards.append(list(wrapper))
    assert all(epoch == 3 for shard in shards for epoch, _ in shard)
    assert sorted(i for shard in shards for _, i in shard) == list(range(10))
