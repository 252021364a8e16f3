from __future__ import annotations

import warnings
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from cyclegan_pl.callbacks import ImagePool, ImagePoolCallback


def constant_images(values) -> torch.Tensor:
    """One 1x2x2 image per value, filled with that value (identifies the image)."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def ids(images: torch.Tensor) -> list:
    return [int(v) for v in images[:, 0, 0, 0].tolist()]


def run_singles(pool: ImagePool, start: int, count: int) -> list:
    return [ids(pool(constant_images([start + i])))[0] for i in range(count)]


def test_fills_then_swaps_half_of_the_time():
    pool = ImagePool(50, torch.Generator().manual_seed(0))
    # While filling, each image is stored and returned as is.
    assert ids(pool(constant_images(range(50)))) == list(range(50))
    assert len(pool) == 50
    outputs = run_singles(pool, 1000, 2000)
    from_history = sum(out != 1000 + i for i, out in enumerate(outputs))
    assert from_history == 1003  # exact for seed 0 (torch's CPU generator is stable)
    assert 900 < from_history < 1100
    # After filling, every image goes either straight out or into the pool, and each stored
    # image leaves the pool at most once: outputs + final pool = first 50 + new images.
    pool_ids = ids(torch.stack(pool.images))
    assert Counter(outputs) + Counter(pool_ids) == Counter(range(50)) + Counter(range(1000, 3000))
    assert len(pool) == 50


def test_returned_history_images_are_replaced_by_the_new_one():
    pool = ImagePool(3, torch.Generator().manual_seed(1))
    pool(constant_images([0, 1, 2]))
    for step in range(100, 140):
        before = ids(torch.stack(pool.images))
        out = ids(pool(constant_images([step])))[0]
        after = ids(torch.stack(pool.images))
        if out == step:
            assert after == before
        else:
            slot = before.index(out)
            assert after[slot] == step and after[:slot] + after[slot + 1 :] == before[:slot] + before[slot + 1 :]


def test_batch_keeps_device_dtype_and_shape():
    pool = ImagePool(2, torch.Generator().manual_seed(0))
    pool(torch.zeros(2, 3, 4, 4))
    out = pool(torch.ones(5, 3, 4, 4, dtype=torch.float64))
    assert out.shape == (5, 3, 4, 4) and out.dtype == torch.float64


def test_size_zero_is_pass_through():
    pool = ImagePool(0)
    images = torch.randn(4, 3, 8, 8)
    assert pool(images) is images
    assert len(pool) == 0


def test_pool_state_round_trip_repeats_the_sequence():
    pool = ImagePool(10, torch.Generator().manual_seed(5))
    run_singles(pool, 0, 25)
    state = pool.state_dict()
    assert all(image.device.type == "cpu" for image in state["images"])
    expected = run_singles(pool, 100, 200)

    restored = ImagePool(10, torch.Generator().manual_seed(999))
    restored.load_state_dict(state)
    assert run_singles(restored, 100, 200) == expected


class FakeCycleGAN:
    """What the callback asks of a module: the pools it declares, and where to attach them."""

    image_pools = ("fake_A", "fake_B")

    def __init__(self) -> None:
        self.attached_pools = {}

    def attach_image_pools(self, pools) -> None:
        self.attached_pools = dict(pools)

    def detach_image_pools(self) -> None:
        self.attached_pools = {}


def fake_module():
    return FakeCycleGAN()


def fake_trainer(rank: int = 0):
    return SimpleNamespace(global_rank=rank)


@pytest.mark.parametrize("load_before_setup", [True, False])
def test_callback_state_round_trip(load_before_setup):
    buffer = ImagePoolCallback(pool_size=8, seed=3)
    module = fake_module()
    buffer.setup(fake_trainer(), module, "fit")
    assert module.attached_pools == buffer.pools and list(buffer.pools) == ["fake_A", "fake_B"]
    run_singles(module.attached_pools["fake_A"], 0, 12)
    run_singles(module.attached_pools["fake_B"], 50, 5)
    state = buffer.state_dict()
    expected_a = run_singles(module.attached_pools["fake_A"], 100, 60)
    expected_b = run_singles(module.attached_pools["fake_B"], 200, 60)

    resumed = ImagePoolCallback(pool_size=8, seed=3)
    new_module = fake_module()
    if load_before_setup:
        resumed.load_state_dict(state)
        resumed.setup(fake_trainer(), new_module, "fit")
    else:
        resumed.setup(fake_trainer(), new_module, "fit")
        resumed.load_state_dict(state)
    assert len(new_module.attached_pools["fake_B"]) == 5
    assert run_singles(new_module.attached_pools["fake_A"], 100, 60) == expected_a
    assert run_singles(new_module.attached_pools["fake_B"], 200, 60) == expected_b


def test_pools_of_a_0_2_0_checkpoint_come_back_under_the_declared_names():
    # 0.2.0 saved the pools as "a" and "b", in the order CycleGAN declares fake_A and fake_B.
    old = ImagePoolCallback(pool_size=8, seed=3)
    module = fake_module()
    old.setup(fake_trainer(), module, "fit")
    run_singles(module.attached_pools["fake_A"], 0, 12)
    run_singles(module.attached_pools["fake_B"], 50, 5)
    state = old.state_dict()
    state["pools"] = {"a": state["pools"]["fake_A"], "b": state["pools"]["fake_B"]}
    expected_a = run_singles(module.attached_pools["fake_A"], 100, 60)

    resumed = ImagePoolCallback(pool_size=8, seed=3)
    new_module = fake_module()
    resumed.setup(fake_trainer(), new_module, "fit")
    resumed.load_state_dict(state)
    assert len(new_module.attached_pools["fake_A"]) == 8 and len(new_module.attached_pools["fake_B"]) == 5
    assert run_singles(new_module.attached_pools["fake_A"], 100, 60) == expected_a


def test_ranks_and_directions_draw_different_streams():
    buffers = [ImagePoolCallback(pool_size=4, seed=0) for _ in range(2)]
    modules = [fake_module(), fake_module()]
    for rank, (buffer, module) in enumerate(zip(buffers, modules, strict=True)):
        buffer.setup(fake_trainer(rank), module, "fit")
    draws = []
    for module in modules:
        for pool in module.attached_pools.values():
            pool(constant_images(range(4)))
            draws.append(run_singles(pool, 10, 64))
    assert len({tuple(d) for d in draws}) == 4


def test_pix2pix_gets_no_buffer_and_one_warning(pix2pix):
    buffer = ImagePoolCallback()
    module = pix2pix()
    with pytest.warns(UserWarning, match="no effect on Pix2Pix: it draws no fakes from image pools") as record:
        buffer.setup(fake_trainer(), module, "fit")
        buffer.setup(fake_trainer(), module, "fit")
    assert len([w for w in record if "draws no fakes from image pools" in str(w.message)]) == 1
    assert buffer.pools == {} and module.attached_pools == {}


def test_cyclegan_without_the_pool_callback_says_so_once(tmp_path, cyclegan, tiny_data, trainer_for):
    model = cyclegan()
    trainer = trainer_for(tmp_path, [], max_epochs=2, limit_val_batches=0)
    with pytest.warns(UserWarning, match="CycleGAN trains without its image pools") as record:
        trainer.fit(model, datamodule=tiny_data(train_len=2, batch_size=1))
    assert len([w for w in record if "trains without its image pools" in str(w.message)]) == 1
    # Training without pools on purpose: pool_size 0 attaches pass-through pools, and nothing is said.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message="(?!.*image pools)")
        trainer_for(tmp_path, [ImagePoolCallback(pool_size=0)], max_epochs=1, limit_val_batches=0).fit(
            cyclegan(), datamodule=tiny_data(train_len=2, batch_size=1)
        )


def test_buffer_contents_come_back_from_a_checkpoint(tmp_path, cyclegan, tiny_data, trainer_for, probe):
    model = cyclegan()
    buffer = ImagePoolCallback(pool_size=3, seed=7)
    trainer = trainer_for(tmp_path, [buffer], max_epochs=1, limit_val_batches=0)
    trainer.fit(model, datamodule=tiny_data(train_len=4, batch_size=2))
    assert len(buffer.pools["fake_A"]) == 3  # 2 steps x 2 fakes filled it
    saved = {name: [image.clone() for image in pool.images] for name, pool in buffer.pools.items()}
    saved_generator = buffer.pools["fake_A"].generator.get_state()
    ckpt = tmp_path / "one_epoch.ckpt"
    trainer.save_checkpoint(ckpt)

    resumed_buffer = ImagePoolCallback(pool_size=3, seed=7)
    seen = probe(
        "on_train_start",
        lambda trainer, module: (
            {name: [image.clone() for image in pool.images] for name, pool in resumed_buffer.pools.items()},
            resumed_buffer.pools["fake_A"].generator.get_state(),
            module.attached_pools["fake_A"] is resumed_buffer.pools["fake_A"],
        ),
    )
    trainer = trainer_for(tmp_path, [resumed_buffer, seen], max_epochs=2, limit_val_batches=0)
    trainer.fit(cyclegan(), datamodule=tiny_data(train_len=4, batch_size=2), ckpt_path=ckpt)
    contents, generator_state, attached = seen.records[0]
    assert attached
    assert torch.equal(generator_state, saved_generator)
    for name in ("fake_A", "fake_B"):
        assert len(contents[name]) == 3
        for restored, original in zip(contents[name], saved[name], strict=True):
            assert torch.equal(restored, original)
