"""Fréchet Inception Distance on the held-out split during validation."""

from __future__ import annotations

import copy
import hashlib
import math
import os
from typing import Any, Dict, List, Literal, Optional, Tuple

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from cyclegan_pl.data.display import check_bands, shown_bands
from cyclegan_pl.data.image import to_unit_range
from cyclegan_pl.directions import domains, short_name
from cyclegan_pl.errors import OptionError, UserError, WeightsUnavailableError
from cyclegan_pl.metrics import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    OFFLINE_ENV,
    build_inception,
    fid_from_features,
    kid_from_features,
)

InceptionFeature = Literal[64, 192, 768, 2048]


def _fid_with_kid_class() -> type:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.utilities import dim_zero_cat

    class FIDWithKID(FrechetInceptionDistance):
        """torchmetrics' FID that also keeps every feature row, so KID comes from the same forwards.

        ``compute`` returns the FID and sets ``kid`` to (mean, std) (:func:`kid_from_features`,
        None with fewer than 2 images per set); the rows are gathered from all processes, as
        the FID sums are.
        """

        def __init__(self, *args: Any, kid_subset_size: int = 1000, kid_subsets: int = 100, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for kind in ("real", "fake"):
                self.add_state(f"{kind}_feature_rows", [], dist_reduce_fx="cat")
                self.add_state(f"{kind}_row_keys", [], dist_reduce_fx="cat")
            self.kid_subset_size = kid_subset_size
            self.kid_subsets = kid_subsets
            self.kid: Optional[Tuple[float, float]] = None
            self._unnamed = 0

        def update(self, imgs: Tensor, real: bool, keys: Optional[Tensor] = None) -> None:
            """Add images; ``keys`` (int64, one per image, e.g. :func:`path_key`) name their files:
            a file seen on several processes (a distributed sampler repeats items to even out
            the shards) then counts once. Images without keys count each time."""
            captured: List[Tensor] = []
            handle = self.inception.register_forward_hook(lambda module, args, output: captured.append(output))
            try:
                super().update(imgs, real)
            finally:
                handle.remove()
            rows = captured[-1].detach().reshape(imgs.shape[0], -1).float()
            if keys is None:  # unique negative keys: never equal to another image's
                rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
                first = self._unnamed + 1
                self._unnamed += imgs.shape[0]
                keys = -(torch.arange(first, first + imgs.shape[0]) + (rank << 40))
            kind = "real" if real else "fake"
            getattr(self, f"{kind}_feature_rows").append(rows)
            getattr(self, f"{kind}_row_keys").append(torch.as_tensor(keys, dtype=torch.int64, device=rows.device))

        def compute(self) -> Tensor:
            # From the rows of all processes, each file once: the FID torchmetrics sums would
            # count a file that two processes saw twice.
            real = _first_of_each_key(dim_zero_cat(self.real_feature_rows), dim_zero_cat(self.real_row_keys))
            fake = _first_of_each_key(dim_zero_cat(self.fake_feature_rows), dim_zero_cat(self.fake_row_keys))
            if min(real.shape[0], fake.shape[0]) < 2:
                raise RuntimeError("FID needs at least two real and two fake images")
            self.kid = kid_from_features(real, fake, self.kid_subset_size, self.kid_subsets)
            return torch.tensor(fid_from_features(real, fake), dtype=torch.float64, device=real.device)

    return FIDWithKID


def path_key(path: str) -> int:
    """A file's key for :class:`FIDWithKID`: the same on every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(str(path).encode(), digest_size=7).digest(), "big")


def _first_of_each_key(rows: Tensor, keys: Tensor) -> Tensor:
    order = {}
    for index, key in enumerate(keys.tolist()):
        order.setdefault(key, index)
    return rows[sorted(order.values())]


def build_fid_metric(
    feature: int = 2048,
    weights_path: Optional[str] = None,
    feature_extractor: Optional[nn.Module] = None,
    antialias: bool = False,
    with_kid: bool = False,
    weights_sha256: Optional[str] = None,
):
    """A torchmetrics ``FrechetInceptionDistance`` taking float images in [0, 1].

    Args:
        feature: Inception feature layer (64, 192, 768 or 2048) when no ``feature_extractor``.
        weights_path: local copy of the FID Inception weights; None uses
            ``$CYCLEGAN_PL_INCEPTION_WEIGHTS``, else the torch hub cache (downloaded when online).
        feature_extractor: a module mapping float images in [0, 1] (N, C, H, W) to (N, d)
            features, used instead of Inception.
        antialias: resize to 299 px with antialiasing (torchmetrics' default) instead of the
            TensorFlow-compatible bilinear resize of the standard FID implementations.
        with_kid: keep the features too, so that ``compute`` also sets ``kid`` (KID's mean and
            std from the same features).
        weights_sha256: the sha256 of a deliberate other Inception weights file (default:
            ``$CYCLEGAN_PL_INCEPTION_SHA256``, else the published file's).

    Raises:
        WeightsUnavailableError: the Inception extractor cannot be built (no weights here and no
            download, or no torch-fidelity); the message says why and how to provide them.
        CheckpointError: the weights file is not the published one (sha256), holds code or does
            not fit the network.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric_class = _fid_with_kid_class() if with_kid else FrechetInceptionDistance
    if feature_extractor is None:
        # Built here, from tensors checked and read by cyclegan_pl.metrics: torchmetrics would let
        # torch-fidelity unpickle the file itself. It takes [0, 1] floats as torchmetrics' own does.
        feature_extractor = build_inception(feature, weights_path, antialias, weights_sha256)
    feature_extractor.eval().requires_grad_(False)
    return metric_class(feature=feature_extractor, normalize=True, reset_real_features=True)


class FID(pl.Callback):
    """Fréchet Inception Distance between translated and real held-out images, during validation.

    Every ``every_n_epochs`` epochs (and at the last epoch, and in ``validate``) the translations
    that ``validation_step`` returns are fed to torchmetrics' ``FrechetInceptionDistance``, one
    metric per direction the module translates (its ``translations``): ``fid/a2b`` compares the
    translated A images with the real B images (Pix2Pix: output vs target) and, for CycleGAN,
    ``fid/b2a`` the translated B images with the real A images. The feature rows of all
    processes are gathered and each file (by path) counts once, also when a distributed
    sampler repeats items to even out the shards, so the values do not depend on the number
    of processes. The same features give the Kernel Inception Distance, logged as ``kid/a2b``
    (the mean over subsets, see :func:`cyclegan_pl.metrics.kid_from_features`) and ``kid_std/a2b``.
    Note that FID from a few hundred images is biased upwards; compare values computed on the
    same number of images.

    The default extractor is the standard FID Inception network, which needs the
    ``torch-fidelity`` package and its weights (``weights-inception-2015-12-05-6726825d.pth``,
    downloaded to the torch hub cache when online). When they are not available, fit warns once
    at the start and trains without FID, or raises at the start with ``strict``. A weights file
    that is there but wrong (not the published sha256, code in it, other tensors) always stops
    fit at the start with one line: it is read as tensors only, never unpickled with its code.

    Args:
        every_n_epochs: compute FID in the validation of every this many epochs.
        feature: Inception feature layer: 64, 192, 768 or 2048 (the standard FID).
        weights_path: local copy of the FID Inception weights
            (``weights-inception-2015-12-05-6726825d.pth``) for machines without internet. A
            path that does not exist is an error at the start of fit, even without ``strict``.
        strict: raise at the start of fit when the feature extractor cannot be built, instead of
            warning and training without FID.
        feature_extractor: a module used instead of Inception: takes float images in [0, 1]
            (N, C, H, W) at their own size, returns (N, d) features; give it a ``num_features``
            attribute or it is probed with a 299 px image.
        max_images: cap on the images per direction per evaluation (all processes together);
            None uses the whole validation set.
        antialias: resize to Inception's 299 px with antialiasing (torchmetrics' default); False
            uses the TensorFlow-compatible resize of the standard FID code and published numbers.
        weights_sha256: the sha256 of a deliberate weights file other than the published one (a
            conversion of your own), which is otherwise refused; default
            ``$CYCLEGAN_PL_INCEPTION_SHA256``, else the published file's. Its FIDs compare with
            nothing published.
        bands: which bands of multi-band images the Inception network compares: three indices
            (as RGB) or one (as gray). FID and KID are refused for images of other than 1 or 3
            bands without it; their numbers then compare with nothing published.
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        feature: InceptionFeature = 2048,
        weights_path: Optional[str] = None,
        strict: bool = False,
        feature_extractor: Optional[nn.Module] = None,
        max_images: Optional[int] = None,
        antialias: bool = False,
        weights_sha256: Optional[str] = None,
        bands: Optional[List[int]] = None,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise OptionError(f"FID every_n_epochs must be >= 1, got {every_n_epochs}.")
        if max_images is not None and max_images < 2:
            raise OptionError(f"FID max_images must be >= 2 (FID needs two images per set) or None, got {max_images}.")
        self.every_n_epochs = every_n_epochs
        self.feature = feature
        self.weights_path = None if weights_path is None else os.fspath(weights_path)
        self.strict = strict
        self.feature_extractor = feature_extractor
        self.max_images = max_images
        self.antialias = antialias
        self.weights_sha256 = weights_sha256
        self.bands = check_bands(bands)
        self.metrics: Dict[str, Any] = {}
        self.unavailable_reason: Optional[str] = None
        self._active = False
        self._seen_paths: Dict[str, set] = {}
        self._counts: Dict[str, int] = {}
        self._per_rank_cap: Optional[int] = None
        self._translations: Dict[str, Any] = {}

    # --- building -----------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate") or self.metrics or self.unavailable_reason is not None:
            return
        hparams = getattr(pl_module, "hparams", {})
        channels = {hparams.get("input_nc", 3), hparams.get("output_nc", 3)}
        if self.bands is None and self.feature_extractor is None and not channels <= {1, 3}:
            # The same decision on every process: it depends on the options only.
            raise OptionError(
                f"FID and KID compare RGB images (the Inception network's), and these have {max(channels)} bands: "
                "set FID bands=[r, g, b] (three band indices; one for gray) to compare those bands.",
                option="bands",
            )
        problem: Optional[UserError] = None
        try:
            metric = build_fid_metric(
                self.feature,
                self.weights_path,
                self.feature_extractor,
                self.antialias,
                with_kid=True,
                weights_sha256=self.weights_sha256,
            )
        except UserError as err:
            problem = err
        # Computing FID is a collective: every process computes it or none does; and a wrong
        # weights file anywhere (not merely missing ones) stops every process.
        if not trainer.strategy.reduce_boolean_decision(problem is None, all=True):
            wrong_file = trainer.strategy.reduce_boolean_decision(
                problem is not None and not isinstance(problem, WeightsUnavailableError), all=False
            )
            reason = str(problem) if problem is not None else "the FID network could not be built on another process."
            if wrong_file:
                raise problem or UserError("FID: another process refused its Inception weights file; see its error.")
            if self.strict:
                raise problem or WeightsUnavailableError(reason)
            self.unavailable_reason = reason
            rank_zero_warn(f"Training goes on without FID: {reason} Set strict=True to stop instead.")
            return
        self.metrics = {
            short_name(translation.direction): metric if index == 0 else copy.deepcopy(metric)
            for index, translation in enumerate(pl_module.translations)
        }
        self._translations = {short_name(t.direction): t for t in pl_module.translations}
        if self.max_images is not None:
            self._per_rank_cap = math.ceil(self.max_images / max(1, trainer.world_size))

    # --- when ---------------------------------------------------------------------------------
    def _should_run(self, trainer: pl.Trainer) -> bool:
        if not self.metrics or trainer.sanity_checking:
            return False
        if trainer.state.fn != "fit":
            return True
        completed = trainer.current_epoch + 1
        return completed % self.every_n_epochs == 0 or completed == trainer.max_epochs

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = self._should_run(trainer)
        if not self._active:
            return
        for metric in self.metrics.values():
            metric.to(pl_module.device)
            metric.reset()
        self._seen_paths = {}
        self._counts = {}

    # --- accumulating -------------------------------------------------------------------------
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active:
            return
        if not isinstance(outputs, dict):
            raise TypeError(
                f"FID needs {type(pl_module).__name__}.validation_step to return its visuals (a dict of images)."
            )
        # The translations validation_step made: nothing is translated twice.
        for name, metric in self.metrics.items():
            translation = self._translations[name]
            source_domain, target_domain = domains(translation.direction)
            for kind, visual, domain in (
                ("fake", translation.output, source_domain),
                ("real", translation.target, target_domain),
            ):
                kept = self._new_images(f"{name}/{kind}", outputs[visual], batch.get(f"{domain}_paths"))
                if kept is not None:
                    images, paths = kept
                    keys = None if paths is None else torch.tensor([path_key(p) for p in paths], dtype=torch.int64)
                    metric.update(self._prepare(images), real=kind == "real", keys=keys)

    @property
    def _seen(self) -> Dict[str, int]:
        """Translated images fed to each metric so far this epoch (on this process)."""
        return {name: self._counts.get(f"{name}/fake", 0) for name in self.metrics}

    def _new_images(
        self, tag: str, images: Tensor, paths: Optional[List[str]]
    ) -> Optional[Tuple[Tensor, Optional[List[str]]]]:
        """The images whose files were not counted yet in this set, within ``max_images``, and their paths.

        An unpaired validation epoch has max(|A|, |B|) items, so the smaller domain's files come
        round again; each file (by path) enters a set once, as in a one-pass FID.
        """
        seen = self._seen_paths.setdefault(tag, set())
        if paths is None:
            keep = list(range(images.shape[0]))
        else:
            first_index: Dict[str, int] = {}
            for index, path in enumerate(paths):
                if path not in seen:
                    first_index.setdefault(path, index)
            keep = list(first_index.values())
        if self._per_rank_cap is not None:
            keep = keep[: max(0, self._per_rank_cap - self._counts.get(tag, 0))]
        if not keep:
            return None
        if paths is not None:
            seen.update(paths[i] for i in keep)
        self._counts[tag] = self._counts.get(tag, 0) + len(keep)
        kept_paths = None if paths is None else [paths[i] for i in keep]
        return (images[keep] if len(keep) < images.shape[0] else images), kept_paths

    def _prepare(self, images: Tensor) -> Tensor:
        if self.bands is not None:
            images = images[:, list(shown_bands(images.shape[1], self.bands))]
        images = to_unit_range(images)
        if self.feature_extractor is None and images.shape[1] == 1:
            # The Inception network reads RGB; grey images are compared as grey RGB.
            images = images.expand(-1, 3, -1, -1)
        return images

    # --- reporting ----------------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        self._active = False
        for name, metric in self.metrics.items():
            try:
                value = metric.compute()
            except RuntimeError as err:
                rank_zero_warn(f"fid/{name} was not computed: {err}")
                metric.reset()
                continue
            metric.reset()
            # Every process holds the same (already synced) value; sync_dist only averages equals.
            pl_module.log(f"fid/{name}", value.float(), on_step=False, on_epoch=True, sync_dist=True)
            if getattr(metric, "kid", None) is not None:
                kid_mean, kid_std = metric.kid
                for key, number in ((f"kid/{name}", kid_mean), (f"kid_std/{name}", kid_std)):
                    pl_module.log(key, float(number), on_step=False, on_epoch=True, sync_dist=True)


# The weights constants live in cyclegan_pl.metrics; re-exported here where they were first defined.
__all__ = [
    "FID",
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "OFFLINE_ENV",
    "InceptionFeature",
    "build_fid_metric",
]
