"""The generators the CycleGAN, pix2pix and CUT authors published, and ``download-model`` for them.

:data:`PUBLISHED_MODELS` maps a name to a :class:`PublishedModel`: where the reference-format
weights lie and which architecture they must be. The CycleGAN models keep the reference's
names (``horse2zebra``, ``style_monet``...; one ResNet-9 generator with instance norm each). The
pix2pix models (U-Net 256 with batch norm) carry a ``pix2pix_`` prefix (``pix2pix_edges2shoes``,
``pix2pix_sat2map``...), since three of their names (``sat2map``, ``map2sat``,
``facades_label2photo``) are also CycleGAN models. The CUT models (anti-aliased ResNet-9, instance
norm) carry their method as prefix, ``cut_`` or ``fastcut_``, since both methods publish the same
three datasets and ``horse2zebra`` is already the CycleGAN model; the rest of the name says what
they translate as the CycleGAN names do: ``cut_horse2zebra``, ``cut_cat2dog`` and
``cut_cityscapes_label2photo`` (the reference run folders ``horse2zebra_cut_pretrained``,
``cat2dog_cut_pretrained`` and ``cityscapes_cut_pretrained``; the last was trained with
``--direction BtoA`` on the CycleGAN cityscapes set, i.e. label map -> photo, which its
reference name does not say), and the same three with ``fastcut_``.

:func:`download_model` fetches the file with :func:`~cyclegan_pl.fetch.fetch` (progress bar,
staging file renamed into place only when complete, one error line naming the URL and what to do
by hand), loads it strictly into the architecture the name implies
(:func:`~cyclegan_pl.reference_import.imported_module`: tensors only, old-PyTorch InstanceNorm
entries handled) and writes a Lightning checkpoint that ``translate``, ``test``, ``export``,
``app`` and ``fit --ckpt_path`` accept. Each published CycleGAN or pix2pix file is one generator:
the checkpoint translates in its ``AtoB`` direction only (the input domain the name starts with)
and says so when asked for the other; CUT translates A -> B only anyway.

The CUT authors publish one tar archive of reference run folders (``latest_net_G.pth``, and D and
F where published) for all six CUT names. It is downloaded once (``ROOT/cut_pretrained_models.tar``)
and only the one run folder's files are copied out of it, into ``ROOT/NAME/``; the checkpoint
holds G, D and F (those the folder lacks keep their initialization) and the options of its recipe
(FastCUT's differ from CUT's), so ``fit --ckpt_path`` continues the right one.

``$CYCLEGAN_PL_MODEL_URL`` replaces the server (``http://efrosgans.eecs.berkeley.edu``) for a
mirror with the same paths (``<mirror>/cyclegan/pretrained_models/horse2zebra.pth``,
``<mirror>/CUT/pretrained_models.tar``).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional

from cyclegan_pl.errors import DiskFullError, DownloadError, UserError
from cyclegan_pl.fetch import extract_tar_members, fetch
from cyclegan_pl.models.cut import FASTCUT_OPTIONS
from cyclegan_pl.registry import Registry

URL_ENV = "CYCLEGAN_PL_MODEL_URL"
SERVER = "http://efrosgans.eecs.berkeley.edu"
CYCLEGAN_PATH = "cyclegan/pretrained_models"
PIX2PIX_PATH = "pix2pix/models-pytorch"
PIX2PIX_PREFIX = "pix2pix_"
CUT_ARCHIVE_PATH = "CUT/pretrained_models.tar"

# Our fit commands for the published recipes (the published generator is one of the run's two).
_FIT_CONFIGS = {"horse2zebra": "configs/h2z.yaml", "summer2winter_yosemite": "configs/yosemite.yaml"}
# The CUT recipes we have a config for (per model: CUT's and FastCUT's schedules differ).
_CUT_FIT_CONFIGS = {"cut_horse2zebra": "configs/h2z_cut.yaml", "fastcut_horse2zebra": "configs/h2z_fastcut.yaml"}
# The files of a CUT run folder the published archive may hold (G always, D and F where published).
_CUT_RUN_FILES = ("latest_net_G.pth", "latest_net_D.pth", "latest_net_F.pth")
_CUT_GENERATOR_FILE = _CUT_RUN_FILES[0]


@dataclass(frozen=True)
class PublishedModel:
    """A published generator (CycleGAN, pix2pix) or CUT run folder.

    Args:
        name: the registry name (``horse2zebra``, ``pix2pix_edges2shoes``, ``cut_horse2zebra``...).
        method: ``cyclegan``, ``pix2pix`` or ``cut``: the module the checkpoint holds.
        path: the file under the server, e.g. ``cyclegan/pretrained_models/horse2zebra.pth``;
            for CUT the archive all CUT models share.
        generator: the architecture the file must load into strictly.
        norm: its normalization (``instance`` for CycleGAN and CUT, ``batch`` for pix2pix).
        translates: what it does in words, e.g. ``horse -> zebra``.
        dataset: the dataset (a name of :data:`~cyclegan_pl.data.DATASETS`) it was trained on.
        input_folder: the folder of that dataset holding images it takes (``testA``...), when
            the dataset keeps them in a folder of their own.
        run_folder: for a model inside an archive, the name of its reference run folder there
            (``horse2zebra_cut_pretrained``), found at any depth.
        hparams: module options of the recipe that differ from the module's defaults (FastCUT's),
            stored in the checkpoint so that ``fit --ckpt_path`` continues that recipe.
    """

    name: str
    method: Literal["cyclegan", "pix2pix", "cut"]
    path: str
    generator: str
    norm: str
    translates: str
    dataset: Optional[str] = None
    input_folder: Optional[str] = None
    run_folder: Optional[str] = None
    hparams: Mapping[str, Any] = field(default_factory=dict)

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
        if self.method == "cut":
            config = _CUT_FIT_CONFIGS.get(self.name)
            return f"python -m cyclegan_pl fit --config {config}" if config else None
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
# name after the method prefix, the reference run folders' prefix, what it translates, dataset,
# folder of its input images. AFHQ (cat2dog) is no dataset of ours.
_CUT_MODELS = [
    ("horse2zebra", "horse2zebra", "horse -> zebra", "horse2zebra", "testA"),
    ("cat2dog", "cat2dog", "cat -> dog (AFHQ)", None, None),
    ("cityscapes_label2photo", "cityscapes", "label map -> street photo (Cityscapes)", "cyclegan_cityscapes", None),
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
for _variant, _options in (("cut", {}), ("fastcut", FASTCUT_OPTIONS)):
    for _name, _run, _translates, _dataset, _folder in _CUT_MODELS:
        PUBLISHED_MODELS.add(
            f"{_variant}_{_name}",
            PublishedModel(
                f"{_variant}_{_name}",
                "cut",
                CUT_ARCHIVE_PATH,
                "resnet_9blocks",
                "instance",
                _translates,
                _dataset,
                _folder,
                run_folder=f"{_run}_{_variant}_pretrained",
                hparams=dict(_options),
            ),
        )
del _name, _translates, _dataset, _folder, _variant, _options, _run


def download_model(
    name: str,
    root: Path = Path("models"),
    url: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download a published model and write a checkpoint ROOT/NAME.ckpt to translate with.

    CycleGAN and pix2pix models are one generator file each, kept beside the checkpoint as
    ROOT/NAME.pth. The CUT models come in one archive for all six, downloaded once as
    ROOT/cut_pretrained_models.tar; the model's reference run folder (latest_net_G.pth, and D and
    F where published) is copied out of it into ROOT/NAME/. A .pth file or run folder already
    there (put in place by hand) is converted without downloading. Every file is loaded strictly
    into the architecture the name implies before anything is written. The checkpoint translates
    AtoB (the name's input domain) only; CycleGAN models are ResNet-9 generators with instance
    norm, ``pix2pix_*`` models U-Net 256 with batch norm (dropout and batch statistics on at test
    time, as the reference tests them; ``translate --eval_mode true`` turns them off), CUT models
    anti-aliased ResNet-9 generators with instance norm (FastCUT ones carry FastCUT's options:
    ``nce_idt`` false, ``lambda_nce`` 10, ``flip_equivariance`` true).

    Args:
        name: a published model: apple2orange, orange2apple, summer2winter_yosemite,
            winter2summer_yosemite, horse2zebra, zebra2horse, monet2photo, style_monet,
            style_cezanne, style_ukiyoe, style_vangogh, sat2map, map2sat, cityscapes_photo2label,
            cityscapes_label2photo, facades_photo2label, facades_label2photo, iphone2dslr_flower
            (CycleGAN); pix2pix_edges2shoes, pix2pix_sat2map, pix2pix_map2sat,
            pix2pix_facades_label2photo, pix2pix_day2night (pix2pix); cut_horse2zebra,
            fastcut_horse2zebra, cut_cat2dog, fastcut_cat2dog (AFHQ cat -> dog),
            cut_cityscapes_label2photo, fastcut_cityscapes_label2photo (CUT and FastCUT).
        root: folder that receives NAME.ckpt and NAME.pth (CUT: NAME/ and the archive).
        url: the file's URL instead of the authors' server (a mirror; see also
            $CYCLEGAN_PL_MODEL_URL). For CUT models, the archive's.
        overwrite: download and convert again even when the files are there (for CUT models,
            the archive too).
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.

    Returns:
        The checkpoint.

    Raises:
        DownloadError: the download failed, the archive lacks the model's run folder, or a file
            is not the network the name implies (what this call downloaded or extracted is
            removed; nothing is written).
    """
    from cyclegan_pl.reference_import import imported_module, save_imported_checkpoint

    info = PUBLISHED_MODELS.get(name)
    root = Path(root)
    checkpoint = root / f"{name}.ckpt"
    if checkpoint.is_file() and not overwrite:
        print(f"{checkpoint} is already there (--overwrite downloads it again). Try it:")
        print(f"  {translate_command(info, checkpoint)}")
        return checkpoint
    source = url or info.url()
    if info.method == "cut":
        weights = _fetch_cut_run(info, source, root, checkpoint, overwrite, progress, timeout)
    else:
        weights = _fetch_generator(info, source, root, checkpoint, overwrite, progress, timeout)
    architecture: Dict[str, Any] = dict(generator=info.generator, ngf=64, norm=info.norm)
    if info.method == "pix2pix":
        architecture["dropout"] = True  # the reference pix2pix generator's; the file cannot tell
    if info.method == "cut":
        architecture["antialias"] = True  # every published CUT network is blur-pooled
    try:
        module, start_epoch, provenance = imported_module(
            weights.path,
            model=info.method,
            direction="AtoB",
            named=architecture,
            start_epoch=0,
            hparams=dict(info.hparams),
        )
    except UserError as error:
        weights.discard()
        reason = str(error).split("\n(While importing")[0]  # import-reference's options do not apply here
        antialiased = "anti-aliased " if info.method == "cut" else ""
        raise DownloadError(
            f"{weights.what} {'does not hold' if info.method == 'cut' else 'is not'} the {antialiased}"
            f"{info.generator} generator ({info.norm} norm) that '{name}' is: {reason}\n{weights.advice}"
        ) from None
    module.card_info = {
        "name": name,
        "description": _description(info),
        "dataset": info.dataset,
        "command": info.fit_command(),
        "source": source,
    }
    provenance["published_model"] = name
    save_imported_checkpoint(module, start_epoch, provenance, checkpoint)
    print(f"{name} ({info.translates}) is ready in {checkpoint}. Try it:")
    print(f"  {translate_command(info, checkpoint)}")
    return checkpoint


@dataclass
class _Weights:
    """Reference weights in place for import, and how to undo and explain a failed import.

    Args:
        path: the ``.pth`` file or run folder to import.
        what: how messages name it (with where it came from).
        advice: what the user can do when it does not load (what was removed, the manual step).
        created: what this call downloaded or extracted, removed when the import fails.
    """

    path: Path
    what: str
    advice: str
    created: List[Path] = field(default_factory=list)

    def discard(self) -> None:
        for path in self.created:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _fetch_generator(
    info: PublishedModel, source: str, root: Path, checkpoint: Path, overwrite: bool, progress: bool, timeout: float
) -> _Weights:
    """ROOT/NAME.pth, downloaded unless it is there."""
    weights = root / f"{info.name}.pth"
    manual_step = (
        f"download {source} by hand, save it as {weights} and run this command again: it converts a file "
        f"already there without downloading (`python -m cyclegan_pl import-reference --source {weights} "
        f"--output {checkpoint}` converts it too)."
    )
    if not overwrite and weights.is_file():
        return _Weights(weights, f"{weights}", f"Replace it: {manual_step}")
    fetch(source, weights, what=f"model '{info.name}'", manual_step=manual_step, progress=progress, timeout=timeout)
    advice = f"It was removed. Try again, or {manual_step}"
    return _Weights(weights, f"The file downloaded from {source}", advice, [weights])


def _fetch_cut_run(
    info: PublishedModel, source: str, root: Path, checkpoint: Path, overwrite: bool, progress: bool, timeout: float
) -> _Weights:
    """ROOT/NAME/ holding the run folder's latest_net_*.pth, copied out of the CUT archive unless there.

    The archive is kept for the other CUT names; only the run folder's few files are read from it.
    """
    assert info.run_folder is not None
    folder = root / info.name
    archive = root / f"{info.method}_{Path(info.path).name}"
    hparams = f" --hparams '{json.dumps(dict(info.hparams))}'" if info.hparams else ""
    manual_step = (
        f"download {source} by hand and save it as {archive}, or copy its {info.run_folder}/{_CUT_GENERATOR_FILE} "
        f"(and latest_net_D.pth, latest_net_F.pth where present) into {folder}/; then run this command again: "
        f"it uses files already there without downloading (`python -m cyclegan_pl import-reference --source "
        f"{folder} --model cut{hparams} --output {checkpoint}` converts the folder too)."
    )
    if not overwrite and (folder / _CUT_GENERATOR_FILE).is_file():
        return _Weights(folder, f"{folder}/", f"Replace its files: {manual_step}")

    downloaded = overwrite or not archive.is_file()
    if downloaded:
        fetch(
            source,
            archive,
            what=f"the CUT models archive (for '{info.name}')",
            manual_step=manual_step,
            progress=progress,
            timeout=timeout,
        )
        origin, advice = f"{archive} (downloaded from {source})", f"It was removed. Try again, or {manual_step}"
    else:
        origin = f"{archive}"
        advice = f"Delete it or run again with --overwrite to download it again, or {manual_step}"
    weights = _Weights(folder, f"{folder}/, copied out of {origin},", advice, [archive] if downloaded else [])
    try:
        with tarfile.open(archive, "r:*") as handle:
            members = _run_folder_members(handle.getnames(), info.run_folder, origin)
        # A folder this call creates goes as a whole on failure; of one that was there, only the
        # files this call writes.
        weights.created += [folder] if not folder.exists() else [folder / file for file in members]
        try:
            extract_tar_members(archive, {member: folder / file for file, member in members.items()})
        except DownloadError as error:
            raise DownloadError(f"{origin}: {error}.") from None
    except DiskFullError:
        weights.discard()
        raise
    except DownloadError as error:
        weights.discard()
        raise DownloadError(f"{error} {advice}") from None
    except (tarfile.TarError, EOFError, OSError) as error:
        weights.discard()
        # tarfile lists what each decompressor said on further lines: the first one is the gist.
        reason = str(error).splitlines()[0].rstrip(":") if str(error) else "truncated"
        raise DownloadError(
            f"{origin} is not a readable tar archive ({type(error).__name__}: {reason}). {advice}"
        ) from None
    # Files of an earlier copy (or put there by hand) that this archive's folder lacks would be
    # imported with the new ones.
    for stale in set(_CUT_RUN_FILES) - set(members):
        (folder / stale).unlink(missing_ok=True)
    return weights


def _run_folder_members(names: List[str], run_folder: str, origin: str) -> Dict[str, str]:
    """{file name: member name} of the archive's ``<run_folder>/latest_net_{G,D,F}.pth``, at any depth.

    Raises:
        DownloadError: no such folder with a G file, or several (which one is meant is unclear).
    """
    folders: Dict[str, Dict[str, str]] = {}
    for member in names:
        parent, _, file = member.replace("\\", "/").rpartition("/")
        if parent.rpartition("/")[2] == run_folder and file in _CUT_RUN_FILES:
            folders.setdefault(parent, {})[file] = member
    if len(folders) > 1:
        raise DownloadError(f"{origin} holds several run folders {run_folder}/ ({', '.join(sorted(folders))}).")
    members = next(iter(folders.values()), {})
    if _CUT_GENERATOR_FILE not in members:
        raise DownloadError(f"{origin} holds no run folder {run_folder}/ with {_CUT_GENERATOR_FILE} (at any depth).")
    return members


def _description(info: PublishedModel) -> str:
    """The model card's description: the method, what it does, where the weights came from."""
    if info.method == "cut":
        variant = "FastCUT" if dict(info.hparams) == dict(FASTCUT_OPTIONS) else "CUT"
        return (
            f"The published {variant} model {info.name} ({info.translates}), converted from the reference run "
            f"folder {info.run_folder} of {Path(info.path).name}."
        )
    method = "CycleGAN" if info.method == "cyclegan" else "pix2pix"
    return (
        f"The published {method} generator {info.name} ({info.translates}), converted from the reference "
        f"implementation's {Path(info.path).name}."
    )


def translate_command(info: PublishedModel, checkpoint: Path) -> str:
    """The ``translate`` command to run on a downloaded model (with the dataset's images, if known)."""
    images = info.example_input() or "YOUR_IMAGES"
    command = f"python -m cyclegan_pl translate --ckpt_path {checkpoint} --input {images} --output out/{info.name}"
    if info.example_input():
        command += f"   # images: python -m cyclegan_pl download {info.dataset} --root data"
    return command


__all__ = ["PUBLISHED_MODELS", "PublishedModel", "download_model", "translate_command"]
