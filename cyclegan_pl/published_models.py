"""The generators the CycleGAN and pix2pix authors published, and ``download-model`` for them.

:data:`PUBLISHED_MODELS` maps a name to a :class:`PublishedModel`: where the reference-format
generator file lies and which architecture it must be. The CycleGAN models keep the reference's
names (``horse2zebra``, ``style_monet``...; one ResNet-9 generator with instance norm each). The
pix2pix models (U-Net 256 with batch norm) carry a ``pix2pix_`` prefix (``pix2pix_edges2shoes``,
``pix2pix_sat2map``...), since three of their names (``sat2map``, ``map2sat``,
``facades_label2photo``) are also CycleGAN models.

:func:`download_model` fetches the file with :func:`~cyclegan_pl.fetch.fetch` (progress bar,
staging file renamed into place only when complete, one error line naming the URL and what to do
by hand), loads it strictly into the architecture the name implies
(:func:`~cyclegan_pl.reference_import.imported_module`: tensors only, old-PyTorch InstanceNorm
entries handled) and writes a Lightning checkpoint that ``translate``, ``test``, ``export``,
``app`` and ``fit --ckpt_path`` accept. Each published file is one generator: the checkpoint
translates in its ``AtoB`` direction only (the input domain the name starts with) and says so
when asked for the other.

``$CYCLEGAN_PL_MODEL_URL`` replaces the server (``http://efrosgans.eecs.berkeley.edu``) for a
mirror with the same paths (``<mirror>/cyclegan/pretrained_models/horse2zebra.pth``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from cyclegan_pl.errors import DownloadError, UserError
from cyclegan_pl.fetch import fetch
from cyclegan_pl.registry import Registry

URL_ENV = "CYCLEGAN_PL_MODEL_URL"
SERVER = "http://efrosgans.eecs.berkeley.edu"
CYCLEGAN_PATH = "cyclegan/pretrained_models"
PIX2PIX_PATH = "pix2pix/models-pytorch"
PIX2PIX_PREFIX = "pix2pix_"

# Our fit commands for the published recipes (the published generator is one of the run's two).
_FIT_CONFIGS = {"horse2zebra": "configs/h2z.yaml", "summer2winter_yosemite": "configs/yosemite.yaml"}


@dataclass(frozen=True)
class PublishedModel:
    """A published generator.

    Args:
        name: the registry name (``horse2zebra``, ``pix2pix_edges2shoes``...).
        method: ``cyclegan`` or ``pix2pix``: the module the checkpoint holds.
        path: the file under the server, e.g. ``cyclegan/pretrained_models/horse2zebra.pth``.
        generator: the architecture the file must load into strictly.
        norm: its normalization (``instance`` for CycleGAN, ``batch`` for pix2pix).
        translates: what it does in words, e.g. ``horse -> zebra``.
        dataset: the dataset (a name of :data:`~cyclegan_pl.data.DATASETS`) it was trained on.
        input_folder: the folder of that dataset holding images it takes (``testA``...), when
            the dataset keeps them in a folder of their own.
    """

    name: str
    method: Literal["cyclegan", "pix2pix"]
    path: str
    generator: str
    norm: str
    translates: str
    dataset: Optional[str] = None
    input_folder: Optional[str] = None

    def url(self, server: Optional[str] = None) -> str:
        """The file's URL on ``server`` (default: $CYCLEGAN_PL_MODEL_URL, else the authors' server)."""
        base = server or os.environ.get(URL_ENV) or SERVER
        return f"{base.rstrip('/')}/{self.path}"

    def example_input(self, data_root: str = "data") -> Optional[str]:
        """Images to try the model on: the dataset's test folder of its input domain, when known."""
        if self.dataset is None or self.input_folder is None:
            return None
        return f"{data_root}/{self.dataset}/{self.input_folder}"

    def fit_command(self) -> Optional[str]:
        """Our command that trains this model's recipe, when the dataset is one we download."""
        if self.method == "pix2pix":
            return "python -m cyclegan_pl fit --config configs/facades.yaml" if self.dataset == "facades" else None
        if self.dataset in _FIT_CONFIGS:
            return f"python -m cyclegan_pl fit --config {_FIT_CONFIGS[self.dataset]}"
        if self.dataset is None:
            return None
        return (
            f"python -m cyclegan_pl fit --config configs/h2z.yaml --data.init_args.root data/{self.dataset} "
            f"--data.init_args.dataset {self.dataset} --trainer.default_root_dir runs/{self.dataset}"
        )


#: The published generators by name.
PUBLISHED_MODELS: Registry[PublishedModel] = Registry("published model")

# name, what it translates, dataset, folder of its input images
_CYCLEGAN_MODELS = [
    ("apple2orange", "apple -> orange", "apple2orange", "testA"),
    ("orange2apple", "orange -> apple", "apple2orange", "testB"),
    ("summer2winter_yosemite", "summer -> winter (Yosemite)", "summer2winter_yosemite", "testA"),
    ("winter2summer_yosemite", "winter -> summer (Yosemite)", "summer2winter_yosemite", "testB"),
    ("horse2zebra", "horse -> zebra", "horse2zebra", "testA"),
    ("zebra2horse", "zebra -> horse", "horse2zebra", "testB"),
    ("monet2photo", "Monet painting -> photo", "monet2photo", "testA"),
    ("style_monet", "photo -> Monet painting", "monet2photo", "testB"),
    ("style_cezanne", "photo -> Cezanne painting", "cezanne2photo", "testB"),
    ("style_ukiyoe", "photo -> ukiyo-e print", "ukiyoe2photo", "testB"),
    ("style_vangogh", "photo -> Van Gogh painting", "vangogh2photo", "testB"),
    ("sat2map", "satellite photo -> map", "cyclegan_maps", "testA"),
    ("map2sat", "map -> satellite photo", "cyclegan_maps", "testB"),
    ("cityscapes_photo2label", "street photo -> label map (Cityscapes)", "cyclegan_cityscapes", None),
    ("cityscapes_label2photo", "label map -> street photo (Cityscapes)", "cyclegan_cityscapes", None),
    ("facades_photo2label", "facade photo -> label map", "cyclegan_facades", None),
    ("facades_label2photo", "label map -> facade photo", "cyclegan_facades", None),
    ("iphone2dslr_flower", "iPhone flower photo -> DSLR-like shallow depth of field", "iphone2dslr_flower", "testA"),
]
# The pix2pix sets are side-by-side pairs: there is no folder of input images alone.
_PIX2PIX_MODELS = [
    ("edges2shoes", "edge map -> shoe photo", "edges2shoes"),
    ("sat2map", "satellite photo -> map", "maps"),
    ("map2sat", "map -> satellite photo", "maps"),
    ("facades_label2photo", "label map -> facade photo", "facades"),
    ("day2night", "daytime photo -> night photo", "night2day"),
]

for _name, _translates, _dataset, _folder in _CYCLEGAN_MODELS:
    PUBLISHED_MODELS.add(
        _name,
        PublishedModel(
            _name,
            "cyclegan",
            f"{CYCLEGAN_PATH}/{_name}.pth",
            "resnet_9blocks",
            "instance",
            _translates,
            _dataset,
            _folder,
        ),
    )
for _name, _translates, _dataset in _PIX2PIX_MODELS:
    PUBLISHED_MODELS.add(
        PIX2PIX_PREFIX + _name,
        PublishedModel(
            PIX2PIX_PREFIX + _name, "pix2pix", f"{PIX2PIX_PATH}/{_name}.pth", "unet_256", "batch", _translates, _dataset
        ),
    )
del _name, _translates, _dataset, _folder


def download_model(
    name: str,
    root: Path = Path("models"),
    url: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download a published generator and write a checkpoint ROOT/NAME.ckpt to translate with.

    The reference-format file is kept beside it as ROOT/NAME.pth; one already there (downloaded
    by hand) is converted without downloading. Each file is loaded strictly into the
    architecture the name implies before anything is written. The checkpoint translates AtoB
    (the name's input domain) only; CycleGAN models are ResNet-9 generators with instance norm,
    ``pix2pix_*`` models U-Net 256 with batch norm (dropout and batch statistics on at test time,
    as the reference tests them; ``translate --eval_mode true`` turns them off).

    Args:
        name: a published model: apple2orange, orange2apple, summer2winter_yosemite,
            winter2summer_yosemite, horse2zebra, zebra2horse, monet2photo, style_monet,
            style_cezanne, style_ukiyoe, style_vangogh, sat2map, map2sat, cityscapes_photo2label,
            cityscapes_label2photo, facades_photo2label, facades_label2photo, iphone2dslr_flower
            (CycleGAN); pix2pix_edges2shoes, pix2pix_sat2map, pix2pix_map2sat,
            pix2pix_facades_label2photo, pix2pix_day2night (pix2pix).
        root: folder that receives NAME.ckpt and NAME.pth.
        url: the file's URL instead of the authors' server (a mirror; see also
            $CYCLEGAN_PL_MODEL_URL).
        overwrite: download and convert again even when the files are there.
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.

    Returns:
        The checkpoint.

    Raises:
        DownloadError: the download failed or the file is not the generator the name implies
            (a downloaded file is removed; nothing is written).
    """
    from cyclegan_pl.reference_import import imported_module, save_imported_checkpoint

    info = PUBLISHED_MODELS.get(name)
    root = Path(root)
    weights, checkpoint = root / f"{name}.pth", root / f"{name}.ckpt"
    if checkpoint.is_file() and not overwrite:
        print(f"{checkpoint} is already there (--overwrite downloads it again). Try it:")
        print(f"  {translate_command(info, checkpoint)}")
        return checkpoint
    source = url or info.url()
    manual_step = (
        f"download {source} by hand, save it as {weights} and run this command again: it converts a file "
        f"already there without downloading (`python -m cyclegan_pl import-reference --source {weights} "
        f"--output {checkpoint}` converts it too)."
    )
    downloaded = overwrite or not weights.is_file()
    if downloaded:
        fetch(source, weights, what=f"model '{name}'", manual_step=manual_step, progress=progress, timeout=timeout)
    architecture = dict(generator=info.generator, ngf=64, norm=info.norm)
    if info.method == "pix2pix":
        architecture["dropout"] = True  # the reference pix2pix generator's; the file cannot tell
    try:
        module, start_epoch, provenance = imported_module(
            weights, model=info.method, direction="AtoB", named=architecture, start_epoch=0
        )
    except UserError as error:
        if downloaded:
            weights.unlink(missing_ok=True)
        what = f"The file downloaded from {source}" if downloaded else f"{weights}"
        reason = str(error).split("\n(While importing")[0]  # import-reference's options do not apply here
        raise DownloadError(
            f"{what} is not the {info.generator} generator ({info.norm} norm) that '{name}' is: {reason}\n"
            f"{'It was removed. Try again, or ' if downloaded else 'Replace it: '}{manual_step}"
        ) from None
    module.card_info = {
        "name": name,
        "description": (
            f"The published {'CycleGAN' if info.method == 'cyclegan' else 'pix2pix'} generator {name} "
            f"({info.translates}), converted from the reference implementation's {Path(info.path).name}."
        ),
        "dataset": info.dataset,
        "command": info.fit_command(),
        "source": source,
    }
    provenance["published_model"] = name
    save_imported_checkpoint(module, start_epoch, provenance, checkpoint)
    print(f"{name} ({info.translates}) is ready in {checkpoint}. Try it:")
    print(f"  {translate_command(info, checkpoint)}")
    return checkpoint


def translate_command(info: PublishedModel, checkpoint: Path) -> str:
    """The ``translate`` command to run on a downloaded model (with the dataset's images, if known)."""
    images = info.example_input() or "YOUR_IMAGES"
    command = f"python -m cyclegan_pl translate --ckpt_path {checkpoint} --input {images} --output out/{info.name}"
    if info.example_input():
        command += f"   # images: python -m cyclegan_pl download {info.dataset} --root data"
    return command


__all__ = ["PUBLISHED_MODELS", "PublishedModel", "download_model", "translate_command"]
