"""Tiled translation: how close tiles come to the whole-image translation, and what a huge photo costs.

Two tables, each run in fresh processes:

1. **Match** - real photos (``$CYCLEGAN_PL_DATA/horse2zebra/testA``) scaled up to ``size`` px,
   translated by a full-width ResNet-9 (ngf 64, seeded initialisation: no weights are needed to
   compare tiled with whole) whole and in ``tile`` px tiles with each kind of statistics:
   the mean and largest absolute difference from the whole-image output in 8-bit levels, and the
   seam measure - the mean gradient across the tiles' borders (at the edges of each tile's
   span and in the middle of each overlap) over the mean gradient elsewhere, beside the same
   ratio of the whole-image output, whose content has its own.
2. **Large** - one JPEG of ``large_size`` (a real photo scaled up) through the ``translate``
   command with a full-width ResNet-9 and ``large_statistics``: peak RSS of the process (the
   libraries' share beside it) and the time.

    python benchmarks/tiling.py                                  # both tables, CPU (about an hour)
    python benchmarks/tiling.py --tables '[match]' --images 1
    python benchmarks/tiling.py --tables '[large]' --large_statistics '[thumbnail, per_tile]'
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Literal, Tuple

import numpy as np
import torch
from fresh_process import in_fresh_process, peak_mib, rss_mib

Table = Literal["match", "large"]
Statistics = Literal["whole_image", "thumbnail", "per_tile"]
LEVEL = 2 / 255  # one 8-bit level in [-1, 1]


def _data_root() -> Path:
    root = os.environ.get("CYCLEGAN_PL_DATA")
    if not root:
        raise SystemExit("Set CYCLEGAN_PL_DATA to the real-image folder (see the README).")
    return Path(root)


def _photo(index: int, height: int, width: int) -> np.ndarray:
    from PIL import Image

    files = sorted((_data_root() / "horse2zebra" / "testA").glob("*.jpg"))
    with Image.open(files[index]) as image:
        return np.array(image.convert("RGB").resize((width, height), Image.BICUBIC))


def _generator(ngf: int):
    from cyclegan_pl.networks import define_generator

    torch.manual_seed(0)
    return define_generator("resnet_9blocks", ngf=ngf).eval()


def _borders(length: int, tile: int, overlap: int, multiple: int) -> List[int]:
    """Positions (steps between ``p - 1`` and ``p``) where tiles meet: span edges and overlap middles."""
    from cyclegan_pl.networks.tiling import TileGrid

    spans = TileGrid(length, tile, overlap, multiple).spans()
    positions = set()
    for (start, _), (_, previous_end) in zip(spans[1:], spans[:-1], strict=True):
        positions.update({start, previous_end, (start + previous_end) // 2})
    return sorted(p for p in positions if 0 < p < length)


def seam_ratio(image: torch.Tensor, rows: List[int], columns: List[int]) -> float:
    """Mean absolute step across the given rows and columns over the mean step elsewhere."""
    across_columns = (image[..., 1:] - image[..., :-1]).abs().mean(dim=(0, 1))  # (H, W-1)
    across_rows = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(0, 1))  # (H-1, W)
    at_columns = torch.zeros(across_columns.shape[-1], dtype=torch.bool)
    at_columns[[c - 1 for c in columns]] = True
    at_rows = torch.zeros(across_rows.shape[0], dtype=torch.bool)
    at_rows[[r - 1 for r in rows]] = True
    border = torch.cat([across_columns[:, at_columns].flatten(), across_rows[at_rows, :].flatten()])
    elsewhere = torch.cat([across_columns[:, ~at_columns].flatten(), across_rows[~at_rows, :].flatten()])
    return float(border.mean() / elsewhere.mean())


def _match(index: int, size: int, tile: int, overlap: int, statistics: List[str], ngf: int, queue) -> None:
    from cyclegan_pl.networks.tiling import translate_tiled

    torch.set_grad_enabled(False)
    generator = _generator(ngf)
    image = torch.from_numpy(_photo(index, size, size)).permute(2, 0, 1)[None].float() / 127.5 - 1
    start = time.perf_counter()
    whole = generator(image)
    rows = columns = _borders(size, tile, overlap, 4)
    results = [
        dict(statistics="whole image", seconds=time.perf_counter() - start, seam=seam_ratio(whole, rows, columns))
    ]
    for kind in statistics:
        start = time.perf_counter()
        tiled = translate_tiled(generator, image, tile, overlap, 4, statistics=kind, network=generator)
        seconds = time.perf_counter() - start
        difference = (tiled - whole).abs() / LEVEL
        results.append(
            dict(
                statistics=kind,
                seconds=seconds,
                mean_levels=float(difference.mean()),
                max_levels=float(difference.max()),
                seam=seam_ratio(tiled, rows, columns),
            )
        )
    queue.put(results)


def _large(size: Tuple[int, int], tile: int, overlap: int, statistics: str, ngf: int, queue) -> None:
    libraries = rss_mib()
    from PIL import Image

    from cyclegan_pl import CycleGAN
    from cyclegan_pl.commands import translate
    from cyclegan_pl.networks.tiling import Tiling

    libraries = max(libraries, rss_mib())
    width, height = size
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        torch.manual_seed(0)
        CycleGAN(generator="resnet_9blocks", ngf=ngf).save_pretrained(folder / "model")
        (folder / "in").mkdir()
        Image.fromarray(_photo(0, height, width)).save(folder / "in" / "large.jpg", quality=95)
        del Image
        before = rss_mib()
        start = time.perf_counter()
        translate(
            folder / "model",
            folder / "in",
            folder / "out",
            device="cpu",
            tiling=Tiling(tile=tile, overlap=overlap, statistics=statistics, above=0),
        )
        seconds = time.perf_counter() - start
        written = sorted(p.name for p in (folder / "out").iterdir())
    peak = peak_mib()
    queue.put(dict(libraries=libraries, before=before, peak=peak, seconds=seconds, written=written))


def main(
    tables: List[Table] = ["match", "large"],
    size: int = 1024,
    tile: int = 256,
    overlap: int = 64,
    images: int = 2,
    statistics: List[Statistics] = ["whole_image", "thumbnail", "per_tile"],
    large_size: Tuple[int, int] = (8000, 6000),
    large_tile: int = 512,
    large_statistics: List[Statistics] = ["thumbnail"],
    ngf: int = 64,
) -> Dict[str, List[Dict]]:
    """Print the tables (markdown).

    Args:
        tables: which tables to measure.
        size: side of the match table's images (real 256 px photos scaled up).
        tile: tile side of the match table.
        overlap: overlap (and context) of the tiles, both tables.
        images: how many photos the match table translates.
        statistics: tile statistics compared with the whole image.
        large_size: width and height of the large photo.
        large_tile: tile side for the large photo.
        large_statistics: the statistics the large photo is translated with (``whole_image``
            takes about ten passes: hours at 8000 x 6000 on two CPU cores).
        ngf: the ResNet-9's width (64 is the published one).
    """
    results: Dict[str, List[Dict]] = {}
    print(f"threads={torch.get_num_threads()}")
    if "match" in tables:
        print(
            f"\nTiles of {tile} px (overlap and context {overlap}) against the whole {size} px image, "
            f"ResNet-9 ngf {ngf}"
        )
        print("| image | statistics | mean diff (8-bit levels) | max diff | seam ratio | s |")
        print("|---|---|---|---|---|---|")
        rows = results["match"] = []
        for index in range(images):
            for row in in_fresh_process(_match, index, size, tile, overlap, list(statistics), ngf):
                rows.append(dict(image=index, **row))
                mean = f"{row['mean_levels']:.3f}" if "mean_levels" in row else "-"
                largest = f"{row['max_levels']:.1f}" if "max_levels" in row else "-"
                print(
                    f"| {index} | {row['statistics']} | {mean} | {largest} | {row['seam']:.3f} "
                    f"| {row['seconds']:.1f} |",
                    flush=True,
                )
    if "large" in tables:
        width, height = large_size
        print(f"\nA {width}x{height} JPEG through `translate`, tiles of {large_tile} px, ResNet-9 ngf {ngf}, CPU")
        print("| statistics | libraries (MiB) | before (MiB) | peak RSS (MiB) | s |")
        print("|---|---|---|---|---|")
        rows = results["large"] = []
        for kind in large_statistics:
            row = in_fresh_process(_large, tuple(large_size), large_tile, overlap, kind, ngf)
            assert row["written"] == ["large.png"], row["written"]
            rows.append(dict(statistics=kind, **row))
            print(
                f"| {kind} | {row['libraries']:.0f} | {row['before']:.0f} | {row['peak']:.0f} | {row['seconds']:.0f} |",
                flush=True,
            )
    return results


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main, as_positional=False)
