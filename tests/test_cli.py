"""The command line as a user types it: shipped configs, errors, translate, download, help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# Tiny sizes for the published configs: the recipe stays, the networks and images shrink.
TINY = [
    "--data.init_args.download=false", "--data.init_args.load_size=36", "--data.init_args.crop_size=32",
    "--data.init_args.max_dataset_size=3", "--data.init_args.max_val_size=2", "--data.init_args.num_workers=0",
    "--model.init_args.ngf=8", "--model.init_args.ndf=8",
    "--trainer.max_epochs=2", "--trainer.check_val_every_n_epoch=1", "--trainer.log_every_n_steps=1",
]
TINY_GENERATOR = {"h2z": "resnet_2blocks", "yosemite": "resnet_2blocks", "facades": "unet_32"}
DATASET_FOLDER = {"h2z": "horse2zebra", "yosemite": "summer2winter_yosemite", "facades": "facades"}


def run_cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "cyclegan_pl", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}")
    return result


def fit_config(name: str, data_root: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(
        "fit", "--config", str(CONFIGS / f"{name}.yaml"),
        f"--data.init_args.root={data_root / DATASET_FOLDER[name]}",
        f"--model.init_args.generator={TINY_GENERATOR[name]}", *TINY, *extra, cwd=cwd,
    )


@pytest.fixture(scope="module")
def h2z_run(data_root, tmp_path_factory) -> Path:
    """configs/h2z.yaml fitted for 2 tiny epochs in a fresh folder (wandb offline)."""
    cwd = tmp_path_factory.mktemp("h2z")
    fit_config("h2z", data_root, cwd)
    return cwd


def test_h2z_config_writes_checkpoint_grids_and_wandb_run(h2z_run):
    run = h2z_run / "runs" / "h2z"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    grids = sorted((run / "samples").glob("epoch_*.png"))
    assert [g.name for g in grids] == ["epoch_0002.png"]  # every 5 epochs and at the end of fit
    with Image.open(grids[0]) as grid:
        assert grid.width > grid.height  # 6 columns (real/fake/rec per side) of 2 rows
    offline_runs = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline_runs) == 1 and offline_runs[0].stat().st_size > 0
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 2 and checkpoint["hyper_parameters"]["lambda_identity"] == 0.5
    assert any(key.startswith("ImageBuffer") for key in checkpoint["callbacks"])


@pytest.mark.parametrize("name", ["yosemite", "facades"])
def test_other_configs_fit_and_log_metrics(name, data_root, tmp_path):
    fit_config(name, data_root, tmp_path, "--trainer.logger=CSVLogger", f"--trainer.logger.save_dir=runs/{name}")
    run = tmp_path / "runs" / name
    assert (run / "checkpoints" / "last.ckpt").is_file()
    (metrics_file,) = run.glob("*/version_0/metrics.csv")
    header = metrics_file.read_text().splitlines()[0].split(",")
    expected = {"loss/g_step", "lr/g", "lr_factor"} | ({"val/l1", "loss/l1_step"} if name == "facades" else {"val/cycle_a", "loss/cycle_a_step", "loss/d_b_step"})
    assert expected <= set(header)
    assert list(metrics_file.parent.glob("samples/epoch_0002.png"))


def test_print_config_round_trips(tmp_path):
    first = run_cli("fit", "--config", str(CONFIGS / "h2z.yaml"), "--print_config", cwd=tmp_path).stdout
    saved = tmp_path / "printed.yaml"
    saved.write_text(first)
    second = run_cli("fit", "--config", str(saved), "--print_config", cwd=tmp_path).stdout
    assert first == second
    config = yaml.safe_load(first)
    assert config["model"]["init_args"]["lambda_identity"] == 0.5
    assert config["model"]["init_args"]["gan_mode"] == "lsgan"
    assert config["data"]["init_args"]["crop_size"] == 256


@pytest.mark.parametrize(
    "args,expected",
    [
        (["fit", "--config", str(CONFIGS / "h2z.yaml"), "--no_such_option", "1"], "no_such_option"),
        (["fit", "--config", str(CONFIGS / "h2z.yaml"), "--model.init_args.ngf", "abc"], "ngf"),
        (["fit", "--config", str(CONFIGS / "h2z.yaml"), "--data.init_args.root", "missing/h2z",
          "--data.init_args.download", "false", "--trainer.logger", "false"], "missing/h2z"),
        (["translate", "--ckpt_path", "nope.ckpt", "--input", ".", "--output", "out"], "nope.ckpt"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, args, expected):
    result = run_cli(*args, cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]


def test_missing_dataset_error_points_to_download(tmp_path):
    result = run_cli("fit", "--config", str(CONFIGS / "h2z.yaml"), "--data.init_args.root=data/h2z",
                     "--data.init_args.download=false", "--trainer.logger=false", cwd=tmp_path, check=False)
    assert "trainA" in result.stderr and "python -m cyclegan_pl download horse2zebra" in result.stderr


def test_translate_folder_keeps_names_and_sizes(h2z_run, tmp_path):
    source = tmp_path / "photos"
    (source / "sub").mkdir(parents=True)
    Image.new("RGB", (45, 30), (200, 120, 40)).save(source / "wide.jpg")
    Image.new("RGB", (17, 33), (20, 120, 240)).save(source / "sub" / "tall.png")
    Image.new("L", (64, 64), 128).save(source / "sub" / "gray.png")
    ckpt = h2z_run / "runs" / "h2z" / "checkpoints" / "last.ckpt"
    for direction in ["AtoB", "BtoA"]:
        out = tmp_path / f"out_{direction}"
        run_cli("translate", "--ckpt_path", str(ckpt), "--input", str(source), "--output", str(out),
                "--direction", direction, "--batch_size", "2", "--device", "cpu", cwd=tmp_path)
        written = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*.png")}
        assert written == {"wide.png": (45, 30), "sub/tall.png": (17, 33), "sub/gray.png": (64, 64)}


def test_download_command_makes_the_demo_dataset(tmp_path):
    result = run_cli("download", "demo", "--root", str(tmp_path / "data"), cwd=tmp_path)
    assert "demo is ready" in result.stdout
    for split in ["trainA", "trainB", "testA", "testB"]:
        assert any((tmp_path / "data" / "demo" / split).glob("*.png"))


def test_help_documents_options_and_other_commands(tmp_path):
    top = run_cli("--help", cwd=tmp_path).stdout
    assert "translate" in top and "download" in top
    model_help = run_cli("fit", "--model.help", "cyclegan_pl.CycleGAN", cwd=tmp_path).stdout
    assert "--model.lambda_identity" in model_help and "identity loss weight" in model_help
    data_help = run_cli("fit", "--data.help", "cyclegan_pl.PairedDataModule", cwd=tmp_path).stdout
    assert "--data.direction" in data_help
    translate_help = " ".join(run_cli("translate", "--help", cwd=tmp_path).stdout.split())
    assert "--ckpt_path" in translate_help and "relative path" in translate_help
