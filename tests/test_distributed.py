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
    assert not (tmp_path / "runs" / "demo" / ".cyclegan_pl.lock").exists()  # rank 0 took it, and let it go


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


# --- the run folder's lock: rank 0 decides, every rank follows ---------------------------------

DEMO_TINY_DDP = [
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
]


def _refusals(stderr: str) -> int:
    return sum(line.startswith("error:") and "is the run folder of another run" in line for line in stderr.splitlines())


def test_a_ddp_run_refused_on_rank_0_starts_no_other_process(tmp_path, run_folder_holder):
    run_folder = tmp_path / "run"
    run_folder_holder(run_folder)
    result = subprocess.run(
        [sys.executable, "-m", "cyclegan_pl", *DEMO_TINY_DDP, f"--trainer.default_root_dir={run_folder}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240,
    )
    assert result.returncode == 1
    assert _refusals(result.stderr) == 1  # rank 0 refused before starting rank 1: one process, one line
    assert sorted(p.name for p in run_folder.iterdir()) == [".cyclegan_pl.lock"]


def test_every_rank_stops_when_rank_0_finds_the_run_folder_in_use(tmp_path, run_folder_holder):
    # Both ranks start on their own (as torchrun or SLURM start them), so rank 1 runs before rank 0
    # has decided: the refusal reaches it through the strategy, and both stop with the same line.
    # A rank that went on alone would wait in a collective; the timeout only guards against that.
    import socket

    run_folder = tmp_path / "run"
    run_folder_holder(run_folder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "cyclegan_pl", *DEMO_TINY_DDP, f"--trainer.default_root_dir={run_folder}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "LOCAL_RANK": str(rank),
                "NODE_RANK": "0",
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            },
        )
        for rank in (0, 1)
    ]
    try:
        results = [(process.communicate(timeout=240), process.returncode) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [code for _, code in results] == [1, 1], [err[-3000:] for (_, err), _ in results]
    assert [_refusals(err) for (_, err), _ in results] == [1, 1]
    assert sorted(p.name for p in run_folder.iterdir()) == [".cyclegan_pl.lock"]  # nothing written
