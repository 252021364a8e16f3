"""Every command in README.md runs: the fenced bash lines are executed in order, at tiny sizes.

Each command runs as written, with options appended that shrink it (later options win): tiny
networks and images, 1-2 epochs, CPU. The shared real images are reached through symlinks
`data/<dataset>` -> $CYCLEGAN_PL_DATA/<dataset>, so the README's `data/...` paths and the
configs' `download: true` work without a network. `download-model` downloads from a server the
test starts on 127.0.0.1 ($CYCLEGAN_PL_MODEL_URL, a mirror of the authors' paths) serving a
full-size ResNet-9 generator in the reference format, built here: the real file's architecture,
not its weights. `app` is started, asked for its page over HTTP, then stopped. The commands that
are not Lightning runs (download, translate, evaluate, export...) run in this process through
`cyclegan_pl.cli.main`, the function `python -m cyclegan_pl` calls.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, List

import torch

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Commands run by `cyclegan_pl.cli.main` in this process, as `python -m cyclegan_pl` runs them: a new
# interpreter spends 7-9 s importing torch and Lightning. The Lightning commands (fit, test,
# predict) keep their own process, their W&B runs, DDP launches and signal handlers being per process
# (`--print_config` only parses, so it runs here too).
IN_PROCESS = {"download", "download-model", "translate", "evaluate", "import-reference", "export", "optimize"}
# Test images per domain the README's whole-folder commands see; README_IMAGE is the one it names.
TEST_IMAGES = 6
README_IMAGE = "n02381460_1000.jpg"
TINY_EVALUATE = ["--feature_extractor=cyclegan_pl.metrics.StandInFeatures", "--limit=4", "--size=32", "--device=cpu"]
TINY_GENERATOR = {"h2z": "resnet_2blocks", "yosemite": "resnet_2blocks", "facades": "unet_32", "demo": "resnet_2blocks"}
TINY_GENERATOR["demo_multiband"] = "resnet_2blocks"
TINY_GENERATOR["h2z_1024"] = "resnet_2blocks"
# CUT's nce_layers 0,4,8,12,16 reach the fifth residual block: its configs keep resnet_9blocks (at ngf 8).
TINY_GENERATOR.update({"h2z_cut": "resnet_9blocks", "h2z_fastcut": "resnet_9blocks", "h2z_stream": "resnet_2blocks"})
# DCLGAN's nce_layers reach the fifth block too; UNSB has one (time-conditional) generator.
TINY_GENERATOR.update({"h2z_dclgan": "resnet_9blocks", "h2z_unsb": "resnet_9blocks_cond"})
# Streamed configs read whole converted splits (max_dataset_size belongs to optimize): a few batches.
TINY_STREAM = ["--trainer.limit_train_batches=2"]
TINY_BENCHMARK = {
    "train_throughput.py": [
        "--methods=[cyclegan]",
        "--sizes=[32]",
        "--ngf=8",
        "--warmup=1",
        "--iterations=1",
        "--device=cpu",
        "--loops=[plain, lightning]",
        "--repeats=1",
    ],
    "predict_throughput.py": ["--limit=2", "--ngf=8", "--batch_sizes=[2]", "--device=cpu", "--num_workers=0"],
    "data_throughput.py": [
        "--datasets=[facades, multiband16]",
        "--items=4",
        "--warmup=1",
        "--repeats=1",
        "--workers=[1]",
        "--load_size=40",
        "--crop_size=32",
        "--scratch=bench_scratch",  # the synthetic 16-bit set goes under the test's folder
    ],
    "streaming_throughput.py": ["--workers=[0]", "--warmup=1", "--repeats=1"],
    "memory.py": [
        "--methods=[pix2pix]",
        "--sizes=[256]",
        "--ngf=8",
        "--options=[none, checkpointing]",
        "--iterations=1",
    ],
    "tiling.py": [
        "--tables=[match, large]",
        "--size=128",
        "--tile=64",
        "--overlap=16",
        "--images=1",
        "--ngf=8",
        "--large_size=[160, 120]",
        "--large_tile=64",
        "--large_statistics=[whole_image]",
    ],
}


def readme_commands() -> List[str]:
    """The shell lines of the README's ```bash blocks, comments removed."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def makefile_recipe(target: str) -> List[str]:
    """The command a Makefile target runs (its last recipe line), with $(PY) as this python."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, flags=re.M).group(1).strip().splitlines()[-1]
    return shlex.split(recipe.strip().replace("$(PY)", "python"))


def tiny(argv: List[str], fit_options: List[str]) -> List[str]:
    """The command with the options that make it small enough for a test appended.

    ``fit_options`` shrink a shipped config (the ``tiny_fit_options`` fixture).
    """
    if argv[:3] == ["python", "-m", "cyclegan_pl"]:
        command = argv[3]
        if command in ("fit", "predict", "test") and "--print_config" not in argv:
            config = Path(argv[argv.index("--config") + 1]).stem
            # The configs' own `download: true` stays: it makes the demo set (the others are linked).
            shrink = [option for option in fit_options if not option.startswith("--data.init_args.download")]
            if config.endswith("_stream"):
                shrink = [o for o in shrink if not o.startswith("--data.init_args.max_dataset_size")] + TINY_STREAM
            extra = [*shrink, f"--model.init_args.generator={TINY_GENERATOR[config]}"]
            if command == "fit" and "--ckpt_path" in argv:
                extra.append("--trainer.max_epochs=3")  # one epoch past the checkpoint's
            if "--trainer.devices" in argv:
                extra.append("--trainer.accelerator=cpu")
            if "bf16-mixed" in argv:  # bf16 autocast is ~60x slower on a CPU: one step shows it runs
                extra += ["--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
            if command in ("predict", "test"):
                extra = [e for e in extra if "max_epochs" not in e and "check_val" not in e]
            return argv + extra
        if command in ("translate", "app"):
            return argv + ["--device=cpu"]
        if command == "evaluate":
            # No Inception weights here: a fixed stand-in network, few small images.
            return argv + TINY_EVALUATE
        return argv
    if argv[0] == "python" and argv[1].startswith("benchmarks/"):
        return argv + TINY_BENCHMARK[Path(argv[1]).name]
    raise AssertionError(f"the README test does not know how to run: {' '.join(argv)}")


def link_horse2zebra_with_few_test_images(source: Path, link: Path) -> None:
    """horse2zebra as the README's commands see it: the training folders linked whole, the test
    folders holding links to their first TEST_IMAGES files (the README translates, predicts,
    tests and evaluates whole test folders: 260 images at 256 px would dominate the test's time).
    The image the README translates alone is among them."""
    for split in ["trainA", "trainB"]:
        (link / split).parent.mkdir(parents=True, exist_ok=True)
        (link / split).symlink_to(source / split)
    for split in ["testA", "testB"]:
        (link / split).mkdir()
        for image in sorted((source / split).iterdir())[:TEST_IMAGES]:
            (link / split / image.name).symlink_to(image)
    assert (link / "testA" / README_IMAGE).exists()


def write_reference_run(folder: Path) -> None:
    """A reference-code run folder (`latest_net_*.pth`) of tiny networks, for import-reference."""
    from cyclegan_pl.networks import define_discriminator, define_generator

    folder.mkdir(parents=True)
    for name in ["G_A", "G_B"]:
        torch.save(define_generator("resnet_2blocks", ngf=8).state_dict(), folder / f"latest_net_{name}.pth")
    for name in ["D_A", "D_B"]:
        torch.save(define_discriminator("basic", ndf=8).state_dict(), folder / f"latest_net_{name}.pth")


def serve_published_model(server) -> None:
    """Put `cyclegan/pretrained_models/horse2zebra.pth` on the test's 127.0.0.1 server: a random
    full-size ResNet-9 in the reference format (the real file's architecture, not its weights)."""
    from cyclegan_pl.networks import define_generator

    buffer = io.BytesIO()
    torch.save(define_generator("resnet_9blocks").state_dict(), buffer)
    server.routes["/cyclegan/pretrained_models/horse2zebra.pth"] = (buffer.getvalue(), "ok")


def serve_and_stop(argv: List[str], cwd: Path, env: Dict[str, str]) -> None:
    """Run a command that serves a page (`app`) on a free port, fetch the page, stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, *argv[1:], f"--port={port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        output = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            output.append(line)
            if line.startswith("serving "):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
                    assert page.status == 200 and b"gradio" in page.read().lower()
                return
        raise AssertionError(f"README command did not serve its page: {' '.join(argv)}\n{''.join(output)[-4000:]}")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_readme_lists_the_two_setup_commands():
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci  # CI runs the README's test command itself


def test_every_readme_command_runs(data_root, tmp_path, tiny_fit_options, file_server, cli_in_process, monkeypatch):
    for link, dataset in [("configs", REPO / "configs"), ("benchmarks", REPO / "benchmarks")]:
        (tmp_path / link).symlink_to(dataset)
    (tmp_path / "data").mkdir()
    for dataset in ["summer2winter_yosemite", "facades"]:
        (tmp_path / "data" / dataset).symlink_to(data_root / dataset)
    link_horse2zebra_with_few_test_images(data_root / "horse2zebra", tmp_path / "data" / "horse2zebra")
    write_reference_run(tmp_path / "checkpoints" / "horse2zebra_cyclegan")
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "CYCLEGAN_PL_OFFLINE": "1"}

    serve_published_model(file_server)
    env["CYCLEGAN_PL_MODEL_URL"] = file_server.base
    monkeypatch.setenv("CYCLEGAN_PL_MODEL_URL", file_server.base)  # for the commands run in-process
    ran = []
    for line in readme_commands():
        if line == "make test":
            continue  # this suite is that command
        argv = makefile_recipe("demo") if line == "make demo" else shlex.split(line)
        argv = tiny(argv, tiny_fit_options)
        if argv[3:4] == ["app"]:
            serve_and_stop(argv, tmp_path, env)
            ran.append(line)
            continue
        if argv[:3] == ["python", "-m", "cyclegan_pl"] and (argv[3] in IN_PROCESS or "--print_config" in argv):
            result = cli_in_process(*argv[3:], cwd=tmp_path, check=False)
        else:
            result = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"README command failed: {line}\n{result.stderr[-4000:]}"
        ran.append(line)

    assert len(ran) >= 15
    assert (tmp_path / "runs" / "demo" / "checkpoints" / "last.ckpt").is_file()
    assert len(list((tmp_path / "out" / "zebras").glob("*.png"))) == TEST_IMAGES
    assert (tmp_path / "h2z.pt").is_file() and (tmp_path / "z2h.onnx").is_file()
    assert len(list((tmp_path / "out" / "reference").glob("*.png"))) == TEST_IMAGES
    from PIL import Image

    published = Image.open(tmp_path / "out" / "published" / README_IMAGE.replace(".jpg", ".png"))
    assert published.size == Image.open(data_root / "horse2zebra" / "testA" / README_IMAGE).size
    evaluation = json.loads((tmp_path / "runs" / "h2z" / "evaluation" / "last" / "metrics.json").read_text())
    assert set(evaluation) == {"a2b", "b2a"} and evaluation["a2b"]["fake_count"] == 4
    assert (tmp_path / "out" / "zebras.metrics.json").is_file()
    assert "n02381460" in (tmp_path / "runs" / "h2z" / "results" / "last" / "index.html").read_text()
    import tifffile

    stains = sorted((tmp_path / "out" / "stains").glob("*.tif"))
    assert len(stains) == 10  # the demo's test images, in the data's units
    assert all(
        tifffile.imread(path).dtype.name == "uint16" and tifffile.imread(path).shape == (64, 64, 4) for path in stains
    )


def test_readme_python_example_builds_what_it_names(tmp_path, monkeypatch):
    import lightning.pytorch as pl

    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    fitted = []
    monkeypatch.setattr(pl.Trainer, "fit", lambda self, model, datamodule=None: fitted.append((model, datamodule)))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    ((model, datamodule),) = fitted
    assert type(model).__name__ == "CycleGAN" and type(datamodule).__name__ == "UnpairedDataModule"
