"""The ``evaluate`` command: FID and KID of a folder of generated images, or of a checkpoint.

Two ways to call it:

* ``evaluate --real DIR --fake DIR``: FID and KID between two folders (:func:`folder_metrics`).
* ``evaluate --config CONFIG --ckpt_path CKPT``: the published protocol (docs/method.md,
  "Evaluation protocol"). Every test image of the config's dataset is resized to ``size``
  (256) px without crop or flip, translated in each direction the checkpoint holds, and
  written as PNG under ``--output`` (``a2b/fake_B/<name>.png``...); the PNG files are then
  scored against the real test images of the target domain (horse2zebra: the 120 fake zebras
  from ``testA`` against the 140 zebras of ``testB``; each file once). For a paired dataset
  (pix2pix) the targets are written too (``a2b/real_B/``) and L1, PSNR and SSIM are added.

Both print one line per direction and write the numbers to a JSON file (atomically).
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import torch
from torch import nn

from cyclegan_pl.data.display import check_bands, shown_bands
from cyclegan_pl.data.native import native_info
from cyclegan_pl.directions import domains, short_name
from cyclegan_pl.errors import CheckpointError, OptionError, UserError
from cyclegan_pl.files import atomic_file, atomic_folder
from cyclegan_pl.metrics import (
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    build_inception,
    distances,
    features_of,
    folder_metrics,
    image_files,
    paired_metrics,
    resolve_device,
)
from cyclegan_pl.weights import load_checkpoint

Device = Literal["auto", "cpu", "cuda", "mps"]


def evaluate(
    real: Optional[Path] = None,
    fake: Optional[Path] = None,
    config: Optional[Path] = None,
    ckpt_path: Optional[Path] = None,
    output: Optional[Path] = None,
    data_root: Optional[Path] = None,
    size: int = 256,
    limit: Optional[int] = None,
    weights_path: Optional[Path] = None,
    feature_extractor: Optional[str] = None,
    batch_size: int = 16,
    device: Device = "auto",
    kid_subset_size: int = KID_SUBSET_SIZE,
    kid_subsets: int = KID_SUBSETS,
    seed: int = 0,
    eval_mode: Optional[bool] = None,
    bands: Optional[List[int]] = None,
) -> Dict[str, Any]:
    """FID and KID (mean ± std) of generated images: two folders, or a checkpoint on its test split.

    Give --real and --fake, or --config and --ckpt_path. Numbers compare only with numbers from
    the same tool, image count and size (see README, "Evaluation").

    Args:
        real: folder of real images (any size and format; searched recursively).
        fake: folder of generated images.
        config: a training config (its ``data`` section names the dataset).
        ckpt_path: the checkpoint to evaluate on the config's test split.
        output: with --config: folder that receives the translated PNGs and metrics.json
            (default: ``evaluation/<checkpoint name>`` beside the checkpoint folder); with --fake:
            folder for metrics.json (default: ``<fake>.metrics.json`` beside the fake folder).
        data_root: the dataset folder, instead of the config's ``data.init_args.root``.
        size: side the test images are resized to before translation (the published protocol: 256).
        limit: use only the first this many files of each folder (quick checks; not comparable).
        weights_path: the FID Inception weights (weights-inception-2015-12-05-6726825d.pth); default:
            $CYCLEGAN_PL_INCEPTION_WEIGHTS, else the torch hub cache (downloaded when online).
        feature_extractor: import path (``package.module.Name``) of an nn.Module class, or a function
            returning a module, mapping uint8 images (N, 3, H, W) to (N, d) features, used instead of
            Inception; e.g. cyclegan_pl.metrics.StandInFeatures for an offline smoke run (its numbers
            compare with nothing).
        batch_size: images per forward pass (translation and features).
        device: where to run: ``auto`` picks a GPU when there is one.
        kid_subset_size: KID subset size (capped at the smaller image set).
        kid_subsets: number of KID subsets.
        seed: seed of the KID subsets.
        eval_mode: override the model's ``eval_mode`` (None keeps the checkpoint's).
        bands: with --config, for images of other than 1 or 3 bands (which are refused without
            it): the three bands compared as RGB (or one, as gray). The real test images are then
            rendered the same way as the translations (the model's intensity mapping, 8-bit PNGs
            under ``real_<X>/``); the numbers compare with nothing published.
    """
    folders = real is not None or fake is not None
    checkpoint = config is not None or ckpt_path is not None
    if folders == checkpoint or (folders and (real is None or fake is None)):
        raise OptionError("evaluate needs --real and --fake (two folders), or --config and --ckpt_path (a checkpoint).")
    if checkpoint and (config is None or ckpt_path is None):
        raise OptionError("evaluate --config needs --ckpt_path too (and --ckpt_path needs the run's --config).")
    for option, value, minimum in (("size", size, 1), ("batch_size", batch_size, 1), ("limit", limit, 2)):
        if value is not None and value < minimum:
            raise OptionError(f"--{option} must be >= {minimum}, got {value}.")
    extractor = load_feature_extractor(feature_extractor)
    kid = {"kid_subset_size": kid_subset_size, "kid_subsets": kid_subsets, "seed": seed}
    if folders:
        assert real is not None and fake is not None
        if bands is not None:
            raise OptionError("--bands renders a checkpoint's images: it goes with --config and --ckpt_path.", "bands")
        for option, folder in (("real", real), ("fake", fake)):
            _require_rgb_files(option, folder)
        if extractor is None:
            extractor = build_inception(weights_path=weights_path)
        result = folder_metrics(real, fake, extractor, batch_size=batch_size, device=device, max_images=limit, **kid)
        results = {"fake_vs_real": {**result, "real_dir": str(real), "fake_dir": str(fake)}}
        json_path = Path(output) / "metrics.json" if output is not None else _beside(Path(fake), ".metrics.json")
    else:
        assert config is not None and ckpt_path is not None
        if output is None:
            output = Path(ckpt_path).parent.parent / "evaluation" / Path(ckpt_path).stem
        results = _evaluate_checkpoint(
            config,
            ckpt_path,
            output,
            data_root,
            size,
            limit,
            extractor,
            weights_path,
            batch_size,
            device,
            eval_mode,
            kid,
            check_bands(bands, "bands"),
        )
        json_path = output / "metrics.json"
    for name, values in results.items():
        print(_summary(name, values))
    _write_json(json_path, results)
    print(f"metrics written to {json_path}")
    return results


# --- options -----------------------------------------------------------------------------------


def load_feature_extractor(import_path: Optional[str]) -> Optional[nn.Module]:
    """The module named by ``package.module.Name`` (or ``package.module:Name``): a class or factory."""
    if import_path is None:
        return None
    module_name, _, attribute = import_path.replace(":", ".").rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise OptionError(
            f"--feature_extractor {import_path}: cannot import it ({type(err).__name__}: {err}); give "
            "package.module.Name of an nn.Module class or of a function returning one."
        ) from err
    extractor = factory if isinstance(factory, nn.Module) else factory() if callable(factory) else factory
    if not isinstance(extractor, nn.Module):
        raise OptionError(
            f"--feature_extractor {import_path} gave a {type(extractor).__name__}, not a torch nn.Module."
        )
    return extractor.eval().requires_grad_(False)


def _require_rgb_files(option: str, folder: Path) -> None:
    """The folder's first image has 1 or 3 bands (FID reads images as RGB; other bands would be cut)."""
    files = image_files(folder, max_images=1, what=f"--{option}")
    try:
        bands = native_info(files[0]).channels
    except UserError:
        return  # a photo format native reading does not take: read as RGB
    if bands not in (1, 3):
        raise OptionError(
            f"--{option} {folder}: '{files[0]}' holds {bands} bands, and FID and KID compare RGB images: evaluate the "
            "checkpoint with --config, --ckpt_path and --bands (three band indices), or write 8-bit renderings of "
            "three bands first.",
            option=option,
        )


def _beside(folder: Path, suffix: str) -> Path:
    folder = folder.resolve()
    return folder.parent / f"{folder.name}{suffix}"


# --- a checkpoint on its test split ------------------------------------------------------------


def _datamodule_from_config(config: Path, overrides: Dict[str, Any]) -> Any:
    """The config's data module, with ``overrides`` of its init_args."""
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    if not Path(config).is_file():
        raise OptionError(f"--config {config} does not exist.")
    content = yaml.safe_load(Path(config).read_text())
    data = content.get("data") if isinstance(content, dict) else None
    if not isinstance(data, dict) or "class_path" not in data:
        raise OptionError(f"--config {config} has no data section with a class_path (a training config has one).")
    data = {"class_path": data["class_path"], "init_args": {**(data.get("init_args") or {}), **overrides}}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    try:
        parsed = parser.parse_object({"data": data})
        return parser.instantiate(parsed).data
    except Exception as err:  # jsonargparse's ArgumentError and friends: the config's data is wrong
        if isinstance(err, OptionError):
            raise
        raise OptionError(f"--config {config}: its data section cannot be used ({err}).") from err


def _config_model_name(config: Path) -> Optional[str]:
    import yaml

    content = yaml.safe_load(Path(config).read_text())
    model = content.get("model") if isinstance(content, dict) else None
    class_path = model.get("class_path") if isinstance(model, dict) else None
    return str(class_path).rsplit(".", 1)[-1] if class_path else None


def _evaluate_checkpoint(
    config: Path,
    ckpt_path: Path,
    output: Path,
    data_root: Optional[Path],
    size: int,
    limit: Optional[int],
    extractor: Optional[nn.Module],
    weights_path: Optional[Path],
    batch_size: int,
    device: str,
    eval_mode: Optional[bool],
    kid: Dict[str, Any],
    bands: Optional[tuple],
) -> Dict[str, Dict[str, Any]]:
    target = resolve_device(device)
    module = load_checkpoint(ckpt_path)
    configured = _config_model_name(config)
    if configured is not None and configured != type(module).__name__:
        raise CheckpointError(
            f"--ckpt_path {ckpt_path} holds a {type(module).__name__}; the config's model is {configured}. "
            "Pass the config the checkpoint was trained with."
        )
    channels = {mapping.channels for mapping in module.intensity.values()}
    if bands is None and not channels <= {1, 3}:
        raise OptionError(
            f"FID and KID compare RGB images (the Inception network's), and this model's images have {max(channels)} "
            "bands: pass --bands with three band indices (one for gray) to compare those bands.",
            option="bands",
        )
    # Photographs are compared as the published protocol does, with the real files themselves;
    # other data through the same rendering as the translations.
    photos = bands is None and all(mapping.is_8bit for mapping in module.intensity.values())
    if eval_mode is not None:
        module.eval_mode = eval_mode
    module.to(target)
    # Test time: images resized to `size` directly (load_size = crop_size), no flip, every file.
    overrides: Dict[str, Any] = {"load_size": size, "crop_size": size, "flip": False, "max_dataset_size": limit}
    overrides.update({"num_workers": 0, "val_batch_size": batch_size})
    if data_root is not None:
        overrides["root"] = str(data_root)
    datamodule = _datamodule_from_config(config, overrides)
    datamodule.prepare_data()
    datamodule.setup("test")
    dataset = datamodule.get_dataset("test")
    paired = getattr(datamodule, "kind", "unpaired") == "paired"
    if extractor is None:
        extractor = build_inception(weights_path=weights_path)
    extractor = extractor.to(target).eval()

    results: Dict[str, Dict[str, Any]] = {}
    for translation in module.translations:
        if translation.direction not in module.trained_directions:
            print(f"{translation.direction}: skipped, the checkpoint's generator for it was never trained or imported")
            continue
        name = short_name(translation.direction)
        source, target_domain = domains(translation.direction)
        write_reals = paired or not photos
        with atomic_folder(output / name, replace=True) as staging:
            fakes, reals = _translate_split(
                module, translation, dataset, staging, source, target_domain, batch_size, target, write_reals, bands
            )
        fake_files = [output / name / relative for relative in fakes]
        if write_reals:
            real_files = [output / name / relative for relative in reals]
        else:
            real_files = list(getattr(dataset, f"files_{target_domain.lower()}"))
        values = distances(
            features_of(real_files, extractor, batch_size, target),
            features_of(fake_files, extractor, batch_size, target),
            kid["kid_subset_size"],
            kid["kid_subsets"],
            kid["seed"],
        )
        values.update(
            {
                "fake_dir": str(output / name / translation.output),
                "real_dir": str(output / name / translation.target) if write_reals else str(Path(real_files[0]).parent),
                "size": size,
            }
        )
        if paired:
            values.update(paired_metrics(output / name / translation.target, output / name / translation.output))
        results[name] = values
    if not results:
        raise CheckpointError(f"--ckpt_path {ckpt_path} holds no trained generator to evaluate.")
    return results


@torch.no_grad()
def _translate_split(
    module: Any,
    translation: Any,
    dataset: Any,
    folder: Path,
    source: str,
    target: str,
    batch_size: int,
    device: torch.device,
    write_reals: bool,
    bands: Optional[tuple],
) -> tuple:
    """Write every source file's translation (and, with ``write_reals``, each target image) once, as
    8-bit PNGs (of ``bands``, when given); their relative paths."""
    from torch.utils.data import DataLoader

    from cyclegan_pl.data.image import to_uint8, write_image

    def rendered(image: torch.Tensor) -> Any:
        return to_uint8(image[list(shown_bands(image.shape[0], bands))] if bands is not None else image)

    def real_images(images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8 and bands is None and module.intensity[target].is_8bit:
            return images  # 8-bit photos are written as they were read
        return module.prepare_images(images.to(device), target).cpu()

    def write_once(written: Dict[str, str], paths: List[str], visual: str, images_of: Any) -> None:
        keep = [i for i, path in enumerate(paths) if path not in written and path not in paths[:i]]
        if not keep:
            return
        images = images_of(keep)
        for row, index in enumerate(keep):
            relative = f"{visual}/{Path(paths[index]).stem}.png"
            if relative in written.values():
                raise OptionError(f"two test files are named {Path(paths[index]).stem}.*; rename one of them.")
            written[paths[index]] = relative
            write_image(rendered(images[row]), folder / relative)

    fakes: Dict[str, str] = {}
    reals: Dict[str, str] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        write_once(
            fakes,
            list(batch[f"{source}_paths"]),
            translation.output,
            lambda keep, batch=batch: module.translate(batch[source][keep].to(device), translation.direction).cpu(),
        )
        if write_reals:
            write_once(
                reals,
                list(batch[f"{target}_paths"]),
                translation.target,
                lambda keep, batch=batch: real_images(batch[target][keep]),
            )
    return list(fakes.values()), list(reals.values())


# --- reporting ---------------------------------------------------------------------------------


def _summary(name: str, values: Dict[str, Any]) -> str:
    line = (
        f"{name}: FID {values['fid']:.2f}  KID {values['kid_mean']:.4f} ± {values['kid_std']:.4f} "
        f"({values['fake_count']} generated vs {values['real_count']} real images)"
    )
    if "l1" in values:
        line += f"  L1 {values['l1']:.4f}  PSNR {values['psnr']:.2f} dB  SSIM {values['ssim']:.4f}"
    return line


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity (PSNR of identical images)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def _write_json(path: Path, results: Dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(_finite(results), indent=2, sort_keys=True) + "\n")
