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


# --- a checkpoint that does not fit its model is one line, never a traceback ------------------


def _tiny_checkpoint(path: Path) -> Path:
    from cyclegan_pl import CycleGAN
    from cyclegan_pl.weights.reference_import import save_imported_checkpoint

    torch.manual_seed(0)
    return save_imported_checkpoint(CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8), 0, {}, path)


def _damaged(checkpoint: dict, damage: str) -> dict:
    state, hparams = checkpoint["state_dict"], checkpoint["hyper_parameters"]
    if damage == "missing":
        del state["gen_ab.model.1.weight"]
    elif damage == "extra":
        state["gen_ab.model.99.weight"] = torch.zeros(3)
    elif damage == "reshaped":
        state["disc_a.model.0.weight"] = torch.zeros(8, 3, 3, 3)
    elif damage == "unknown_option":
        hparams["lambda_cycle_typo"] = 10.0
    elif damage == "wrong_type":
        hparams["ngf"] = "eight"
    elif damage == "bad_value":
        hparams["ngf"] = -5
    return checkpoint


DAMAGES = ["missing", "extra", "reshaped", "unknown_option", "wrong_type", "bad_value"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_translate_with_a_checkpoint_that_does_not_fit_its_model_is_one_line(tmp_path, cli_in_process, damage):
    from PIL import Image

    path = _tiny_checkpoint(tmp_path / "m.ckpt")
    torch.save(_damaged(torch.load(path, weights_only=True), damage), path)
    (tmp_path / "in").mkdir()
    Image.new("RGB", (20, 16), (10, 200, 30)).save(tmp_path / "in" / "a.png")
    result = cli_in_process(
        "translate", "--ckpt_path", str(path), "--input", "in", "--output", "out", "--device", "cpu",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(path) in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("hparams", [{"ngf": 1024}, {"generator": "resnet_100000blocks"}])
def test_a_huge_architecture_in_a_checkpoint_is_refused_without_building_it(tmp_path, request, hparams):
    from cyclegan_pl.weights import load_checkpoint

    path = _tiny_checkpoint(tmp_path / "m.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"].update(hparams)
    torch.save(checkpoint, path)
    request.getfixturevalue("refuse_large_builds")  # after the checkpoint is written for real
    with pytest.raises(CheckpointError, match=r"m\.ckpt") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_lightning_restoring_a_checkpoint_that_does_not_fit_is_one_line(tmp_path, make_trainer):
    # `fit/validate/test/predict --ckpt_path`: Lightning restores through the module's hook.
    from cyclegan_pl import CycleGAN

    path = _tiny_checkpoint(tmp_path / "m.ckpt")  # ngf 8
    module = CycleGAN(generator="resnet_2blocks", ngf=16, ndf=8)
    loader = torch.utils.data.DataLoader([{"image": torch.zeros(3, 32, 32), "path": "x.png"}])
    with pytest.raises(CheckpointError, match=r"m\.ckpt does not fit the CycleGAN configured: .* reshaped") as error:
        make_trainer().predict(module, dataloaders=loader, ckpt_path=path)
    assert "\n" not in str(error.value)
