"""UNSB (Kim, Kwon, Kim and Ye, ICLR 2024): unpaired translation as a neural Schrödinger bridge."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from cyclegan_pl.errors import OptionError
from cyclegan_pl.losses import patch_nce_loss
from cyclegan_pl.methods import register_method
from cyclegan_pl.models.base import ImageTranslationModule, Translation, frozen
from cyclegan_pl.models.inference import inference_mode
from cyclegan_pl.models.streams import StepGenerator
from cyclegan_pl.networks import (
    DiscriminatorName,
    GeneratorName,
    InitType,
    PatchProjection,
    TimeConditionalPatchDiscriminator,
    TimeConditionalResnetGenerator,
    draw_patch_ids,
    energy_network,
    init_weights,
)
from cyclegan_pl.networks.padding import crop_to, pad_if_needed
from cyclegan_pl.seeding import hash_seed

#: The stream of a training step's time index: a CPU generator, seeded without the rank, so every
#: process takes the same number of path steps (the index decides the control flow).
TIME_STREAM = 1
#: The stream of a training step's noise, latents and patch positions (on the training device).
NOISE_STREAM = 2


def time_grid(num_timesteps: int) -> Tensor:
    """The ``T + 1`` times of UNSB's path, float32: 0, then 0.5 + 0.5 * (the harmonic partial sums
    1, 1 + 1/2, ... divided by their last), which run from 0.5 to 1.

    Summed in double precision, then rounded, as the authors' NumPy code does. With ``T = 1`` the
    times are never used (the path has no transition); they are (0, 1) here.
    """
    if num_timesteps == 1:
        return torch.tensor([0.0, 1.0])
    sums, partial = [], 0.0
    for increment in [0.0] + [1.0 / k for k in range(1, num_timesteps)]:
        partial += increment
        sums.append(partial)
    times = [0.0] + [0.5 * (sums[-1] / sums[-1]) + 0.5 * (s / sums[-1]) for s in sums]
    return torch.tensor(times, dtype=torch.float64).float()


@register_method
class UNSB(ImageTranslationModule):
    """Unpaired Neural Schrödinger Bridge: a few stochastic refinement steps from A towards B.

    Networks: ``gen`` (G, ``resnet_9blocks_cond``: ``G(x, t, z)`` with a step index ``t`` and a
    latent ``z``), ``disc`` (D, ``basic_cond``, judges domain B at step ``t``), ``energy`` (E,
    ``basic_cond`` on two stacked transitions, the entropy estimator of the SB loss) and
    ``projection`` (F, the PatchNCE heads). The path has ``num_timesteps`` steps on the grid of
    :func:`time_grid`: from ``X_0 = x``, ``X_s = (1 - a_s) X_{s-1} + a_s G(X_{s-1}) + sqrt(b_s tau) eps``
    (docs/method.md#unsb). Each iteration runs the authors' order: draw a step ``t``; run the path
    to ``X_t`` without gradient for the A batch, a second independent A batch (``A2``, see
    :class:`~cyclegan_pl.data.UnpairedDataModule`'s ``second_a``) and, with ``nce_idt``, the B
    batch; translate ``X_t`` (and ``X_t`` of B) and ``X_t`` of A2 with gradient; one Adam step on D;
    one on E; then, with D and E frozen, one backward of ``GAN + lambda_sb * SB + lambda_nce *
    NCE`` and the steps of G's and F's Adams. G runs in eval mode for the path and the
    translations, as in the authors' code (the same with instance norm and no dropout).

    Random draws: the step index comes from a CPU generator seeded from (seed, epoch, batch
    index), the same on every process; the rest from a generator on the training device seeded
    from (seed, epoch, batch index, rank), in this order: for each path step s = 0..t and each
    chain (A, A2, B) the noise (s > 0) and the latent; the latents of the translations of ``X_t``
    (and B's) and of A2's; then the latent and each layer's patch positions of ``NCE(A, G(X_t))``,
    then those of ``NCE(B, G(X_t^B))``. A resumed run draws them alike; nothing waits for the device.

    Translating (``translate``, ``predict``, ``test``, validation, sample grids) runs the path's
    ``inference_steps`` first steps (all ``num_timesteps`` by default) with fresh latents and
    noise from the sampling stream: seeded from ``sampling_seed`` (and the process rank) at the
    start of every validation, test and predict run, so a translation is reproducible;
    :meth:`reset_sampling` restarts it by hand, and the :class:`UNSBSampling` callback chooses the
    seed and the steps of a command-line run.

    The published generator ignores its step index (``time_conditional_blocks=False``); half of
    its parameters never get a gradient, so DDP must look for unused parameters (the command line
    does). The defaults are the authors' code's; their published commands set ``lambda_sb=1``
    (configs/h2z_unsb.yaml). The options shared with the other methods are those of
    :class:`ImageTranslationModule`.

    Args:
        generator: the time-conditional generator (``resnet_9blocks_cond``).
        discriminator: the time-conditional PatchGAN (``basic_cond``), also E's architecture.
        init_type: weight initialisation of G, D, E and F; the authors' is ``xavier``.
        antialias: blur-pooled G (the published network); D and E exist only blur-pooled.
        lambda_gan: weight of the generator's adversarial loss.
        lambda_sb: weight of the Schrödinger-bridge loss (entropy and transport terms); the
            authors' code defaults to 0.1, their published commands use 1.
        lambda_nce: weight of the PatchNCE loss. As in the authors' code it weights each row and
            then the loss again: it enters squared. 0 turns PatchNCE off.
        nce_idt: also run the path on B and apply PatchNCE to G(X_t of B) against B (identity
            NCE); the NCE term is then the mean of both.
        nce_layers: indices of G's entries whose outputs are compared (through ``model``, then
            the residual blocks: 12 is the first block's output).
        num_patches: positions sampled per layer and image batch (all positions when fewer).
        nce_temperature: temperature tau of the PatchNCE logits.
        num_timesteps: steps T of the path.
        tau: entropy regularisation: the path noise has variance ``b_s * tau``, and the SB loss
            weighs the entropy and transport terms by it.
        time_conditional_blocks: run each residual block's first stage in sequence (padding,
            convolution, + the embedded step, norm), as the authors' block was evidently meant to;
            False (their code) applies only the norm to the block input, and G ignores the step.
            Same parameters either way. The step is added per channel before the norm, so with
            ``norm`` instance or batch the norm removes it again: only ``norm=none`` makes G
            depend on the step (docs/method.md#unsb).
        inference_steps: path steps a translation runs (1 to ``num_timesteps``; default all):
            fewer steps are faster and, with the published networks, less refined.
        sampling_seed: seed of the latents and noise of translations.
        projection_units: width of F's MLP layers.
    """

    method_name = "unsb"
    translations = (Translation("AtoB", source="real_A", output="fake_B", target="real_B", generator="gen"),)
    reference_networks = {"G": "gen", "D": "disc", "E": "energy", "F": "projection"}
    # The published generator is the anti-aliased time-conditional ResNet; a strided one is an option.
    reference_generators = {("resnet_cond", True): 2, ("resnet_cond", False): 1}
    card_summary = (
        "unpaired image-to-image translation as a Schrödinger bridge: a few stochastic refinement steps, "
        "trained adversarially with an energy-based entropy term (Kim et al., ICLR 2024)."
    )
    # The authors publish no trained models.
    published_models = ()
    optimizer_names = ("g", "d", "e", "f")
    progress_bar_losses = ("g", "d", "e", "sb")
    # Every step of the sampler draws noise and a latent for the whole batch and conditions the
    # generator's normalisation on them: tiles would each follow a different path.
    tiling_refusal = (
        "UNSB's translation is a multi-step sampler drawing noise over the whole image, which tiles cannot "
        "share; translate whole images (raise --tiling.above above their size) or downscale them first."
    )

    def __init__(
        self,
        generator: GeneratorName = "resnet_9blocks_cond",  # type: ignore[valid-type]
        discriminator: DiscriminatorName = "basic_cond",  # type: ignore[valid-type]
        init_type: InitType = "xavier",  # type: ignore[valid-type]
        antialias: bool = True,
        lambda_gan: float = 1.0,
        lambda_sb: float = 0.1,
        lambda_nce: float = 1.0,
        nce_idt: bool = True,
        nce_layers: Tuple[int, ...] = (0, 4, 8, 12, 16),
        num_patches: int = 256,
        nce_temperature: float = 0.07,
        num_timesteps: int = 5,
        tau: float = 0.01,
        time_conditional_blocks: bool = False,
        inference_steps: Optional[int] = None,
        sampling_seed: int = 0,
        projection_units: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator=generator, discriminator=discriminator, init_type=init_type, **kwargs)
        hp = self.hparams
        if hp.input_nc != hp.output_nc:
            raise OptionError(
                f"UNSB's path mixes each image with its translation, which needs input_nc == output_nc (got "
                f"{hp.input_nc} and {hp.output_nc}).",
                option=("input_nc", "output_nc"),
            )
        if num_timesteps < 1:
            raise OptionError(f"num_timesteps={num_timesteps}: the path needs at least 1 step.", option="num_timesteps")
        if tau < 0:
            raise OptionError(f"tau={tau}: the noise variance must be >= 0.", option="tau")
        if num_patches < 1:
            raise OptionError(f"num_patches={num_patches}: must be at least 1.", option="num_patches")
        if lambda_gan <= 0 and lambda_sb <= 0 and lambda_nce <= 0:
            raise OptionError(
                "lambda_gan, lambda_sb and lambda_nce are all 0: the generator would not train.",
                option=("lambda_gan", "lambda_sb", "lambda_nce"),
            )
        self.gen = self.build_generator(hp.input_nc, hp.output_nc, antialias=antialias)
        if not isinstance(self.gen, TimeConditionalResnetGenerator):
            raise OptionError(
                f"generator={generator}: UNSB's generator takes a step index and a latent; use resnet_9blocks_cond.",
                option="generator",
            )
        self.gen.set_chain_conv_block(time_conditional_blocks)
        self.disc = self.build_discriminator(hp.output_nc, antialias=True)
        if not isinstance(self.disc, TimeConditionalPatchDiscriminator):
            raise OptionError(
                f"discriminator={discriminator}: UNSB's discriminator takes a step index; use basic_cond.",
                option="discriminator",
            )
        self.energy = init_weights(energy_network(hp.output_nc, hp.ndf, hp.norm), init_type, hp.init_gain)
        channels = self.gen.feature_channels(list(nce_layers))
        self.projection = init_weights(PatchProjection(channels, projection_units), init_type, hp.init_gain)
        self.inference_steps = inference_steps  # through the setter, which checks the range
        self.time_stream = StepGenerator(TIME_STREAM)
        self.noise_stream = StepGenerator(NOISE_STREAM)
        self._sampling: Optional[torch.Generator] = None
        self._times: Dict[torch.device, Tensor] = {}
        self._apply_network_options()

    def discriminators(self) -> List[nn.Module]:
        return [self.disc, self.energy]

    def optimizer_groups(self) -> List[List[nn.Parameter]]:
        """G, D, E and F, each with its own Adam (all at ``lr``, under the same schedule)."""
        return [list(net.parameters()) for net in (self.gen, self.disc, self.energy, self.projection)]

    # --- options that change after construction ---------------------------------------------
    @property
    def inference_steps(self) -> int:
        """Path steps a translation runs (the ``inference_steps`` option; setting it updates the hparams)."""
        return int(self.hparams.inference_steps or self.hparams.num_timesteps)

    @inference_steps.setter
    def inference_steps(self, value: Optional[int]) -> None:
        total = self.hparams.num_timesteps
        if value is not None and not 1 <= value <= total:
            raise OptionError(
                f"inference_steps={value}: a translation runs 1 to num_timesteps={total} steps of the path.",
                option="inference_steps",
            )
        self.hparams.inference_steps = value

    # --- the path (docs/method.md#unsb) -----------------------------------------------------------
    def times(self) -> Tensor:
        """:func:`time_grid` of ``num_timesteps`` on this module's device."""
        if self.device not in self._times:
            self._times[self.device] = time_grid(self.hparams.num_timesteps).to(self.device)
        return self._times[self.device]

    def transition(self, state: Tensor, prediction: Tensor, noise: Tensor, step: int) -> Tensor:
        """``X_step`` from ``X_{step-1}`` (``state``), its prediction ``G(X_{step-1})`` and N(0, I) noise."""
        times = self.times()
        delta = times[step] - times[step - 1]
        denom = times[-1] - times[step - 1]
        inter = (delta / denom).reshape(-1, 1, 1, 1)
        scale = (delta * (1 - delta / denom)).reshape(-1, 1, 1, 1)
        return (1 - inter) * state + inter * prediction + (scale * self.hparams.tau).sqrt() * noise

    def _latents(self, count: int, draws: torch.Generator) -> Tensor:
        return torch.randn(count, self.gen.z_dim, generator=draws, device=self.device)

    def _noise_like(self, images: Tensor, draws: torch.Generator) -> Tensor:
        return torch.randn(images.shape, generator=draws, device=images.device, dtype=images.dtype)

    def _step_indices(self, count: int, step: int) -> Tensor:
        return torch.full((count,), step, dtype=torch.long, device=self.device)

    # --- the algorithm (docs/method.md#unsb) ------------------------------------------------------
    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        opt_g, opt_d, opt_e, opt_f = self.optimizers()
        real_a2 = self.second_a_batch(batch)
        step = self.draw_time_index(batch_idx)
        # The step's noise, latents and patch positions, drawn on the device in this order (see the class doc).
        draws = self.step_generator(self.noise_stream, batch_idx)
        images = self.generate(batch["A"], batch["B"], real_a2, step, draws)
        d_losses = self.discriminator_step(opt_d, images)
        e_losses = self.energy_step(opt_e, images)
        g_losses = self.generator_step([opt_g, opt_f], images, draws)
        self.log_losses({**d_losses, **e_losses, **g_losses}, batch_size=batch["A"].shape[0])

    def second_a_batch(self, batch: Dict[str, Any]) -> Tensor:
        """The batch's ``A2`` images (prepared like ``A``): the second, independent A batch."""
        if "A2" not in batch:
            raise OptionError(
                "UNSB trains on a second, independent batch of domain A images (batch key A2): use "
                "UnpairedDataModule(second_a=True) (--data.init_args.second_a true; configs/h2z_unsb.yaml sets it).",
                option="second_a",
            )
        real_a2 = self.prepare_images(batch["A2"], "A")
        if real_a2.shape != batch["A"].shape:
            raise ValueError(f"A2 images {tuple(real_a2.shape)} are not shaped like A images {tuple(batch['A'].shape)}")
        return real_a2

    def draw_time_index(self, batch_idx: int) -> int:
        """Step 1: the step t in 0..T-1 of this iteration, the same on every process."""
        generator = self.time_stream.for_step(torch.device("cpu"), self.stream_seed, self.current_epoch, batch_idx, 0)
        return int(torch.randint(self.hparams.num_timesteps, (1,), generator=generator))

    def generate(
        self, real_a: Tensor, real_b: Tensor, real_a2: Tensor, step: int, draws: torch.Generator
    ) -> Dict[str, Any]:
        """Steps 2-3: the paths to ``X_t`` without gradient, then their translations with gradient."""
        n = real_a.shape[0]
        chains = [real_a, real_a2, real_b] if self.hparams.nce_idt else [real_a, real_a2]
        was_training = self.gen.training
        self.gen.eval()
        try:
            with torch.no_grad():
                states, predictions = list(chains), []
                for s in range(step + 1):
                    next_states, next_predictions = [], []
                    for k, state in enumerate(states):
                        if s > 0:
                            state = self.transition(state, predictions[k], self._noise_like(state, draws), s)
                        next_states.append(state)
                        next_predictions.append(self.gen(state, self._step_indices(n, s), self._latents(n, draws)))
                    states, predictions = next_states, next_predictions
            step_t = self._step_indices(1, step)
            inputs = torch.cat([states[0], states[2]]) if self.hparams.nce_idt else states[0]
            z_fake, z_fake2 = self._latents(inputs.shape[0], draws), self._latents(n, draws)
            fake = self.gen(inputs, step_t, z_fake)
            fake_b2 = self.gen(states[1], step_t, z_fake2)
        finally:
            self.gen.train(was_training)
        images: Dict[str, Any] = {
            "real_a": real_a,
            "real_b": real_b,
            "x_t": states[0],
            "x_t2": states[1],
            "step": step,
            "step_t": step_t,
            "fake_b": fake[:n],
            "fake_b2": fake_b2,
        }
        if self.hparams.nce_idt:
            images["idt_b"] = fake[n:]
        return images

    def discriminator_step(self, opt_d, images: Dict[str, Any]) -> Dict[str, Tensor]:
        """Step 4: one Adam step on D: 0.5 * (GAN(D(G(X_t), t), fake) + GAN(D(B, t), real))."""
        step_t, fake, real = images["step_t"], images["fake_b"].detach(), images["real_b"]
        if self.hparams.batched_calls:
            pred_fake, pred_real = self.disc(torch.cat([fake, real]), step_t).chunk(2)
        else:
            pred_fake, pred_real = self.disc(fake, step_t), self.disc(real, step_t)
        loss_fake = self.gan_loss(pred_fake, False, for_discriminator=True).mean()
        loss_real = self.gan_loss(pred_real, True, for_discriminator=True).mean()
        losses = {"d": (loss_fake + loss_real) * 0.5}
        self.optimizer_step_with([opt_d], losses["d"], losses)
        return losses

    def transitions(self, images: Dict[str, Any], detach: bool) -> Tuple[Tensor, Tensor]:
        """The transitions ``(X_t, G(X_t))`` of the A batch and of A2, each stacked along channels."""
        fake, fake2 = images["fake_b"], images["fake_b2"]
        if detach:
            fake, fake2 = fake.detach(), fake2.detach()
        return torch.cat([images["x_t"], fake], dim=1), torch.cat([images["x_t2"], fake2], dim=1)

    def energy_step(self, opt_e, images: Dict[str, Any]) -> Dict[str, Tensor]:
        """Step 5: one Adam step on E: ``-mean(E(P, t, P)) + L + L^2``, L = logsumexp of every score of E(P, t, P2).

        P holds the (detached) transitions of the A batch, P2 those of A2.
        """
        pair, pair2 = self.transitions(images, detach=True)
        step_t = images["step_t"]
        log_partition = torch.logsumexp(self.energy(pair, step_t, pair2).reshape(-1), dim=0).mean()
        losses = {"e": -self.energy(pair, step_t, pair).mean() + log_partition + log_partition**2}
        self.optimizer_step_with([opt_e], losses["e"], losses)
        return losses

    def sb_loss(self, images: Dict[str, Any]) -> Tensor:
        """The Schrödinger-bridge loss: ``-((T - t) / T) * tau * H + tau * mean((X_t - G(X_t))^2)``.

        H = ``mean(E(P, t, P)) - logsumexp(E(P, t, P2))`` estimates the entropy term; it goes
        through the translations of both A batches with gradient. (E's
        two calls run in the authors' order in each step: the order in which their gradients
        add up decides the last bits.)
        """
        hp = self.hparams
        pair, pair2 = self.transitions(images, detach=False)
        step_t = images["step_t"]
        entropy = self.energy(pair, step_t, pair).mean() - torch.logsumexp(
            self.energy(pair, step_t, pair2).reshape(-1), dim=0
        )
        # (T - t) / T as float32 tensor arithmetic, as the authors' code rounds it.
        loss = -(hp.num_timesteps - step_t[0]) / hp.num_timesteps * hp.tau * entropy
        return loss + hp.tau * torch.mean((images["x_t"] - images["fake_b"]) ** 2)

    def nce_loss(self, source: Tensor, output: Tensor, draws: torch.Generator) -> Tensor:
        """PatchNCE between ``source`` and its translation ``output``, rows weighted by ``lambda_nce``.

        Both are encoded by G at step 0 with one freshly drawn latent batch; the keys (the
        source's) get no gradient, so they are computed without one; the positions are drawn on
        the keys and reused for the queries.
        """
        hp = self.hparams
        layers = list(hp.nce_layers)
        z = self._latents(source.shape[0], draws)
        step0 = self._step_indices(1, 0)
        queries = self.gen.encode(output, step0, z, layers)
        with torch.no_grad():
            keys = self.gen.encode(source, step0, z, layers)
            patch_ids = draw_patch_ids(keys, hp.num_patches, draws)
            projected_keys = self.projection(keys, patch_ids)
        projected_queries = self.projection(queries, patch_ids)
        total = 0.0
        for query, key in zip(projected_queries, projected_keys, strict=True):
            total = total + (patch_nce_loss(query, key, temperature=hp.nce_temperature) * hp.lambda_nce).mean()
        return total / len(layers)

    def generator_losses(self, images: Dict[str, Any], draws: torch.Generator) -> Dict[str, Tensor]:
        """The generator's terms and its total ``g = GAN + lambda_sb * SB + lambda_nce * NCE``."""
        hp = self.hparams
        zero = images["real_a"].new_zeros(())
        losses: Dict[str, Tensor] = {}
        if hp.lambda_gan > 0:
            prediction = self.disc(images["fake_b"], images["step_t"])
            losses["g_gan"] = self.gan_loss(prediction, True).mean() * hp.lambda_gan
        if hp.lambda_sb > 0:
            losses["sb"] = self.sb_loss(images)
        nce_total = zero
        if hp.lambda_nce > 0:
            losses["nce"] = nce_total = self.nce_loss(images["real_a"], images["fake_b"], draws)
            if hp.nce_idt:
                losses["nce_idt"] = self.nce_loss(images["real_b"], images["idt_b"], draws)
                nce_total = (losses["nce"] + losses["nce_idt"]) * 0.5
        # lambda_nce weighted the rows already: it enters squared, as in the authors' code.
        losses["g"] = losses.get("g_gan", zero) + hp.lambda_sb * losses.get("sb", zero) + hp.lambda_nce * nce_total
        return losses

    def generator_step(
        self, optimizers: Sequence[Any], images: Dict[str, Any], draws: torch.Generator
    ) -> Dict[str, Tensor]:
        """Step 6: with D and E frozen, one backward; Adam steps of G, then F."""
        with frozen(self.disc, self.energy):
            losses = self.generator_losses(images, draws)
            self.optimizer_step_with(optimizers, losses["g"], losses)
        return losses

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and datamodule is not None and getattr(datamodule.hparams, "second_a", None) is False:
            raise OptionError(
                "UNSB trains on a second, independent batch of domain A images: set the data module's second_a=true "
                "(--data.init_args.second_a true; configs/h2z_unsb.yaml sets it).",
                option="second_a",
            )

    # --- inference ------------------------------------------------------------------------------
    def choose_sampling(self, seed: Optional[int] = None, steps: Optional[int] = None) -> None:
        """Translate with this sampling seed (None: keep ``sampling_seed``) and this many path steps
        (None: keep ``inference_steps``); the stream restarts from the seed."""
        if steps is not None:
            self.inference_steps = steps
        if seed is not None:
            self.hparams.sampling_seed = seed
        self.reset_sampling()

    def reset_sampling(self, seed: Optional[int] = None) -> None:
        """Restart the latents and noise of translations from ``seed`` (default: ``sampling_seed``).

        Called at the start of every validation, test and predict run; the stream also depends on
        the process rank, so processes translating different images draw different noise.
        """
        seed = self.hparams.sampling_seed if seed is None else seed
        rank = self._trainer.global_rank if self._trainer is not None else 0
        self._sampling = torch.Generator(device=self.device).manual_seed(hash_seed(seed, rank))

    def on_validation_epoch_start(self) -> None:
        self.reset_sampling()

    def on_test_epoch_start(self) -> None:
        self.reset_sampling()

    def on_predict_epoch_start(self) -> None:
        self.reset_sampling()

    def generate_for_inference(self, translation: Translation, images: Tensor) -> Tensor:
        """``inference_steps`` steps of the path from ``images``, with latents and noise of the sampling stream.

        Per step s: the noise of the transition (s > 0), then the latent of ``G(X_s, s, z)``; the
        result is the last prediction, as the authors' ``fake_<steps>``.
        """
        return self.sample_path(images)[-1]

    def sample_path(self, images: Tensor) -> List[Tensor]:
        """The predictions ``G(X_s, s, z_s)`` of each step of the path from prepared ``images``, in order.

        Prediction k - 1 is what ``k`` inference steps return (the authors' ``fake_k``): the
        steps share their draws, so fewer steps give the first predictions of the same path.
        """
        if self._sampling is None or self._sampling.device != self.device:
            self.reset_sampling()
        draws = self._sampling
        n = images.shape[0]
        state, predictions = images, []
        for s in range(self.inference_steps):
            if s > 0:
                state = self.transition(state, predictions[-1], self._noise_like(state, draws), s)
            predictions.append(self.gen(state, self._step_indices(n, s), self._latents(n, draws)))
        return predictions

    def translation_steps(self, images: Tensor) -> List[Tensor]:
        """Translate images (N, C, H, W in [-1, 1], or stored values) of any size and return every
        step's prediction at the input's size; the last is what :meth:`translate` returns."""
        height, width = images.shape[-2:]
        padded = pad_if_needed(self.prepare_images(images, "A"), self.gen.size_multiple)
        with inference_mode([self.gen], self.eval_mode):
            predictions = self.sample_path(padded)
        return [crop_to(prediction, height, width) for prediction in predictions]

    # --- evaluation -------------------------------------------------------------------------
    def visuals(self, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        """real_A, fake_B, real_B, and idt_B = the translation of B with identity NCE."""
        real_a, real_b = batch["A"], batch["B"]
        visuals = {"real_A": real_a, "fake_B": self.translate(real_a, "AtoB"), "real_B": real_b}
        if self.hparams.nce_idt:
            visuals["idt_B"] = self.translate(real_b, "AtoB")
        return visuals


class UNSBSampling(pl.Callback):
    """Choose a UNSB's sampling seed and step count for a run (``predict``, ``test``, ``validate``, ``fit``).

    Command-line runs with ``--ckpt_path`` take the model's options from the checkpoint, so
    ``--model.init_args.sampling_seed`` would not reach it; this callback sets them when the run
    starts (``--trainer.callbacks+=cyclegan_pl.UNSBSampling --trainer.callbacks.seed 7
    --trainer.callbacks.steps 2``); ``translate`` and ``app`` take ``--seed`` and ``--steps``. In
    Python, call ``model.choose_sampling(seed, steps)`` instead.

    Args:
        seed: the sampling seed of the run's translations (default: the model's ``sampling_seed``).
        steps: path steps per translation, 1 to ``num_timesteps`` (default: the model's
            ``inference_steps``).
    """

    def __init__(self, seed: Optional[int] = None, steps: Optional[int] = None) -> None:
        super().__init__()
        self.seed = seed
        self.steps = steps

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not isinstance(pl_module, UNSB):
            raise OptionError(
                f"UNSBSampling sets a UNSB's sampling seed and steps; the model is a {type(pl_module).__name__}.",
                option="callbacks",
            )
        pl_module.choose_sampling(self.seed, self.steps)
