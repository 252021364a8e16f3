"""FID / KID / paired metrics between folders, checked against NumPy/SciPy computations."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch import nn

from cyclegan_pl import metrics
from cyclegan_pl.data.image import read_image, read_image_size
from cyclegan_pl.errors import CheckpointError, DataLayoutError, OptionError, UserError, WeightsUnavailableError
from cyclegan_pl.metrics import (
    INCEPTION_SHA256_ENV,
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_SHA256,
    INCEPTION_WEIGHTS_URL,
    StandInFeatures,
    build_inception,
    features_of,
    fid_from_features,
    folder_metrics,
    image_files,
    kid_from_features,
    kid_subsets,
    paired_metrics,
)


class FixedFeatures(nn.Module):
    """uint8 (N, 3, H, W) -> (N, 8): a fixed conv on a 32 px resize, then global average pool."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=generator) * 0.1)
        self.calls = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        self.calls.append(tuple(images.shape))
        x = nn.functional.interpolate(images.float() / 255, size=(32, 32), mode="bilinear", align_corners=False)
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


def write_folder(folder: Path, count: int, seed: int, shift: float = 0.0) -> Path:
    """Images of mixed sizes and formats (PNG, JPEG, grey PNG)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for index in range(count):
        height, width = [(24, 24), (20, 28), (24, 24)][index % 3]
        pixels = np.clip(rng.normal(128 + shift, 50, size=(height, width, 3)), 0, 255).astype(np.uint8)
        if index % 4 == 3:
            Image.fromarray(pixels[..., 0]).save(folder / f"{index:03d}.png")  # greyscale
        elif index % 2:
            Image.fromarray(pixels).save(folder / f"{index:03d}.jpg", quality=95)
        else:
            Image.fromarray(pixels).save(folder / f"{index:03d}.png")
    return folder


def numpy_features(folder: Path, network: nn.Module) -> np.ndarray:
    """The features of each file, one image at a time, read with PIL (an independent reading)."""
    rows = []
    for path in sorted(folder.iterdir()):
        array = np.asarray(Image.open(path).convert("RGB"))
        image = torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            rows.append(network(image)[0].double().numpy())
    return np.stack(rows)


def scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    mu_r, mu_f = real.mean(0), fake.mean(0)
    sigma_r, sigma_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma_r @ sigma_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(sigma_r) + np.trace(sigma_f) - 2 * np.trace(covmean))


def numpy_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2, polynomial kernel (x.y/d + 1)^3, written out term by term."""
    m, d = x.shape
    kernel = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


@pytest.fixture
def folders(tmp_path):
    return write_folder(tmp_path / "real", 12, seed=1), write_folder(tmp_path / "fake", 10, seed=2, shift=30)


def test_folder_metrics_match_scipy_fid_and_numpy_kid(folders):
    real_dir, fake_dir = folders
    network = FixedFeatures()
    result = folder_metrics(real_dir, fake_dir, network, batch_size=4, device="cpu")
    real, fake = numpy_features(real_dir, network), numpy_features(fake_dir, network)
    assert result["real_count"] == 12 and result["fake_count"] == 10
    assert result["fid"] == pytest.approx(scipy_fid(real, fake), rel=1e-4)
    # 10 and 12 images < 1000: every subset holds all 10 fakes and 10 of the 12 reals.
    expected = [numpy_mmd(real[r.numpy()], fake[f.numpy()]) for r, f in kid_subsets(12, 10)]
    assert result["kid_subset_size"] == 10 and result["kid_subsets"] == 100
    assert result["kid_mean"] == pytest.approx(np.mean(expected), rel=1e-4)
    assert result["kid_std"] == pytest.approx(np.std(expected), rel=1e-4)
    assert result["fid"] > 0.01 and result["kid_mean"] > 0
    # Batches hold images of one size only (the extractor does the resizing).
    assert {shape[2:] for shape in network.calls} == {(24, 24), (20, 28)}


def test_kid_over_subsets_and_on_whole_sets():
    generator = torch.Generator().manual_seed(3)
    real, fake = torch.randn(30, 5, generator=generator), torch.randn(25, 5, generator=generator) + 0.5
    mean, std = kid_from_features(real, fake, subset_size=10, subsets=7, seed=4)
    values = [numpy_mmd(real[r].numpy(), fake[f].numpy()) for r, f in kid_subsets(30, 25, 10, 7, seed=4)]
    assert all(len(r) == 10 and len(set(r.tolist())) == 10 for r, _ in kid_subsets(30, 25, 10, 7, seed=4))
    assert mean == pytest.approx(np.mean(values), rel=1e-6) and std == pytest.approx(np.std(values), rel=1e-6)
    assert std > 0
    # Same sizes, below the subset size: every subset is the whole data.
    whole_mean, whole_std = kid_from_features(real[:20], fake[:20])
    assert whole_mean == pytest.approx(numpy_mmd(real[:20].numpy(), fake[:20].numpy()), rel=1e-6)
    assert whole_std == 0.0


def test_fid_of_a_set_with_itself_is_zero_and_matches_scipy():
    generator = torch.Generator().manual_seed(5)
    a, b = torch.randn(40, 6, generator=generator), torch.randn(50, 6, generator=generator) * 1.5 + 0.2
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    assert fid_from_features(a, b) == pytest.approx(scipy_fid(a.numpy(), b.numpy()), rel=1e-6)


def test_too_few_images_is_a_user_error(tmp_path):
    real = write_folder(tmp_path / "real", 1, seed=1)
    fake = write_folder(tmp_path / "fake", 4, seed=2)
    with pytest.raises(UserError, match="at least 2 real images"):
        folder_metrics(real, fake, StandInFeatures(), device="cpu")
    with pytest.raises(UserError, match="nowhere.*does not exist"):
        folder_metrics(tmp_path / "nowhere", fake, StandInFeatures(), device="cpu")


def test_a_file_given_as_a_folder_is_named_a_file(tmp_path):
    fake = write_folder(tmp_path / "fake", 4, seed=2)
    image = write_folder(tmp_path / "real", 2, seed=1) / "000.png"
    assert image.is_file()
    with pytest.raises(DataLayoutError) as error:
        folder_metrics(image, fake, StandInFeatures(), device="cpu")
    message = str(error.value)
    assert "does not exist" not in message and "\n" not in message
    assert f"'{image}' (real images) is a file, not a folder" in message and str(image.parent) in message


def test_missing_inception_weights_is_one_line_naming_file_hash_and_place(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("CYCLEGAN_PL_OFFLINE", "1")
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsUnavailableError) as caught:
        folder_metrics(*folders, device="cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert "weights-inception-2015-12-05-6726825d.pth" in message and "sha256 6726825d" in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in message and INCEPTION_WEIGHTS_ENV in message
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsUnavailableError, match=f"{INCEPTION_WEIGHTS_ENV} .*missing.pth does not exist"):
        folder_metrics(*folders, device="cpu")


def test_paired_metrics_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "target").mkdir()
    (tmp_path / "output").mkdir()
    expected_l1, expected_psnr = [], []
    for index in range(3):
        target = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        output = np.clip(target.astype(int) + rng.integers(-20, 21, size=target.shape), 0, 255).astype(np.uint8)
        Image.fromarray(target).save(tmp_path / "target" / f"{index}.jpg", quality=100)
        Image.fromarray(output).save(tmp_path / "output" / f"{index}.png")
        target = np.asarray(Image.open(tmp_path / "target" / f"{index}.jpg").convert("RGB")) / 255.0
        diff = output / 255.0 - target
        expected_l1.append(np.abs(diff).mean())
        expected_psnr.append(10 * math.log10(1 / (diff**2).mean()))
    result = paired_metrics(tmp_path / "target", tmp_path / "output")
    assert result["pairs"] == 3
    assert result["l1"] == pytest.approx(np.mean(expected_l1), rel=1e-6)
    assert result["psnr"] == pytest.approx(np.mean(expected_psnr), rel=1e-6)
    assert 0 < result["ssim"] < 1
    same = paired_metrics(tmp_path / "output", tmp_path / "output")
    assert same["ssim"] == pytest.approx(1.0) and same["l1"] == 0 and same["psnr"] == math.inf


# --- the Inception weights: checked against their sha256, loaded as tensors only ----------------


@pytest.fixture
def no_inception_anywhere(tmp_path, monkeypatch) -> Path:
    """No weights configured, an empty hub cache, offline; the hub-cache file's path."""

    def no_network(url, *args, **kwargs):  # the code before issue 18 downloaded through torch hub
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("CYCLEGAN_PL_OFFLINE", "1")
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(INCEPTION_SHA256_ENV, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_published_sha256_is_recorded_in_full():
    assert re.fullmatch(r"[0-9a-f]{64}", INCEPTION_WEIGHTS_SHA256)
    assert INCEPTION_WEIGHTS_SHA256.startswith("6726825d") and INCEPTION_WEIGHTS_FILE.endswith("-6726825d.pth")


@pytest.mark.parametrize("source", ["weights_path", "env", "hub_cache"])
def test_a_pickle_payload_as_inception_weights_never_runs(
    source, tmp_path, monkeypatch, no_inception_anywhere, pickle_payload
):
    marker = tmp_path / "payload_ran"
    path = pickle_payload(no_inception_anywhere if source == "hub_cache" else tmp_path / "weights.pth", marker)
    # Past the hash check on purpose: the loading itself must refuse to run the file's code.
    monkeypatch.setenv(INCEPTION_SHA256_ENV, sha256_of(path))
    if source == "env":
        monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    with pytest.raises(UserError) as error:
        build_inception(weights_path=path if source == "weights_path" else None)
    assert not marker.exists(), "the payload ran"
    assert isinstance(error.value, CheckpointError)
    message = str(error.value)
    assert str(path) in message and "would run code" in message and "\n" not in message


def test_a_payload_with_another_hash_is_refused_unread(tmp_path, no_inception_anywhere, pickle_payload):
    marker = tmp_path / "payload_ran"
    path = pickle_payload(tmp_path / "weights.pth", marker)
    with pytest.raises(UserError) as error:
        build_inception(weights_path=path)
    assert not marker.exists(), "the payload ran"
    assert isinstance(error.value, CheckpointError) and "sha256" in str(error.value)


def test_a_weights_file_of_another_hash_is_refused_naming_both_hashes(
    no_inception_anywhere, stand_in_inception, folders
):
    # The right tensors with other values: before issue 18 it gave meaningless FIDs without a word.
    with pytest.raises(CheckpointError) as error:
        folder_metrics(*folders, weights_path=stand_in_inception.path, device="cpu")
    message = str(error.value)
    assert str(stand_in_inception.path) in message and "\n" not in message
    assert f"sha256 {stand_in_inception.sha256}" in message and INCEPTION_WEIGHTS_SHA256 in message
    assert INCEPTION_SHA256_ENV in message and INCEPTION_WEIGHTS_URL in message


def test_a_deliberate_weights_file_is_used_when_its_hash_is_given(
    folders, monkeypatch, no_inception_anywhere, stand_in_inception
):
    """Inception with weights from $CYCLEGAN_PL_INCEPTION_WEIGHTS, no network: 2048-d features of
    uint8 images of any size (a stand-in weights file, allowed by its sha256)."""
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(stand_in_inception.path))
    monkeypatch.setenv(INCEPTION_SHA256_ENV, stand_in_inception.sha256)
    network = build_inception()
    loaded = network.network.state_dict()
    assert loaded.keys() == stand_in_inception.state_dict.keys()
    assert all(torch.equal(loaded[k], v) for k, v in stand_in_inception.state_dict.items())
    real_dir, fake_dir = folders
    features = features_of(image_files(real_dir)[:3], network, device="cpu")
    assert features.shape == (3, 2048) and torch.isfinite(features).all()
    # The same images as floats in [0, 1] (the FID callback's input) give the same features.
    images = torch.stack([read_image(p) for p in image_files(real_dir)[:2] if read_image_size(p) == (24, 24)])
    assert torch.equal(network(images), network(images.float() / 255))
    result = folder_metrics(real_dir, fake_dir, device="cpu", max_images=3)
    assert result["real_count"] == 3 and math.isfinite(result["fid"])
    # The Python option does what the variable does.
    monkeypatch.delenv(INCEPTION_SHA256_ENV)
    build_inception(weights_sha256=stand_in_inception.sha256.upper())
    with pytest.raises(OptionError, match="weights_sha256"):
        build_inception(weights_sha256="6726825d")


def test_missing_weights_are_downloaded_into_the_hub_cache_and_checked(
    no_inception_anywhere, stand_in_inception, file_server, monkeypatch
):
    monkeypatch.delenv("CYCLEGAN_PL_OFFLINE")
    monkeypatch.setattr(metrics, "INCEPTION_WEIGHTS_URL", file_server.base + "/weights.pth")
    file_server.routes["/weights.pth"] = (b"<html>a login page</html>", "ok")
    with pytest.raises(CheckpointError, match=r"sha256 .* not the published"):
        build_inception()
    assert not no_inception_anywhere.exists()  # not kept to be trusted next time
    file_server.routes["/weights.pth"] = (stand_in_inception.path.read_bytes(), "ok")
    monkeypatch.setenv(INCEPTION_SHA256_ENV, stand_in_inception.sha256)
    network = build_inception()
    assert sha256_of(no_inception_anywhere) == stand_in_inception.sha256
    assert torch.equal(network.network.fc.weight, stand_in_inception.state_dict["fc.weight"])
