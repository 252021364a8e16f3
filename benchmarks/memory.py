"""Training memory at high resolution: peak memory and time of one iteration, per memory option.

Each row runs in its own process, so its peak is that run's alone. The process first imports
the libraries (their share is the ``libraries`` column), builds the model, runs one small
warm-up iteration (which allocates the optimizer state and gradients), then one iteration at
the measured size:

- ``before``: memory held when the measured iteration starts (libraries, weights, gradients,
  Adam state, the warm-up's leftovers);
- ``peak``: the process's peak (CPU: peak RSS; CUDA: ``max_memory_allocated``, so no libraries);
- ``step``: ``peak - before``, what the iteration itself needs (activations kept for the backward
  pass and their gradients) - the part the options shrink.

    python benchmarks/memory.py                                           # CPU, every row (hours at 1024 px)
    python benchmarks/memory.py --sizes '[256]' --options '[none, checkpointing]'
    python benchmarks/memory.py --device cuda --sizes '[256, 512, 1024]'

Options: ``none``; ``generators`` (gradient_checkpointing); ``discriminators``
(discriminator_checkpointing); ``checkpointing`` (both); ``channels_last``; ``bf16`` (bf16-mixed
precision; on CPU only at ``bf16_sizes_on_cpu``, 256 px by default: bf16 autocast's speed on a CPU
depends on the CPU and the torch version, from far slower than fp32 to faster, as with torch 2.14
on the machine of the README's table); ``all`` (every one of them that the size allows).
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, Literal, Optional

import torch
from fresh_process import in_fresh_process, peak_mib, rss_mib

Method = Literal["cyclegan", "cut", "pix2pix"]
MemoryOption = Literal["none", "generators", "discriminators", "checkpointing", "channels_last", "bf16", "all"]

#: module options and precision of each row
OPTION_SETTINGS: Dict[str, Dict] = {
    "none": {},
    "generators": dict(gradient_checkpointing=True),
    "discriminators": dict(discriminator_checkpointing=True),
    "checkpointing": dict(gradient_checkpointing=True, discriminator_checkpointing=True),
    "channels_last": dict(channels_last=True),
    "bf16": dict(precision="bf16-mixed"),
    "all": dict(
        gradient_checkpointing=True, discriminator_checkpointing=True, channels_last=True, precision="bf16-mixed"
    ),
}


def _now_mib(device: str) -> float:
    return torch.cuda.memory_allocated() / 2**20 if device == "cuda" else rss_mib()


def _module(method: str, ngf: int, settings: Dict):
    from cyclegan_pl import CUT, CycleGAN, Pix2Pix

    options = {key: value for key, value in settings.items() if key != "precision"}
    if method == "cyclegan":
        return CycleGAN(ngf=ngf, ndf=ngf, **options)
    if method == "cut":
        return CUT(ngf=ngf, ndf=ngf, **options)
    # The published unet_256 at every size (a 1024 px input reaches a 4x4 bottleneck).
    return Pix2Pix(generator="unet_256", ngf=ngf, ndf=ngf, **options)


def _batch(size: int, generator: torch.Generator) -> Dict:
    image = lambda: torch.rand(1, 3, size, size, generator=generator) * 2 - 1  # noqa: E731
    return {"A": image(), "B": image(), "A_paths": ["a"], "B_paths": ["b"]}


def _measure(method: str, size: int, option: str, ngf: int, device: str, iterations: int, queue) -> None:
    libraries = rss_mib()  # torch is imported; lightning and the package next
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    import cyclegan_pl  # noqa: F401

    libraries = max(libraries, rss_mib()) if device == "cpu" else 0.0
    settings = OPTION_SETTINGS[option]
    torch.manual_seed(0)
    module = _module(method, ngf, settings)
    generator = torch.Generator().manual_seed(0)
    warmup_size = 256 if method == "pix2pix" else 64
    batches = [_batch(warmup_size, generator)] + [_batch(size, generator) for _ in range(iterations)]
    marks: Dict[str, float] = {}

    class Meter(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 1:
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                marks["before"] = _now_mib(device)
                marks["start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == iterations:
                if device == "cuda":
                    torch.cuda.synchronize()
                marks["seconds"] = (time.perf_counter() - marks["start"]) / iterations
                marks["peak"] = peak_mib(device)

    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        precision=settings.get("precision", "32-true"),
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[Meter()],
    )
    trainer.fit(module, DataLoader(batches, batch_size=None))
    queue.put(dict(libraries=libraries, **marks))


def measure(method: str, size: int, option: str, ngf: int = 64, device: str = "cpu", iterations: int = 1) -> Dict:
    """One row, measured in a fresh process."""
    # Every allocation over 64 KiB gets its own mapping, returned to the system when freed, so the
    # process's resident memory follows the tensors alive (glibc otherwise keeps freed blocks).
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    return in_fresh_process(_measure, method, size, option, ngf, device, iterations)


def main(
    methods: List[Method] = ["cyclegan", "cut", "pix2pix"],
    sizes: List[int] = [256, 512, 1024],
    options: List[MemoryOption] = [
        "none",
        "generators",
        "discriminators",
        "checkpointing",
        "channels_last",
        "bf16",
        "all",
    ],
    ngf: int = 64,
    device: Literal["cpu", "cuda"] = "cpu",
    bf16_sizes_on_cpu: List[int] = [256],
    iterations: int = 1,
    save: Optional[str] = None,
) -> List[Dict]:
    """Measure one training iteration per (method, size, option); print a markdown table.

    Args:
        methods: which models (published options; pix2pix with unet_256).
        sizes: image sides in pixels, batch 1.
        options: memory options, alone and together (see the module doc).
        ngf: generator and discriminator width (64 is the published one).
        device: cpu or cuda.
        bf16_sizes_on_cpu: the sizes at which rows with bf16 run on CPU (bf16 autocast can be
            far slower than fp32 on a CPU); ignored on CUDA.
        iterations: measured iterations per row (the time is their mean; the peak covers all).
        save: write the rows as JSON to this file too.
    """
    print(f"device={device} ngf={ngf} batch=1 threads={torch.get_num_threads()}")
    print(
        "| model | size | options | libraries (MiB) | before (MiB) | peak (MiB) | step (MiB) | step vs none "
        "| s/it | time vs none |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for method in methods:
        for size in sizes:
            reference: Optional[Dict] = None
            for option in options:
                if device == "cpu" and "precision" in OPTION_SETTINGS[option] and size not in bf16_sizes_on_cpu:
                    continue
                result = measure(method, size, option, ngf, device, iterations)
                step = result["peak"] - result["before"]
                row = dict(model=method, size=size, options=option, step=step, **result)
                rows.append(row)
                if option == "none":
                    reference = row
                memory_ratio = f"{step / reference['step']:.2f}" if reference else "-"
                time_ratio = f"{result['seconds'] / reference['seconds']:.2f}" if reference else "-"
                print(
                    f"| {method} | {size} | {option} | {result['libraries']:.0f} | {result['before']:.0f} | "
                    f"{result['peak']:.0f} | {step:.0f} | {memory_ratio} | {result['seconds']:.1f} | {time_ratio} |",
                    flush=True,
                )
    if save:
        import json

        from cyclegan_pl.files import atomic_file

        with atomic_file(save) as staged:
            staged.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main, as_positional=False)
