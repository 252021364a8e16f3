"""Two "nodes" on this machine: the shipped configs under torchrun and under SLURM's variables (gloo, CPU).

Each node is one process started the way a cluster starts it: ``torchrun --nnodes 2 --node_rank R
--master_addr 127.0.0.1``, or the variables ``srun`` sets (SLURM_NTASKS, SLURM_PROCID, SLURM_NODEID...),
which Lightning reads. Every node runs in a folder of its own, as on machines with their own disks,
so what node 1 writes would be seen. ``tests/scripts/rank_state.py`` saves each process's
parameters and the images it trained on after every epoch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY = [
    "--trainer.accelerator=cpu",
    "--data.init_args.download=false",
    "--data.init_args.load_size=36",
    "--data.init_args.crop_size=32",
    "--data.init_args.max_val_size=2",
    "--data.init_args.num_workers=0",
    "--model.init_args.ngf=8",
    "--model.init_args.ndf=8",
    "--trainer.check_val_every_n_epoch=1",
    "--trainer.log_every_n_steps=1",
    "--trainer.callbacks+=rank_state.RankState",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(**extra: str) -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "MASTER_", "WORLD_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests" / "scripts")]), OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _wait(processes: Sequence[subprocess.Popen]) -> None:
    outputs = [process.communicate() for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-6000:]


def fit_cmd(config: str, states: Path) -> List[str]:
    return [
        "-m",
        "cyclegan_pl",
        "fit",
        "--config",
        str(CONFIGS / config),
        *TINY,
        f"--trainer.callbacks.folder={states}",
    ]


def two_nodes_torchrun(cwds: Sequence[Path], fit: List[str]) -> None:
    """One torchrun per node, one process each: ``--nnodes 2 --node_rank R --master_addr 127.0.0.1``."""
    port = _free_port()
    processes = []
    for rank, cwd in enumerate(cwds):
        run = ["--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}", "--master_addr=127.0.0.1"]
        command = [sys.executable, "-m", "torch.distributed.run", *run, f"--master_port={port}", *fit]
        command += ["--trainer.num_nodes=2", "--trainer.devices=1"]
        processes.append(
            subprocess.Popen(command, cwd=cwd, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    _wait(processes)


def two_nodes_slurm(cwds: Sequence[Path], fit: List[str]) -> None:
    """The processes ``srun`` starts for ``--nodes 2 --ntasks-per-node 1``: SLURM's variables, no launcher."""
    port, processes = _free_port(), []
    for rank, cwd in enumerate(cwds):
        slurm = dict(
            SLURM_JOB_ID="4242",
            SLURM_JOB_NAME="cyclegan",
            SLURM_NNODES="2",
            SLURM_NTASKS="2",
            SLURM_NTASKS_PER_NODE="1",
            SLURM_NODELIST="127.0.0.1",
            SLURM_NODEID=str(rank),
            SLURM_PROCID=str(rank),
            SLURM_LOCALID="0",
            MASTER_PORT=str(port),
        )
        command = [sys.executable, *fit, "--trainer.num_nodes=2", "--trainer.devices=1"]
        processes.append(
            subprocess.Popen(
                command, cwd=cwd, env=_env(**slurm), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    _wait(processes)


def one_node(cwd: Path, fit: List[str]) -> None:
    """One node, two processes: Lightning's own launcher (`--trainer.devices 2`)."""
    command = [sys.executable, *fit, "--trainer.devices=2"]
    _wait([subprocess.Popen(command, cwd=cwd, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)])


def states(folder: Path, epoch: int) -> List[dict]:
    return [torch.load(folder / f"rank{rank}_epoch{epoch}.pt", weights_only=True) for rank in (0, 1)]


def same_parameters(first: dict, second: dict) -> bool:
    assert first["parameters"].keys() == second["parameters"].keys()
    return all(torch.equal(value, second["parameters"][key]) for key, value in first["parameters"].items())


def files_under(folder: Path) -> List[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def cyclegan_runs(data_root, tmp_path_factory) -> Path:
    """configs/h2z.yaml on 4 horse2zebra images: on 2 nodes for an epoch, on 1 node for 2 epochs, and
    the 2-node checkpoint resumed for the second epoch on 2 nodes (SLURM's variables) and on 1 node."""
    root = tmp_path_factory.mktemp("cyclegan_nodes")
    base = [f"--data.init_args.root={data_root / 'horse2zebra'}", "--data.init_args.max_dataset_size=4"]
    base += ["--model.init_args.generator=resnet_2blocks"]
    nodes = [root / "node0", root / "node1"]
    for folder in [*nodes, root / "one", root / "resume0", root / "resume1", root / "resume_one"]:
        folder.mkdir()
    two_nodes_torchrun(nodes, [*fit_cmd("h2z.yaml", root / "two"), *base, "--trainer.max_epochs=1"])
    one_node(root / "one", [*fit_cmd("h2z.yaml", root / "one_states"), *base, "--trainer.max_epochs=2"])
    checkpoint = nodes[0] / "runs" / "h2z" / "checkpoints" / "last.ckpt"
    resume = [*base, "--trainer.max_epochs=2", f"--ckpt_path={checkpoint}"]
    two_nodes_slurm([root / "resume0", root / "resume1"], [*fit_cmd("h2z.yaml", root / "resumed_two"), *resume])
    one_node(root / "resume_one", [*fit_cmd("h2z.yaml", root / "resumed_one"), *resume])
    return root


def test_two_nodes_train_as_one_node_of_two_processes(cyclegan_runs, data_root):
    two, one = states(cyclegan_runs / "two", 0), states(cyclegan_runs / "one_states", 0)
    assert [(s["global_rank"], s["node_rank"], s["world_size"], s["num_nodes"]) for s in two] == [
        (0, 0, 2, 2),
        (1, 1, 2, 2),
    ]
    assert same_parameters(two[0], two[1])
    assert same_parameters(two[0], one[0]) and same_parameters(one[0], one[1])
    assert not same_parameters(two[0], states(cyclegan_runs / "one_states", 1)[0])  # training moved them
    seen = sorted(path for state in two for batch in state["batches"] for path in batch)
    first_four = sorted(str(p) for p in sorted((data_root / "horse2zebra" / "trainA").iterdir())[:4])
    assert seen == first_four  # the 4 images, each on one node


def test_only_global_rank_zero_writes_checkpoints_grids_and_logs(cyclegan_runs):
    for node1 in ("node1", "resume1"):
        assert files_under(cyclegan_runs / node1) == []
    written = files_under(cyclegan_runs / "node0" / "runs" / "h2z")
    assert "checkpoints/last.ckpt" in written and "samples/epoch_0001.png" in written and "config.yaml" in written
    assert any(name.startswith("wandb/offline-run-") and name.endswith(".wandb") for name in written)
    assert "checkpoints/last.ckpt" in files_under(cyclegan_runs / "resume0" / "runs" / "h2z")


def test_the_two_node_checkpoint_resumes_on_two_nodes_and_on_one(cyclegan_runs):
    uninterrupted = states(cyclegan_runs / "one_states", 1)
    for resumed in ("resumed_two", "resumed_one"):
        after = states(cyclegan_runs / resumed, 1)
        assert not (cyclegan_runs / resumed / "rank0_epoch0.pt").exists()  # it started at epoch 1
        for rank in (0, 1):
            assert same_parameters(after[rank], uninterrupted[rank]), (resumed, rank)
    slurm = states(cyclegan_runs / "resumed_two", 1)
    assert [(s["node_rank"], s["num_nodes"]) for s in slurm] == [(0, 2), (1, 2)]


@pytest.fixture(scope="module")
def cut_chunks(data_root, tmp_path_factory) -> Path:
    """6 + 3 horse2zebra training images (and 2 + 2 test images) converted to LitData chunks."""
    from cyclegan_pl.data.chunks import optimize_images

    root = tmp_path_factory.mktemp("cut_chunks")
    for split, count in (("trainA", 6), ("trainB", 3), ("testA", 2), ("testB", 2)):
        (root / "src" / split).mkdir(parents=True)
        for path in sorted((data_root / "horse2zebra" / split).iterdir())[:count]:
            (root / "src" / split / path.name).symlink_to(path)
    optimize_images(root / "src", str(root / "chunks"), chunk_bytes="64KB", progress=False)
    return root / "chunks"


def test_cut_streams_every_image_once_across_two_nodes_as_on_one(cut_chunks, tmp_path):
    data = ["--data=cyclegan_pl.data.StreamingUnpairedDataModule", f"--data.init_args.root={cut_chunks}"]
    data += ["--model.init_args.num_patches=16", "--trainer.max_epochs=1"]
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for folder in [*nodes, tmp_path / "one"]:
        folder.mkdir()
    two_nodes_torchrun(nodes, [*fit_cmd("h2z_cut.yaml", tmp_path / "two"), *data])
    one_node(tmp_path / "one", [*fit_cmd("h2z_cut.yaml", tmp_path / "one_states"), *data])
    two, one = states(tmp_path / "two", 0), states(tmp_path / "one_states", 0)
    assert same_parameters(two[0], two[1]) and same_parameters(two[0], one[0])
    per_node = [sorted(Path(p).name for batch in state["batches"] for p in batch) for state in two]
    assert len(per_node[0]) == len(per_node[1]) == 3
    everything = sorted(per_node[0] + per_node[1])
    assert everything == sorted(p.name for p in (cut_chunks.parent / "src" / "trainA").iterdir())
    assert per_node == [sorted(Path(p).name for batch in s["batches"] for p in batch) for s in one]
    assert files_under(nodes[1]) == []


@pytest.mark.parametrize(
    ("trainer", "gpus", "several"),
    [
        ({"num_nodes": 2, "devices": 1}, 0, True),
        ({"devices": 2}, 0, True),
        ({"devices": "0,1"}, 2, True),
        ({"devices": [3]}, 4, False),
        ({"devices": 1}, 2, False),
        ({"devices": "auto", "accelerator": "cpu"}, 2, False),
        ({"devices": "auto"}, 2, True),
        ({}, 1, False),
    ],
)
def test_the_default_strategy_is_ddp_with_unused_parameters_for_several_processes(trainer, gpus, several, monkeypatch):
    from cyclegan_pl import cli

    monkeypatch.setattr(cli, "_cuda_devices", lambda: gpus)
    assert cli._several_processes(trainer) is several
