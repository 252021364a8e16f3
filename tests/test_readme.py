"""Every command in README.md runs: the fenced bash lines are executed in order, at tiny sizes.

Each command runs as written, with options appended that shrink it (later options win): tiny
networks and images, 1-2 epochs, CPU. The shared real images are reached through symlinks
`data/<dataset>` -> $CYCLEGAN_PL_DATA/<dataset>, so the README's `data/...` paths and the
configs' `download: true` work without a network.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List

import torch

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

TINY_FIT = [
    "--data.init_args.load_size=36",
    "--data.init_args.crop_size=32",
    "--data.init_args.max_dataset_size=3",
    "--data.init_args.max_val_size=2",
    "--data.init_args.num_workers=0",
    "--model.init_args.ngf=8",
    "--model.init_args.ndf=8",
    "--trainer.max_epochs=2",
    "--trainer.check_val_every_n_epoch=1",
]
TINY_EVALUATE = ["--feature_extractor=cyclegan_pl.metrics.StandInFeatures", "--limit=4", "--size=32", "--device=cpu"]
TINY_GENERATOR = {"h2z": "resnet_2blocks", "yosemite": "resnet_2blocks", "facades": "unet_32", "demo": "resnet_2blocks"}
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
    "data_throughput.py": ["--datasets=[facades]", "--items=4", "--warmup=1", "--repeats=1", "--workers=null"],
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


def tiny(argv: List[str]) -> List[str]:
    """The command with the options that make it small enough for a test appended."""
    if argv[:3] == ["python", "-m", "cyclegan_pl"]:
        command = argv[3]
        if command in ("fit", "predict", "test") and "--print_config" not in argv:
            config = Path(argv[argv.index("--config") + 1]).stem
            extra = [*TINY_FIT, f"--model.init_args.generator={TINY_GENERATOR[config]}"]
            if command == "fit" and "--ckpt_path" in argv:
                extra.append("--trainer.max_epochs=3")  # one epoch past the checkpoint's
            if "--trainer.devices" in argv:
                extra.append("--trainer.accelerator=cpu")
            if command in ("predict", "test"):
                extra = [e for e in extra if "max_epochs" not in e and "check_val" not in e]
            return argv + extra
        if command == "translate":
            return argv + ["--device=cpu"]
        if command == "evaluate":
            # No Inception weights here: a fixed stand-in network, few small images.
            return argv + TINY_EVALUATE
        return argv
    if argv[0] == "python" and argv[1].startswith("benchmarks/"):
        return argv + TINY_BENCHMARK[Path(argv[1]).name]
    raise AssertionError(f"the README test does not know how to run: {' '.join(argv)}")


def write_reference_run(folder: Path) -> None:
    """A reference-code run folder (`latest_net_*.pth`) of tiny networks, for import-reference."""
    from cyclegan_pl.networks import define_discriminator, define_generator

    folder.mkdir(parents=True)
    for name in ["G_A", "G_B"]:
        torch.save(define_generator("resnet_2blocks", ngf=8).state_dict(), folder / f"latest_net_{name}.pth")
    for name in ["D_A", "D_B"]:
        torch.save(define_discriminator("basic", ndf=8).state_dict(), folder / f"latest_net_{name}.pth")


def test_readme_lists_the_two_setup_commands():
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci  # CI runs the README's test command itself


def test_every_readme_command_runs(data_root, tmp_path):
    for link, dataset in [("configs", REPO / "configs"), ("benchmarks", REPO / "benchmarks")]:
        (tmp_path / link).symlink_to(dataset)
    (tmp_path / "data").mkdir()
    for dataset in ["horse2zebra", "summer2winter_yosemite", "facades"]:
        (tmp_path / "data" / dataset).symlink_to(data_root / dataset)
    write_reference_run(tmp_path / "checkpoints" / "horse2zebra_cyclegan")
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "CYCLEGAN_PL_OFFLINE": "1"}

    ran = []
    for line in readme_commands():
        if line == "make test":
            continue  # this suite is that command
        argv = makefile_recipe("demo") if line == "make demo" else shlex.split(line)
        argv = tiny(argv)
        result = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"README command failed: {line}\n{result.stderr[-4000:]}"
        ran.append(line)

    assert len(ran) >= 15
    assert (tmp_path / "runs" / "demo" / "checkpoints" / "last.ckpt").is_file()
    assert len(list((tmp_path / "out" / "zebras").glob("*.png"))) == 120
    assert (tmp_path / "h2z.pt").is_file() and (tmp_path / "z2h.onnx").is_file()
    assert len(list((tmp_path / "out" / "reference").glob("*.png"))) == 120
    evaluation = json.loads((tmp_path / "runs" / "h2z" / "evaluation" / "last" / "metrics.json").read_text())
    assert set(evaluation) == {"a2b", "b2a"} and evaluation["a2b"]["fake_count"] == 4
    assert (tmp_path / "out" / "zebras.metrics.json").is_file()
    assert "n02381460" in (tmp_path / "runs" / "h2z" / "results" / "last" / "index.html").read_text()


def test_readme_python_example_builds_what_it_names(tmp_path, monkeypatch):
    import lightning.pytorch as pl

    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    fitted = []
    monkeypatch.setattr(pl.Trainer, "fit", lambda self, model, datamodule=None: fitted.append((model, datamodule)))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    ((model, datamodule),) = fitted
    assert type(model).__name__ == "CycleGAN" and type(datamodule).__name__ == "UnpairedDataModule"
