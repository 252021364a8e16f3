"""Several processes through Lightning's DDP (gloo on CPU), as `--trainer.strategy ddp` runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def run(args, cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-5000:]


@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix", "cut", "dclgan", "unsb"])
def test_ddp_two_processes_keep_identical_parameters(kind, tmp_path):
    run([sys.executable, str(REPO / "tests" / "scripts" / "ddp_fit.py"), kind, str(tmp_path)], cwd=tmp_path)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["changed"] and rank1["changed"]
    for key, value in rank0["state_dict"].items():
        assert torch.equal(rank1["state_dict"][key], value), key
    # Rank 0 alone writes checkpoints, grids and logs.
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    assert len(list(tmp_path.glob("logs/**/samples/epoch_0001.png"))) == 1
    (metrics,) = tmp_path.glob("logs/**/metrics.csv")
    assert "loss/g_epoch" in metrics.read_text().splitlines()[0]


def test_cli_plain_ddp_strategy_works(tmp_path):
    run(
        [
            sys.executable,
            "-m",
            "cyclegan_pl",
            "fit",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--trainer.max_epochs=1",
            "--trainer.logger=false",
            "--data.init_args.max_dataset_size=4",
            "--model.init_args.ngf=8",
            "--model.init_args.ndf=8",
            "--model.init_args.generator=resnet_2blocks",
        ],
        cwd=tmp_path,
    )
    assert (tmp_path / "runs" / "demo" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "runs" / "demo" / "samples" / "epoch_0001.png").is_file()


@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix", "cut", "dclgan", "unsb"])
def test_every_rank_runs_the_same_collectives(kind, tmp_path):
    # The networks' forwards are collectives here (as with SyncBatchNorm): a rank that renders a
    # grid, computes FID or writes an image alone would run more of them. A hang fails at the timeout.
    script = REPO / "tests" / "scripts" / "ddp_collectives.py"
    result = subprocess.run(
        [sys.executable, str(script), kind, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240,  # a normal run takes well under a minute; a hang fails here
    )
    assert result.returncode == 0, result.stderr[-5000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0 == rank1
    assert rank0["fit"] > 0 and rank0["validate"] > 0
    assert len(list(tmp_path.rglob("epoch_0002.png"))) == 1  # rendered on every rank, written by rank 0


def test_results_page_and_kid_gather_every_process(tmp_path):
    """Two processes: rank 0 writes every test item once and FID/KID equal one process's."""
    for devices in (1, 2):
        run(
            [sys.executable, str(REPO / "tests" / "scripts" / "ddp_evaluation.py"), str(devices), str(tmp_path)],
            tmp_path,
        )
    one, two = (json.loads((tmp_path / f"values_{n}.json").read_text()) for n in (1, 2))
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    pages = {n: (tmp_path / f"results_{n}" / "index.html").read_text() for n in (1, 2)}
    for name in sorted(p.name for p in (tmp_path / "data" / "testA").iterdir()):
        assert pages[2].count(f"<td>{name}<br>") == 1 and pages[2].count(name) == pages[1].count(name)
    assert "(5 items)" in pages[2] and pages[2].count("<tr><td>") == 5
    for visual in ("fake_B", "fake_A", "side_by_side"):
        assert len(list((tmp_path / "results_2" / visual).iterdir())) == 5
    assert not list(tmp_path.glob(".results_2*"))
