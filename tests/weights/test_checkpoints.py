"""Checkpoints are written atomically: killing the writer never corrupts the last good file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cyclegan_pl.errors import CheckpointError
from cyclegan_pl.weights import SafeCheckpointIO

REPO = Path(__file__).resolve().parents[2]

# Saves `last.ckpt` again and again with growing content through the plugin Lightning uses,
# printing each generation once it is in place.
WRITER = """
import sys, torch
from cyclegan_pl.weights import SafeCheckpointIO
io, path = SafeCheckpointIO(), sys.argv[1]
payload = torch.randn(6_000_000)  # ~24 MB: a save takes long enough to be interrupted
for generation in range(10_000):
    io.save_checkpoint({"generation": generation, "state_dict": {"w": payload + generation}}, path)
    print(generation, flush=True)
"""


def test_killed_writer_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    interrupted_writes = 0
    for _attempt in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        completed = int(writer.stdout.readline())  # at least one generation is in place
        # Wait until the next save has started writing its temporary file, then kill.
        deadline = time.monotonic() + 60
        while not list(path.parent.glob(".last.ckpt.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.001)
        interrupted_writes += bool(list(path.parent.glob(".last.ckpt.*.tmp")))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert checkpoint["generation"] >= completed
        assert checkpoint["state_dict"]["w"].numel() == 6_000_000
        for leftover in path.parent.glob(".last.ckpt.*.tmp"):
            leftover.unlink()  # a killed writer cannot clean up; the next save ignores it anyway
    assert interrupted_writes >= 1, "no kill landed during a write; the test proved nothing"


def test_failed_save_removes_its_temporary_file(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    path = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"generation": 0}, path)
    with contextlib.suppress(RuntimeError):
        SafeCheckpointIO().save_checkpoint({"bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"generation": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# --- no code runs from a checkpoint, whichever command reads it ------------------------------


class Payload:
    """Unpickling this object creates the marker file: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mknod, (self.marker,))


def _payload(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path


def _entry_points(tmp_path: Path, marker: Path):
    """(name, call) for every way the package reads a checkpoint or a .pth file."""
    from cyclegan_pl.cli import main
    from cyclegan_pl.commands import export, import_reference, translate
    from cyclegan_pl.networks import define_generator
    from cyclegan_pl.weights import load_checkpoint, load_reference_state_dict

    ckpt = _payload(tmp_path / "shared.ckpt", {"state_dict": {"gen_ab.model.1.weight": Payload(marker)}})
    pth = _payload(tmp_path / "run" / "latest_net_G_A.pth", {"model.1.weight": Payload(marker)})
    (tmp_path / "images").mkdir()
    config = str(REPO / "configs" / "demo.yaml")
    return [
        ("load_checkpoint", lambda: load_checkpoint(ckpt)),
        ("translate", lambda: translate(ckpt, tmp_path / "images", tmp_path / "out")),
        ("export", lambda: export(ckpt, tmp_path / "net.pt")),
        ("import-reference", lambda: import_reference(tmp_path / "run", tmp_path / "imported.ckpt")),
        ("load_reference_state_dict", lambda: load_reference_state_dict(define_generator("resnet_2blocks"), pth)),
        ("fit --ckpt_path", lambda: main(["fit", "--config", config, "--ckpt_path", str(ckpt)])),
        ("test --ckpt_path", lambda: main(["test", "--config", config, "--ckpt_path", str(ckpt)])),
    ]


def test_a_payload_never_runs_through_any_entry_point(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "payload_ran"
    for name, call in _entry_points(tmp_path, marker):
        try:
            call()
        except CheckpointError as error:
            assert "was refused" in str(error), name
        except SystemExit as exit:
            assert exit.code == 1, name
            err = capsys.readouterr().err
            assert "shared.ckpt was refused" in err and "Traceback" not in err, name
        else:
            raise AssertionError(f"{name} read the payload file without an error")
        assert not marker.exists(), f"{name} ran the payload"


def test_lightning_reads_ckpt_path_through_the_safe_reader(tmp_path):
    # `fit --ckpt_path` is checked before the Trainer starts, and the Trainer itself reads through
    # SafeCheckpointIO: a file swapped in between would still not run code.
    marker = tmp_path / "payload_ran"
    path = _payload(tmp_path / "swapped.ckpt", {"state_dict": {}, "loops": Payload(marker)})
    with pytest.raises(CheckpointError, match="swapped.ckpt was refused"):
        SafeCheckpointIO().load_checkpoint(path)
    assert not marker.exists()
