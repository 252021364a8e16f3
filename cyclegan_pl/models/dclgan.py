"""DCLGAN (Han et al., CVPRW 2021): two generators trained with a dual patch-wise contrastive loss."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Mapping, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegan_pl.errors import OptionError
from cyclegan_pl.losses import GANMode, cosine_patch_nce_loss
from cyclegan_pl.methods import register_method
from cyclegan_pl.models.base import ImageTranslationModule, Translation, frozen
from cyclegan_pl.models.streams import StepGenerator
from cyclegan_pl.networks import (
    InitType,
    PatchProjection,
    ResnetGenerator,
    TimeConditionalPatchDiscriminator,
    draw_patch_ids,
    init_weights,
)

#: The stream number of the generator that draws a training step's patch positions.
PATCH_STREAM = 1

NCEPairwise = Literal["broadcast", "matmul"]


@register_method
class DCLGAN(ImageTranslationModule):
    """Dual Contrastive Learning GAN: two generators, each kept faithful to its input by the other's encoder.

    Networks (the authors' names in brackets): ``gen_ab`` (G_A, A -> B) and ``gen_ba`` (G_B,
    B -> A), anti-aliased ResNets; ``disc_b`` (D_A, judges domain B) and ``disc_a`` (D_B, judges
    domain A), anti-aliased PatchGANs; ``projection_ab`` (F1, the heads of G_A's features) and
    ``projection_ba`` (F2, G_B's). There is no cycle and no image pool. Each iteration runs the
    authors' order (docs/method.md#dclgan): the four translations ``G_A(A)``, ``G_B(B)`` and the
    identities ``G_A(B)``, ``G_B(A)``; one Adam step on both discriminators; then, with them
    frozen, one backward of ``0.5 * (GAN_A + GAN_B) + 0.5 * (NCE_A + NCE_B) + 0.5 * (idt_A +
    idt_B)`` and the steps of the generators' Adam and the heads' Adam.

    The PatchNCE term of a direction compares the translation with its input: the keys are the
    translating generator's features of the input through its own heads, the queries the *other*
    generator's features of the translation through the other heads, compared by cosine
    similarity with the negatives taken from every patch of the batch
    (:func:`~cyclegan_pl.losses.cosine_patch_nce_loss`). The patch positions are drawn from a
    generator on the training device (``patch_stream``), seeded before every step from (seed,
    epoch, batch index, rank): first those of each layer of ``NCE(A, G_A(A))``, then those of
    ``NCE(B, G_B(B))``.

    The defaults are the authors' code's (they differ from CUT's: hinge loss, no layer 0, NCE
    weight 2, L1 identity terms, the heads' Adam at PyTorch's defaults). The options shared with
    the other methods are those of :class:`ImageTranslationModule`.

    Args:
        init_type: weight initialisation of every network; the authors' is ``xavier``.
        gan_mode: adversarial loss; the authors' ``hinge`` is ``hinge_margin`` here (the
            generator's term is ``relu(1 - D(G(x)))``, see :mod:`cyclegan_pl.losses`).
        antialias: blur-pooled G and D (the published networks); False uses CycleGAN's strided
            layers (then ``nce_layers`` index that network's entries).
        lambda_gan: weight of each generator's adversarial loss.
        lambda_nce: weight of each direction's PatchNCE loss; 0 turns it off, and with it the
            identity terms (as in the authors' code).
        lambda_idt: weight of the L1 identity terms ``|G_A(B) - B|`` and ``|G_B(A) - A|``, which
            exist only when ``lambda_nce > 0``; 0 turns them off (and their two generator calls).
        nce_layers: indices of the generators' ``model`` entries whose outputs are compared.
        num_patches: positions sampled per layer (all positions when fewer), the same for every
            image of the batch.
        nce_temperature: temperature tau of the PatchNCE logits.
        nce_pairwise: how the R x R cosines of a layer are computed (R = batch * patches):
            ``broadcast`` as published (an R x R x 256 intermediate: 64 MiB per layer at batch 1,
            1 GiB at batch 4), or ``matmul`` (R x R memory; the same values up to rounding).
        projection_units: width of the heads' MLP layers.
        projection_lr: initial learning rate of the heads' Adam (PyTorch's default 1e-3 in the
            authors' code, whatever ``lr`` is); it follows the same schedule.
        projection_beta1: the heads' Adam beta1 (0.9, PyTorch's default).
        projection_beta2: the heads' Adam beta2 (0.999).
    """

    method_name = "dclgan"
    translations = (
        Translation("AtoB", source="real_A", output="fake_B", target="real_B", generator="gen_ab"),
        Translation("BtoA", source="real_B", output="fake_A", target="real_A", generator="gen_ba"),
    )
    # The authors' D_A judges domain B images (it is trained against G_A's fakes): our disc_b.
    reference_networks = {
        "G_A": "gen_ab",
        "G_B": "gen_ba",
        "D_A": "disc_b",
        "D_B": "disc_a",
        "F1": "projection_ab",
        "F2": "projection_ba",
    }
    # The published generators are anti-aliased ResNets (a G_A/G_B folder of them is DCLGAN's, not
    # CycleGAN's); a plain ResNet is an option.
    reference_generators = {("resnet", True): 2, ("resnet", False): 1}
    card_summary = (
        "unpaired image-to-image translation with two generators and a dual patch-wise contrastive loss, "
        "no cycle (Han et al., CVPRW 2021)."
    )
    # The authors publish their models as Google Drive pages (cat <-> dog, horse <-> zebra,
    # cityscapes), not as plain files with a checksum: none is declared (docs/method.md#dclgan).
    published_models = ()
    optimizer_names = ("g", "d", "f")
    progress_bar_losses = ("g", "d_a", "d_b")

    def __init__(
        self,
        init_type: InitType = "xavier",  # type: ignore[valid-type]
        gan_mode: GANMode = "hinge_margin",  # type: ignore[valid-type]
        antialias: bool = True,
        lambda_gan: float = 1.0,
        lambda_nce: float = 2.0,
        lambda_idt: float = 1.0,
        nce_layers: Tuple[int, ...] = (4, 8, 12, 16),
        num_patches: int = 256,
        nce_temperature: float = 0.07,
        nce_pairwise: NCEPairwise = "broadcast",
        projection_units: int = 256,
        projection_lr: float = 1e-3,
        projection_beta1: float = 0.9,
        projection_beta2: float = 0.999,
        **kwargs: Any,
    ) -> None:
        super().__init__(init_type=init_type, gan_mode=gan_mode, **kwargs)
        hp = self.hparams
        if lambda_gan <= 0 and lambda_nce <= 0:
            raise OptionError(
                "lambda_gan=0 and lambda_nce=0: the generators would not train.", option=("lambda_gan", "lambda_nce")
            )
        if lambda_nce > 0 and lambda_idt > 0 and hp.input_nc != hp.output_nc:
            raise OptionError(
                f"lambda_idt={lambda_idt} runs each generator on the other domain's images, which needs input_nc == "
                f"output_nc (got {hp.input_nc} and {hp.output_nc}); set lambda_idt=0.",
                option="lambda_idt",
            )
        if num_patches < 1:
            raise OptionError(f"num_patches={num_patches}: must be at least 1.", option="num_patches")
        self.gen_ab = self.build_generator(hp.input_nc, hp.output_nc, antialias=antialias)
        self.gen_ba = self.build_generator(hp.output_nc, hp.input_nc, antialias=antialias)
        if not isinstance(self.gen_ab, ResnetGenerator):
            raise OptionError(
                f"generator={hp.generator}: DCLGAN compares features of the generators' `model` entries, which "
                "needs a ResNet generator (resnet_9blocks, resnet_<N>blocks).",
                option="generator",
            )
        self.disc_a = self.build_discriminator(hp.input_nc, antialias=antialias)
        self.disc_b = self.build_discriminator(hp.output_nc, antialias=antialias)
        if isinstance(self.disc_a, TimeConditionalPatchDiscriminator):
            raise OptionError(
                f"discriminator={hp.discriminator} is one of UNSB's time-conditional networks; DCLGAN's is a "
                "plain PatchGAN (basic, n_layers, pixel).",
                option="discriminator",
            )
        layers = list(nce_layers)
        self.projection_ab = init_weights(
            PatchProjection(self.gen_ab.feature_channels(layers), projection_units), init_type, hp.init_gain
        )
        self.projection_ba = init_weights(
            PatchProjection(self.gen_ba.feature_channels(layers), projection_units), init_type, hp.init_gain
        )
        self.patch_stream = StepGenerator(PATCH_STREAM)
        self._apply_network_options()

    @classmethod
    def reference_option_fixes(cls, options: Mapping[str, Any]) -> Dict[str, Any]:
        # The identity terms run each generator on the other domain, which needs equal channels.
        if "lambda_idt" not in options and options.get("input_nc", 3) != options.get("output_nc", 3):
            return {"lambda_idt": 0.0}
        return {}

    def discriminators(self) -> List[nn.Module]:
        return [self.disc_a, self.disc_b]

    def optimizer_groups(self) -> List[List[nn.Parameter]]:
        """Both generators, both discriminators, both heads: three Adams (all under the same schedule)."""
        heads = [p for net in (self.projection_ab, self.projection_ba) for p in net.parameters()]
        return [*super().optimizer_groups(), heads]

    def configure_optimizers(self) -> List[torch.optim.Optimizer]:
        """G's and D's Adam at ``lr``, ``(beta1, beta2)``; the heads' at ``projection_lr`` and betas."""
        opt_g, opt_d, opt_f = super().configure_optimizers()
        hp = self.hparams
        for group in opt_f.param_groups:
            # Before any step, so no Adam state depends on the old values; the schedule scales initial_lr.
            group["lr"] = group["initial_lr"] = hp.projection_lr
            group["betas"] = (hp.projection_beta1, hp.projection_beta2)
        return [opt_g, opt_d, opt_f]

    @property
    def uses_nce(self) -> bool:
        return self.hparams.lambda_nce > 0

    @property
    def uses_identity(self) -> bool:
        return self.uses_nce and self.hparams.lambda_idt > 0

    # --- the algorithm (docs/method.md#dclgan) ---------------------------------------------------
    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        opt_g, opt_d, opt_f = self.optimizers()
        # The step's patch positions, drawn on the device (see the class doc).
        draws = self.step_generator(self.patch_stream, batch_idx)
        images = self.generate(batch["A"], batch["B"])
        d_losses = self.discriminator_step(opt_d, images)
        g_losses = self.generator_step([opt_g, opt_f], images, draws)
        self.log_losses({**d_losses, **g_losses}, batch_size=batch["A"].shape[0])

    def generate(self, real_a: Tensor, real_b: Tensor) -> Dict[str, Tensor]:
        """Step 1: fake_B = G_A(A), fake_A = G_B(B) and the identities idt_B = G_A(B), idt_A = G_B(A).

        Four calls, as the authors make them (``batched_calls`` makes two).
        """
        images = {"real_a": real_a, "real_b": real_b}
        if self.hparams.batched_calls and self.uses_identity:
            n = real_a.shape[0]
            images["fake_b"], images["idt_b"] = self.gen_ab(torch.cat([real_a, real_b])).split([n, n])
            images["fake_a"], images["idt_a"] = self.gen_ba(torch.cat([real_b, real_a])).split([n, n])
            return images
        images["fake_b"] = self.gen_ab(real_a)
        images["fake_a"] = self.gen_ba(real_b)
        if self.uses_identity:
            images["idt_b"] = self.gen_ab(real_b)
            images["idt_a"] = self.gen_ba(real_a)
        return images

    def discriminator_step(self, opt_d, images: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Step 2: one Adam step on both discriminators, on the detached fakes and the real images.

        (The authors back-propagate the two losses one after the other; their parameters are
        disjoint, so one backward of the sum gives the same gradients.)
        """
        losses = {
            "d_b": self.discriminator_loss(self.disc_b, images["real_b"], images["fake_b"].detach()),
            "d_a": self.discriminator_loss(self.disc_a, images["real_a"], images["fake_a"].detach()),
        }
        self.optimizer_step_with([opt_d], losses["d_b"] + losses["d_a"], losses)
        return losses

    def nce_loss(
        self,
        source: Tensor,
        output: Tensor,
        key_gen: nn.Module,
        key_heads: nn.Module,
        query_gen: nn.Module,
        query_heads: nn.Module,
        draws: torch.Generator,
    ) -> Tensor:
        """Dual PatchNCE between ``source`` and its translation ``output``, averaged over the layers.

        Keys: ``key_gen``'s features of the source through ``key_heads`` (no gradient reaches them,
        so they are computed without one); queries: ``query_gen``'s features of the output
        through ``query_heads``, at the same freshly drawn positions.
        """
        hp = self.hparams
        layers = list(hp.nce_layers)
        queries = query_gen.encode(output, layers)
        with torch.no_grad():
            keys = key_gen.encode(source, layers)
            patch_ids = draw_patch_ids(keys, hp.num_patches, draws)
            projected_keys = key_heads(keys, patch_ids)
        projected_queries = query_heads(queries, patch_ids)
        total = 0.0
        for query, key in zip(projected_queries, projected_keys, strict=True):
            rows = cosine_patch_nce_loss(
                query.flatten(0, 1), key.flatten(0, 1), hp.nce_temperature, pairwise=hp.nce_pairwise
            )
            total = total + rows.mean()
        return total / len(layers)

    def generator_losses(self, images: Dict[str, Tensor], draws: torch.Generator) -> Dict[str, Tensor]:
        """The generators' terms (weighted) and their total ``g``, summed in the authors' order."""
        hp = self.hparams
        zero = images["real_a"].new_zeros(())
        losses: Dict[str, Tensor] = {}
        if hp.lambda_gan > 0:
            losses["g_gan_ab"] = self.gan_loss(self.disc_b(images["fake_b"]), True) * hp.lambda_gan
            losses["g_gan_ba"] = self.gan_loss(self.disc_a(images["fake_a"]), True) * hp.lambda_gan
        if self.uses_nce:
            # NCE_A: G_A's keys (heads F1), G_B's queries (heads F2); NCE_B the other way round.
            nce_ab = self.nce_loss(
                images["real_a"],
                images["fake_b"],
                self.gen_ab,
                self.projection_ab,
                self.gen_ba,
                self.projection_ba,
                draws,
            )
            nce_ba = self.nce_loss(
                images["real_b"],
                images["fake_a"],
                self.gen_ba,
                self.projection_ba,
                self.gen_ab,
                self.projection_ab,
                draws,
            )
            losses["nce_ab"], losses["nce_ba"] = nce_ab * hp.lambda_nce, nce_ba * hp.lambda_nce
        if self.uses_identity:
            losses["idt_b"] = F.l1_loss(images["idt_b"], images["real_b"]) * hp.lambda_idt
            losses["idt_a"] = F.l1_loss(images["idt_a"], images["real_a"]) * hp.lambda_idt
        term = lambda name: losses.get(name, zero)  # noqa: E731
        losses["g"] = (
            (term("g_gan_ab") + term("g_gan_ba")) * 0.5
            + (term("nce_ab") + term("nce_ba")) * 0.5
            + (term("idt_b") + term("idt_a")) * 0.5
        )
        return losses

    def generator_step(
        self, optimizers: Sequence[Any], images: Dict[str, Tensor], draws: torch.Generator
    ) -> Dict[str, Tensor]:
        """Step 3: with both discriminators frozen, one backward; Adam steps of the generators, then the heads."""
        with frozen(self.disc_a, self.disc_b):
            losses = self.generator_losses(images, draws)
            self.optimizer_step_with(optimizers, losses["g"], losses)
        return losses

    # --- evaluation -------------------------------------------------------------------------
    def visuals(self, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        """real_A, fake_B, real_B, fake_A, and with the identity terms idt_B = G_A(B), idt_A = G_B(A)."""
        real_a, real_b = batch["A"], batch["B"]
        visuals = {
            "real_A": real_a,
            "fake_B": self.translate(real_a, "AtoB"),
            "real_B": real_b,
            "fake_A": self.translate(real_b, "BtoA"),
        }
        if self.uses_identity:
            visuals["idt_B"] = self.translate(real_b, "AtoB")
            visuals["idt_A"] = self.translate(real_a, "BtoA")
        return visuals
