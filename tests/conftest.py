"""Fixtures shared by the whole suite."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import lightning.pytorch as pl  # imported first: see below
import pytest
import torch

# No test may reach the network: wandb runs offline and syncs nothing.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# ...and nothing downloads implicitly (FID's Inception weights): offline paths are what we test.
os.environ.setdefault("CYCLEGAN_PL_OFFLINE", "1")

# Lightning's loggers get a StreamHandler bound to the sys.stderr of the moment it is first imported:
# imported here, that is pytest's session-long stream, not a test's capsys stream that is closed
# when the test ends (a later in-process command would then print "--- Logging error ---").

DATA_ENV = "CYCLEGAN_PL_DATA"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-image datasets, from $CYCLEGAN_PL_DATA; skips when it is not set."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(
            f"needs the shared real images: set {DATA_ENV} to the shared datasets folder (CI sets ../shared/datasets)"
        )
    root = Path(value)
    if not root.is_dir():
        pytest.fail(f"{DATA_ENV}={value} is not a folder")
    return root


class _ServedFiles:
    """What the test server answers and what it was asked.

    Attributes:
        routes: URL path -> (body, how); how is ``ok`` (the body with its Content-Length),
            ``no_length`` (no Content-Length header), ``dropped`` (Content-Length of the whole
            body, half of it, then the connection closes: a server stopping mid-way), ``slow``
            (the body ``trickle[0]`` bytes at a time, ``trickle[1]`` seconds apart), ``slow_head``
            (the status line and headers trickled so), ``length`` (the Content-Length header
            ``length``, e.g. ``-5``) or ``loop`` (a redirect to itself).
        trickle: bytes per write and seconds between writes of the slow modes.
        length: the Content-Length header of the ``length`` mode.
        requests: the URL paths asked for, in order.
        base: the server's URL, ``http://127.0.0.1:PORT``.
    """

    HOWS = ("ok", "no_length", "dropped", "slow", "slow_head", "length", "loop")

    def __init__(self) -> None:
        self.routes: Dict[str, Tuple[bytes, str]] = {}
        self.trickle: Tuple[int, float] = (1, 0.2)
        self.length = "-5"
        self.requests: List[str] = []
        self.base = ""


def _file_handler(files: _ServedFiles):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            files.requests.append(self.path)
            if self.path not in files.routes:
                self.send_error(404)
                return
            body, how = files.routes[self.path]
            if how not in files.HOWS:  # a typo in a test would otherwise serve the body as "ok"
                self.send_error(500, f"unknown serving mode {how!r}; use one of {files.HOWS}")
                return
            if how == "loop":
                self.send_response(302)
                self.send_header("Location", self.path)
                self.end_headers()
                return
            if how == "slow_head":
                self._trickle(f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                return
            self.send_response(200)
            if how != "no_length":
                self.send_header("Content-Length", files.length if how == "length" else str(len(body)))
            self.end_headers()
            if how == "slow":
                self._trickle(body)
                return
            if how == "dropped":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def _trickle(self, data: bytes) -> None:
            step, pause = files.trickle
            for start in range(0, len(data), step):
                try:
                    self.wfile.write(data[start : start + step])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(pause)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def file_server() -> Iterator[_ServedFiles]:
    """An HTTP server on 127.0.0.1 (never the network) serving ``routes``; see :class:`_ServedFiles`."""
    files = _ServedFiles()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _file_handler(files))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    files.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield files
    httpd.shutdown()
    httpd.server_close()


@dataclass(frozen=True)
class StandInInception:
    """A weights file with the FID Inception network's tensors, random (tests cannot have the real ones).

    Attributes:
        path: the file.
        sha256: its sha256 (not the published file's: tests set ``CYCLEGAN_PL_INCEPTION_SHA256``).
        state_dict: the tensors in it.
    """

    path: Path
    sha256: str
    state_dict: Dict[str, torch.Tensor]


@pytest.fixture(scope="session")
def stand_in_inception(tmp_path_factory) -> StandInInception:
    """The FID Inception network's tensors at random values in a file (built once, no network)."""
    import hashlib

    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    with pytest.MonkeyPatch.context() as patch:  # build the network without any weights
        patch.setattr(fidelity, "load_state_dict_from_url", lambda url, *args, **kwargs: {})
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *args, **kwargs: None)
        torch.manual_seed(0)
        template = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    state_dict = {key: value.clone() for key, value in template.state_dict().items()}
    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(state_dict, path)
    return StandInInception(path, hashlib.sha256(path.read_bytes()).hexdigest(), state_dict)


class _Payload:
    """Unpickling this object runs ``Path(marker).touch()``: what a hostile weights file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def pickle_payload() -> Callable[[Path, Path], Path]:
    """pickle_payload(path, marker): write a torch file whose unpickling creates ``marker``; its path.

    The fixture checks that the payload works: loaded as torch-fidelity loads weights
    (``weights_only=False``) it creates a copy of the marker, so a test that asserts the marker
    is absent can fail.
    """

    def write(path: Path, marker: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = marker.with_name(marker.name + ".probe")
        torch.save({"Conv2d_1a_3x3.conv.weight": _Payload(probe)}, path)
        torch.load(path, weights_only=False)
        assert probe.exists(), "the payload did not run when unpickled"
        probe.unlink()
        torch.save({"Conv2d_1a_3x3.conv.weight": _Payload(marker)}, path)
        return path

    return write


REPO = Path(__file__).resolve().parents[1]

# Holds the lock of a run folder as a first run would, until it is killed.
_RUN_FOLDER_HOLDER = """
import sys, time
from cyclegan_pl.run_lock import RunLock
lock = RunLock(sys.argv[1], command="the first run")
assert lock.acquire() is None
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def run_folder_holder() -> Iterator[Callable[[Path], subprocess.Popen]]:
    """run_folder_holder(folder): a process holding the folder's run lock, killed at the end of the test."""
    processes: List[subprocess.Popen] = []

    def hold(folder: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_FOLDER_HOLDER, str(folder)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        processes.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


def quiet_trainer(**kwargs) -> pl.Trainer:
    """A quiet CPU Trainer (one epoch; no logger, checkpoints, bars, summary or validation), ``kwargs`` on top."""
    options = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


@pytest.fixture(scope="session")
def make_trainer() -> Callable[..., pl.Trainer]:
    """make_trainer(**trainer_kwargs): :func:`quiet_trainer`, the suite's one quiet-Trainer factory."""
    return quiet_trainer


#: Options that shrink a shipped config for a test: the recipe stays, the networks and images shrink.
TINY_FIT_OPTIONS = (
    "--data.init_args.download=false",
    "--data.init_args.load_size=36",
    "--data.init_args.crop_size=32",
    "--data.init_args.max_dataset_size=3",
    "--data.init_args.max_val_size=2",
    "--data.init_args.num_workers=0",
    "--model.init_args.ngf=8",
    "--model.init_args.ndf=8",
    "--trainer.max_epochs=2",
    "--trainer.check_val_every_n_epoch=1",
    "--trainer.log_every_n_steps=1",
)


@dataclass
class CliResult:
    """What a command printed and its exit status."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def tiny_fit_options() -> List[str]:
    """Options appended to a `fit` of a shipped config to make it tiny (2 epochs, ngf 8, 32 px)."""
    return list(TINY_FIT_OPTIONS)


def _checked(result: CliResult, args: Sequence[str], check: bool) -> CliResult:
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(args)}` exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
        )
    return result


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """run_cli(*args, cwd, check=True): `python -m cyclegan_pl ARGS` in a fresh process.

    For what only a process shows: the module entry point, signals, exit statuses, wandb runs.
    """

    def run(*args: str, cwd: Path, check: bool = True) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "cyclegan_pl", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        return _checked(CliResult(completed.returncode, completed.stdout, completed.stderr), args, check)

    return run


@pytest.fixture
def cli_in_process(monkeypatch, capsys) -> Callable[..., CliResult]:
    """cli_in_process(*args, cwd, check=True): ``cyclegan_pl.cli.main(ARGS)`` in this process.

    The same code as `python -m cyclegan_pl ARGS` without a new interpreter's 7-9 s of imports.
    """
    from cyclegan_pl.cli import main

    def run(*args: str, cwd: Path, check: bool = True) -> CliResult:
        monkeypatch.chdir(cwd)
        # pytest's own arguments are not the command's (LightningCLI warns when it sees both);
        # main() names the program in argv[0].
        monkeypatch.setattr(sys, "argv", ["cyclegan_pl"])
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        printed = capsys.readouterr()
        return _checked(CliResult(code, printed.out, printed.err), args, check)

    return run
