"""One run at a time in a run folder: a second run stops with one line, a crashed run's lock is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs" / "demo.yaml")
# The demo config at the smallest sizes, with a CSV logger (a logger that writes files, and fast).
DEMO_TINY = [
    "--data.init_args.max_dataset_size=2",
    "--data.init_args.load_size=36",
    "--data.init_args.crop_size=32",
    "--model.init_args.ngf=8",
    "--model.init_args.ndf=8",
    "--model.init_args.generator=resnet_2blocks",
    "--trainer.max_epochs=1",
    "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
    "--trainer.logger.init_args.save_dir=.",
]
LOCK = ".cyclegan_pl.lock"


def _files(folder: Path) -> List[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _error_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _left_lock(folder: Path, pid: int, host: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"pid": pid, "host": host, "started": "2026-01-01 00:00:00", "command": "python -m cyclegan_pl fit (gone)"}
    (folder / LOCK).write_text(json.dumps(owner))


def test_a_second_run_in_a_folder_in_use_stops_before_writing_anything(tmp_path, run_folder_holder, cli_in_process):
    run = tmp_path / "run"
    first = run_folder_holder(run)
    before = _files(run)
    result = cli_in_process(
        "fit", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}", cwd=tmp_path, check=False
    )
    assert result.returncode == 1
    (line,) = _error_lines(result.stderr)
    assert f"{run} is the run folder of another run (pid {first.pid} on host" in line
    assert "the first run" in line and "--trainer.default_root_dir" in line
    assert _files(run) == before  # no config.yaml, no logs, no checkpoints, no samples
    # `test` there would overwrite config.yaml too.
    result = cli_in_process(
        "test", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}", cwd=tmp_path, check=False
    )
    assert result.returncode == 1 and len(_error_lines(result.stderr)) == 1
    assert _files(run) == before


def test_a_run_releases_the_folder_when_it_ends_or_fails(tmp_path, cli_in_process):
    run = tmp_path / "run"
    cli_in_process("fit", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}", cwd=tmp_path)
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / LOCK).exists()
    failed = cli_in_process(
        "fit", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}",
        "--data.init_args.root=missing", "--data.init_args.download=false",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert failed.returncode == 1 and not (run / LOCK).exists()
    cli_in_process("fit", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}", cwd=tmp_path)


def test_a_crashed_run_is_taken_over_and_resumed_with_ckpt_path_last(tmp_path, cli_in_process):
    from cyclegan_pl.files import host_name

    run = tmp_path / "run"
    cli_in_process("fit", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}", cwd=tmp_path)
    gone = _dead_pid()
    _left_lock(run, gone, host_name())  # what a run killed with SIGKILL leaves
    result = cli_in_process(
        "fit", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}", "--trainer.max_epochs=2",
        "--ckpt_path=last", cwd=tmp_path,
    )  # fmt: skip
    assert f"note: {run / LOCK} was left by a run that is gone (pid {gone} on this host" in result.stdout
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'}" in result.stdout
    assert not (run / LOCK).exists()


def test_a_lock_of_another_host_is_not_taken_over(tmp_path, cli_in_process):
    run = tmp_path / "run"
    _left_lock(run, 4242, "othermachine")
    result = cli_in_process(
        "fit", "--config", DEMO, *DEMO_TINY, f"--trainer.default_root_dir={run}", cwd=tmp_path, check=False
    )
    (line,) = _error_lines(result.stderr)
    assert "pid 4242 on host othermachine" in line and f"delete {run / LOCK} if it has ended" in line
    assert _files(run) == [LOCK]


def test_the_lock_itself(tmp_path, run_folder_holder):
    from cyclegan_pl.run_lock import RunLock

    first = run_folder_holder(tmp_path / "run")
    lock = RunLock(tmp_path / "run")
    refusal = lock.acquire()
    assert refusal is not None and f"pid {first.pid}" in refusal and not lock.held
    first.kill()  # SIGKILL: nothing is cleaned up, the kernel drops the flock
    first.wait()
    assert lock.acquire() is None and lock.held
    assert json.loads((tmp_path / "run" / LOCK).read_text())["pid"] == os.getpid()
    other = RunLock(tmp_path / "run")
    assert other.acquire() is not None  # held by this process's first lock
    lock.release()
    assert not (tmp_path / "run" / LOCK).exists() and not lock.held
    assert other.acquire() is None
    other.release()
