"""LitData chunks: the `optimize` conversion, the streaming data modules, resume, and bad or hostile input."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import litdata
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from cyclegan_pl import CycleGAN
from cyclegan_pl.data import PairedDataModule, UnpairedDataModule
from cyclegan_pl.data.chunks import MARKER, ChunkSplit, open_split, optimize_images, unpack_record
from cyclegan_pl.data.streaming import (
    ChunkRecords,
    StreamingPairedDataModule,
    StreamingUnpairedDataModule,
)
from cyclegan_pl.errors import DataLayoutError, OptionError, StorageError
from cyclegan_pl.weights import SafeCheckpointIO

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(load_size=36, crop_size=32, num_workers=0, seed=3)


@pytest.fixture(scope="module")
def h2z_chunks(data_root, tmp_path_factory) -> Path:
    """The shared horse2zebra images converted once (small chunks, so that each split has several)."""
    output = tmp_path_factory.mktemp("chunks") / "h2z"
    optimize_images(data_root / "horse2zebra", str(output), chunk_bytes="1MB", progress=False)
    return output


def records(location: Path, count: int):
    reader = ChunkRecords(ChunkSplit(str(location), "images", count))
    return [unpack_record(reader[i], 2, "test") for i in range(count)]


# --- the conversion -------------------------------------------------------------------------------


def test_conversion_keeps_every_file_byte_for_byte_in_folder_order(h2z_chunks, data_root):
    source = data_root / "horse2zebra"
    assert sorted(p.name for p in h2z_chunks.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    for split in ("trainA", "testB"):
        files = sorted(p for p in (source / split).iterdir())
        marker = json.loads((h2z_chunks / split / MARKER).read_text())
        assert marker["content"] == "images" and marker["count"] == len(files)
        index = json.loads((h2z_chunks / split / "index.json").read_text())
        assert index["config"]["data_format"] == ["bytes"] and len(index["chunks"]) > 3
        stored = records(h2z_chunks / split, len(files))
        assert [name.decode() for name, _ in stored] == [p.name for p in files]
        assert all(data == path.read_bytes() for (_, data), path in zip(stored, files, strict=True))


def test_running_again_on_a_finished_output_does_nothing(h2z_chunks, data_root, cli_in_process, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in h2z_chunks.rglob("*")}
    result = cli_in_process(
        "optimize", "--source", str(data_root / "horse2zebra"), "--output", str(h2z_chunks), cwd=tmp_path
    )
    assert "nothing to do" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in h2z_chunks.rglob("*")} == before


def test_an_output_holding_other_files_is_refused_and_kept(helpers, tmp_path):
    source = helpers.make_unpaired(tmp_path / "src", 3, 2, size=16)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(DataLayoutError, match="holds files that optimize did not write"):
        optimize_images(source, str(theirs), progress=False)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    # A conversion of other files is replaced only when asked.
    output = tmp_path / "out"
    optimize_images(source, str(output), progress=False)
    helpers.save_rgb(source / "trainA" / "A_999.png", 16, 16)
    with pytest.raises(OptionError, match="overwrite=True"):
        optimize_images(source, str(output), progress=False)
    report = optimize_images(source, str(output), overwrite=True, progress=False)
    assert report.counts["trainA"] == 4 and json.loads((output / "trainA" / MARKER).read_text())["count"] == 4


def _processes_below(pid: int) -> set:
    from cyclegan_pl.data.chunks import _descendants

    return set(_descendants({pid}))


def _running_unsignalled(pid: int) -> bool:
    """Whether ``pid`` runs on, neither ending (zombie, exiting) nor holding a SIGTERM to act on."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        flags = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[6])
    except (FileNotFoundError, ProcessLookupError):
        return False
    pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
    exiting = flags & 0x4  # PF_EXITING
    return status["State"].strip()[0] not in "ZX" and not exiting and not pending & (1 << (signal.SIGTERM - 1))


def test_an_interrupted_conversion_leaves_nothing_that_looks_complete(helpers, tmp_path, cli_in_process):
    """A FIFO among the images blocks the conversion half-way, deterministically; then it is stopped:
    by Ctrl-C (in this process), then by SIGKILL (a command in a process of its own)."""
    source = tmp_path / "frames"
    for i in range(6):
        helpers.save_rgb(source / f"f{i}.png", 24, 24, seed=i)
    os.mkfifo(source / "zz_blocks.png")
    output = tmp_path / "chunks"

    def staging_chunks():
        return list(tmp_path.glob(".chunks.cyclegan_pl-tmp-*/chunk-*.bin"))

    def written_chunks():  # in the staging folder, or (if it were written in place) in the output
        return staging_chunks() + list(output.glob("chunk-*.bin"))

    started = set()

    def interrupt_when_half_done():
        while not written_chunks():
            time.sleep(0.01)
        started.update(_processes_below(os.getpid()))  # LitData's workers and their helpers
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_half_done, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        optimize_images(source, str(output), chunk_bytes="1KB", progress=False)
    assert not output.exists() and not staging_chunks()
    assert len(started) >= 2 and not [pid for pid in started if _running_unsignalled(pid)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # LitData's handler is gone

    command = [sys.executable, "-m", "cyclegan_pl", "optimize", "--source", str(source), "--output", str(output)]
    process = subprocess.Popen(
        [*command, "--chunk_bytes", "1KB"], env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True
    )
    while not written_chunks() and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None
    os.killpg(process.pid, signal.SIGKILL)  # our own process group: the command and its conversion workers
    process.wait()
    assert not output.exists()
    (staging,) = tmp_path.glob(".chunks.cyclegan_pl-tmp-*")  # hidden, without index or marker
    assert not (staging / "index.json").exists() and not (staging / MARKER).exists()
    with pytest.raises(DataLayoutError, match="does not exist"):
        open_split(str(output), ("images",), "frames")

    os.unlink(source / "zz_blocks.png")
    cli_in_process(*command[3:], cwd=tmp_path)
    assert open_split(str(output), ("images",), "frames").count == 6
    assert not list(tmp_path.glob(".chunks.cyclegan_pl-tmp-*"))  # the killed run's staging is gone


# --- the items ------------------------------------------------------------------------------------


def test_streamed_unpaired_items_are_the_folder_datasets_items(h2z_chunks, data_root):
    folders = UnpairedDataModule(str(data_root / "horse2zebra"), **SMALL)
    chunks = StreamingUnpairedDataModule(str(h2z_chunks), **SMALL)
    folders.setup("fit")
    chunks.setup("fit")
    folder_train, streamed = folders.get_dataset("train"), chunks.get_dataset("train")
    for epoch in (0, 3):
        streamed.current_epoch = epoch + 1  # LitData counts epochs from 1
        for index in (0, 7, 299):
            ours, theirs = streamed[index], folder_train[(epoch, index)]
            assert ours["A"].dtype == torch.uint8 and ours["A"].shape == (3, 32, 32)
            assert torch.equal(ours["A"], theirs["A"]) and torch.equal(ours["B"], theirs["B"])
            assert Path(ours["B_paths"]).name == Path(theirs["B_paths"]).name
    folder_val, streamed_val = folders.get_dataset("val"), chunks.get_dataset("val")
    assert len(streamed_val) == len(folder_val) == 140
    for index in (0, 119, 139):
        assert torch.equal(streamed_val[index]["B"], folder_val[index]["B"])
        assert torch.equal(streamed_val[index]["A"], folder_val[index]["A"])
    grid = chunks.sample_batch(2)
    assert grid["A"].shape == (2, 3, 32, 32) and grid["A"].dtype == torch.uint8


@pytest.mark.parametrize("layout", ["side_by_side", "separate"])
def test_streamed_pairs_are_the_folder_datasets_pairs(layout, helpers, tmp_path):
    source = tmp_path / "pairs"
    if layout == "side_by_side":
        helpers.make_paired(source, count=3, size=20)
    else:
        for split in ("train", "test"):
            for i in range(3):
                helpers.save_rgb(source / split / "A" / f"{i}.png", 20, 20, seed=i)
                helpers.save_rgb(source / split / "B" / f"{i}.jpg", 24, 24, seed=10 + i, quality=95)
    optimize_images(source, str(tmp_path / "chunks"), progress=False)
    for direction in ("AtoB", "BtoA"):
        options = dict(SMALL, direction=direction, load_size=20, crop_size=16)
        folders, chunks = (
            PairedDataModule(str(source), **options),
            StreamingPairedDataModule(str(tmp_path / "chunks"), **options),
        )
        folders.setup("fit")
        chunks.setup("fit")
        for index in range(3):
            ours, theirs = chunks.get_dataset("train")[index], folders.get_dataset("train")[(0, index)]
            assert torch.equal(ours["A"], theirs["A"]) and torch.equal(ours["B"], theirs["B"])
            assert [Path(p).name for p in (ours["A_paths"], ours["B_paths"])] == [
                Path(p).name for p in (theirs["A_paths"], theirs["B_paths"])
            ]


@pytest.mark.parametrize("count", [12, 13])
def test_every_image_once_per_epoch_across_processes_and_workers(count, helpers, tmp_path, monkeypatch):
    """Two processes (LitData reads their ranks from WORLD_SIZE / GLOBAL_RANK), two workers each."""
    source = helpers.make_unpaired(tmp_path / "src", count, 3, size=16, splits=("train",))
    optimize_images(source, str(tmp_path / "chunks"), chunk_bytes="2KB", progress=False)
    names = {}
    for rank in (0, 1):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("GLOBAL_RANK", str(rank))
        module = StreamingUnpairedDataModule(str(tmp_path / "chunks"), **dict(SMALL, num_workers=2, batch_size=2))
        loader = module.train_dataloader()
        for epoch in range(2):
            seen = [Path(p).name for batch in loader for p in batch["A_paths"]]
            names[rank, epoch] = seen
            assert len(seen) == len(loader) * 2
    for epoch in range(2):
        both = names[0, epoch] + names[1, epoch]
        assert len(names[0, epoch]) == len(names[1, epoch])  # the same number of steps on every process
        assert len(set(both)) == len(both)  # no image twice in an epoch
        # 13 images over 2 processes x batches of 2: LitData leaves one out, another each epoch.
        assert len(both) == count - count % 4
    if count % 4:
        left_out = [{f"A_{i:03d}.png" for i in range(count)} - set(names[0, e] + names[1, e]) for e in range(2)]
        assert all(len(out) == count % 4 for out in left_out)
    assert names[0, 0] != names[0, 1]  # shuffled anew each epoch


class _Batches(Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.seen.append((trainer.current_epoch, batch_idx, *batch["A_paths"], *batch["B_paths"]))


def _fit(chunks: Path, root: Path, workers: int, ckpt_path=None, max_epochs: int = 3, every: int = 8):
    pl.seed_everything(0)
    module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    data = StreamingUnpairedDataModule(str(chunks), **dict(SMALL, num_workers=workers, batch_size=2))
    batches = _Batches()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        plugins=[SafeCheckpointIO()],  # the loader's state must load as plain data
        callbacks=[batches, ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1, filename="{step}")],
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return batches.seen, {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_resumed_mid_epoch_sees_the_batches_of_an_uninterrupted_run(workers, helpers, tmp_path):
    source = helpers.make_unpaired(tmp_path / "src", 10, 4, size=20)
    optimize_images(source, str(tmp_path / "chunks"), chunk_bytes="4KB", progress=False)
    seen, weights = _fit(tmp_path / "chunks", tmp_path / "ckpt", workers)
    assert len(seen) == 15 and {s[0] for s in seen} == {0, 1, 2}  # 3 epochs of 5 batches
    # step=8: 4 iterations of two optimizer steps, mid-epoch 0; the resumed run goes on to epoch 2.
    resumed, resumed_weights = _fit(tmp_path / "chunks", tmp_path / "ckpt2", workers, tmp_path / "ckpt" / "step=8.ckpt")
    assert resumed == seen[4:]
    for key, value in weights.items():
        assert torch.equal(resumed_weights[key], value), key


def test_a_mid_epoch_position_in_chunks_that_moved_is_one_line(helpers, tmp_path):
    source = helpers.make_unpaired(tmp_path / "src", 10, 4, size=20)
    optimize_images(source, str(tmp_path / "chunks"), progress=False)
    # 5 iterations of 2 optimizer steps per epoch: step=8 is mid-epoch 0, step=10 its end.
    _fit(tmp_path / "chunks", tmp_path / "ckpt", 0, max_epochs=1, every=2)
    (tmp_path / "chunks").rename(tmp_path / "moved")
    with pytest.raises(OptionError, match=r"stopped mid-epoch at a place in the chunks at .*chunks/trainA, not "):
        _fit(tmp_path / "moved", tmp_path / "ckpt2", 0, tmp_path / "ckpt" / "step=8.ckpt", max_epochs=2, every=2)
    seen, _ = _fit(tmp_path / "moved", tmp_path / "ckpt3", 0, tmp_path / "ckpt" / "step=10.ckpt", max_epochs=2, every=2)
    assert [s[:2] for s in seen] == [(1, i) for i in range(5)]  # the next epoch, whole


# --- bad and hostile input ------------------------------------------------------------------------


class _Payload:
    """Unpickling this object creates ``marker``: what a hostile chunk would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_item(marker: str, index: int):
    return {"image": _Payload(Path(marker))}


def test_chunks_that_would_run_code_are_refused(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile"
    litdata.optimize(
        fn=lambda index: _pickle_item(str(marker), index),
        inputs=[0, 1],
        output_dir=str(hostile),
        chunk_bytes="1MB",
        num_workers=1,
        start_method="fork",
        verbose=False,
    )
    assert json.loads((hostile / "index.json").read_text())["config"]["data_format"] == ["pickle"]
    # Plain LitData runs it: the payload works.
    litdata.StreamingDataset(str(hostile))[0]
    assert marker.exists()
    marker.unlink()
    (hostile / MARKER).write_text(
        json.dumps({"format": "cyclegan_pl.chunks", "version": 1, "content": "images", "count": 2})
    )
    with pytest.raises(DataLayoutError, match=r"stored as \['pickle'\]"):
        open_split(str(hostile), ("images",), "images")
    # Past that check (as if index.json were changed after it), the decoders still refuse.
    monkeypatch.setattr("cyclegan_pl.data.chunks.check_index", lambda *args: None)
    split = open_split(str(hostile), ("images",), "images")
    with pytest.raises(DataLayoutError, match="Refused to decode"):
        ChunkRecords(split)[0]
    assert not marker.exists()


def test_bad_chunk_folders_are_one_line_each(helpers, tmp_path, h2z_chunks, cli_in_process):
    other = tmp_path / "other"  # a LitData dataset of another origin where trainA should be
    litdata.optimize(
        fn=lambda i: i,
        inputs=[0, 1, 2],
        output_dir=str(other / "trainA"),
        chunk_bytes="1MB",
        num_workers=1,
        start_method="fork",
        verbose=False,
    )
    cases = {
        "did not write (no cyclegan_pl_chunks.json)": str(other),
        "does not exist": str(tmp_path / "missing"),
        "has no train/ (train pairs); it holds testA, testB, trainA, trainB": str(h2z_chunks),
        "holds images records, not train pairs": str(tmp_path / "unpaired_as_paired"),
    }
    # One folder's conversion where paired chunks should be.
    frames = helpers.make_unpaired(tmp_path / "frames", 2, 1, size=16, splits=("train",)) / "trainA"
    optimize_images(frames, str(tmp_path / "unpaired_as_paired" / "train"), progress=False)
    for message, root in cases.items():
        module = StreamingPairedDataModule if "pairs" in message else StreamingUnpairedDataModule
        with pytest.raises(DataLayoutError, match=re.escape(message)):
            module(root, **SMALL).setup("fit")
    # A missing index, through the command line: one line.
    broken = tmp_path / "broken"
    optimize_images(helpers.make_unpaired(tmp_path / "src", 2, 2, size=16), str(broken), progress=False)
    (broken / "trainB" / "index.json").unlink()
    result = cli_in_process(
        "fit",
        "--config",
        str(REPO / "configs" / "h2z_stream.yaml"),
        f"--data.init_args.root={broken}",
        "--trainer.logger=false",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"'{broken / 'trainB'}' has no index.json" in line


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """No credentials anywhere, and any connection attempt fails the test."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise AssertionError(f"a test connected to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_a_url_without_credentials_is_one_line_and_touches_no_network(no_network, helpers, tmp_path, cli_in_process):
    with pytest.raises(StorageError, match=r"No credentials to reach s3://bucket/h2z/trainA \(NoCredentialsError\)"):
        StreamingUnpairedDataModule("s3://bucket/h2z", **SMALL).setup("fit")
    source = helpers.make_unpaired(tmp_path / "src", 2, 2, size=16)
    result = cli_in_process(
        "optimize", "--source", str(source), "--output", "s3://bucket/out", cwd=tmp_path, check=False
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("error: No credentials to reach s3://bucket/out/trainA")
    assert no_network == []


def test_litdata_never_asks_pypi_for_its_version(monkeypatch, h2z_chunks):
    import litdata.helpers

    # The variable litdata reads (before 0.2.70 litdata checks PyPI unless it is set; since, only when asked).
    assert os.environ["LITDATA_DISABLE_VERSION_CHECK"] == "1"
    asked = []
    monkeypatch.setattr("requests.get", lambda *args, **kwargs: asked.append(args))
    litdata.helpers._get_newer_version.cache_clear()
    StreamingUnpairedDataModule(str(h2z_chunks), **SMALL).setup("fit")
    assert asked == []


def test_options_that_belong_to_optimize_are_refused(h2z_chunks):
    for option, value in (
        ("download", True),
        ("skip_bad_images", True),
        ("max_dataset_size", 3),
        ("image_mode", "native"),
        ("normalization", "percentile"),
    ):
        with pytest.raises(OptionError, match=f"{option}={value} does not apply to streamed chunks"):
            StreamingUnpairedDataModule(str(h2z_chunks), **{option: value})


def test_a_damaged_record_is_one_line_naming_it():
    from cyclegan_pl.data.chunks import pack_record

    record = pack_record([b"n.png", b"\xff\xd8\xff image bytes"])
    assert unpack_record(record, 2, "item 0") == [b"n.png", b"\xff\xd8\xff image bytes"]
    for damaged, why in (
        (record[:-1], "damaged"),
        (record + b"x", "damaged"),
        (b"PKL" + record[3:], "not a cyclegan_pl record"),
        (record[:8], "not a cyclegan_pl record"),
    ):
        with pytest.raises(DataLayoutError, match=f"item 0 .*{why}"):
            unpack_record(damaged, 2, "item 0")
    with pytest.raises(DataLayoutError, match="not a cyclegan_pl record of 4 parts"):
        unpack_record(record, 4, "item 0")


def test_predict_reads_a_folder_named_by_predict_dir(h2z_chunks, data_root):
    with pytest.raises(OptionError, match="predict_dir=None: streamed chunks"):
        StreamingUnpairedDataModule(str(h2z_chunks), **SMALL).setup("predict")
    folder = data_root / "horse2zebra" / "testB"
    module = StreamingUnpairedDataModule(str(h2z_chunks), predict_dir=str(folder), predict_direction="BtoA", **SMALL)
    module.setup("predict")
    batch = next(iter(module.predict_dataloader()))
    assert batch["direction"] == ["BtoA"] and batch["image"].dtype == torch.uint8
    assert len(module.get_dataset("predict")) == len(list(folder.iterdir()))
