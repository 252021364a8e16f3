"""What the benchmarks share: a measurement in a fresh process, and the process's memory.

Each measurement runs in its own spawned process, so its peak memory is its own and no earlier
row's allocations, caches or threads slow it down. The scripts import this file as their
neighbour (``python benchmarks/<script>.py`` puts the folder on the path, and spawned processes
inherit it).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
from typing import Any, Callable

import torch


def in_fresh_process(target: Callable[..., None], *args: Any, **kwargs: Any) -> Any:
    """Run ``target(*args, queue=queue, **kwargs)`` in a spawned process; return what it put on ``queue``.

    Raises:
        RuntimeError: the process failed (its traceback is printed above).
    """
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=args, kwargs={**kwargs, "queue": queue})
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"{target.__name__}{args} failed (exit code {process.exitcode}); see above.")
    return queue.get(timeout=60)


def peak_mib(device: str = "cpu") -> float:
    """The process's peak memory so far: peak RSS on CPU, ``max_memory_allocated`` on CUDA."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """The process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_mib("cpu")
