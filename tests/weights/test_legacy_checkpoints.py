"""Files written by cyclegan_pl 0.2.0 (tests/fixtures/legacy_0_2_0, made by its make.py) still load,
into the same method, with the same weights and the same translations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegan_pl import CUT, CycleGAN, Pix2Pix, load_checkpoint

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_0_2_0"

CASES = [
    ("cyclegan_cli.ckpt", CycleGAN, ("AtoB", "BtoA")),  # written by the CLI: carries _class_path
    ("pix2pix_trainer.ckpt", Pix2Pix, ("AtoB",)),  # Trainer.save_checkpoint from Python: no class path
    ("cut_trainer.ckpt", CUT, ("AtoB",)),
    ("cut_pretrained", CUT, ("AtoB",)),  # a save_pretrained folder
]


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(LEGACY / "expected.pt", weights_only=True)


@pytest.mark.parametrize(("name", "method", "directions"), CASES, ids=[case[0] for case in CASES])
def test_legacy_file_loads_into_its_method_and_translates_as_before(name, method, directions, expected):
    module = load_checkpoint(LEGACY / name)
    assert type(module) is method
    assert module.trained_directions == directions
    module.eval_mode = True
    for direction in directions:
        output = module.translate(expected["input"], direction)
        torch.testing.assert_close(output, expected[f"{name}/{direction}"], rtol=0, atol=1e-6)


def test_legacy_cli_checkpoint_resumes_its_image_pools_and_counters():
    checkpoint = torch.load(LEGACY / "cyclegan_cli.ckpt", weights_only=True)
    module = load_checkpoint(LEGACY / "cyclegan_cli.ckpt")
    # The package's own entries are read back (the seed of the random streams, the iteration count).
    assert module.stream_seed == checkpoint["cyclegan_pl"]["stream_seed"]
    assert module.card_info["dataset"] == "demo"
    assert len(checkpoint["callbacks"]["ImagePoolCallback"]["pools"]["a"]["images"]) == 2


def test_a_0_2_0_run_resumes_with_its_image_pools(tmp_path, cli_in_process):
    """`fit --ckpt_path` on a checkpoint of 0.2.0 continues the run, the pools' images included."""
    legacy = torch.load(LEGACY / "cyclegan_cli.ckpt", weights_only=True)
    root = tmp_path / "run"
    cli_in_process(
        "fit",
        "--config",
        str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"),
        "--ckpt_path",
        str(LEGACY / "cyclegan_cli.ckpt"),
        f"--data.init_args.root={tmp_path / 'data'}",
        "--data.init_args.load_size=16",
        "--data.init_args.crop_size=16",
        "--data.init_args.max_dataset_size=2",
        "--data.init_args.max_val_size=1",
        "--trainer.max_epochs=2",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={root}",
        cwd=tmp_path,
    )
    resumed = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["cyclegan_pl"]["class_path"] == "cyclegan_pl.CycleGAN"
    pools = resumed["callbacks"]["ImagePoolCallback"]["pools"]
    for old, new in (("a", "fake_A"), ("b", "fake_B")):
        kept = legacy["callbacks"]["ImagePoolCallback"]["pools"][old]["images"]
        assert len(pools[new]["images"]) > len(kept)  # the old images, then new fakes
        for before, after in zip(kept, pools[new]["images"], strict=False):
            assert torch.equal(before, after)
