"""``download-model``: a model its authors published, as a checkpoint to translate with."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from cyclegan_pl.weights.published import download_model as _download_model
from cyclegan_pl.weights.published import published_model, published_models

#: The published models' names: ``--help`` lists them and a typo fails when the command is parsed.
PublishedName = Literal[tuple(published_models().names())]  # type: ignore[valid-type]


def download_model(
    name: PublishedName,  # type: ignore[valid-type]
    root: Path = Path("models"),
    url: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download a published model and write a checkpoint ROOT/NAME.ckpt to translate with.

    A published generator file (CycleGAN: ResNet-9, instance norm; ``pix2pix_*``: U-Net 256,
    batch norm, dropout and batch statistics on at test time as the reference tests them,
    ``translate --eval_mode true`` turns them off) is kept beside the checkpoint as ROOT/NAME.pth.
    The CUT and FastCUT models (anti-aliased ResNet-9; FastCUT's carry its options) come in one
    archive for all six, downloaded once into ROOT/; the model's reference run folder is copied
    out of it into ROOT/NAME/. Files already in place (put there by hand) are converted without
    downloading. The checkpoint translates AtoB (the name's input domain) only.

    Args:
        name: the published model (``--help`` lists them): CycleGAN's by their reference names
            (horse2zebra, style_monet...), pix2pix's with a ``pix2pix_`` prefix, CUT's and FastCUT's
            with ``cut_`` / ``fastcut_``.
        root: folder that receives NAME.ckpt and NAME.pth (or NAME/ and the archive).
        url: the file's URL instead of the authors' server (a mirror; see also
            $CYCLEGAN_PL_MODEL_URL); for a model in an archive, the archive's.
        overwrite: download and convert again even when the files are there (the archive too).
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.
    """
    info = published_model(name)
    existing = (Path(root) / f"{name}.ckpt").is_file() and not overwrite
    checkpoint = _download_model(name, root, url=url, overwrite=overwrite, progress=progress, timeout=timeout)
    if existing:
        print(f"{checkpoint} is already there (--overwrite downloads it again). Try it:")
    else:
        print(f"{name} ({info.translates}) is ready in {checkpoint}. Try it:")
    print(f"  {info.translate_command(checkpoint)}")
    return checkpoint
