"""CUT and FastCUT (Park et al., ECCV 2020): one-sided translation with a patch-wise contrastive loss."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from cyclegan_pl.errors import OptionError
from cyclegan_pl.losses import patch_nce_loss
from cyclegan_pl.methods import register_method
from cyclegan_pl.models.base import ImageTranslationModule, Translation, frozen
from cyclegan_pl.models.streams import StepGenerator
from cyclegan_pl.networks import (
    InitType,
    PatchProjection,
    ResnetGenerator,
    draw_patch_ids,
    init_weights,
)
from cyclegan_pl.weights.published import PublishedModel

#: The stream number of the generator that draws a training step's flip and patch positions.
PATCH_STREAM = 1

#: FastCUT is CUT with these options (docs/method.md#cut-and-fastcut, configs/h2z_fastcut.yaml).
FASTCUT_OPTIONS: Mapping[str, Any] = MappingProxyType({"nce_idt": False, "lambda_nce": 10.0, "flip_equivariance": True})

# The published models, one archive of reference run folders for all six: the name after the
# method prefix, the run folders' prefix, what it translates, the dataset, the folder of its input
# images. AFHQ (cat2dog) is no dataset of ours.
_PUBLISHED = [
    ("horse2zebra", "horse2zebra", "horse -> zebra", "horse2zebra", "testA"),
    ("cat2dog", "cat2dog", "cat -> dog (AFHQ)", None, None),
    ("cityscapes_label2photo", "cityscapes", "label map -> street photo (Cityscapes)", "cyclegan_cityscapes", None),
]
_VARIANTS = (("cut", "CUT", {}), ("fastcut", "FastCUT", dict(FASTCUT_OPTIONS)))
_FIT_CONFIGS = {"cut_horse2zebra": "configs/h2z_cut.yaml", "fastcut_horse2zebra": "configs/h2z_fastcut.yaml"}
# The sha256 of the published archive, once confirmed (see models/cyclegan.py): until then each
# model of it is checked by its architecture only.
_ARCHIVE_SHA256: Optional[str] = None


@register_method
class CUT(ImageTranslationModule):
    """Contrastive Unpaired Translation: CUT and, with other options, FastCUT.

    Networks: ``gen`` (A -> B, an anti-aliased ResNet by default), ``disc`` (a PatchGAN judging
    domain B) and ``projection`` (F, the per-layer MLP heads of the PatchNCE loss). There is no
    second generator, no cycle and no image pool. Each iteration runs the published order
    (docs/method.md#cut-and-fastcut): translate; one discriminator step; then, with D frozen,
    one step on G and one on F for ``lambda_gan * GAN(D(G(A)), real) + NCE``. F is built in
    ``__init__`` from the generator's channel counts, so it has its optimizer from the first
    step (the published code creates it, and its Adam, after the first forward).

    The flip of FastCUT and the patch positions are drawn from a generator on the training device
    (``patch_stream``), seeded before every step from (seed, epoch, batch index, rank): a resumed
    run draws the same positions as an uninterrupted one. Per step, the flip is drawn first (when
    ``flip_equivariance``), then the positions of each NCE layer for ``NCE(A, G(A))``, then fresh
    ones for ``NCE(B, G(B))``.

    The published defaults are CUT's; FastCUT is ``nce_idt=False, lambda_nce=10,
    flip_equivariance=True`` (configs/h2z_fastcut.yaml). The options shared with the other
    methods are those of :class:`ImageTranslationModule`.

    Args:
        init_type: weight initialisation of G, D and F; the published CUT's is ``xavier``.
        antialias: blur-pooled G and D (the published networks); False uses CycleGAN's strided
            layers (then ``nce_layers`` index that network's entries).
        lambda_gan: weight of the generator's adversarial loss.
        lambda_nce: weight of the PatchNCE loss (1 for CUT, 10 for FastCUT); 0 turns it off.
        nce_idt: also apply PatchNCE to G(B) against B (identity NCE; CUT on, FastCUT off); the
            NCE term is then the mean of both. G translates A and B in one batch.
        nce_layers: indices of the generator's ``model`` entries whose outputs are compared.
        num_patches: positions sampled per layer and image batch (all positions when fewer).
        nce_temperature: temperature tau of the PatchNCE logits.
        flip_equivariance: with probability 0.5 per iteration flip the whole input batch
            left-right before G (D sees the flipped output); the output's features are flipped
            back before sampling (FastCUT).
        nce_includes_all_negatives_from_minibatch: take each patch's negatives from all images of
            the batch instead of its own image only (for single-image translation).
        projection_units: width of F's MLP layers.
    """

    method_name = "cut"
    translations = (Translation("AtoB", source="real_A", output="fake_B", target="real_B", generator="gen"),)
    reference_networks = {"G": "gen", "D": "disc", "F": "projection"}
    # The published networks are anti-aliased ResNets; a plain ResNet is an option.
    reference_generators = {("resnet", True): 2, ("resnet", False): 1}
    card_summary = (
        "unpaired image-to-image translation with a patch-wise contrastive loss, one generator and no cycle "
        "(Park et al., ECCV 2020)."
    )
    published_models = tuple(
        PublishedModel(
            f"{variant}_{name}",
            method="cut",
            label=label,
            path="CUT/pretrained_models.tar",
            generator="resnet_9blocks",
            norm="instance",
            translates=translates,
            dataset=dataset,
            input_folder=folder,
            run_folder=f"{run}_{variant}_pretrained",
            # Every published network is blur-pooled; FastCUT's recipe differs from CUT's.
            hparams={"antialias": True, **options},
            fit_command=f"python -m cyclegan_pl fit --config {_FIT_CONFIGS[f'{variant}_{name}']}"
            if f"{variant}_{name}" in _FIT_CONFIGS
            else None,
            sha256=_ARCHIVE_SHA256,
        )
        for variant, label, options in _VARIANTS
        for name, run, translates, dataset, folder in _PUBLISHED
    )
    optimizer_names = ("g", "d", "f")
    progress_bar_losses = ("g", "d", "nce")

    def __init__(
        self,
        init_type: InitType = "xavier",  # type: ignore[valid-type]
        antialias: bool = True,
        lambda_gan: float = 1.0,
        lambda_nce: float = 1.0,
        nce_idt: bool = True,
        nce_layers: Tuple[int, ...] = (0, 4, 8, 12, 16),
        num_patches: int = 256,
        nce_temperature: float = 0.07,
        flip_equivariance: bool = False,
        nce_includes_all_negatives_from_minibatch: bool = False,
        projection_units: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(init_type=init_type, **kwargs)
        hp = self.hparams
        if nce_idt and lambda_nce > 0 and hp.input_nc != hp.output_nc:
            raise OptionError(
                f"nce_idt=True runs the generator on domain B images, which needs input_nc == output_nc "
                f"(got {hp.input_nc} and {hp.output_nc}); set nce_idt=False.",
                option="nce_idt",
            )
        if lambda_gan <= 0 and lambda_nce <= 0:
            raise OptionError(
                "lambda_gan=0 and lambda_nce=0: the generator would not train.", option=("lambda_gan", "lambda_nce")
            )
        if num_patches < 1:
            raise OptionError(f"num_patches={num_patches}: must be at least 1.", option="num_patches")
        self.gen = self.build_generator(hp.input_nc, hp.output_nc, antialias=antialias)
        if not isinstance(self.gen, ResnetGenerator):
            raise OptionError(
                f"generator={hp.generator}: CUT compares features of the generator's `model` entries, which "
                "needs a ResNet generator (resnet_9blocks, resnet_<N>blocks).",
                option="generator",
            )
        self.disc = self.build_discriminator(hp.output_nc, antialias=antialias)
        channels = self.gen.feature_channels(list(nce_layers))
        self.projection = init_weights(PatchProjection(channels, projection_units), init_type, hp.init_gain)
        self.patch_stream = StepGenerator(PATCH_STREAM)
        self._apply_network_options()

    @classmethod
    def reference_option_fixes(cls, options: Mapping[str, Any]) -> Dict[str, Any]:
        # Identity NCE runs G on domain B images, which needs equal channels.
        if "nce_idt" not in options and options.get("input_nc", 3) != options.get("output_nc", 3):
            return {"nce_idt": False}
        return {}

    def discriminators(self) -> List[nn.Module]:
        return [self.disc]

    def optimizer_groups(self) -> List[List[nn.Parameter]]:
        """G, D and F, each with its own Adam (all under the same schedule)."""
        return [list(self.gen.parameters()), list(self.disc.parameters()), list(self.projection.parameters())]

    @property
    def uses_nce(self) -> bool:
        return self.hparams.lambda_nce > 0

    @property
    def uses_identity(self) -> bool:
        return bool(self.hparams.nce_idt) and self.uses_nce

    # --- the algorithm (docs/method.md#cut-and-fastcut) --------------------------------------
    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        opt_g, opt_d, opt_f = self.optimizers()
        # The step's flip and patch positions, drawn on the device in this order (see the class doc).
        draws = self.step_generator(self.patch_stream, batch_idx)
        images = self.generate(batch["A"], batch["B"], draws)
        d_losses = self.discriminator_step(opt_d, images)
        g_losses = self.generator_step([opt_g, opt_f], images, draws)
        self.log_losses({**d_losses, **g_losses}, batch_size=batch["A"].shape[0])

    def generate(self, real_a: Tensor, real_b: Tensor, draws: torch.Generator) -> Dict[str, Any]:
        """Step 1: fake_B = G(A) and, with identity NCE, idt_B = G(B), in one batch, maybe flipped.

        The flip (FastCUT) is applied with ``torch.where``, without synchronising on the coin.
        """
        n = real_a.shape[0]
        inputs = torch.cat([real_a, real_b]) if self.uses_identity else real_a
        flipped = self.draw_flip(draws) if self.hparams.flip_equivariance else None
        if flipped is not None:
            inputs = torch.where(flipped, inputs.flip(3), inputs)
        outputs = self.gen(inputs)
        images: Dict[str, Any] = {"real_a": real_a, "real_b": real_b, "fake_b": outputs[:n], "flipped": flipped}
        if self.uses_identity:
            images["idt_b"] = outputs[n:]
        return images

    def draw_flip(self, draws: torch.Generator) -> Tensor:
        """FastCUT's coin: a boolean scalar on the device, True with probability 0.5."""
        return torch.rand((), generator=draws, device=self.device) < 0.5

    def discriminator_step(self, opt_d, images: Dict[str, Any]) -> Dict[str, Tensor]:
        """Step 2: one Adam step on D, on the detached fakes and real B images."""
        losses = {"d": self.discriminator_loss(self.disc, images["real_b"], images["fake_b"].detach(), fake_first=True)}
        self.optimizer_step_with([opt_d], losses["d"], losses)
        return losses

    def nce_loss(self, source: Tensor, output: Tensor, flipped: Optional[Tensor], draws: torch.Generator) -> Tensor:
        """PatchNCE between ``source`` and its translation ``output``, averaged over the layers.

        Queries are G's features of the output (flipped back when the input was flipped), keys
        G's features of the source at the same freshly drawn positions; keys get no gradient, so
        they are computed without one.
        """
        hp = self.hparams
        layers = list(hp.nce_layers)
        queries = self.gen.encode(output, layers)
        if flipped is not None:
            queries = [torch.where(flipped, feature.flip(3), feature) for feature in queries]
        with torch.no_grad():
            keys = self.gen.encode(source, layers)
            patch_ids = draw_patch_ids(keys, hp.num_patches, draws)
            projected_keys = self.projection(keys, patch_ids)
        projected_queries = self.projection(queries, patch_ids)
        total = 0.0
        for query, key in zip(projected_queries, projected_keys, strict=True):
            rows = patch_nce_loss(
                query,
                key,
                temperature=hp.nce_temperature,
                negatives_from_minibatch=hp.nce_includes_all_negatives_from_minibatch,
            )
            total = total + (rows * hp.lambda_nce).mean()
        return total / len(layers)

    def generator_losses(self, images: Dict[str, Any], draws: torch.Generator) -> Dict[str, Tensor]:
        hp = self.hparams
        losses: Dict[str, Tensor] = {}
        generator_total: Any = 0.0  # at least one term follows (checked in __init__)
        if hp.lambda_gan > 0:
            losses["g_gan"] = self.gan_loss(self.disc(images["fake_b"]), True) * hp.lambda_gan
            generator_total = losses["g_gan"]
        if self.uses_nce:
            losses["nce"] = self.nce_loss(images["real_a"], images["fake_b"], images["flipped"], draws)
            nce_total = losses["nce"]
            if self.uses_identity:
                losses["nce_idt"] = self.nce_loss(images["real_b"], images["idt_b"], images["flipped"], draws)
                nce_total = (losses["nce"] + losses["nce_idt"]) * 0.5
            generator_total = generator_total + nce_total
        losses["g"] = generator_total
        return losses

    def generator_step(
        self, optimizers: Sequence[Any], images: Dict[str, Any], draws: torch.Generator
    ) -> Dict[str, Tensor]:
        """Step 3: with D frozen, one Adam step on G and one on F."""
        with frozen(self.disc):
            losses = self.generator_losses(images, draws)
            self.optimizer_step_with(optimizers, losses["g"], losses)
        return losses

    # --- evaluation -------------------------------------------------------------------------
    def visuals(self, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        """real_A, fake_B, real_B, and idt_B = G(B) with identity NCE."""
        real_a, real_b = batch["A"], batch["B"]
        visuals = {"real_A": real_a, "fake_B": self.translate(real_a, "AtoB"), "real_B": real_b}
        if self.uses_identity:
            visuals["idt_B"] = self.translate(real_b, "AtoB")
        return visuals
