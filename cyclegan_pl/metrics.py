"""FID, KID and paired metrics between folders of images (what ``evaluate`` reports).

* :func:`folder_features` reads every image of a folder (any size and format the data code
  reads, as 8-bit RGB) and runs a feature extractor on batches of equal-sized images.
* :func:`fid_from_features`: Fréchet distance between the Gaussians fitted to two feature sets
  (the standard FID when the features are the 2048-d pool features of the FID Inception network).
* :func:`kid_from_features`: Kernel Inception Distance, the unbiased MMD estimate with the cubic
  polynomial kernel ``k(x, y) = (x·y / d + 1)^3``, averaged over random subsets as torchmetrics,
  torch-fidelity and clean-fid do (subset size 1000 capped at the smaller set, 100 subsets).
* :func:`folder_metrics` puts them together; :func:`paired_metrics` compares outputs with their
  targets file by file (L1, PSNR, SSIM) for paired methods such as pix2pix.

The default extractor is torchmetrics' copy of the FID Inception network (torch-fidelity's
``inception-v3-compat``), which takes uint8 images at any size and resizes them to 299 px
itself, with the TensorFlow-compatible bilinear resize of the reference FID code. Its weights
(:data:`INCEPTION_WEIGHTS_FILE`) come from ``weights_path``, else ``$CYCLEGAN_PL_INCEPTION_WEIGHTS``,
else the torch hub cache (downloaded there when online). Whatever the source, the file must have
the published sha256 (:data:`INCEPTION_WEIGHTS_SHA256`) and is read as tensors only
(:func:`~cyclegan_pl.files.load_torch_file`), never by torch-fidelity's own unpickling loader: a
file that is not the published one would give FIDs that compare with nothing, and a crafted one
could run code. A deliberate other file (a conversion of your own; tests' stand-ins) is accepted
when its sha256 is given by ``$CYCLEGAN_PL_INCEPTION_SHA256`` or the ``weights_sha256`` argument.
"""

from __future__ import annotations

import math
import os
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from cyclegan_pl.data.image import list_images, read_image, read_image_size
from cyclegan_pl.errors import CheckpointError, DataLayoutError, DownloadError, OptionError, WeightsUnavailableError
from cyclegan_pl.files import file_sha256, load_torch_file

PathLike = Union[str, "os.PathLike[str]"]

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS_FILE
#: The sha256 of the published weights file. torch-fidelity's code and docs give only its first
#: 8 hex digits (the 6726825d of the name, which torch hub's naming convention makes the hash
#: prefix); the full value is the one several independent projects record for this file
#: (95,628,359 bytes), and it begins with that documented prefix.
INCEPTION_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
#: The first hex digits of the weights file's sha256, as its name carries them.
INCEPTION_WEIGHTS_SHA256_PREFIX = INCEPTION_WEIGHTS_SHA256[:8]
#: The size in bytes of the published weights file.
INCEPTION_WEIGHTS_BYTES = 95_628_359
#: A local copy of the Inception weights, used when no ``weights_path`` is given.
INCEPTION_WEIGHTS_ENV = "CYCLEGAN_PL_INCEPTION_WEIGHTS"
#: The sha256 a deliberate other weights file must have (a conversion of your own, a test's
#: stand-in), instead of the published file's; the ``weights_sha256`` argument does the same.
INCEPTION_SHA256_ENV = "CYCLEGAN_PL_INCEPTION_SHA256"
#: When set (to anything), nothing is downloaded: FID needs its weights already on disk.
OFFLINE_ENV = "CYCLEGAN_PL_OFFLINE"

KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100

_SHA256 = re.compile(r"[0-9a-f]{64}")
# No file this much larger than the published one can be the Inception weights: it is refused
# by its size, without reading it through to hash it.
_MAX_WEIGHTS_BYTES = 2 * INCEPTION_WEIGHTS_BYTES


# --- the Inception network ---------------------------------------------------------------------


def hub_checkpoint_dir() -> str:
    """Where torch hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def _how_to_provide() -> str:
    return (
        f"pass a copy of {INCEPTION_WEIGHTS_FILE} (sha256 {INCEPTION_WEIGHTS_SHA256}, from "
        f"{INCEPTION_WEIGHTS_URL}) as weights_path (`evaluate --weights_path`, the FID callback's "
        f"weights_path), set {INCEPTION_WEIGHTS_ENV} to it, or put it in the torch hub cache "
        f"{hub_checkpoint_dir()} (set TORCH_HOME to move it)"
    )


def expected_inception_sha256(weights_sha256: Optional[str] = None) -> str:
    """The sha256 the Inception weights file must have: ``weights_sha256``, else
    ``$CYCLEGAN_PL_INCEPTION_SHA256``, else the published file's (:data:`INCEPTION_WEIGHTS_SHA256`).

    Raises:
        OptionError: the given value is not 64 hex digits.
    """
    option = "weights_sha256"
    if weights_sha256 is None and os.environ.get(INCEPTION_SHA256_ENV):
        weights_sha256, option = os.environ[INCEPTION_SHA256_ENV], INCEPTION_SHA256_ENV
    if weights_sha256 is None:
        return INCEPTION_WEIGHTS_SHA256
    value = weights_sha256.strip().lower()
    if not _SHA256.fullmatch(value):
        raise OptionError(f"{option} must be a sha256 (64 hex digits), got {weights_sha256!r}.")
    return value


def inception_weights(weights_path: Optional[PathLike] = None) -> str:
    """The Inception weights file to use: ``weights_path``, else ``$CYCLEGAN_PL_INCEPTION_WEIGHTS``,
    else the torch hub cache's copy, downloaded there when it is missing (refused when
    ``$CYCLEGAN_PL_OFFLINE`` is set). A download is checked against the published sha256 (or
    the one given by ``$CYCLEGAN_PL_INCEPTION_SHA256``) and removed again if it differs.

    Raises:
        WeightsUnavailableError: the given file does not exist, or the weights are not on this
            machine and cannot be downloaded; one line naming the file, its sha256 and where to put it.
        CheckpointError: the download is not the expected file.
    """
    source = "weights_path"
    if weights_path is None and os.environ.get(INCEPTION_WEIGHTS_ENV):
        weights_path, source = os.environ[INCEPTION_WEIGHTS_ENV], INCEPTION_WEIGHTS_ENV
    if weights_path is not None:
        weights_path = os.fspath(weights_path)
        if not os.path.isfile(weights_path):
            raise WeightsUnavailableError(f"FID {source} {weights_path} does not exist; {_how_to_provide()}.")
        return weights_path
    cached = Path(hub_checkpoint_dir()) / INCEPTION_WEIGHTS_FILE
    if cached.is_file():
        return str(cached)
    if os.environ.get(OFFLINE_ENV):
        raise WeightsUnavailableError(
            f"{OFFLINE_ENV} is set and the FID Inception weights are not on this machine: {_how_to_provide()}, "
            "or unset the variable to download them."
        )
    from cyclegan_pl.fetch import fetch

    try:
        fetch(
            INCEPTION_WEIGHTS_URL,
            cached,
            what="the FID Inception weights",
            manual_step=f"{_how_to_provide()}.",
        )
    except DownloadError as error:
        raise WeightsUnavailableError(str(error)) from error
    try:
        check_inception_sha256(cached)
    except CheckpointError:
        cached.unlink(missing_ok=True)  # ours, just written: never trusted on a later run
        raise
    return str(cached)


def check_inception_sha256(path: PathLike, weights_sha256: Optional[str] = None) -> None:
    """Refuse a weights file whose sha256 is not the expected one (:func:`expected_inception_sha256`).

    Raises:
        CheckpointError: one line naming the file, its sha256 (or size) and the expected sha256.
    """
    expected = expected_inception_sha256(weights_sha256)
    size = os.path.getsize(path)
    if size > _MAX_WEIGHTS_BYTES:
        found = f"is {size} bytes (the published file has {INCEPTION_WEIGHTS_BYTES})"
    else:
        actual = file_sha256(path)
        if actual == expected:
            return
        found = f"has sha256 {actual}"
    published = expected == INCEPTION_WEIGHTS_SHA256
    raise CheckpointError(
        f"FID Inception weights file {path} {found}, not the "
        + (
            f"published {INCEPTION_WEIGHTS_FILE} (sha256 {expected}, from {INCEPTION_WEIGHTS_URL})"
            if published
            else f"expected sha256 {expected} (set by {INCEPTION_SHA256_ENV} or weights_sha256)"
        )
        + f": use the published file, or if this is a deliberate copy of your own, set {INCEPTION_SHA256_ENV} "
        "(the FID callback's weights_sha256) to its sha256; its FID would not compare with published numbers."
    )


def load_inception_weights(path: PathLike, weights_sha256: Optional[str] = None) -> Dict[str, Tensor]:
    """The tensors of an Inception weights file, after its sha256 check, loaded weights-only.

    Raises:
        CheckpointError: the file has another sha256, holds code or is not a state_dict of tensors.
    """
    check_inception_sha256(path, weights_sha256)
    state_dict = load_torch_file(path, what="FID Inception weights file")
    if not isinstance(state_dict, dict) or not all(
        isinstance(key, str) and isinstance(value, Tensor) for key, value in state_dict.items()
    ):
        raise CheckpointError(f"FID Inception weights file {path} is not a state_dict of tensors.")
    return state_dict


# torch-fidelity's network loads its weights in its constructor through a full, code-running
# unpickler (from a path, or from torch hub's cache); it is built here with a loader that hands it
# tensors read by load_inception_weights instead, so no file reaches torch-fidelity's unpickler.
_BUILD_LOCK = threading.Lock()


def _inception_network(feature: int, antialias: bool, state_dict: Dict[str, Tensor], path: PathLike) -> nn.Module:
    try:
        import torch_fidelity.feature_extractor_inceptionv3 as fidelity
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as error:
        raise WeightsUnavailableError(
            f"the FID Inception network needs the torch-fidelity package ({error}): `pip install torch-fidelity`."
        ) from error
    handed: List[str] = []

    def hand_over(url: str, *args: Any, **kwargs: Any) -> Dict[str, Tensor]:
        handed.append(url)
        return state_dict

    with _BUILD_LOCK:
        original = fidelity.load_state_dict_from_url
        fidelity.load_state_dict_from_url = hand_over
        try:
            network = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=[str(feature)],
                feature_extractor_weights_path=None,
                antialias=antialias,
            )
        except RuntimeError as error:  # load_state_dict: missing, unexpected or reshaped tensors
            first = " ".join(str(error).split())[:300]
            raise CheckpointError(
                f"FID Inception weights file {path} does not fit the Inception network ({first})."
            ) from None
        finally:
            fidelity.load_state_dict_from_url = original
    if handed != [fidelity.URL_INCEPTION_V3]:
        raise RuntimeError(
            "torch-fidelity built its Inception network without asking for its weights: unsupported version"
        )
    return network


class FIDInception(nn.Module):
    """The FID Inception network: images (N, 3, H, W) at any size to (N, ``num_features``) features.

    Takes uint8 images, or float images in [0, 1], which are scaled to uint8 the way torchmetrics'
    FID does (``(x * 255).byte()``), so the FID callback and ``evaluate`` feed it alike.

    Args:
        network: torchmetrics' ``NoTrainInceptionV3`` with its weights.
        num_features: its feature size.
    """

    def __init__(self, network: nn.Module, num_features: int) -> None:
        super().__init__()
        self.network = network
        self.num_features = num_features

    def forward(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            images = (images * 255).byte()
        return self.network(images)


def build_inception(
    feature: int = 2048,
    weights_path: Optional[PathLike] = None,
    antialias: bool = False,
    weights_sha256: Optional[str] = None,
) -> nn.Module:
    """The FID Inception network as a module from images (N, 3, H, W) to (N, ``feature``).

    The weights file is checked against its sha256 and read as tensors only: nothing in it runs.

    Args:
        feature: the feature layer: 64, 192, 768 or 2048 (the standard FID).
        weights_path: the weights file (see :func:`inception_weights`).
        antialias: resize to 299 px with antialiasing instead of the reference's TensorFlow-style
            bilinear resize.
        weights_sha256: the sha256 a deliberate other weights file has (default:
            ``$CYCLEGAN_PL_INCEPTION_SHA256``, else the published file's).

    Returns:
        A :class:`FIDInception` (uint8 or [0, 1] float images).

    Raises:
        WeightsUnavailableError: the weights or torch-fidelity are missing (one line).
        CheckpointError: the weights file has another sha256, holds code or does not fit.
    """
    if feature not in (64, 192, 768, 2048):
        raise OptionError(f"the FID Inception feature must be 64, 192, 768 or 2048, got {feature}.")
    expected_inception_sha256(weights_sha256)  # a malformed value is an error before any download
    path = inception_weights(weights_path)
    state_dict = load_inception_weights(path, weights_sha256)
    return FIDInception(_inception_network(feature, antialias, state_dict, path), feature)


class StandInFeatures(nn.Module):
    """A fixed random convolutional feature extractor: for tests and offline smoke runs only.

    Its numbers are NOT comparable with any published FID or KID; it exists so that the
    evaluation code can run where the Inception weights cannot be had. Takes uint8 (or [0, 1]
    float) images (N, 3, H, W) of any size, returns (N, 32) features.
    """

    num_features = 32

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2)
        self.conv2 = nn.Conv2d(16, self.num_features, 3, stride=2)
        with torch.no_grad():
            for layer in (self.conv1, self.conv2):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.3)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.1)
        self.eval().requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
        x = torch.tanh(self.conv2(torch.tanh(self.conv1(x * 2 - 1))))
        return x.mean(dim=(2, 3))


# --- features of a folder ----------------------------------------------------------------------


def image_files(folder: PathLike, max_images: Optional[int] = None, what: str = "images") -> List[Path]:
    """The sorted image files under ``folder`` (recursive), the first ``max_images`` of them."""
    folder = Path(folder)
    if folder.is_file():
        raise DataLayoutError(
            f"'{folder}' ({what}) is a file, not a folder of images: give the folder that holds them "
            f"(e.g. '{folder.parent}')."
        )
    if not folder.is_dir():
        raise DataLayoutError(f"Folder '{folder}' ({what}) does not exist.")
    files = list_images(folder)
    if not files:
        raise DataLayoutError(f"Folder '{folder}' ({what}) holds no image files.")
    return files[:max_images] if max_images is not None else files


def resolve_device(device: str) -> torch.device:
    """``auto``: a CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def features_of(
    files: Sequence[PathLike], feature_extractor: nn.Module, batch_size: int = 50, device: Any = "cpu"
) -> Tensor:
    """Features (N, d) float64 of image files, read as 8-bit RGB at their own size.

    Images of equal size are batched together (the extractor resizes); the rows follow ``files``.
    """
    if batch_size < 1:
        raise OptionError(f"batch_size must be >= 1, got {batch_size}.")
    by_size: Dict[Tuple[int, int], List[int]] = {}
    for index, path in enumerate(files):
        by_size.setdefault(read_image_size(path), []).append(index)
    rows: List[Optional[Tensor]] = [None] * len(files)
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            images = torch.stack([read_image(files[i], channels=3) for i in chunk]).to(device)
            features = feature_extractor(images)
            features = features.reshape(features.shape[0], -1).double().cpu()
            for row, index in enumerate(chunk):
                rows[index] = features[row]
    return torch.stack(rows)  # type: ignore[arg-type]


def folder_features(
    folder: PathLike,
    feature_extractor: nn.Module,
    batch_size: int = 50,
    device: Any = "cpu",
    max_images: Optional[int] = None,
) -> Tensor:
    """Features (N, d) float64 of every image under ``folder`` (the first ``max_images``)."""
    return features_of(image_files(folder, max_images), feature_extractor, batch_size, device)


# --- distances ---------------------------------------------------------------------------------


def _check_features(features: Tensor, what: str, minimum: int = 2) -> Tensor:
    if features.dim() != 2:
        raise ValueError(f"{what} features must be (N, d), got shape {tuple(features.shape)}")
    if features.shape[0] < minimum:
        raise OptionError(f"FID and KID need at least {minimum} {what} images, got {features.shape[0]}.")
    return features.double()


def fid_from_features(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, d), in float64.

    ``|mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^(1/2))`` with unbiased covariances
    (as pytorch-fid, torchmetrics and clean-fid); the trace of the matrix square root is the sum
    of the square roots of the eigenvalues of ``S_r S_f``.
    """
    real, fake = _check_features(real, "real"), _check_features(fake, "fake")
    mu_r, mu_f = real.mean(0), fake.mean(0)
    sigma_r, sigma_f = torch.cov(real.T), torch.cov(fake.T)
    eigenvalues = torch.linalg.eigvals(sigma_r @ sigma_f)
    sqrt_trace = eigenvalues.sqrt().real.sum()
    value = (mu_r - mu_f).square().sum() + sigma_r.trace() + sigma_f.trace() - 2 * sqrt_trace
    return float(value)


def polynomial_mmd(real: Tensor, fake: Tensor) -> float:
    """Unbiased MMD² of two equal-sized samples with the kernel ``(x·y / d + 1)^3``."""
    m, d = real.shape
    k_rr = (real @ real.T / d + 1) ** 3
    k_ff = (fake @ fake.T / d + 1) ** 3
    k_rf = (real @ fake.T / d + 1) ** 3
    within = (k_rr.sum() - k_rr.diagonal().sum() + k_ff.sum() - k_ff.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_rf.sum() / (m * m))


def kid_subsets(
    n_real: int, n_fake: int, subset_size: int = KID_SUBSET_SIZE, subsets: int = KID_SUBSETS, seed: int = 0
) -> List[Tuple[Tensor, Tensor]]:
    """The (real, fake) row indices of each KID subset: ``min(subset_size, n_real, n_fake)`` rows
    of each set without replacement, drawn by ``torch.randperm`` from one generator seeded with
    ``seed`` (real first, then fake, subset after subset), sorted (so that subsets holding the
    same rows give bit-identical values)."""
    size = min(subset_size, n_real, n_fake)
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randperm(n_real, generator=generator)[:size].sort().values,
            torch.randperm(n_fake, generator=generator)[:size].sort().values,
        )
        for _ in range(subsets)
    ]


def kid_from_features(
    real: Tensor, fake: Tensor, subset_size: int = KID_SUBSET_SIZE, subsets: int = KID_SUBSETS, seed: int = 0
) -> Tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of the unbiased polynomial MMD² over random subsets.

    With fewer than ``subset_size`` images the subsets hold all images of the smaller set (as in
    torchmetrics and clean-fid); when both sets are that small every subset is the whole data and
    the std is 0. The std is the population std over subsets (torchmetrics, torch-fidelity).
    """
    if subsets < 1 or subset_size < 2:
        raise OptionError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}.")
    real, fake = _check_features(real, "real"), _check_features(fake, "fake")
    values = torch.tensor(
        [
            polynomial_mmd(real[r], fake[f])
            for r, f in kid_subsets(real.shape[0], fake.shape[0], subset_size, subsets, seed)
        ],
        dtype=torch.float64,
    )
    if bool((values == values[0]).all()):  # every subset is the whole data: no rounding noise
        return float(values[0]), 0.0
    return float(values.mean()), float(values.std(unbiased=False))


def distances(
    real: Tensor, fake: Tensor, kid_subset_size: int = KID_SUBSET_SIZE, kid_subsets: int = KID_SUBSETS, seed: int = 0
) -> Dict[str, Any]:
    """``fid``, ``kid_mean``, ``kid_std`` and the counts from two feature sets."""
    kid_mean, kid_std = kid_from_features(real, fake, kid_subset_size, kid_subsets, seed)
    return {
        "fid": fid_from_features(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "real_count": int(real.shape[0]),
        "fake_count": int(fake.shape[0]),
        "kid_subset_size": min(kid_subset_size, real.shape[0], fake.shape[0]),
        "kid_subsets": kid_subsets,
    }


def folder_metrics(
    real_dir: PathLike,
    fake_dir: PathLike,
    feature_extractor: Optional[nn.Module] = None,
    *,
    weights_path: Optional[PathLike] = None,
    feature: int = 2048,
    antialias: bool = False,
    batch_size: int = 50,
    device: str = "auto",
    max_images: Optional[int] = None,
    kid_subset_size: int = KID_SUBSET_SIZE,
    kid_subsets: int = KID_SUBSETS,
    seed: int = 0,
    weights_sha256: Optional[str] = None,
) -> Dict[str, Any]:
    """FID and KID between the images under ``real_dir`` and those under ``fake_dir``.

    Args:
        real_dir: folder of real images (searched recursively; any size and format).
        fake_dir: folder of generated images.
        feature_extractor: a module mapping uint8 images (N, 3, H, W) to (N, d) features; None
            builds the FID Inception network (:func:`build_inception`).
        weights_path: the Inception weights file (default: ``$CYCLEGAN_PL_INCEPTION_WEIGHTS``,
            else the torch hub cache).
        feature: Inception feature layer (2048 is the standard FID).
        antialias: antialiased resize to 299 px instead of the reference's.
        batch_size: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda``...
        max_images: use only the first this many files of each folder (sorted by path).
        kid_subset_size: KID subset size (capped at the smaller set).
        kid_subsets: number of KID subsets.
        seed: seed of the KID subsets.
        weights_sha256: the sha256 of a deliberate other Inception weights file (default:
            ``$CYCLEGAN_PL_INCEPTION_SHA256``, else the published file's).

    Returns:
        ``{"fid", "kid_mean", "kid_std", "real_count", "fake_count", "kid_subset_size", "kid_subsets"}``.
    """
    real_files = image_files(real_dir, max_images, "real images")
    fake_files = image_files(fake_dir, max_images, "generated images")
    target = resolve_device(device)
    if feature_extractor is None:
        feature_extractor = build_inception(feature, weights_path, antialias, weights_sha256)
    feature_extractor = feature_extractor.to(target).eval()
    real = features_of(real_files, feature_extractor, batch_size, target)
    fake = features_of(fake_files, feature_extractor, batch_size, target)
    return distances(real, fake, kid_subset_size, kid_subsets, seed)


# --- paired metrics ----------------------------------------------------------------------------


def paired_metrics(target_dir: PathLike, output_dir: PathLike, max_images: Optional[int] = None) -> Dict[str, Any]:
    """L1, PSNR and SSIM of each output image against the target with the same relative name.

    Files are matched by relative path without extension and read as 8-bit RGB; each pair must
    have one size. All three are computed on [0, 1] images and averaged over the pairs: L1 is the
    mean absolute difference, PSNR ``10 log10(1 / MSE)`` (infinite for identical images), SSIM
    torchmetrics' (11x11 Gaussian window, sigma 1.5).

    Raises:
        DataLayoutError: an output has no target, or a pair differs in size.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    target_dir, output_dir = Path(target_dir), Path(output_dir)
    outputs = image_files(output_dir, max_images, "outputs")
    targets = {p.relative_to(target_dir).with_suffix("").as_posix(): p for p in image_files(target_dir)}
    l1, psnr, ssim = [], [], []
    for output in outputs:
        key = output.relative_to(output_dir).with_suffix("").as_posix()
        if key not in targets:
            raise DataLayoutError(f"Output '{output}' has no target '{key}.*' in '{target_dir}'.")
        fake = read_image(output, 3).double().unsqueeze(0) / 255.0
        real = read_image(targets[key], 3).double().unsqueeze(0) / 255.0
        if fake.shape != real.shape:
            raise DataLayoutError(
                f"Output '{output}' is {tuple(fake.shape[-2:])} but its target '{targets[key]}' is "
                f"{tuple(real.shape[-2:])}; paired metrics compare images of one size."
            )
        l1.append(float((fake - real).abs().mean()))
        mse = float((fake - real).square().mean())
        psnr.append(math.inf if mse == 0 else 10 * math.log10(1.0 / mse))
        ssim.append(float(structural_similarity_index_measure(fake, real, data_range=1.0)))
    return {
        "l1": sum(l1) / len(l1),
        "psnr": sum(psnr) / len(psnr),
        "ssim": sum(ssim) / len(ssim),
        "pairs": len(l1),
    }


__all__ = [
    "INCEPTION_SHA256_ENV",
    "INCEPTION_WEIGHTS_BYTES",
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_SHA256",
    "INCEPTION_WEIGHTS_SHA256_PREFIX",
    "INCEPTION_WEIGHTS_URL",
    "OFFLINE_ENV",
    "FIDInception",
    "StandInFeatures",
    "build_inception",
    "check_inception_sha256",
    "expected_inception_sha256",
    "distances",
    "features_of",
    "fid_from_features",
    "folder_features",
    "folder_metrics",
    "inception_weights",
    "kid_from_features",
    "load_inception_weights",
    "kid_subsets",
    "paired_metrics",
    "polynomial_mmd",
]
