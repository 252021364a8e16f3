"""Checkpoints are written atomically: killing the writer never corrupts the last good file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from cyclegan_pl.checkpoint_io import AtomicCheckpointIO

REPO = Path(__file__).resolve().parents[1]

# Saves `last.ckpt` again and again with growing content through the plugin Lightning uses,
# printing each generation once it is in place.
WRITER = """
import sys, torch
from cyclegan_pl.checkpoint_io import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
payload = torch.randn(6_000_000)  # ~24 MB: a save takes long enough to be interrupted
for generation in range(10_000):
    io.save_checkpoint({"generation": generation, "state_dict": {"w": payload + generation}}, path)
    print(generation, flush=True)
"""


def test_killed_writer_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    interrupted_writes = 0
    for attempt in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
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
    AtomicCheckpointIO().save_checkpoint({"generation": 0}, path)
    try:
        AtomicCheckpointIO().save_checkpoint({"bad": Unpicklable()}, path)
    except RuntimeError:
        pass
    assert torch.load(path, weights_only=True) == {"generation": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
