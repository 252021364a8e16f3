"""CUT / FastCUT from the command line: the shipped configs at tiny sizes, then translate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="module")
def cut_run(data_root, tmp_path_factory, run_cli, tiny_fit_options) -> Path:
    """configs/h2z_cut.yaml fitted for 2 tiny epochs in a fresh process and folder (wandb offline)."""
    cwd = tmp_path_factory.mktemp("h2z_cut")
    config = str(CONFIGS / "h2z_cut.yaml")
    # the published resnet_9blocks at ngf 8 keeps nce_layers 0,4,8,12,16 valid
    tiny = [*tiny_fit_options, "--model.init_args.num_patches=32"]
    run_cli("fit", "--config", config, f"--data.init_args.root={data_root / 'horse2zebra'}", *tiny, cwd=cwd)
    return cwd / "runs" / "h2z_cut"


def test_h2z_cut_config_fits_and_translates(cut_run, tmp_path, cli_in_process):
    ckpt = cut_run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 2
    assert checkpoint["hyper_parameters"]["_class_path"] == "cyclegan_pl.CUT"
    assert checkpoint["hyper_parameters"]["nce_idt"] is True
    assert len(checkpoint["optimizer_states"]) == 3
    assert any(key.startswith("projection.mlp_4.") for key in checkpoint["state_dict"])
    assert not any(key.startswith("ImagePoolCallback") for key in checkpoint["callbacks"])
    assert [g.name for g in sorted((cut_run / "samples").glob("epoch_*.png"))] == ["epoch_0002.png"]

    source = tmp_path / "photos"
    source.mkdir()
    Image.new("RGB", (45, 30), (200, 120, 40)).save(source / "wide.jpg")
    out = tmp_path / "out"
    cli_in_process("translate", "--ckpt_path", str(ckpt), "--input", str(source), "--output", str(out), cwd=tmp_path)
    assert {p.name: Image.open(p).size for p in out.rglob("*.png")} == {"wide.png": (45, 30)}

    result = cli_in_process(
        "translate",
        "--ckpt_path",
        str(ckpt),
        "--input",
        str(source),
        "--output",
        str(tmp_path / "back"),
        "--direction",
        "BtoA",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "CUT translates AtoB only" in result.stderr


@pytest.mark.parametrize(
    "name, expected",
    [
        ("h2z_cut", dict(lambda_nce=1.0, nce_idt=True, flip_equivariance=False, epochs=(200, 200))),
        ("h2z_fastcut", dict(lambda_nce=10.0, nce_idt=False, flip_equivariance=True, epochs=(150, 50))),
        ("yosemite_cut", dict(lambda_nce=1.0, nce_idt=True, flip_equivariance=False, epochs=(200, 200))),
    ],
)
def test_cut_configs_hold_the_published_recipes(name, expected, tmp_path, cli_in_process):
    printed = cli_in_process("fit", "--config", str(CONFIGS / f"{name}.yaml"), "--print_config", cwd=tmp_path)
    config = yaml.safe_load(printed.stdout)
    model = config["model"]["init_args"]
    for option in ("lambda_nce", "nce_idt", "flip_equivariance"):
        assert model[option] == expected[option], option
    assert model["nce_layers"] == [0, 4, 8, 12, 16] and model["num_patches"] == 256 and model["antialias"] is True
    (decay,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("LinearDecay")]
    epochs = (decay["init_args"]["n_epochs"], decay["init_args"]["n_epochs_decay"])
    assert epochs == expected["epochs"] and config["trainer"]["max_epochs"] == sum(epochs)
    assert not [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ImagePoolCallback")]
    data = config["data"]["init_args"]
    assert (data["batch_size"], data["load_size"], data["crop_size"], data["flip"]) == (1, 286, 256, True)
