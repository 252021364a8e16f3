"""pix2pix (Isola et al., CVPR 2017) as a LightningModule with the reference update order."""

from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegan_pl.losses import build_gan_loss, gradient_penalty
from cyclegan_pl.models.base import ImageTranslationModule, NonFinitePolicy, OptimizerImpl, frozen
from cyclegan_pl.networks import define_discriminator, define_generator


class Pix2Pix(ImageTranslationModule):
    """Paired image-to-image translation with a conditional GAN and an L1 term.

    Networks: ``gen`` (input -> output) and ``disc``, a conditional discriminator that judges
    ``cat(input, output)``. Each iteration follows the reference: forward, discriminator step
    (fake, then real), then generator step with the discriminator frozen. Batches carry the
    input as ``A`` and the target as ``B`` (the datamodule applies ``direction``).

    Args:
        generator: generator architecture (``unet_256``, ``unet_128``, ``unet_<side>``,
            ``resnet_9blocks``, ...).
        discriminator: discriminator architecture (``basic``, ``n_layers``, ``pixel``).
        ngf: number of generator filters in the first conv layer.
        ndf: number of discriminator filters in the first conv layer.
        n_layers_d: number of strided layers when ``discriminator`` is ``n_layers``.
        norm: normalisation layer (``batch``, ``instance``, ``none``).
        dropout: use dropout (0.5) in the generator (pix2pix's source of noise).
        init_type: weight initialisation (``normal``, ``xavier``, ``kaiming``, ``orthogonal``).
        init_gain: scale of the initialisation.
        gan_mode: adversarial loss (``vanilla``, ``lsgan``, ``wgangp``, ``hinge``).
        lambda_l1: weight of the L1 term between output and target.
        gp_weight: weight of the gradient penalty when ``gan_mode`` is ``wgangp``.
        lr: initial learning rate of both Adam optimisers.
        beta1: Adam beta1.
        beta2: Adam beta2.
        input_nc: channels of the input images.
        output_nc: channels of the output images.
        eval_mode: run inference (validation, test, predict, sample grids) in eval mode:
            dropout off and BatchNorm running statistics, so the output is deterministic.
            False (the reference's default, without ``--eval``) keeps dropout and batch
            statistics on at test time.
        on_nonfinite: what to do when a loss term is NaN/inf: ``raise`` stops training with the
            term's name and the step, ``skip`` skips that optimizer step and counts it,
            ``ignore`` does not check (as the reference; saves one device sync per step).
        batched_calls: judge real and fake pairs in one discriminator call. Not exact with batch
            norm (the batch statistics then mix real and fake), so off by default.
        channels_last: keep networks and inputs in channels-last memory format.
        compile: ``torch.compile`` the networks (state_dict keys stay unchanged).
        gradient_checkpointing: recompute residual blocks in the backward pass (ResNet
            generators only).
        optimizer_impl: Adam implementation: ``default``, ``foreach`` or ``fused`` (CUDA).
        reseed_every_step: reseed the global random generators before every training step
            from (``seed_everything``'s seed, epoch, batch index, rank), so a resumed run draws
            the same dropout masks and penalty mixes as an uninterrupted one. False leaves the
            streams running.
    """

    progress_bar_losses = ("g", "d")

    def __init__(
        self,
        generator: str = "unet_256",
        discriminator: str = "basic",
        ngf: int = 64,
        ndf: int = 64,
        n_layers_d: int = 3,
        norm: str = "batch",
        dropout: bool = True,
        init_type: str = "normal",
        init_gain: float = 0.02,
        gan_mode: str = "vanilla",
        lambda_l1: float = 100.0,
        gp_weight: float = 10.0,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        input_nc: int = 3,
        output_nc: int = 3,
        eval_mode: bool = False,
        on_nonfinite: NonFinitePolicy = "raise",
        batched_calls: bool = False,
        channels_last: bool = False,
        compile: bool = False,
        gradient_checkpointing: bool = False,
        optimizer_impl: OptimizerImpl = "default",
        reseed_every_step: bool = True,
    ) -> None:
        super().__init__(lr, beta1, beta2, eval_mode, on_nonfinite, channels_last, compile,
                         gradient_checkpointing, optimizer_impl, reseed_every_step)
        self.save_hyperparameters()
        self.gen = define_generator(generator, input_nc, output_nc, ngf=ngf, norm=norm, dropout=dropout,
                                    init_type=init_type, init_gain=init_gain)
        self.disc = define_discriminator(discriminator, input_nc + output_nc, ndf=ndf, n_layers=n_layers_d,
                                         norm=norm, init_type=init_type, init_gain=init_gain)
        self.gan_loss = build_gan_loss(gan_mode)
        self.lambda_l1 = lambda_l1
        self.gp_weight = gp_weight
        self.batched_calls = batched_calls
        self._apply_network_options()

    def generator_for(self, direction: str) -> nn.Module:
        if direction != "AtoB":
            raise ValueError(
                f"Pix2Pix translates input -> output only (direction 'AtoB'), got {direction!r}; "
                "train with data.direction swapped for the other way."
            )
        return self.gen

    def generators(self) -> List[nn.Module]:
        return [self.gen]

    def discriminators(self) -> List[nn.Module]:
        return [self.disc]

    # --- the algorithm (REFERENCE.md, "pix2pix training step") -----------------------------
    def training_step(self, batch: Dict, batch_idx: int) -> None:
        real_a, real_b = self._prepare_input(batch["A"]), self._prepare_input(batch["B"])
        opt_g, opt_d = self.optimizers()
        fake_b = self.gen(real_a)
        d_losses = self.discriminator_step(opt_d, real_a, real_b, fake_b)
        g_losses = self.generator_step(opt_g, real_a, real_b, fake_b)
        self._log_training({**g_losses, **d_losses})

    def discriminator_step(self, opt_d, real_a: Tensor, real_b: Tensor, fake_b: Tensor) -> Dict[str, Tensor]:
        """0.5 * (GAN(D(A, fake_B), fake) + GAN(D(A, B), real)); fake pair judged first."""
        fake_pair = torch.cat([real_a, fake_b.detach()], dim=1)
        real_pair = torch.cat([real_a, real_b], dim=1)
        if self.batched_calls:
            pred_fake, pred_real = self.disc(torch.cat([fake_pair, real_pair])).chunk(2)
        else:
            pred_fake = self.disc(fake_pair)
            pred_real = self.disc(real_pair)
        loss = 0.5 * (self.gan_loss(pred_fake, False, for_discriminator=True)
                      + self.gan_loss(pred_real, True, for_discriminator=True))
        if self.gan_loss.uses_gradient_penalty:
            loss = loss + self.gp_weight * gradient_penalty(self.disc, real_b, fake_b, condition=real_a)
        losses = {"d": loss}
        self._optimizer_step(opt_d, loss, losses)
        return losses

    def generator_step(self, opt_g, real_a: Tensor, real_b: Tensor, fake_b: Tensor) -> Dict[str, Tensor]:
        """GAN(D(A, fake_B), real) + lambda_l1 * L1(fake_B, B) with the discriminator frozen."""
        with frozen(self.disc):
            losses = {
                "g_gan": self.gan_loss(self.disc(torch.cat([real_a, fake_b], dim=1)), True),
                "l1": F.l1_loss(fake_b, real_b) * self.lambda_l1,
            }
            losses["g"] = losses["g_gan"] + losses["l1"]
            self._optimizer_step(opt_g, losses["g"], losses)
        return losses

    # --- evaluation -----------------------------------------------------------------------
    def visuals(self, batch: Dict) -> Dict[str, Tensor]:
        """Images for sample grids: input, output, target."""
        return {"input": batch["A"], "output": self.translate(batch["A"]), "target": batch["B"]}

    def _log_evaluation(self, stage: str, batch: Dict) -> None:
        l1 = F.l1_loss(self.translate(batch["A"]), batch["B"])
        self.log(f"{stage}/l1", l1, on_epoch=True, sync_dist=True, batch_size=batch["A"].shape[0])

    def validation_step(self, batch: Dict, batch_idx: int) -> None:
        self._log_evaluation("val", batch)

    def test_step(self, batch: Dict, batch_idx: int) -> None:
        self._log_evaluation("test", batch)
