"""The command line as a user types it: shipped configs, errors, translate, download, help."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import torch
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

TINY_GENERATOR = {"h2z": "resnet_2blocks", "yosemite": "resnet_2blocks", "facades": "unet_32"}
DATASET_FOLDER = {"h2z": "horse2zebra", "yosemite": "summer2winter_yosemite", "facades": "facades"}


def fit_config(run, name: str, data_root: Path, cwd: Path, tiny: List[str], *extra: str):
    """``run`` (run_cli or cli_in_process) fits configs/NAME.yaml at tiny sizes on the real images."""
    return run(
        "fit",
        "--config",
        str(CONFIGS / f"{name}.yaml"),
        f"--data.init_args.root={data_root / DATASET_FOLDER[name]}",
        f"--model.init_args.generator={TINY_GENERATOR[name]}",
        *tiny,
        *extra,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def h2z_run(data_root, tmp_path_factory, run_cli, tiny_fit_options) -> Path:
    """configs/h2z.yaml fitted for 2 tiny epochs in a fresh process and folder (wandb offline)."""
    cwd = tmp_path_factory.mktemp("h2z")
    fit_config(run_cli, "h2z", data_root, cwd, tiny_fit_options)
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
    assert any(key.startswith("ImagePoolCallback") for key in checkpoint["callbacks"])


@pytest.mark.parametrize("name", ["yosemite", "facades"])
def test_other_configs_fit_and_log_metrics(name, data_root, tmp_path, cli_in_process, tiny_fit_options):
    logger = ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir=runs/{name}"]
    fit_config(cli_in_process, name, data_root, tmp_path, tiny_fit_options, *logger)
    run = tmp_path / "runs" / name
    assert (run / "checkpoints" / "last.ckpt").is_file()
    (metrics_file,) = run.glob("*/version_0/metrics.csv")
    header = metrics_file.read_text().splitlines()[0].split(",")
    expected = {"loss/g_step", "lr/g", "lr_factor"} | (
        {"val/l1", "loss/l1_step"} if name == "facades" else {"val/cycle_a", "loss/cycle_a_step", "loss/d_b_step"}
    )
    assert expected <= set(header)
    assert list(metrics_file.parent.glob("samples/epoch_0002.png"))


def test_print_config_round_trips(tmp_path, cli_in_process):
    first = cli_in_process("fit", "--config", str(CONFIGS / "h2z.yaml"), "--print_config", cwd=tmp_path).stdout
    saved = tmp_path / "printed.yaml"
    saved.write_text(first)
    second = cli_in_process("fit", "--config", str(saved), "--print_config", cwd=tmp_path).stdout
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
        (
            [
                "fit",
                "--config",
                str(CONFIGS / "h2z.yaml"),
                "--data.init_args.root",
                "missing/h2z",
                "--data.init_args.download",
                "false",
                "--trainer.logger",
                "false",
            ],
            "missing/h2z",
        ),
        (["translate", "--ckpt_path", "nope.ckpt", "--input", ".", "--output", "out"], "nope.ckpt"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, args, expected, cli_in_process):
    result = cli_in_process(*args, cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]


def test_library_argument_names_become_the_command_line_options(tmp_path, cli_in_process):
    """The library names its arguments (``lambda_identity=0.5``); the command line writes the option."""
    result = cli_in_process(
        "fit",
        "--config",
        str(CONFIGS / "demo.yaml"),
        "--model.init_args.input_nc=1",
        "--data.init_args.input_nc=1",
        "--trainer.logger=false",
        cwd=tmp_path,
        check=False,
    )
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "--model.init_args.lambda_identity=0.5 needs input_nc == output_nc" in error
    assert "set --model.init_args.lambda_identity=0" in error

    from cyclegan_pl import Pix2Pix

    Pix2Pix(ngf=8, ndf=8, generator="unet_32").save_pretrained(tmp_path / "p2p")
    args = ["--ckpt_path", str(tmp_path / "p2p"), "--input", str(tmp_path), "--output", str(tmp_path / "out")]
    result = cli_in_process("translate", *args, "--direction", "BtoA", cwd=tmp_path, check=False)
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "--direction=BtoA: a Pix2Pix translates AtoB only" in error


def test_missing_dataset_error_points_to_download(tmp_path, cli_in_process):
    result = cli_in_process(
        "fit",
        "--config",
        str(CONFIGS / "h2z.yaml"),
        "--data.init_args.root=data/h2z",
        "--data.init_args.download=false",
        "--trainer.logger=false",
        cwd=tmp_path,
        check=False,
    )
    assert "trainA" in result.stderr and "python -m cyclegan_pl download horse2zebra" in result.stderr


def test_translate_folder_keeps_names_and_sizes(h2z_run, tmp_path, cli_in_process):
    source = tmp_path / "photos"
    (source / "sub").mkdir(parents=True)
    Image.new("RGB", (45, 30), (200, 120, 40)).save(source / "wide.jpg")
    Image.new("RGB", (17, 33), (20, 120, 240)).save(source / "sub" / "tall.png")
    Image.new("L", (64, 64), 128).save(source / "sub" / "gray.png")
    ckpt = h2z_run / "runs" / "h2z" / "checkpoints" / "last.ckpt"
    for direction in ["AtoB", "BtoA"]:
        out = tmp_path / f"out_{direction}"
        cli_in_process(
            "translate",
            "--ckpt_path",
            str(ckpt),
            "--input",
            str(source),
            "--output",
            str(out),
            "--direction",
            direction,
            "--batch_size",
            "2",
            "--device",
            "cpu",
            cwd=tmp_path,
        )
        written = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*.png")}
        assert written == {"wide.png": (45, 30), "sub/tall.png": (17, 33), "sub/gray.png": (64, 64)}


def test_download_command_makes_the_demo_dataset(tmp_path, cli_in_process):
    result = cli_in_process("download", "demo", "--root", str(tmp_path / "data"), cwd=tmp_path)
    assert "demo is ready" in result.stdout
    for split in ["trainA", "trainB", "testA", "testB"]:
        assert any((tmp_path / "data" / "demo" / split).glob("*.png"))


def test_help_documents_options_and_other_commands(tmp_path, cli_in_process):
    top = cli_in_process("--help", cwd=tmp_path).stdout
    assert "translate" in top and "download" in top
    model_help = cli_in_process("fit", "--model.help", "cyclegan_pl.CycleGAN", cwd=tmp_path).stdout
    assert "--model.lambda_identity" in model_help and "identity loss weight" in model_help
    data_help = cli_in_process("fit", "--data.help", "cyclegan_pl.PairedDataModule", cwd=tmp_path).stdout
    assert "--data.direction" in data_help
    translate_help = " ".join(cli_in_process("translate", "--help", cwd=tmp_path).stdout.split())
    assert "--ckpt_path" in translate_help and "relative path" in translate_help


# --- options that must fail at parse time, with the choices ----------------------------------

DEMO = str(CONFIGS / "demo.yaml")
# The demo config at the smallest sizes: a fit takes a few seconds.
DEMO_TINY = [
    "--data.init_args.max_dataset_size=2",
    "--data.init_args.load_size=36",
    "--data.init_args.crop_size=32",
    "--model.init_args.ngf=8",
    "--model.init_args.ndf=8",
    "--model.init_args.generator=resnet_2blocks",
    "--trainer.max_epochs=1",
    "--trainer.logger=false",
]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--model.generator", "resnet_7blockz"], "generator 'resnet_7blockz' is not one of: resnet_9blocks"),
        (["--model.norm", "batchnrm"], "norm 'batchnrm' is not one of: instance, batch, none"),
        (["--model.gan_mode", "lsgann"], "gan_mode 'lsgann' is not one of: lsgan, vanilla"),
        (["--data.preprocess", "crop_resize"], "preprocess 'crop_resize' is not one of: resize_and_crop"),
        (["--optimizer", "SGD"], "optimizer"),
        (["--lr_scheduler", "StepLR"], "lr_scheduler"),
    ],
)
def test_typos_and_unoffered_options_fail_at_parse_time(args, expected, cli_in_process, tmp_path):
    # In-process (a parse error exits before anything is built); the subprocess test below checks
    # what `python -m cyclegan_pl` prints as the program's name.
    result = cli_in_process("fit", "--config", DEMO, *args, "--print_config", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert expected in error
    assert "python -m cyclegan_pl" in result.stderr


def test_parse_errors_name_the_program_not_main_py(tmp_path, run_cli):
    result = run_cli("fit", "--config", DEMO, "--model.generator", "resnet_7blockz", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "python -m cyclegan_pl" in result.stderr and "__main__" not in result.stderr


def test_name_patterns_still_parse_and_help_lists_the_choices(tmp_path, cli_in_process):
    printed = cli_in_process(
        "fit", "--config", DEMO, "--model.generator", "resnet_7blocks", "--print_config", cwd=tmp_path
    )
    assert yaml.safe_load(printed.stdout)["model"]["init_args"]["generator"] == "resnet_7blocks"
    model_help = cli_in_process("fit", "--model.help", "CycleGAN", cwd=tmp_path).stdout
    assert "resnet_9blocks" in model_help and "unet_256" in model_help and "instance" in model_help


# --- one option moves every output of a run --------------------------------------------------


def test_default_root_dir_moves_every_output_and_last_is_said(tmp_path, run_cli):
    root = tmp_path / "elsewhere" / "myrun"
    args = ["fit", "--config", DEMO, *DEMO_TINY[:-1], f"--trainer.default_root_dir={root}", "--ckpt_path=last"]
    first = run_cli(*args, cwd=tmp_path)
    assert f"no checkpoint in {root / 'checkpoints'} yet, so training starts from scratch" in first.stdout
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (root / "config.yaml").is_file()
    assert list(root.rglob("samples/*.png"))
    assert list(root.rglob("wandb")) or list(root.rglob("*.csv")) or list(root.rglob("events.*"))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "wandb").exists()
    second = run_cli(*args, "--trainer.max_epochs=2", cwd=tmp_path)
    assert f"resuming from {root / 'checkpoints' / 'last.ckpt'}" in second.stdout


# --- checkpoints of the wrong method, our bugs, SIGTERM ---------------------------------------


def test_a_checkpoint_of_the_other_method_stops_instead_of_switching(tmp_path, cli_in_process):
    from cyclegan_pl import Pix2Pix

    ckpt = tmp_path / "facades_last.ckpt"
    module = Pix2Pix(generator="unet_32", ngf=8, ndf=8)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"_class_path": "cyclegan_pl.Pix2Pix"}}, ckpt)
    result = cli_in_process("fit", "--config", DEMO, *DEMO_TINY, f"--ckpt_path={ckpt}", cwd=tmp_path, check=False)
    assert result.returncode == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "holds a Pix2Pix; the config's model is CycleGAN" in error
    assert not (tmp_path / "runs").exists()  # nothing was written: no config.yaml, no last-v1.ckpt


def test_our_own_bugs_keep_their_traceback(tmp_path, monkeypatch, capsys):
    import functools

    from cyclegan_pl import cli
    from cyclegan_pl.commands import translate

    @functools.wraps(translate)
    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setitem(cli.COMMANDS._entries, "translate", broken)
    with pytest.raises(ValueError, match="an internal bug"):  # not turned into one `error:` line
        cli.main(["translate", "--ckpt_path", "x.ckpt", "--input", ".", "--output", "out"])


def test_sigterm_leaves_a_resumable_checkpoint_and_exits_143(tmp_path, run_cli):
    root = tmp_path / "run"
    args = ["fit", "--config", DEMO, *DEMO_TINY[:-2], "--trainer.logger=false", f"--trainer.default_root_dir={root}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "cyclegan_pl", *args, "--trainer.max_epochs=1000"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Training has started once the run's config is saved; let it get into an epoch.
    while not (root / "config.yaml").exists() and process.poll() is None:
        time.sleep(0.2)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr.decode()[-3000:]
    assert "resume with --ckpt_path last" in stderr.decode()
    last = root / "checkpoints" / "last.ckpt"
    stopped = torch.load(last, weights_only=True)
    assert stopped["global_step"] > 0
    # Resume past at least one whole epoch, to an epoch whose end writes last.ckpt (the demo
    # config checkpoints every 3 epochs).
    epochs = (stopped["epoch"] // 3 + 2) * 3
    resumed = run_cli(*args, f"--trainer.max_epochs={epochs}", "--ckpt_path=last", cwd=tmp_path)
    assert f"resuming from {last}" in resumed.stdout
    finished = torch.load(last, weights_only=True)
    assert finished["global_step"] > stopped["global_step"]
