"""Translation throughput: `predict` (batched loader, ImageWriter) beside a one-image-at-a-time loop.

Both translate the first ``limit`` images of horse2zebra/testA with a freshly initialised
full-size ResNet-9 generator and write PNGs, so the numbers count decoding, the network and
encoding alike.

    CYCLEGAN_PL_DATA=../shared/datasets python benchmarks/predict_throughput.py
    CYCLEGAN_PL_DATA=../shared/datasets python benchmarks/predict_throughput.py --device cuda --batch_sizes '[1, 8, 32]'
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import List, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image


def _images(limit: int) -> List[Path]:
    root = os.environ.get("CYCLEGAN_PL_DATA")
    if not root:
        raise SystemExit("set CYCLEGAN_PL_DATA to the shared datasets folder (e.g. ../shared/datasets)")
    folder = Path(root) / "horse2zebra" / "testA"
    files = sorted(folder.glob("*.jpg"))[:limit]
    if not files:
        raise SystemExit(f"no images in {folder}")
    return files


def _plain_loop(module, files: List[Path], out: Path, device: str) -> float:
    """The reference-style loop: one file, one forward, one PNG at a time."""
    generator = module.gen_ab.to(device).eval()
    with torch.no_grad():  # first-call set-up (kernels, allocator) is not what we measure
        generator(torch.zeros(1, 3, 256, 256, device=device))
    start = time.perf_counter()
    with torch.no_grad():
        for path in files:
            image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1
            tensor = torch.from_numpy(image).permute(2, 0, 1)[None].to(device)
            output = generator(tensor)[0].permute(1, 2, 0).cpu().numpy()
            Image.fromarray(((output + 1) * 127.5).clip(0, 255).astype(np.uint8)).save(out / f"{path.stem}.png")
    return len(files) / (time.perf_counter() - start)


def _predict(module, folder: Path, count: int, out: Path, device: str, batch_size: int, num_workers: int) -> float:
    from cyclegan_pl import ImageWriter, UnpairedDataModule

    module.eval_mode = True  # as the plain loop: eval mode (instance norm: the same images)
    datamodule = UnpairedDataModule(
        root=str(folder), predict_dir=str(folder), val_batch_size=batch_size, num_workers=num_workers
    )
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ImageWriter(output_dir=str(out))],
    )
    start = time.perf_counter()
    trainer.predict(module, datamodule=datamodule, return_predictions=False)
    return count / (time.perf_counter() - start)


def main(
    limit: int = 24,
    ngf: int = 64,
    device: Literal["cpu", "cuda"] = "cpu",
    batch_sizes: List[int] = [1, 4],
    num_workers: int = 1,
) -> None:
    """Print images/s of the plain loop and of `predict` at each batch size as a markdown table.

    Args:
        limit: how many horse2zebra/testA images to translate (120 for all).
        ngf: generator width (64 is the published one).
        device: cpu or cuda.
        batch_sizes: predict batch sizes to measure.
        num_workers: predict data loader processes.
    """
    from cyclegan_pl import CycleGAN

    files = _images(limit)
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "input"
        subset.mkdir()
        for path in files:  # a folder of exactly `limit` images for predict
            (subset / path.name).symlink_to(path)
        torch.manual_seed(0)
        module = CycleGAN(ngf=ngf)
        print(f"device={device} ngf={ngf} images={len(files)} threads={torch.get_num_threads()} workers={num_workers}")
        print("| pipeline | batch | images/s | ratio to plain |")
        print("|---|---|---|---|")
        (Path(tmp) / "plain").mkdir()
        plain = _plain_loop(module, files, Path(tmp) / "plain", device)
        print(f"| plain loop | 1 | {plain:.2f} | 1.00 |", flush=True)
        for batch_size in batch_sizes:
            out = Path(tmp) / f"predict_{batch_size}"
            rate = _predict(module, subset, len(files), out, device, batch_size, num_workers)
            assert len(list(out.glob("*.png"))) == len(files)
            print(f"| predict | {batch_size} | {rate:.2f} | {rate / plain:.2f} |", flush=True)


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main, as_positional=False)
