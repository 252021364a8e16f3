"""DCLGAN and UNSB from the command line: the shipped configs at tiny sizes, then test (results
pages), translate and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
STAND_IN = "cyclegan_pl.metrics.StandInFeatures"


def fit_tiny(name: str, data_root: Path, tmp_path_factory, run_cli, tiny_fit_options) -> Path:
    """configs/<name>.yaml fitted for 2 tiny epochs in a fresh process and folder (wandb offline)."""
    cwd = tmp_path_factory.mktemp(name)
    tiny = [*tiny_fit_options, "--model.init_args.num_patches=32"]
    run_cli("fit", "--config", str(CONFIGS / f"{name}.yaml"), f"--data.init_args.root={data_root / 'horse2zebra'}",
            *tiny, cwd=cwd)  # fmt: skip
    return cwd / "runs" / name


@pytest.fixture(scope="module")
def dclgan_run(data_root, tmp_path_factory, run_cli, tiny_fit_options) -> Path:
    return fit_tiny("h2z_dclgan", data_root, tmp_path_factory, run_cli, tiny_fit_options)


@pytest.fixture(scope="module")
def unsb_run(data_root, tmp_path_factory, run_cli, tiny_fit_options) -> Path:
    return fit_tiny("h2z_unsb", data_root, tmp_path_factory, run_cli, tiny_fit_options)


def photos(folder: Path) -> Path:
    folder.mkdir()
    Image.new("RGB", (45, 30), (200, 120, 40)).save(folder / "wide.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(folder / "noise.png")
    return folder


def translate(cli_in_process, ckpt: Path, source: Path, out: Path, *extra: str, check: bool = True):
    return cli_in_process("translate", "--ckpt_path", str(ckpt), "--input", str(source), "--output", str(out), *extra,
                          cwd=out.parent, check=check)  # fmt: skip


def checkpoint_of(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def test_h2z_dclgan_config_fits_tests_and_translates_both_ways(dclgan_run, data_root, tmp_path, cli_in_process):
    checkpoint = checkpoint_of(dclgan_run)
    assert checkpoint["epoch"] == 2 and checkpoint["hyper_parameters"]["_class_path"] == "cyclegan_pl.DCLGAN"
    assert len(checkpoint["optimizer_states"]) == 3
    # The heads' Adam runs at its own rate under the schedule (1e-3 during the constant half).
    assert checkpoint["optimizer_states"][2]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert any(key.startswith("projection_ba.mlp_3.") for key in checkpoint["state_dict"])
    assert [g.name for g in sorted((dclgan_run / "samples").glob("epoch_*.png"))] == ["epoch_0002.png"]

    ckpt = dclgan_run / "checkpoints" / "last.ckpt"
    source = photos(tmp_path / "photos")
    for direction in ("AtoB", "BtoA"):
        out = tmp_path / direction
        translate(cli_in_process, ckpt, source, out, "--direction", direction)
        assert {p.name: Image.open(p).size for p in out.rglob("*.png")} == {"wide.png": (45, 30), "noise.png": (36, 36)}
    # One deterministic pass: a sampling seed is refused, not silently ignored.
    refused = translate(cli_in_process, ckpt, source, tmp_path / "seeded", "--seed=7", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "seed=7: DCLGAN translates in one deterministic pass" in refused.stderr

    cli_in_process("test", "--config", str(CONFIGS / "h2z_dclgan.yaml"), "--ckpt_path", str(ckpt),
                   f"--data.init_args.root={data_root / 'horse2zebra'}", "--data.init_args.max_dataset_size=2",
                   "--data.init_args.crop_size=32", "--data.init_args.num_workers=0", "--model.init_args.ngf=8",
                   "--model.init_args.ndf=8", "--trainer.logger=false", cwd=tmp_path)  # fmt: skip
    (page,) = (tmp_path / "runs" / "h2z_dclgan" / "results").glob("*/index.html")
    for visual in ("fake_B", "fake_A", "side_by_side"):
        assert len(list((page.parent / visual).iterdir())) == 2, visual


def test_h2z_unsb_config_fits_and_translates_reproducibly(unsb_run, tmp_path, cli_in_process):
    checkpoint = checkpoint_of(unsb_run)
    assert checkpoint["epoch"] == 2 and checkpoint["hyper_parameters"]["_class_path"] == "cyclegan_pl.UNSB"
    assert len(checkpoint["optimizer_states"]) == 4
    assert {key.split(".", 1)[0] for key in checkpoint["state_dict"]} == {"gen", "disc", "energy", "projection"}
    assert [g.name for g in sorted((unsb_run / "samples").glob("epoch_*.png"))] == ["epoch_0002.png"]

    ckpt = unsb_run / "checkpoints" / "last.ckpt"
    source = photos(tmp_path / "photos")
    first, again = tmp_path / "first", tmp_path / "again"
    translate(cli_in_process, ckpt, source, first)
    translate(cli_in_process, ckpt, source, again)
    for name in ("wide.png", "noise.png"):
        # The same latents and noise from the sampling seed: the same images.
        assert np.array_equal(np.asarray(Image.open(first / name)), np.asarray(Image.open(again / name))), name
    assert Image.open(first / "wide.png").size == (45, 30)

    result = translate(cli_in_process, ckpt, source, tmp_path / "back", "--direction", "BtoA", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "UNSB translates AtoB only" in result.stderr


def test_h2z_unsb_predict_takes_the_seed_and_the_steps(unsb_run, data_root, tmp_path, cli_in_process):
    ckpt = unsb_run / "checkpoints" / "last.ckpt"
    source = photos(tmp_path / "photos")
    # Float files: the tiny model's outputs differ by less than 8-bit steps.
    translate(cli_in_process, ckpt, source, tmp_path / "translated", "--depth=float32", "--extension=npy")

    def predict(name: str, *options: str) -> Path:
        cli_in_process("predict", "--config", str(CONFIGS / "h2z_unsb.yaml"), "--ckpt_path", str(ckpt),
                       "--model.init_args.ngf=8", "--model.init_args.ndf=8", f"--data.init_args.predict_dir={source}",
                       f"--data.init_args.root={data_root / 'horse2zebra'}", "--data.init_args.download=false",
                       "--data.init_args.num_workers=0", "--trainer.logger=false",
                       "--trainer.callbacks+=cyclegan_pl.ImageWriter",
                       f"--trainer.callbacks.output_dir={tmp_path / name}", "--trainer.callbacks.depth=float32",
                       "--trainer.callbacks.extension=npy", "--return_predictions=false", *options,
                       cwd=tmp_path)  # fmt: skip
        return tmp_path / name

    def image(folder: Path) -> np.ndarray:
        return np.load(folder / "noise.npy")

    sampling = ["--trainer.callbacks+=cyclegan_pl.UNSBSampling"]
    default, again = predict("default"), predict("again", *sampling, "--trainer.callbacks.seed=0")
    other_seed = predict("seed7", *sampling, "--trainer.callbacks.seed=7")
    two_steps = predict("steps2", *sampling, "--trainer.callbacks.steps=2")
    # The checkpoint's seed and steps give what translate gives; another seed or step count another image.
    assert np.array_equal(image(default), image(tmp_path / "translated"))
    assert np.array_equal(image(again), image(default))
    assert not np.array_equal(image(other_seed), image(default))
    assert not np.array_equal(image(two_steps), image(default))
    # translate takes the same choices: --seed 7 and --steps 2 give what predict gave with them.
    translate(cli_in_process, ckpt, source, tmp_path / "t7", "--seed=7", "--depth=float32", "--extension=npy")
    translate(cli_in_process, ckpt, source, tmp_path / "t2", "--steps=2", "--depth=float32", "--extension=npy")
    assert np.array_equal(image(tmp_path / "t7"), image(other_seed))
    assert np.array_equal(image(tmp_path / "t2"), image(two_steps))
    refused = translate(cli_in_process, ckpt, source, tmp_path / "t9", "--steps=9", check=False)
    assert refused.returncode != 0 and "inference_steps=9" in refused.stderr and "Traceback" not in refused.stderr


def test_h2z_unsb_test_and_evaluate(unsb_run, data_root, tmp_path, cli_in_process):
    ckpt = unsb_run / "checkpoints" / "last.ckpt"
    cli_in_process("test", "--config", str(CONFIGS / "h2z_unsb.yaml"), "--ckpt_path", str(ckpt),
                   f"--data.init_args.root={data_root / 'horse2zebra'}", "--data.init_args.max_dataset_size=2",
                   "--data.init_args.crop_size=32", "--data.init_args.num_workers=0", "--model.init_args.ngf=8",
                   "--model.init_args.ndf=8", "--trainer.logger=false", cwd=tmp_path)  # fmt: skip
    (page,) = (tmp_path / "runs" / "h2z_unsb" / "results").glob("*/index.html")
    assert len(list((page.parent / "fake_B").iterdir())) == 2 and not (page.parent / "fake_A").exists()

    output = tmp_path / "eval"
    cli_in_process("evaluate", "--config", str(CONFIGS / "h2z_unsb.yaml"), "--ckpt_path", str(ckpt),
                   "--data_root", str(data_root / "horse2zebra"), "--limit", "2", "--size", "32", "--output",
                   str(output), "--feature_extractor", STAND_IN, "--device", "cpu", cwd=tmp_path)  # fmt: skip
    results = json.loads((output / "metrics.json").read_text())
    assert set(results) == {"a2b"} and results["a2b"]["fake_count"] == 2


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "h2z_dclgan",
            dict(gan_mode="hinge_margin", lambda_nce=2.0, lambda_idt=1.0, nce_layers=[4, 8, 12, 16],
                 projection_lr=0.001, projection_beta1=0.9, init_type="xavier", antialias=True),
        ),
        (
            "h2z_unsb",
            dict(gan_mode="lsgan", lambda_sb=1.0, lambda_nce=1.0, nce_idt=True, nce_layers=[0, 4, 8, 12, 16],
                 num_timesteps=5, tau=0.01, time_conditional_blocks=False, init_type="xavier",
                 generator="resnet_9blocks_cond", discriminator="basic_cond"),
        ),
    ],
)  # fmt: skip
def test_configs_hold_the_authors_recipes(name, expected, tmp_path, cli_in_process):
    printed = cli_in_process("fit", "--config", str(CONFIGS / f"{name}.yaml"), "--print_config", cwd=tmp_path)
    config = yaml.safe_load(printed.stdout)
    model = config["model"]["init_args"]
    for option, value in expected.items():
        assert model[option] == value, option
    assert (model["lr"], model["beta1"], model["beta2"], model["num_patches"]) == (0.0002, 0.5, 0.999, 256)
    (decay,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("LinearDecay")]
    epochs = (decay["init_args"]["n_epochs"], decay["init_args"]["n_epochs_decay"])
    assert epochs == (200, 200) and config["trainer"]["max_epochs"] == 400
    assert not [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ImagePoolCallback")]
    (best,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("BestCheckpoint")]
    assert best["init_args"]["monitor"] == "fid/a2b"
    data = config["data"]["init_args"]
    assert (data["batch_size"], data["load_size"], data["crop_size"], data["flip"]) == (1, 286, 256, True)
    # The authors' data code stops cropping in the decay half; UNSB's second loader is second_a.
    assert data["resize_to_crop_from_epoch"] == 200
    assert data["second_a"] is (name == "h2z_unsb")
