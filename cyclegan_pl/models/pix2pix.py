"""pix2pix (Isola et al., CVPR 2017) as a LightningModule with the reference update order."""

from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegan_pl.losses import GANMode
from cyclegan_pl.methods import register_method
from cyclegan_pl.models.base import ImageTranslationModule, Translation, frozen
from cyclegan_pl.networks import (
    GeneratorName,
    NormName,
)
from cyclegan_pl.weights.published import PublishedModel

# The published generators (U-Net 256, batch norm, dropout): name after the pix2pix_ prefix (three
# names are also CycleGAN models), what it translates, the dataset (side-by-side pairs: there is no
# folder of input images alone).
_PUBLISHED = [
    ("edges2shoes", "edge map -> shoe photo", "edges2shoes"),
    ("sat2map", "satellite photo -> map", "maps"),
    ("map2sat", "map -> satellite photo", "maps"),
    ("facades_label2photo", "label map -> facade photo", "facades"),
    ("day2night", "daytime photo -> night photo", "night2day"),
]
_FIT_CONFIGS = {"facades": "configs/facades.yaml"}
# The sha256 of each published file, by the name after the prefix, as far as it is confirmed: none
# is yet (see models/cyclegan.py); a name missing here is checked by its architecture only.
_SHA256: Dict[str, str] = {}


@register_method
class Pix2Pix(ImageTranslationModule):
    """Paired image-to-image translation with a conditional GAN and an L1 term.

    Networks: ``gen`` (input -> output) and ``disc``, a conditional discriminator that judges
    ``cat(input, output)``. Each iteration follows the reference
    (docs/method.md#pix2pix-training-step): forward, discriminator step (fake, then real), then
    generator step with the discriminator frozen. Batches carry the input as ``A`` and the target
    as ``B`` (the datamodule applies ``direction``). Inference keeps the reference's test-time
    train mode unless ``eval_mode`` (an option of :class:`ImageTranslationModule`, like the
    architecture, widths, learning rate, channels and speed options); ``batched_calls`` judges the real and
    fake pairs in one discriminator call, which is not exact with batch norm.

    Args:
        generator: generator architecture (see :class:`ImageTranslationModule`); the published
            pix2pix's is ``unet_256``.
        norm: normalisation layer; the published pix2pix's is ``batch``.
        dropout: dropout (0.5) in the generator, pix2pix's source of noise.
        gan_mode: adversarial loss; the published pix2pix's is ``vanilla``.
        lambda_l1: weight of the L1 term between output and target.
    """

    method_name = "pix2pix"
    paired = True
    translations = (Translation("AtoB", source="input", output="output", target="target", generator="gen"),)
    reference_networks = {"G": "gen", "D": "disc"}
    # The published generators are U-Nets; a ResNet is an option; there are no anti-aliased layers.
    reference_generators = {("unet", False): 2, ("resnet", False): 1}
    card_summary = "paired image-to-image translation with a conditional GAN (Isola et al., CVPR 2017)."
    published_models = tuple(
        PublishedModel(
            f"pix2pix_{name}",
            method="pix2pix",
            label="pix2pix",
            path=f"pix2pix/models-pytorch/{name}.pth",
            generator="unet_256",
            norm="batch",
            translates=translates,
            dataset=dataset,
            # The reference generator's dropout, which the file cannot tell.
            hparams={"dropout": True},
            fit_command=f"python -m cyclegan_pl fit --config {_FIT_CONFIGS[dataset]}"
            if dataset in _FIT_CONFIGS
            else None,
            sha256=_SHA256.get(name),
        )
        for name, translates, dataset in _PUBLISHED
    )
    progress_bar_losses = ("g", "d")

    def __init__(
        self,
        generator: GeneratorName = "unet_256",  # type: ignore[valid-type]
        norm: NormName = "batch",  # type: ignore[valid-type]
        dropout: bool = True,
        gan_mode: GANMode = "vanilla",  # type: ignore[valid-type]
        lambda_l1: float = 100.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator=generator, norm=norm, dropout=dropout, gan_mode=gan_mode, **kwargs)
        hp = self.hparams
        self.gen = self.build_generator(hp.input_nc, hp.output_nc)
        self.disc = self.build_discriminator(hp.input_nc + hp.output_nc)
        self._apply_network_options()

    def discriminators(self) -> List[nn.Module]:
        return [self.disc]

    # --- the algorithm (docs/method.md#pix2pix-training-step) ------------------------------
    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        fake_b = self.gen(real_a)
        d_losses = self.discriminator_step(opt_d, real_a, real_b, fake_b)
        g_losses = self.generator_step(opt_g, real_a, real_b, fake_b)
        self.log_losses({**g_losses, **d_losses}, batch_size=real_a.shape[0])

    def discriminator_step(self, opt_d, real_a: Tensor, real_b: Tensor, fake_b: Tensor) -> Dict[str, Tensor]:
        """0.5 * (GAN(D(A, fake_B), fake) + GAN(D(A, B), real)); fake pair judged first."""
        loss = self.discriminator_loss(self.disc, real_b, fake_b.detach(), fake_first=True, condition=real_a)
        losses = {"d": loss}
        self.optimizer_step_with([opt_d], loss, losses)
        return losses

    def generator_step(self, opt_g, real_a: Tensor, real_b: Tensor, fake_b: Tensor) -> Dict[str, Tensor]:
        """GAN(D(A, fake_B), real) + lambda_l1 * L1(fake_B, B) with the discriminator frozen."""
        with frozen(self.disc):
            losses = {
                "g_gan": self.gan_loss(self.disc(torch.cat([real_a, fake_b], dim=1)), True),
                "l1": F.l1_loss(fake_b, real_b) * self.hparams.lambda_l1,
            }
            losses["g"] = losses["g_gan"] + losses["l1"]
            self.optimizer_step_with([opt_g], losses["g"], losses)
        return losses

    # --- evaluation -----------------------------------------------------------------------
    def visuals(self, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        """input, output, target."""
        return {"input": batch["A"], "output": self.translate(batch["A"]), "target": batch["B"]}

    def evaluation_losses(self, batch: Dict[str, Any], visuals: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """L1 distance between output and target."""
        return {"l1": F.l1_loss(visuals["output"], visuals["target"])}
