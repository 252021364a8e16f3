"""``download-model``: a model its authors published, as a checkpoint to translate with."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

from cyclegan_pl import weights
from cyclegan_pl.weights.published import published_model, published_models

#: The published models' names: ``--help`` lists them and a typo fails when the command is parsed.
PublishedName = Literal[tuple(published_models().names())]  # type: ignore[valid-type]


def download_model(name: PublishedName, **options: Any) -> Path:  # type: ignore[valid-type]
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
        **options: ``root``, ``url``, ``overwrite``, ``progress``, ``timeout``, ``verify`` of
            :func:`cyclegan_pl.weights.download_model`.
    """
    info = published_model(name)
    call = inspect.signature(weights.download_model).bind(name, **options)
    call.apply_defaults()
    existing = (Path(call.arguments["root"]) / f"{name}.ckpt").is_file() and not call.arguments["overwrite"]
    checkpoint = weights.download_model(name, **options)
    if existing:
        print(f"{checkpoint} is already there (--overwrite downloads it again). Try it:")
    else:
        print(f"{name} ({info.translates}) is ready in {checkpoint}. Try it:")
    print(f"  {info.translate_command(checkpoint)}")
    return checkpoint
