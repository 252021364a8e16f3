"""``download``: fetch and unpack a known dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from cyclegan_pl.data.download import download_dataset


def download(name: str, root: Path = Path("data"), url: Optional[str] = None, overwrite: bool = False) -> Path:
    """Download and unpack a known dataset into ROOT/NAME.

    Args:
        name: dataset name, e.g. horse2zebra, summer2winter_yosemite, facades.
        root: folder that receives the dataset folder.
        url: archive URL to use instead of the official one (a mirror).
        overwrite: download again and replace ROOT/NAME, e.g. an incomplete copy.
    """
    target = download_dataset(name, root, url=url, overwrite=overwrite)
    print(f"{name} is ready in {target}")
    return target
