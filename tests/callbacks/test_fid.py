from __future__ import annotations

import hashlib
import importlib.util
import sys
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegan_pl.callbacks import FID, build_fid_metric
from cyclegan_pl.errors import CheckpointError, UserError, WeightsUnavailableError
from cyclegan_pl.metrics import fid_from_features, kid_from_features
from cyclegan_pl.models.base import Translation

HAS_TORCH_FIDELITY = importlib.util.find_spec("torch_fidelity") is not None


class SmallFeatures(nn.Module):
    """conv + global average pool: (N, 3, H, W) in [0, 1] -> (N, 16), fixed weights."""

    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(images)).mean(dim=(2, 3))


@pytest.fixture
def offline_inception(monkeypatch, tmp_path):
    """No Inception weights anywhere and no network: building the default extractor fails."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    if HAS_TORCH_FIDELITY:
        import torch_fidelity.feature_extractor_inceptionv3 as inception

        def no_network(url, *args, **kwargs):
            raise urllib.error.URLError(f"offline test: refusing to download {url}")

        monkeypatch.setattr(inception, "load_state_dict_from_url", no_network)


def images(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_identical_sets_give_zero_and_shifted_sets_more():
    metric = build_fid_metric(feature_extractor=SmallFeatures())
    real = images(64, 1)
    metric.update(real, real=True)
    metric.update(real, real=False)
    assert abs(metric.compute().item()) < 1e-3
    metric.reset()
    metric.update(real, real=True)
    metric.update((real + 0.3).clamp(0, 1), real=False)
    assert metric.compute().item() > 1e-2


def test_kid_comes_from_the_same_features():
    network = SmallFeatures()
    metric = build_fid_metric(feature_extractor=network, with_kid=True)
    metric.kid_subset_size, metric.kid_subsets = 8, 5
    real, fake = images(12, 1), (images(10, 2) + 0.2).clamp(0, 1)
    metric.update(real[:6], real=True)
    metric.update(real[6:], real=True)
    metric.update(fake, real=False)
    fid = metric.compute().item()
    with torch.no_grad():
        real_features, fake_features = network(real), network(fake)
    assert fid == pytest.approx(fid_from_features(real_features, fake_features), rel=1e-4)
    mean, std = kid_from_features(real_features, fake_features, subset_size=8, subsets=5)
    assert metric.kid == pytest.approx((mean, std), rel=1e-5) and mean > 0 and std > 0


def test_fid_is_logged_for_both_directions(tmp_path, cyclegan, tiny_data, trainer_for):
    fid = FID(every_n_epochs=1, feature_extractor=SmallFeatures())
    trainer = trainer_for(tmp_path, [fid], max_epochs=1, limit_train_batches=1)
    trainer.fit(cyclegan(), datamodule=tiny_data(val_len=6, batch_size=3))
    for name in ("fid/a2b", "fid/b2a", "kid/a2b", "kid/b2a", "kid_std/a2b"):
        value = trainer.callback_metrics[name]
        assert torch.isfinite(value) and value >= -1e-4 or name.startswith("kid/")
    assert trainer.callback_metrics["kid/a2b"] == pytest.approx(fid.metrics["a2b"].kid[0])
    assert fid.metrics["a2b"].fake_features_num_samples == 0  # reset after logging


def test_pix2pix_gets_a2b_only_and_max_images_caps(tmp_path, pix2pix, tiny_data, trainer_for):
    fid = FID(every_n_epochs=1, feature_extractor=SmallFeatures(), max_images=4)
    trainer = trainer_for(tmp_path, [fid], max_epochs=1, limit_train_batches=1)
    module = pix2pix()
    trainer.fit(module, datamodule=tiny_data(val_len=6, batch_size=3))
    assert "fid/a2b" in trainer.callback_metrics and "fid/b2a" not in trainer.callback_metrics
    assert list(fid.metrics) == ["a2b"] and fid._seen["a2b"] == 4


def test_skipped_on_epochs_between(tmp_path, cyclegan, tiny_data, trainer_for):
    fid = FID(every_n_epochs=5, feature_extractor=SmallFeatures())
    trainer = trainer_for(tmp_path, [fid], max_epochs=2, limit_train_batches=1, limit_val_batches=1)
    computed = []
    original = fid.on_validation_epoch_end

    def record(trainer, module):
        computed.append((trainer.current_epoch, fid._active))
        original(trainer, module)

    fid.on_validation_epoch_end = record
    trainer.fit(cyclegan(), datamodule=tiny_data())
    # Not at epoch 1 (not a multiple of 5), but at the last epoch so the run ends with a value.
    assert computed == [(0, False), (1, True)]


def test_offline_without_weights_warns_once_and_trains(tmp_path, cyclegan, tiny_data, trainer_for, offline_inception):
    fid = FID(every_n_epochs=1)
    trainer = trainer_for(tmp_path, [fid], max_epochs=2, limit_train_batches=1, limit_val_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(cyclegan(), datamodule=tiny_data())
    messages = [str(w.message) for w in caught if "without FID" in str(w.message)]
    assert len(messages) == 1
    assert "weights_path" in messages[0] and "weights-inception-2015-12-05-6726825d.pth" in messages[0]
    assert trainer.global_step > 0
    assert not any(key.startswith("fid/") for key in trainer.callback_metrics)


def test_strict_raises_before_any_training_step(tmp_path, cyclegan, tiny_data, trainer_for, probe, offline_inception):
    steps = probe("on_train_batch_start", lambda trainer, module: trainer.global_step)
    trainer = trainer_for(tmp_path, [FID(strict=True), steps], max_epochs=1)
    with pytest.raises(WeightsUnavailableError, match="weights_path"):
        trainer.fit(cyclegan(), datamodule=tiny_data())
    assert trainer.global_step == 0 and steps.records == []


def test_missing_weights_path_is_an_error_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsUnavailableError, match="nowhere.pth does not exist.*6726825d"):
        build_fid_metric(weights_path=str(missing))


@pytest.fixture
def no_inception_anywhere(tmp_path, monkeypatch) -> Path:
    """No weights configured, an empty hub cache, offline; the hub-cache file's path."""

    def no_network(url, *args, **kwargs):  # the code before issue 18 downloaded through torch hub
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("CYCLEGAN_PL_OFFLINE", "1")
    for name in ("CYCLEGAN_PL_INCEPTION_WEIGHTS", "CYCLEGAN_PL_INCEPTION_SHA256"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"


def test_a_deliberate_weights_file_builds_inception_without_network(no_inception_anywhere, stand_in_inception):
    metric = build_fid_metric(weights_path=str(stand_in_inception.path), weights_sha256=stand_in_inception.sha256)
    loaded = metric.inception.network.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in stand_in_inception.state_dict.items())


def test_fit_logs_fid_with_a_deliberate_weights_file(
    tmp_path, cyclegan, tiny_data, trainer_for, no_inception_anywhere, stand_in_inception
):
    fid = FID(every_n_epochs=1, weights_path=str(stand_in_inception.path), weights_sha256=stand_in_inception.sha256)
    trainer = trainer_for(tmp_path, [fid], max_epochs=1, limit_train_batches=1)
    trainer.fit(cyclegan(), datamodule=tiny_data(val_len=4, batch_size=2))
    assert torch.isfinite(trainer.callback_metrics["fid/a2b"]) and trainer.callback_metrics["fid/a2b"] > 0


def test_a_payload_in_the_hub_cache_never_runs_through_fit(
    tmp_path, cyclegan, tiny_data, trainer_for, probe, monkeypatch, no_inception_anywhere, pickle_payload
):
    marker = tmp_path / "payload_ran"
    path = pickle_payload(no_inception_anywhere, marker)
    # Past the hash check on purpose: the loading itself must refuse to run the file's code.
    monkeypatch.setenv("CYCLEGAN_PL_INCEPTION_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    steps = probe("on_train_batch_start", lambda trainer, module: trainer.global_step)
    trainer = trainer_for(tmp_path, [FID(every_n_epochs=1), steps], max_epochs=1, limit_train_batches=1)
    with pytest.raises(UserError) as error:
        trainer.fit(cyclegan(), datamodule=tiny_data())
    assert not marker.exists(), "the payload ran"
    assert isinstance(error.value, CheckpointError) and str(path) in str(error.value)
    assert steps.records == []


def test_a_weights_file_of_another_hash_stops_fit_with_one_line(
    tmp_path, cyclegan, tiny_data, trainer_for, no_inception_anywhere, stand_in_inception
):
    # Without strict too: a wrong file is a mistake to fix, not weights that are missing.
    fid = FID(every_n_epochs=1, weights_path=str(stand_in_inception.path))
    trainer = trainer_for(tmp_path, [fid], max_epochs=1, limit_train_batches=1)
    with pytest.raises(CheckpointError) as error:
        trainer.fit(cyclegan(), datamodule=tiny_data())
    message = str(error.value)
    assert "\n" not in message and stand_in_inception.sha256 in message and "6726825d0af5f729" in message
    assert trainer.global_step == 0


def test_the_warning_says_why_the_weights_are_missing(
    tmp_path, cyclegan, tiny_data, trainer_for, no_inception_anywhere, file_server, monkeypatch
):
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    import cyclegan_pl.metrics

    def no_network(url, *args, **kwargs):  # the code before issue 18 downloaded here
        raise urllib.error.URLError(f"offline test: refusing to download {url}")

    monkeypatch.setattr(fidelity, "load_state_dict_from_url", no_network)
    monkeypatch.delenv("CYCLEGAN_PL_OFFLINE")
    monkeypatch.setattr(cyclegan_pl.metrics, "INCEPTION_WEIGHTS_URL", file_server.base + "/missing.pth")
    trainer = trainer_for(tmp_path, [FID(every_n_epochs=1)], max_epochs=1, limit_train_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(cyclegan(), datamodule=tiny_data())
    (message,) = [str(w.message) for w in caught if "without FID" in str(w.message)]
    assert "install torch-fidelity" not in message  # it is installed
    assert "HTTP 404" in message and "missing.pth" in message and "\n" not in message


def test_without_torch_fidelity_the_error_says_to_install_it(monkeypatch, no_inception_anywhere, stand_in_inception):
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(WeightsUnavailableError, match=r"pip install torch-fidelity"):
        build_fid_metric(weights_path=str(stand_in_inception.path), weights_sha256=stand_in_inception.sha256)


def test_files_that_come_round_again_enter_each_set_once():
    # An unpaired validation epoch repeats the smaller domain's files (A[i mod |A|]).
    fid = FID(feature_extractor=SmallFeatures())
    fid.metrics = {"a2b": build_fid_metric(feature_extractor=SmallFeatures(), with_kid=True)}
    # What on_validation_epoch_start sets up for an FID epoch, without a trainer.
    fid._active = True
    fid._seen_paths, fid._counts = {}, {}
    fid._translations = {"a2b": Translation("AtoB", "real_A", "fake_B", "real_B")}

    images = torch.rand(3, 3, 16, 16) * 2 - 1
    for batch_paths in (["a/0", "a/1", "a/0"], ["a/1", "a/2", "a/2"]):
        batch = {"A": images, "B": images, "A_paths": batch_paths, "B_paths": ["b/0", "b/1", "b/2"]}
        # what validation_step returns: its visuals (here an identity translation)
        visuals = {"real_A": images, "fake_B": images, "real_B": images}
        fid.on_validation_batch_end(None, None, visuals, batch, 0)
    metric = fid.metrics["a2b"]
    assert fid._seen["a2b"] == 3 and metric.fake_features_num_samples == 3
    assert metric.real_features_num_samples == 3
