"""CycleGAN (Zhu et al., ICCV 2017) as a LightningModule with the reference update order."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegan_pl.losses import build_gan_loss, gradient_penalty
from cyclegan_pl.models.base import (
    ImageTranslationModule,
    NonFinitePolicy,
    OptimizerImpl,
    frozen,
)
from cyclegan_pl.networks import define_discriminator, define_generator

ImagePool = Callable[[Tensor], Tensor]


class CycleGAN(ImageTranslationModule):
    """Unpaired image-to-image translation with cycle consistency.

    Networks: ``gen_ab`` (A -> B), ``gen_ba`` (B -> A), ``disc_a`` (judges domain A images),
    ``disc_b`` (judges domain B images). In the reference code's names ``gen_ab`` is G_A,
    ``gen_ba`` is G_B, ``disc_b`` is D_A and ``disc_a`` is D_B. Each training iteration runs
    REFERENCE.md's order: forward, one generator step with the discriminators frozen, one
    discriminator step on fakes drawn through the image buffers (``fake_pool_a`` /
    ``fake_pool_b``, set by the ``ImageBuffer`` callback; without it D sees the current fakes).

    Args:
        generator: generator architecture (``resnet_9blocks``, ``resnet_6blocks``,
            ``resnet_<N>blocks``, ``unet_256``, ``unet_128``, ``unet_<side>``).
        discriminator: discriminator architecture (``basic``, ``n_layers``, ``pixel``).
        ngf: number of generator filters in the first conv layer.
        ndf: number of discriminator filters in the first conv layer.
        n_layers_d: number of strided layers when ``discriminator`` is ``n_layers``.
        norm: normalisation layer (``instance``, ``batch``, ``none``).
        dropout: use dropout (0.5) in the generators' residual / U-Net blocks.
        init_type: weight initialisation (``normal``, ``xavier``, ``kaiming``, ``orthogonal``).
        init_gain: scale of the initialisation.
        gan_mode: adversarial loss (``lsgan``, ``vanilla``, ``wgangp``, ``hinge``).
        lambda_a: weight of the cycle loss A -> B -> A.
        lambda_b: weight of the cycle loss B -> A -> B.
        lambda_identity: identity loss weight, relative to the cycle weights (the identity term
            of domain A is ``lambda_a * lambda_identity * L1(gen_ba(A), A)``); 0 skips the
            identity terms and their generator calls.
        gp_weight: weight of the gradient penalty added to the discriminator loss when
            ``gan_mode`` is ``wgangp``.
        lr: initial learning rate of both Adam optimisers.
        beta1: Adam beta1.
        beta2: Adam beta2.
        input_nc: channels of domain A images.
        output_nc: channels of domain B images.
        eval_mode: run inference (validation, test, predict, sample grids) with the networks in
            eval mode. False (the reference behaviour) keeps dropout and batch statistics on;
            with instance norm and no dropout both give the same images.
        on_nonfinite: what to do when a loss term is NaN/inf: ``raise`` stops training with the
            term's name and the step, ``skip`` skips that optimizer step and counts it,
            ``ignore`` does not check (as the reference; saves one device sync per step).
        batched_calls: run the generator and discriminator calls that the algorithm allows in
            one batch (gen_ab on [A, B], gen_ba on [fake_B, B, A], each D on [real, fake]):
            fewer, larger kernel launches. Exact with instance norm, not with batch norm.
        channels_last: keep networks and inputs in channels-last memory format (faster on
            tensor-core GPUs).
        compile: ``torch.compile`` the networks (state_dict keys stay unchanged).
        gradient_checkpointing: recompute the ResNet generators' residual blocks in the
            backward pass instead of storing their activations (less memory at high resolution,
            same numbers, about a third more generator compute).
        optimizer_impl: Adam implementation: ``default`` (PyTorch's choice), ``foreach`` or
            ``fused`` (CUDA); the last two differ from ``default`` only in rounding.
        reseed_every_step: reseed the global random generators before every training step
            from (``seed_everything``'s seed, epoch, batch index, rank), so a resumed run draws
            the same dropout masks and penalty mixes as an uninterrupted one. False leaves the
            streams running.
    """

    progress_bar_losses = ("g", "d_a", "d_b")

    def __init__(
        self,
        generator: str = "resnet_9blocks",
        discriminator: str = "basic",
        ngf: int = 64,
        ndf: int = 64,
        n_layers_d: int = 3,
        norm: str = "instance",
        dropout: bool = False,
        init_type: str = "normal",
        init_gain: float = 0.02,
        gan_mode: str = "lsgan",
        lambda_a: float = 10.0,
        lambda_b: float = 10.0,
        lambda_identity: float = 0.5,
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
        if lambda_identity > 0 and input_nc != output_nc:
            raise ValueError(
                f"model.lambda_identity={lambda_identity} needs input_nc == output_nc "
                f"(got {input_nc} and {output_nc}); set model.lambda_identity=0."
            )
        gen_kwargs = dict(ngf=ngf, norm=norm, dropout=dropout, init_type=init_type, init_gain=init_gain)
        disc_kwargs = dict(ndf=ndf, n_layers=n_layers_d, norm=norm, init_type=init_type, init_gain=init_gain)
        self.gen_ab = define_generator(generator, input_nc, output_nc, **gen_kwargs)
        self.gen_ba = define_generator(generator, output_nc, input_nc, **gen_kwargs)
        self.disc_a = define_discriminator(discriminator, input_nc, **disc_kwargs)
        self.disc_b = define_discriminator(discriminator, output_nc, **disc_kwargs)
        self.gan_loss = build_gan_loss(gan_mode)
        self.lambda_a = lambda_a
        self.lambda_b = lambda_b
        self.lambda_identity = lambda_identity
        self.gp_weight = gp_weight
        self.batched_calls = batched_calls
        self.fake_pool_a: Optional[Callable[[Tensor], Tensor]] = None
        self.fake_pool_b: Optional[Callable[[Tensor], Tensor]] = None
        self._apply_network_options()

    def generator_for(self, direction: str) -> nn.Module:
        generators = {"AtoB": self.gen_ab, "BtoA": self.gen_ba}
        if direction not in generators:
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        return generators[direction]

    def generators(self) -> List[nn.Module]:
        return [self.gen_ab, self.gen_ba]

    def discriminators(self) -> List[nn.Module]:
        return [self.disc_a, self.disc_b]

    @property
    def uses_identity(self) -> bool:
        return self.lambda_identity > 0

    # --- the algorithm (REFERENCE.md, "CycleGAN training step") ----------------------------
    def training_step(self, batch: Dict, batch_idx: int) -> None:
        real_a, real_b = self._prepare_input(batch["A"]), self._prepare_input(batch["B"])
        opt_g, opt_d = self.optimizers()
        images = self.generate(real_a, real_b)
        g_losses = self.generator_step(opt_g, images)
        d_losses = self.discriminator_step(opt_d, images)
        self._log_training({**g_losses, **d_losses})

    def generate(self, real_a: Tensor, real_b: Tensor) -> Dict[str, Tensor]:
        """Step 1: fakes, reconstructions and (when used) identity images, with gradients."""
        if self.batched_calls:
            return self._generate_batched(real_a, real_b)
        images = {"real_a": real_a, "real_b": real_b}
        images["fake_b"] = self.gen_ab(real_a)
        images["rec_a"] = self.gen_ba(images["fake_b"])
        images["fake_a"] = self.gen_ba(real_b)
        images["rec_b"] = self.gen_ab(images["fake_a"])
        if self.uses_identity:
            images["idt_b"] = self.gen_ab(real_b)
            images["idt_a"] = self.gen_ba(real_a)
        return images

    def _generate_batched(self, real_a: Tensor, real_b: Tensor) -> Dict[str, Tensor]:
        # gen_ab sees A (for fake_B) and B (for identity) together; gen_ba then sees fake_B
        # (reconstruction), B (fake_A) and A (identity) together; rec_B needs fake_A first.
        n = real_a.shape[0]
        ab_inputs = [real_a, real_b] if self.uses_identity else [real_a]
        ab_out = self.gen_ab(torch.cat(ab_inputs))
        fake_b = ab_out[:n]
        ba_inputs = [fake_b, real_b, real_a] if self.uses_identity else [fake_b, real_b]
        ba_out = self.gen_ba(torch.cat(ba_inputs))
        images = {"real_a": real_a, "real_b": real_b, "fake_b": fake_b,
                  "rec_a": ba_out[:n], "fake_a": ba_out[n:2 * n]}
        images["rec_b"] = self.gen_ab(images["fake_a"])
        if self.uses_identity:
            images["idt_b"] = ab_out[n:]
            images["idt_a"] = ba_out[2 * n:]
        return images

    def generator_losses(self, images: Dict[str, Tensor]) -> Dict[str, Tensor]:
        losses = {
            "g_gan_ab": self.gan_loss(self.disc_b(images["fake_b"]), True),
            "g_gan_ba": self.gan_loss(self.disc_a(images["fake_a"]), True),
            "cycle_a": F.l1_loss(images["rec_a"], images["real_a"]) * self.lambda_a,
            "cycle_b": F.l1_loss(images["rec_b"], images["real_b"]) * self.lambda_b,
        }
        if self.uses_identity:
            losses["idt_a"] = F.l1_loss(images["idt_a"], images["real_a"]) * self.lambda_a * self.lambda_identity
            losses["idt_b"] = F.l1_loss(images["idt_b"], images["real_b"]) * self.lambda_b * self.lambda_identity
        return losses

    def generator_step(self, opt_g, images: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Step 2: one Adam step on both generators with the discriminators frozen."""
        with frozen(self.disc_a, self.disc_b):
            losses = self.generator_losses(images)
            losses["g"] = sum(losses.values())
            self._optimizer_step(opt_g, losses["g"], losses)
        return losses

    def discriminator_loss(self, disc: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """0.5 * (GAN(D(real), real) + GAN(D(fake), fake)) (+ gradient penalty for wgangp)."""
        if self.batched_calls:
            pred_real, pred_fake = disc(torch.cat([real, fake])).chunk(2)
        else:
            pred_real, pred_fake = disc(real), disc(fake)
        loss = 0.5 * (self.gan_loss(pred_real, True, for_discriminator=True)
                      + self.gan_loss(pred_fake, False, for_discriminator=True))
        if self.gan_loss.uses_gradient_penalty:
            loss = loss + self.gp_weight * gradient_penalty(disc, real, fake)
        return loss

    def discriminator_step(self, opt_d, images: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Step 3: one Adam step on both discriminators, fakes drawn through the buffers."""
        fake_b = images["fake_b"].detach()
        fake_a = images["fake_a"].detach()
        if self.fake_pool_b is not None:
            fake_b = self.fake_pool_b(fake_b)
        if self.fake_pool_a is not None:
            fake_a = self.fake_pool_a(fake_a)
        losses = {
            "d_b": self.discriminator_loss(self.disc_b, images["real_b"], fake_b),
            "d_a": self.discriminator_loss(self.disc_a, images["real_a"], fake_a),
        }
        self._optimizer_step(opt_d, losses["d_a"] + losses["d_b"], losses)
        return losses

    # --- evaluation -----------------------------------------------------------------------
    def visuals(self, batch: Dict) -> Dict[str, Tensor]:
        """Images for sample grids: real_A, fake_B, rec_A, real_B, fake_A, rec_B."""
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.translate(real_a, "AtoB")
        fake_a = self.translate(real_b, "BtoA")
        return {
            "real_A": real_a, "fake_B": fake_b, "rec_A": self.translate(fake_b, "BtoA"),
            "real_B": real_b, "fake_A": fake_a, "rec_B": self.translate(fake_a, "AtoB"),
        }

    def _evaluation_losses(self, batch: Dict) -> Dict[str, Tensor]:
        images = self.visuals(batch)
        losses = {
            "cycle_a": F.l1_loss(images["rec_A"], images["real_A"]),
            "cycle_b": F.l1_loss(images["rec_B"], images["real_B"]),
        }
        if self.hparams.input_nc == self.hparams.output_nc:
            losses["idt_a"] = F.l1_loss(self.translate(batch["A"], "BtoA"), batch["A"])
            losses["idt_b"] = F.l1_loss(self.translate(batch["B"], "AtoB"), batch["B"])
        return losses

    def _log_evaluation(self, stage: str, batch: Dict) -> None:
        losses = self._evaluation_losses(batch)
        self.log_dict({f"{stage}/{name}": value for name, value in losses.items()},
                      on_epoch=True, sync_dist=True, batch_size=batch["A"].shape[0])

    def validation_step(self, batch: Dict, batch_idx: int) -> None:
        self._log_evaluation("val", batch)

    def test_step(self, batch: Dict, batch_idx: int) -> None:
        self._log_evaluation("test", batch)
