"""Published models: where their reference-format weights lie, and downloading one into a checkpoint.

Each method declares the models its authors published (``published_models``, a tuple of
:class:`PublishedModel`) beside its code; :func:`published_models` gathers them by name. An entry
is either one generator file (the CycleGAN and pix2pix models: ``<server>/<path>``) or a reference
run folder inside an archive that several models share (the CUT models: ``run_folder`` names the
folder, found at any depth, whose ``latest_net_*.pth`` files are the model).

:func:`download_model` fetches the file with :func:`~cyclegan_pl.fetch.fetch` (progress bar,
staging file renamed into place only when complete, one error line naming the URL and what to do
by hand), loads it strictly into the architecture the entry names
(:func:`~cyclegan_pl.weights.reference_import.imported_module`: tensors only, old-PyTorch
InstanceNorm entries handled) and writes a Lightning checkpoint that ``translate``, ``test``,
``export``, ``app`` and ``fit --ckpt_path`` accept. A published generator translates in its
``AtoB`` direction only (the input domain the name starts with) and says so when asked for the
other.

An archive is downloaded once (``ROOT/<method>_<archive name>``) and only the one run folder's
files are copied out of it, into ``ROOT/NAME/``; the checkpoint holds the networks the folder has
(those it lacks keep their initialization) and the options of the entry's recipe (``hparams``),
so ``fit --ckpt_path`` continues the right one.

``$CYCLEGAN_PL_MODEL_URL`` replaces the server (``http://efrosgans.eecs.berkeley.edu``) for a
mirror with the same paths (``<mirror>/cyclegan/pretrained_models/horse2zebra.pth``,
``<mirror>/CUT/pretrained_models.tar``).
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from cyclegan_pl.errors import DiskFullError, DownloadError, UserError
from cyclegan_pl.fetch import extract_tar_members, fetch
from cyclegan_pl.files import atomic_file, file_sha256, staging_folder
from cyclegan_pl.methods import METHODS
from cyclegan_pl.registry import Registry

URL_ENV = "CYCLEGAN_PL_MODEL_URL"
SERVER = "http://efrosgans.eecs.berkeley.edu"


@dataclass(frozen=True)
class PublishedModel:
    """A published generator file, or a reference run folder inside a published archive.

    Args:
        name: the name users download it by (``horse2zebra``, ``pix2pix_edges2shoes``, ``cut_horse2zebra``...).
        method: the ``method_name`` of the method that declares it (the module the checkpoint holds).
        label: what its authors call the method, for the model card (``CycleGAN``, ``pix2pix``, ``FastCUT``...).
        path: the file under the server, e.g. ``cyclegan/pretrained_models/horse2zebra.pth``;
            for a run folder, the archive it lies in.
        generator: the architecture the generator must load into strictly.
        norm: its normalization (``instance``, ``batch``).
        translates: what it does in words, e.g. ``horse -> zebra``.
        dataset: the dataset (a name of :data:`~cyclegan_pl.data.DATASETS`) it was trained on.
        input_folder: the folder of that dataset holding images it takes (``testA``...), when
            the dataset keeps them in a folder of their own.
        run_folder: for a model inside an archive, the name of its reference run folder there
            (``horse2zebra_cut_pretrained``), found at any depth.
        hparams: module options the weights need or the recipe sets beyond the module's defaults
            (an anti-aliased generator, dropout, FastCUT's options), stored in the checkpoint so
            that ``fit --ckpt_path`` continues that recipe.
        fit_command: our command that trains this model's recipe, when we have one.
        sha256: the sha256 of the published file (of the archive, for a run folder), 64 lowercase
            hex digits, which :func:`download_model` checks; None where no value could be
            confirmed: the file is then checked by its architecture only (see the README).
    """

    name: str
    method: str
    label: str
    path: str
    generator: str
    norm: str
    translates: str
    dataset: Optional[str] = None
    input_folder: Optional[str] = None
    run_folder: Optional[str] = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    fit_command: Optional[str] = None
    sha256: Optional[str] = None

    def url(self, server: Optional[str] = None) -> str:
        """The file's URL on ``server`` (default: $CYCLEGAN_PL_MODEL_URL, else the authors' server)."""
        base = server or os.environ.get(URL_ENV) or SERVER
        return f"{base.rstrip('/')}/{self.path}"

    def example_input(self, data_root: str = "data") -> Optional[str]:
        """Images to try the model on: the dataset's test folder of its input domain, when known."""
        if self.dataset is None or self.input_folder is None:
            return None
        return f"{data_root}/{self.dataset}/{self.input_folder}"

    def translate_command(self, checkpoint: Path) -> str:
        """The ``translate`` command to run on its downloaded checkpoint (with the dataset's images, if known)."""
        images = self.example_input() or "YOUR_IMAGES"
        command = f"python -m cyclegan_pl translate --ckpt_path {checkpoint} --input {images} --output out/{self.name}"
        if self.example_input():
            command += f"   # images: python -m cyclegan_pl download {self.dataset} --root data"
        return command

    def description(self) -> str:
        """The model card's description: the method, what it does, where the weights came from."""
        source = (
            f"the reference run folder {self.run_folder} of" if self.run_folder else "the reference implementation's"
        )
        what = "model" if self.run_folder else "generator"
        return (
            f"The published {self.label} {what} {self.name} ({self.translates}), converted from {source} "
            f"{Path(self.path).name}."
        )


def published_models() -> Registry[PublishedModel]:
    """Every method's published models, by name (the methods' declarations, in registration order)."""
    models: Registry[PublishedModel] = Registry("published model")
    for method in METHODS.classes():
        for entry in method.published_models:
            models.add(entry.name, entry)
    return models


def published_model(name: str) -> PublishedModel:
    """The published model called ``name``.

    Raises:
        OptionError: no method publishes it; the message lists the names.
    """
    return published_models().get(name)


def download_model(
    name: str,
    root: Path = Path("models"),
    url: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
    verify: bool = True,
) -> Path:
    """Download a published model and write a checkpoint ROOT/NAME.ckpt to translate with.

    A generator file is kept beside the checkpoint as ROOT/NAME.pth; a run folder is copied out
    of its archive (downloaded once, kept for the other models in it) into ROOT/NAME/. A .pth
    file, archive or run folder already there (put in place by hand) is converted without
    downloading, and a checkpoint already there is returned as it is unless ``overwrite``.

    Every file is checked before anything is written: a downloaded file and an archive or
    ``.pth`` file in place against the sha256 its entry records (:attr:`PublishedModel.sha256`),
    then by loading it strictly into the architecture the entry names. Where no sha256 is recorded
    (see the README), and for a run folder copied by hand, the architecture is the only check, and
    a note says so. A download is staged beside its target and replaces the files there (an
    earlier NAME.pth, the archive, the run folder's files, the checkpoint) only once it passed
    both checks, so a failed ``overwrite`` leaves the previous model as it was. The checkpoint
    translates AtoB (the name's input domain) only.

    Args:
        name: a published model (see :func:`published_models`).
        root: folder that receives NAME.ckpt and NAME.pth (or NAME/ and the archive).
        url: the file's URL instead of the authors' server (a mirror; see also
            $CYCLEGAN_PL_MODEL_URL); for a model in an archive, the archive's.
        overwrite: download and convert again even when the files are there (the archive too).
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.
        verify: check the file's sha256 against the recorded one; False accepts another file on
            purpose (a mirror you trust that serves a file of its own). The architecture is
            checked either way.

    Returns:
        The checkpoint.

    Raises:
        DownloadError: the download failed, a file's sha256 is not the recorded one, the archive
            lacks the model's run folder, or a file is not the network the name implies (what this
            call downloaded or extracted is not kept; files already there are unchanged).
    """
    from cyclegan_pl.weights.reference_import import save_imported_checkpoint

    info = published_model(name)
    root = Path(root)
    checkpoint = root / f"{name}.ckpt"
    if checkpoint.is_file() and not overwrite:
        return checkpoint
    source = url or info.url()
    fetcher = _Fetcher(info, source, checkpoint, progress, timeout, verify)
    if info.run_folder is not None:
        imported = _run_folder_model(fetcher, root, overwrite)
    else:
        imported = _generator_model(fetcher, root, overwrite)
    module, start_epoch, provenance = imported
    module.card_info = {
        "name": name,
        "description": info.description(),
        "dataset": info.dataset,
        "command": info.fit_command,
        "source": source,
    }
    provenance["published_model"] = name
    save_imported_checkpoint(module, start_epoch, provenance, checkpoint)
    return checkpoint


#: What :func:`imported_module` returns: the module, its start epoch and its provenance.
Imported = Tuple[Any, int, Dict[str, Any]]


@dataclass
class _Fetcher:
    """One model's download: where from, how, and the checks every file it uses passes."""

    info: PublishedModel
    source: str
    checkpoint: Path
    progress: bool
    timeout: float
    verify: bool

    def fetch(self, destination: Path, what: str, manual_step: str) -> None:
        fetch(
            self.source,
            destination,
            what=what,
            manual_step=manual_step,
            progress=self.progress,
            timeout=self.timeout,
        )

    def check_sha256(self, path: Path, what: str, advice: str) -> None:
        """Refuse ``path`` unless it has the recorded sha256 (or there is none, or verify is off)."""
        info = self.info
        if not self.verify:
            return
        if info.sha256 is None:
            print(
                f"note: no sha256 of the published {info.name} file is recorded in cyclegan_pl, so {what} is checked "
                f"by its architecture only (it must load strictly into the {info.generator} generator)."
            )
            return
        actual = file_sha256(path)
        if actual != info.sha256:
            error = DownloadError(
                f"{what} has sha256 {actual}, but the published {info.name} file has sha256 {info.sha256}: it is not "
                f"the file its authors published (a broken or changed download, or another file). {advice} If you "
                "trust this file on purpose (a mirror of your own), pass verify=False."
            )
            error.options = ("verify",)
            raise error

    def imported(self, path: Path, what: str, advice: str, shown_as: Optional[Path] = None) -> Imported:
        """The module the reference weights at ``path`` make, loaded strictly into the entry's architecture."""
        from cyclegan_pl.weights.reference_import import imported_module

        info = self.info
        try:
            return imported_module(
                path,
                model=info.method,
                direction="AtoB",
                named=dict(generator=info.generator, ngf=64, norm=info.norm),
                start_epoch=0,
                hparams=dict(info.hparams),
                shown_as=shown_as,
            )
        except UserError as error:
            reason = str(error).split("\n(While importing")[0]  # import-reference's options do not apply here
            if shown_as is not None:
                reason = reason.replace(str(path), str(shown_as))
            antialiased = "anti-aliased " if info.hparams.get("antialias") else ""
            raise DownloadError(
                f"{what} {'does not hold' if info.run_folder else 'is not'} the {antialiased}{info.generator} "
                f"generator ({info.norm} norm) that '{info.name}' is: {reason}\n{advice}"
            ) from None


def _generator_model(fetcher: _Fetcher, root: Path, overwrite: bool) -> Imported:
    """The model of ROOT/NAME.pth, downloaded unless it is there (and then only kept once it passed)."""
    info, source = fetcher.info, fetcher.source
    weights = root / f"{info.name}.pth"
    manual_step = (
        f"download {source} by hand, save it as {weights} and run this command again: it converts a file "
        f"already there without downloading (`python -m cyclegan_pl import-reference --source {weights} "
        f"--output {fetcher.checkpoint}` converts it too)."
    )
    if not overwrite and weights.is_file():
        advice = f"Replace it: {manual_step}"
        fetcher.check_sha256(weights, str(weights), advice)
        return fetcher.imported(weights, str(weights), advice)
    kept = f" ({weights}, already there, is unchanged)" if weights.exists() else ""
    advice = f"It was removed{kept}. Try again, or {manual_step}"
    what = f"The file downloaded from {source}"
    with atomic_file(weights) as staged:
        fetcher.fetch(staged, f"model '{info.name}'", manual_step)
        fetcher.check_sha256(staged, what, advice)
        return fetcher.imported(staged, what, advice, shown_as=weights)


def _run_folder_model(fetcher: _Fetcher, root: Path, overwrite: bool) -> Imported:
    """The model of ROOT/NAME/ holding the run folder's latest_net_*.pth, copied out of the archive unless there.

    The archive is kept for the other models in it; only the run folder's few files are read from
    it, into a staging folder, and they replace those of ROOT/NAME/ once they passed.
    """
    info, source = fetcher.info, fetcher.source
    assert info.run_folder is not None
    folder = root / info.name
    archive = root / f"{info.method}_{Path(info.path).name}"
    run_files, generator_file = _run_files(info)
    hparams = f" --hparams '{json.dumps(dict(info.hparams))}'" if info.hparams else ""
    others = ", ".join(file for file in run_files if file != generator_file)
    manual_step = (
        f"download {source} by hand and save it as {archive}, or copy its {info.run_folder}/{generator_file} "
        f"(and {others} where present) into {folder}/; then run this command again: "
        f"it uses files already there without downloading (`python -m cyclegan_pl import-reference --source "
        f"{folder} --model {info.method}{hparams} --output {fetcher.checkpoint}` converts the folder too)."
    )
    if not overwrite and (folder / generator_file).is_file():
        print(
            f"note: {folder}/ is used as it is: files copied by hand are checked by their architecture only "
            "(the recorded sha256 is the archive's)."
        )
        return fetcher.imported(folder, f"{folder}/", f"Replace its files: {manual_step}")
    if not overwrite and archive.is_file():
        origin = f"{archive}"
        advice = f"Delete it or run again with --overwrite to download it again, or {manual_step}"
        fetcher.check_sha256(archive, origin, advice)
        return _from_archive(fetcher, archive, folder, origin, advice)
    kept = f" ({archive.name} and {folder.name}/, already there, are unchanged)" if archive.exists() else ""
    origin, advice = f"{archive} (downloaded from {source})", f"It was removed{kept}. Try again, or {manual_step}"
    with atomic_file(archive) as staged:
        fetcher.fetch(staged, f"the {info.label} models archive (for '{info.name}')", manual_step)
        fetcher.check_sha256(staged, origin, advice)
        return _from_archive(fetcher, staged, folder, origin, advice)


def _from_archive(fetcher: _Fetcher, archive: Path, folder: Path, origin: str, advice: str) -> Imported:
    """The model of the archive's run folder: its files copied out into a staging folder, imported,
    then moved into ``folder`` (which keeps any other file it holds)."""
    info = fetcher.info
    run_files, generator_file = _run_files(info)
    assert info.run_folder is not None
    with staging_folder(folder) as staged:
        try:
            with tarfile.open(archive, "r:*") as handle:
                members = _run_folder_members(handle.getnames(), info.run_folder, run_files, generator_file, origin)
            try:
                extract_tar_members(archive, {member: staged / file for file, member in members.items()})
            except DownloadError as error:
                raise DownloadError(f"{origin}: {error}.") from None
        except DiskFullError:
            raise
        except DownloadError as error:
            raise DownloadError(f"{error} {advice}") from None
        except (tarfile.TarError, EOFError, OSError) as error:
            # tarfile lists what each decompressor said on further lines: the first one is the gist.
            reason = str(error).splitlines()[0].rstrip(":") if str(error) else "truncated"
            raise DownloadError(
                f"{origin} is not a readable tar archive ({type(error).__name__}: {reason}). {advice}"
            ) from None
        imported = fetcher.imported(staged, f"{folder}/, copied out of {origin},", advice, shown_as=folder)
        folder.mkdir(parents=True, exist_ok=True)
        for file in members:
            os.replace(staged / file, folder / file)
        # Files of an earlier copy (or put there by hand) that this archive's folder lacks would be
        # imported with the new ones.
        for stale in set(run_files) - set(members):
            (folder / stale).unlink(missing_ok=True)
    return imported


def _run_files(info: PublishedModel) -> Tuple[Tuple[str, ...], str]:
    """The ``latest_net_<NAME>.pth`` files of the model's reference run folder, and its generator's."""
    method = METHODS.get(info.method)
    files = tuple(f"latest_net_{name}.pth" for name in method.reference_networks)
    generator = next(iter(method.translations)).generator
    return files, next(
        f"latest_net_{name}.pth" for name, attr in method.reference_networks.items() if attr == generator
    )


def _run_folder_members(
    names: List[str], run_folder: str, run_files: Tuple[str, ...], generator_file: str, origin: str
) -> Dict[str, str]:
    """{file name: member name} of the archive's ``<run_folder>/<run_files>``, at any depth.

    Raises:
        DownloadError: no such folder with a G file, or several (which one is meant is unclear).
    """
    folders: Dict[str, Dict[str, str]] = {}
    for member in names:
        parent, _, file = member.replace("\\", "/").rpartition("/")
        if parent.rpartition("/")[2] == run_folder and file in run_files:
            folders.setdefault(parent, {})[file] = member
    if len(folders) > 1:
        raise DownloadError(f"{origin} holds several run folders {run_folder}/ ({', '.join(sorted(folders))}).")
    members = next(iter(folders.values()), {})
    if generator_file not in members:
        raise DownloadError(f"{origin} holds no run folder {run_folder}/ with {generator_file} (at any depth).")
    return members


__all__ = ["PublishedModel", "download_model", "published_model", "published_models"]
