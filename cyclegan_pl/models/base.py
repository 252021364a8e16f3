"""The contract of a method: what it declares, what it implements, and the plumbing every method shares.

A method (CycleGAN, Pix2Pix, CUT...) is one file under ``models/``: a subclass of
:class:`ImageTranslationModule` registered with :func:`~cyclegan_pl.methods.register_method`. It
declares, as class attributes beside its code, what the rest of the package asks of it:

* ``method_name``: its name in commands and published-model entries (``cyclegan``);
* ``paired``: whether it trains on aligned pairs;
* ``translations``: one :class:`Translation` per direction it translates (the main one first):
  the generator attribute that translates it and the visuals holding its source, output and target
  (callbacks, commands and export ask this, never the networks);
* ``reference_networks``: the reference implementation's network names (its files
  ``<epoch>_net_<NAME>.pth``) mapped to our attributes, which ``import-reference`` loads and
  which tell old checkpoints apart; and how well a reference generator fits it
  (:meth:`reference_fit`, :meth:`reference_options`);
* ``card_summary``: the model card's sentence about the method;
* ``published_models``: the models its authors published (``download-model``);
* ``image_pools``: the pools of generated images its discriminators draw from, if any.

It implements ``__init__`` (its own options, passing the shared ones on with ``**kwargs``; every
option lives in ``self.hparams`` only, so what a checkpoint and ``--print_config`` show is what
runs), ``discriminators()``, ``visuals(batch)`` and ``training_step``, written as the algorithm's
steps, each a short named method that calls :meth:`optimizer_step_with` for its optimizer(s).

The machinery lives beside this file: :mod:`~cyclegan_pl.models.nonfinite` (the non-finite loss
check), :mod:`~cyclegan_pl.models.streams` (per-step random streams),
:mod:`~cyclegan_pl.models.inference` (eval or test-time train mode),
:mod:`~cyclegan_pl.models.network_options` (checkpointing, compilation) and
:mod:`~cyclegan_pl.models.loss_log`; model folders and the Hub come from
:class:`~cyclegan_pl.weights.hub.PretrainedMixin`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    Iterator,
    List,
    Literal,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cyclegan_pl.data.intensity import IntensityMapping, default_mapping, load_intensity
from cyclegan_pl.data.native import RAW_DTYPES
from cyclegan_pl.data.transforms import IMAGE_KEYS
from cyclegan_pl.directions import Direction, check_direction
from cyclegan_pl.errors import OptionError
from cyclegan_pl.losses import GANMode, build_gan_loss, gradient_penalty
from cyclegan_pl.methods import class_path
from cyclegan_pl.models.inference import inference_mode
from cyclegan_pl.models.loss_log import LossLog
from cyclegan_pl.models.network_options import compile_networks, enable_gradient_checkpointing
from cyclegan_pl.models.nonfinite import NonFiniteCheck, NonFinitePolicy
from cyclegan_pl.models.streams import StepGenerator, reseed_global_generators, step_seed
from cyclegan_pl.networks import (
    DiscriminatorName,
    GeneratorName,
    InitType,
    NormName,
    define_discriminator,
    define_generator,
)
from cyclegan_pl.networks.padding import crop_to, pad_if_needed
from cyclegan_pl.networks.tiling import Tiling, translate_tiled
from cyclegan_pl.weights.checkpoints import CHECKPOINT_KEY
from cyclegan_pl.weights.hub import PretrainedMixin
from cyclegan_pl.weights.tensors import checked_state_dict

# The module prepares every batch itself (on_after_batch_transfer), with or without a data module:
# Lightning's notice that it then uses the module's hook says what is meant.
warnings.filterwarnings("ignore", message=r"You have overridden `on_after_batch_transfer` in `LightningModule` but")

OptimizerImpl = Literal["default", "foreach", "fused"]
#: A pool of generated images: takes a batch of fakes, returns a batch of fakes (new or stored).
ImagePool = Callable[[Tensor], Tensor]


class Translation(NamedTuple):
    """One direction a method translates, its generator and the names of its visuals.

    Attributes:
        direction: ``AtoB`` or ``BtoA``.
        source: the visual holding the input images (e.g. ``real_A``).
        output: the visual holding their translation (e.g. ``fake_B``).
        target: the visual holding real images of the output domain (e.g. ``real_B``): what FID
            compares ``output`` with, and pix2pix's ground truth.
        generator: the module attribute of the generator that translates this way.
    """

    direction: Direction
    source: str
    output: str
    target: str
    generator: str = "gen"


# Dtypes that hold stored values (:mod:`cyclegan_pl.data.native`), which the intensity mapping
# normalises; float32 and lower floats hold images already in [-1, 1].
_STORED_DTYPES = (torch.uint8, torch.int32, torch.float64)


def _first(value: Any) -> Any:
    """A batch entry that is the same for every item: collated into a list, or given once."""
    return value if isinstance(value, str) or not value else value[0]


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` of the modules' parameters for the block, then restore it.

    A generator step must not accumulate gradients into the discriminators
    (docs/method.md#cyclegan-training-step); restoring the previous flags keeps user choices such
    as frozen layers intact.
    """
    params = [p for module in modules for p in module.parameters()]
    previous = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, previous, strict=True):
            p.requires_grad_(flag)


class ImageTranslationModule(PretrainedMixin, pl.LightningModule):
    """Base LightningModule for GAN image translation with manual optimisation.

    The options every method shares are declared here, keyword-only, with CycleGAN's published
    values as defaults; a method declares its own options (loss weights...), re-declares a shared
    one whose published value differs (pix2pix's ``generator``...) and passes them all on.

    Args:
        generator: generator architecture: ``resnet_9blocks``, ``resnet_6blocks``,
            ``resnet_<N>blocks``, ``unet_256``, ``unet_128``, ``unet_<side>``.
        discriminator: discriminator architecture: ``basic`` (70x70 PatchGAN), ``n_layers``,
            ``pixel``.
        norm: normalisation layer: ``instance``, ``batch`` or ``none``.
        dropout: dropout (0.5) in the generators' residual / U-Net blocks.
        init_type: weight initialisation: ``normal``, ``xavier``, ``kaiming``, ``orthogonal``.
        gan_mode: adversarial loss: ``lsgan``, ``vanilla``, ``wgangp``, ``hinge``.
        ngf: number of generator filters in the first conv layer.
        ndf: number of discriminator filters in the first conv layer.
        n_layers_d: number of strided layers when ``discriminator`` is ``n_layers``.
        init_gain: scale of the weight initialisation.
        gp_weight: weight of the gradient penalty added to the discriminator loss when
            ``gan_mode`` is ``wgangp``.
        lr: initial learning rate of every Adam optimiser.
        beta1: Adam beta1.
        beta2: Adam beta2.
        input_nc: channels (bands) of domain A images (the input); must equal the data module's.
        output_nc: channels (bands) of domain B images (the output); must equal the data module's.
        eval_mode: run inference (validation, test, predict, sample grids) with the networks in
            eval mode: dropout off and BatchNorm running statistics, so the output is
            deterministic. False (the reference behaviour) keeps dropout and batch statistics on
            at test time; with instance norm and no dropout both give the same images.
        on_nonfinite: what to do when a loss term is NaN/inf: ``raise`` stops training with the
            term's name and the step, ``skip`` skips that optimizer step and counts it,
            ``ignore`` does not check (as the reference; saves one device sync per step).
        batched_calls: run the network calls that the algorithm allows in one batch (e.g. each
            discriminator on [real, fake]): fewer, larger kernel launches. Exact with instance
            norm, not with batch norm (the batch statistics would then mix images).
        channels_last: keep networks and inputs in channels-last memory format (faster on
            tensor-core GPUs).
        compile: ``torch.compile`` the networks (state_dict keys stay unchanged).
        gradient_checkpointing: recompute the generators' layers in the backward pass (the
            ResNet's residual blocks, every U-Net level) instead of storing their activations:
            less memory at high resolution, the same numbers, about a third more generator
            compute (docs/method.md#training-at-high-resolution).
        discriminator_checkpointing: the same for the discriminators' layers.
        optimizer_impl: Adam implementation: ``default`` (PyTorch's choice), ``foreach`` or
            ``fused`` (CUDA); the last two differ from ``default`` only in rounding.
        reseed_every_step: reseed the global random generators before every training step
            from (``seed_everything``'s seed, epoch, batch index, rank), so a resumed run draws
            the same dropout masks and penalty mixes as an uninterrupted one. False leaves the
            streams running.
    """

    #: the method's name in commands and published-model entries
    method_name: ClassVar[str]
    #: trains on aligned pairs (A and B of an item belong together)
    paired: ClassVar[bool] = False
    #: what the method translates; the first entry is its main direction
    translations: ClassVar[Tuple[Translation, ...]] = ()
    #: the reference code's network names (``<epoch>_net_<NAME>.pth``) -> our attributes
    reference_networks: ClassVar[Mapping[str, str]] = {}
    #: how well a reference generator of each (kind, anti-aliased) fits: 2 the published
    #: architecture, 1 one the options build (see :meth:`reference_fit`); a method listing an
    #: anti-aliased kind has the ``antialias`` option, which an import sets from the file
    reference_generators: ClassVar[Mapping[Tuple[str, bool], int]] = {}
    #: what the method is, in one sentence for model cards
    card_summary: ClassVar[str] = ""
    #: the models the method's authors published (``download-model``)
    published_models: ClassVar[Tuple[Any, ...]] = ()
    #: the pools of generated images the discriminators draw from (filled by ``ImagePoolCallback``)
    image_pools: ClassVar[Tuple[str, ...]] = ()
    #: why the method's images cannot be translated in tiles (None: they can)
    tiling_refusal: ClassVar[Optional[str]] = None
    #: names of the optimizers of ``optimizer_groups`` (logged as ``lr/<name>``)
    optimizer_names: ClassVar[Tuple[str, ...]] = ("g", "d")
    #: loss terms shown in the progress bar (all are logged)
    progress_bar_losses: ClassVar[Sequence[str]] = ()

    def __init__(
        self,
        *,
        generator: GeneratorName = "resnet_9blocks",  # type: ignore[valid-type]
        discriminator: DiscriminatorName = "basic",  # type: ignore[valid-type]
        norm: NormName = "instance",  # type: ignore[valid-type]
        dropout: bool = False,
        init_type: InitType = "normal",  # type: ignore[valid-type]
        gan_mode: GANMode = "lsgan",  # type: ignore[valid-type]
        ngf: int = 64,
        ndf: int = 64,
        n_layers_d: int = 3,
        init_gain: float = 0.02,
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
        discriminator_checkpointing: bool = False,
        optimizer_impl: OptimizerImpl = "default",
        reseed_every_step: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("ngf", ngf), ("ndf", ndf), ("n_layers_d", n_layers_d)):
            if value < 1:
                raise OptionError(f"{name}={value}: must be 1 or more (it sizes the networks' layers).", option=name)
        # Collects the arguments of the whole __init__ chain, the method's own included.
        self.save_hyperparameters()
        self.automatic_optimization = False
        #: the directions whose generator was trained or imported (a checkpoint keeps this)
        self.trained_directions: Tuple[Direction, ...] = self.directions
        #: what the model card says about this model (see ``CARD_FIELDS``): filled from the
        #: training run at save time, and by ``download-model`` for published models
        self.card_info: Dict[str, Any] = {}
        for option, value in (("input_nc", input_nc), ("output_nc", output_nc)):
            if value < 1:
                raise OptionError(f"{option}={value}: images have at least one channel.", option=option)
        #: per domain, how stored values map to [-1, 1] and back (the data module's when it trains
        #: or runs; kept in checkpoints): 8-bit until the model has seen data
        self.intensity: Dict[str, IntensityMapping] = {"A": default_mapping(input_nc), "B": default_mapping(output_nc)}
        #: the pools attached for training, by the names of ``image_pools``
        self.attached_pools: Dict[str, ImagePool] = {}
        self.gan_loss = build_gan_loss(gan_mode)
        self.nonfinite = NonFiniteCheck(on_nonfinite)
        self.loss_log = LossLog(self.progress_bar_losses)
        #: the run's seed of the per-step random streams (kept in checkpoints)
        self.stream_seed: Optional[int] = None
        self._warned_no_pools = False

    # --- what a method declares and implements ------------------------------------------------
    @classmethod
    def reference_fit(cls, generator: Mapping[str, Any]) -> int:
        """How well a reference generator (``describe_state_dict``) fits this method.

        2: the method's published architecture; 1: one its options can build; 0: none (from
        ``reference_generators``). Picks the method of a lone generator file, or of a run folder
        whose file names several methods share.
        """
        return cls.reference_generators.get((generator["kind"], bool(generator["antialias"])), 0)

    @classmethod
    def reference_options(cls, generator: Mapping[str, Any], direction: str) -> Dict[str, Any]:
        """Module arguments that rebuild a reference generator (``describe_state_dict``) translating ``direction``."""
        options: Dict[str, Any] = dict(generator=generator["name"], ngf=generator["ngf"], norm=generator["norm"])
        a_channels, b_channels = generator["input_nc"], generator["output_nc"]
        if direction == "BtoA":  # a B -> A generator's input channels are domain B's
            a_channels, b_channels = b_channels, a_channels
        options.update(input_nc=a_channels, output_nc=b_channels)
        if generator["dropout"] is not None:
            options["dropout"] = generator["dropout"]
        # A method that imports anti-aliased generators has the antialias option.
        if any(antialiased for _, antialiased in cls.reference_generators):
            options["antialias"] = generator["antialias"]
        return options

    @classmethod
    def reference_option_fixes(cls, options: Mapping[str, Any]) -> Dict[str, Any]:
        """Options an import must add to ``options`` for the module to build (e.g. no identity
        loss between domains of different channels), where the user did not set them."""
        return {}

    def discriminators(self) -> List[nn.Module]:
        raise NotImplementedError

    def visuals(self, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        """The images of a (prepared) batch and their translations, by name, in display order."""
        raise NotImplementedError

    def evaluation_losses(self, batch: Dict[str, Any], visuals: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Losses logged as ``val/<name>`` and ``test/<name>``, from the batch's visuals."""
        return {}

    # --- options that change after construction ---------------------------------------------
    @property
    def eval_mode(self) -> bool:
        """Inference in eval mode (see the ``eval_mode`` option); setting it updates the hparams."""
        return bool(self.hparams.eval_mode)

    @eval_mode.setter
    def eval_mode(self, value: bool) -> None:
        self.hparams.eval_mode = bool(value)

    # --- what the method translates ---------------------------------------------------------
    @property
    def directions(self) -> Tuple[Direction, ...]:
        """The directions this method translates."""
        return tuple(translation.direction for translation in self.translations)

    def translation(self, direction: str, what: str = "direction") -> Translation:
        """The :class:`Translation` of ``direction``, which must have a trained generator.

        Args:
            direction: ``AtoB`` or ``BtoA``.
            what: the argument that holds the direction, named in the error.

        Raises:
            OptionError: the method does not translate that way, or the model's generator for
                it was never trained or imported.
        """
        ways = " and ".join(self.directions) + (" only" if len(self.directions) == 1 else "")
        check_direction(direction, self.directions, what, reason=f"a {type(self).__name__} translates {ways}")
        if direction not in self.trained_directions:
            raise OptionError(
                f"{what}={direction}: this {type(self).__name__}'s {direction} generator was never trained "
                f"or imported (its checkpoint holds {' and '.join(self.trained_directions)} only); use "
                f"{' or '.join(self.trained_directions)}, or import or train the {direction} generator.",
                option=what,
            )
        return self._translation(direction)

    def _translation(self, direction: str) -> Translation:
        return next(t for t in self.translations if t.direction == direction)

    def source_channels(self, direction: str) -> int:
        """Channels of the images ``direction`` reads (``input_nc`` for AtoB)."""
        return self.hparams.input_nc if direction == "AtoB" else self.hparams.output_nc

    def generator_for(self, direction: str) -> nn.Module:
        """The generator translating ``direction`` (one the method translates)."""
        return getattr(self, self._translation(direction).generator)

    def generator_names(self) -> Tuple[str, ...]:
        """The attributes of the generators, each once, in the order of ``translations``."""
        return tuple(dict.fromkeys(translation.generator for translation in self.translations))

    def generators(self) -> List[nn.Module]:
        """Each generator once, in the order of ``translations``."""
        return [getattr(self, name) for name in self.generator_names()]

    # --- images in ------------------------------------------------------------------------------
    def prepare_images(self, images: Tensor, domain: str = "A") -> Tensor:
        """Images as the networks take them, channels-last when asked. The one place images enter the module.

        Stored values (uint8 8-bit images, int32 16-bit ones, float64 float ones: see
        :mod:`cyclegan_pl.data.native`) are mapped to [-1, 1] on their device with ``domain``'s
        intensity mapping; float32 (and lower) images are taken to be in [-1, 1] already.

        Raises:
            OptionError: the stored values are not of the kind the model's data was (e.g. 8-bit
                images for a model trained on 16-bit ones).
        """
        if images.dtype in _STORED_DTYPES:
            mapping = self.intensity[domain]
            expected = RAW_DTYPES.get(mapping.dtype)
            if images.dtype != expected:
                raise OptionError(
                    f"domain {domain} images arrive as {str(images.dtype).replace('torch.', '')} values, but this "
                    f"model's domain {domain} data was {mapping.dtype} ({mapping.channels} band(s)): read them the "
                    "same way (image_mode native for 16-bit, float or multi-band data, 8bit for photos).",
                    option="image_mode",
                )
            images = mapping.normalize(images)
        if self.hparams.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def prepare_batch(self, batch: Any) -> Any:
        """A batch dict with its images (keys ``A``, ``B``, ``image``) prepared by :meth:`prepare_images`.

        ``image`` holds images to translate, of the source domain of the batch's ``direction``.
        """
        if not isinstance(batch, dict):
            return batch
        source = _first(batch.get("direction")) or self.directions[0]
        domains = {"A": "A", "B": "B", "image": source[0]}
        return {
            key: self.prepare_images(value, domains[key]) if key in IMAGE_KEYS and torch.is_tensor(value) else value
            for key, value in batch.items()
        }

    def use_intensity(self, mappings: Mapping[str, IntensityMapping]) -> None:
        """Take the data's intensity mappings (``A`` and ``B``), which must have the model's channels.

        Raises:
            OptionError: a mapping's band count is not the model's ``input_nc`` / ``output_nc``.
        """
        for domain, option in (("A", "input_nc"), ("B", "output_nc")):
            if domain in mappings and mappings[domain].channels != self.hparams[option]:
                raise OptionError(
                    f"the model's {option}={self.hparams[option]} but domain {domain}'s images have "
                    f"{mappings[domain].channels} band(s): set {option} to the images' band count.",
                    option=option,
                )
        self.intensity = {**self.intensity, **mappings}

    def to_data_units(self, images: Tensor, domain: str) -> Tensor:
        """Images in [-1, 1] -> float64 values in ``domain``'s stored units (not rounded or clipped)."""
        return self.intensity[domain].denormalize(images)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Every loader's batch (uint8 from the data modules, or float of your own) arrives prepared.
        return self.prepare_batch(batch)

    # --- networks -------------------------------------------------------------------------------
    def build_generator(self, input_nc: int, output_nc: int, **options: Any) -> nn.Module:
        """A generator of the ``generator`` option with the shared width, norm, dropout and initialisation.

        Args:
            input_nc: channels it reads.
            output_nc: channels it writes.
            **options: further builder arguments (e.g. ``antialias``).
        """
        hp = self.hparams
        return define_generator(
            hp.generator,
            input_nc,
            output_nc,
            ngf=hp.ngf,
            dropout=hp.dropout,
            **self._shared_network_options(),
            **options,
        )

    def build_discriminator(self, input_nc: int, **options: Any) -> nn.Module:
        """A discriminator of the ``discriminator`` option with the shared width, depth, norm and initialisation.

        Args:
            input_nc: channels it judges (input and output stacked for a conditional one).
            **options: further builder arguments (e.g. ``antialias``).
        """
        hp = self.hparams
        return define_discriminator(
            hp.discriminator, input_nc, ndf=hp.ndf, n_layers=hp.n_layers_d, **self._shared_network_options(), **options
        )

    def _shared_network_options(self) -> Dict[str, Any]:
        return dict(norm=self.hparams.norm, init_type=self.hparams.init_type, init_gain=self.hparams.init_gain)

    def _apply_network_options(self) -> None:
        """Called by each method at the end of ``__init__``, once its networks exist."""
        if self.hparams.gradient_checkpointing:
            enable_gradient_checkpointing(self.generators(), "gradient_checkpointing")
        if self.hparams.discriminator_checkpointing:
            enable_gradient_checkpointing(self.discriminators(), "discriminator_checkpointing")
        if self.hparams.compile:
            compile_networks(self.generators() + self.discriminators())

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)
        self._check_data_channels()
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and hasattr(datamodule, "intensity_mappings"):
            # A model learns the data's mapping; a checkpoint restored after this (fit --ckpt_path)
            # brings its own back. Evaluation and prediction keep the model's.
            self.use_intensity(datamodule.intensity_mappings())

    def _check_data_channels(self) -> None:
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        for option in ("input_nc", "output_nc"):
            data_value = getattr(datamodule, option, None)
            if data_value is not None and data_value != self.hparams[option]:
                raise OptionError(
                    f"the model's {option}={self.hparams[option]} but the data module's {option}={data_value}: the "
                    f"images must have as many channels as the networks take; set both {option} options to the "
                    "same value.",
                    option=option,
                )

    def on_fit_start(self) -> None:
        if self.stream_seed is None:
            self.stream_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        self.trained_directions = self.directions
        self._require_unused_parameter_search()

    def on_train_start(self) -> None:
        missing = [name for name in self.image_pools if name not in self.attached_pools]
        if missing and not self._warned_no_pools:
            self._warned_no_pools = True
            rank_zero_warn(
                f"{type(self).__name__} trains without its image pools ({', '.join(missing)}): the discriminators "
                "see only the current fakes, unlike the published recipe (50 images each). Add "
                "cyclegan_pl.callbacks.ImagePoolCallback(pool_size=50) to the Trainer's callbacks (the configs "
                "have it), or ImagePoolCallback(pool_size=0) to train without pools on purpose."
            )

    def _require_unused_parameter_search(self) -> None:
        # Each step leaves the other networks without gradients (the generator step the
        # discriminators, and vice versa), so DDP must look for unused parameters at every
        # backward. The command line turns `ddp` into its find_unused_parameters variant.
        wrapped = self.trainer.strategy.model
        if isinstance(wrapped, DistributedDataParallel) and not wrapped.find_unused_parameters:
            raise OptionError(
                f"{type(self).__name__} trains its networks in separate steps, so DDP must look for unused "
                "parameters: use strategy='ddp_find_unused_parameters_true' (or "
                "DDPStrategy(find_unused_parameters=True)); the command line does this for --trainer.strategy ddp.",
                option="strategy",
            )

    # --- image pools ----------------------------------------------------------------------------
    def attach_image_pools(self, pools: Mapping[str, ImagePool]) -> None:
        """Use these pools (by the names of ``image_pools``) in training; :meth:`detach_image_pools` ends it."""
        unknown = set(pools) - set(self.image_pools)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no image pools {sorted(unknown)}; it has {self.image_pools}")
        self.attached_pools = dict(pools)

    def detach_image_pools(self) -> None:
        self.attached_pools = {}

    def from_pool(self, name: str, images: Tensor) -> Tensor:
        """``images`` drawn through the pool ``name`` (the images themselves when none is attached)."""
        pool = self.attached_pools.get(name)
        return images if pool is None else pool(images)

    # --- optimisation -----------------------------------------------------------------------
    def optimizer_groups(self) -> List[List[nn.Parameter]]:
        """The parameters of each optimizer, in the order of ``optimizer_names``."""
        return [
            [p for net in self.generators() for p in net.parameters()],
            [p for net in self.discriminators() for p in net.parameters()],
        ]

    def configure_optimizers(self) -> List[torch.optim.Optimizer]:
        impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[self.hparams.optimizer_impl]
        betas = (self.hparams.beta1, self.hparams.beta2)
        optimizers = [
            torch.optim.Adam(group, lr=self.hparams.lr, betas=betas, **impl) for group in self.optimizer_groups()
        ]
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                # The LR schedule scales from initial_lr, so it stays right after a resume.
                group.setdefault("initial_lr", group["lr"])
        return optimizers

    def optimizer_step_with(self, optimizers: Sequence[Any], loss: Tensor, losses: Dict[str, Tensor]) -> bool:
        """zero_grad, backward, step of ``optimizers``; False when a non-finite loss skipped it."""
        for optimizer in optimizers:
            optimizer.zero_grad()
        if not self.nonfinite.allows_step(losses, self):
            return False
        self.manual_backward(loss)
        for optimizer in optimizers:
            optimizer.step()
        return True

    def discriminator_loss(
        self,
        disc: nn.Module,
        real: Tensor,
        fake: Tensor,
        fake_first: bool = False,
        condition: Optional[Tensor] = None,
    ) -> Tensor:
        """``0.5 * (GAN(D(real), real) + GAN(D(fake), fake))``, plus the gradient penalty for wgangp.

        Args:
            disc: the discriminator.
            real: images of its domain.
            fake: translations into it, detached by the caller.
            fake_first: D judges the fakes first, as the method's reference code does (the
                order sets the order of BatchNorm's running-statistics updates).
            condition: a conditional D's input (pix2pix), put in front of each image's channels.
        """
        pair = (lambda images: images) if condition is None else (lambda images: torch.cat([condition, images], 1))
        first, second = (pair(fake), pair(real)) if fake_first else (pair(real), pair(fake))
        if self.hparams.batched_calls:
            pred_first, pred_second = disc(torch.cat([first, second])).chunk(2)
        else:
            pred_first, pred_second = disc(first), disc(second)
        pred_fake, pred_real = (pred_first, pred_second) if fake_first else (pred_second, pred_first)
        loss = 0.5 * (
            self.gan_loss(pred_real, True, for_discriminator=True)
            + self.gan_loss(pred_fake, False, for_discriminator=True)
        )
        if self.gan_loss.uses_gradient_penalty:
            loss = loss + self.hparams.gp_weight * gradient_penalty(disc, real, fake, condition=condition)
        return loss

    # --- random streams -----------------------------------------------------------------------
    def on_train_batch_start(self, batch: Dict[str, Any], batch_idx: int) -> None:
        if self.hparams.reseed_every_step:
            # The step's random draws (dropout, gradient-penalty mixing) then depend on
            # (seed, epoch, batch, rank) only, so `fit --ckpt_path` continues exactly as an
            # uninterrupted run would; the data draws its own per-item generators.
            reseed_global_generators(step_seed(self.stream_seed, self.current_epoch, batch_idx, self.global_rank))

    def step_generator(self, stream: StepGenerator, batch_idx: int) -> torch.Generator:
        """``stream``'s generator on this module's device, seeded for training step ``batch_idx``."""
        return stream.for_step(self.device, self.stream_seed, self.current_epoch, batch_idx, self.global_rank)

    # --- logging ----------------------------------------------------------------------------
    def log_losses(self, losses: Dict[str, Tensor], batch_size: int) -> None:
        """Log a training step's loss terms (see :class:`~cyclegan_pl.models.loss_log.LossLog`)."""
        extra = {
            f"lr/{name}": opt.param_groups[0]["lr"]
            for name, opt in zip(self.optimizer_names, self.optimizers(), strict=True)
        }
        if self.nonfinite.skipped:
            extra["nonfinite_skipped_steps"] = float(self.nonfinite.skipped)
        self.loss_log.log_step(self, losses, batch_size, extra)

    def on_train_epoch_start(self) -> None:
        self.loss_log.start_epoch()

    def on_train_epoch_end(self) -> None:
        self.loss_log.log_epoch(self)

    # --- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        # The seed is kept with the weights, so a resumed run draws the same streams even when
        # it was started with another seed (e.g. `seed_everything: true`).
        checkpoint[CHECKPOINT_KEY] = {
            "class_path": class_path(type(self)),
            "stream_seed": self.stream_seed,
            "iterations": self.loss_log.iterations,
            "trained_directions": list(self.trained_directions),
            "card": self.current_card_info(),
            "intensity": {domain: mapping.to_dict() for domain, mapping in self.intensity.items()},
        }

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        # Lightning loads the state_dict right after this hook (`--ckpt_path`): its tensors are
        # checked first, so a file that does not fit is one line, not load_state_dict's traceback.
        weights = checkpoint.get("state_dict")
        if isinstance(weights, dict) and getattr(self, "strict_loading", True):
            source = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
            checkpoint["state_dict"] = checked_state_dict(
                weights,
                self.state_dict(),
                str(source or "the checkpoint"),
                f"the {type(self).__name__} configured",
                generators=self.generator_names(),
            )
        state = checkpoint.get(CHECKPOINT_KEY, {})
        self.stream_seed = state.get("stream_seed", checkpoint.get("cyclegan_pl_stream_seed", self.stream_seed))
        self.loss_log.iterations = state.get("iterations", self.loss_log.iterations)
        self.trained_directions = tuple(state.get("trained_directions", self.directions))
        self.card_info = dict(state.get("card", self.card_info))
        # Checkpoints of 0.2.0 hold 8-bit models: the default mapping.
        self.intensity = {**self.intensity, **load_intensity(state.get("intensity", {}))}

    # --- inference --------------------------------------------------------------------------
    def translate(self, images: Tensor, direction: str = "AtoB", tiling: Optional[Tiling] = None) -> Tensor:
        """Translate images (N, C, H, W: stored values, or float in [-1, 1]) of any size, to [-1, 1].

        Sides that are not a multiple of the generator's ``size_multiple`` are padded and the
        output cropped back (:mod:`cyclegan_pl.networks.padding`), so any image size works.

        Args:
            images: the images.
            direction: ``AtoB`` or ``BtoA``.
            tiling: translate images it applies to in tiles, one image at a time, with the whole
                image's normalisation statistics (:mod:`cyclegan_pl.networks.tiling`).

        Raises:
            OptionError: the direction is not one the model translates, or the tiling does not fit
                the generator (or the method cannot be tiled).
        """
        translation = self.translation(direction)
        gen = getattr(self, translation.generator)
        multiple = getattr(gen, "size_multiple", 1)
        height, width = images.shape[-2:]
        tiled = tiling is not None and tiling.applies(height, width)
        if tiled:
            if self.tiling_refusal is not None:
                raise OptionError(f"tile={tiling.tile}: {self.tiling_refusal}", option="tile")
            tiling.check(multiple)
        with inference_mode([gen], self.eval_mode):
            if not tiled:
                padded = pad_if_needed(self.prepare_images(images, translation.direction[0]), multiple)
                output = self.generate_for_inference(translation, padded)
            else:
                # Tiles are prepared one by one: an 8-bit photo stays in 8 bits, not 32.
                padded = pad_if_needed(images, multiple)
                tiled_images = [self._translate_tiled(translation, image[None], tiling) for image in padded]
                # One image (the usual case at these sizes) is not copied again.
                output = tiled_images[0] if len(tiled_images) == 1 else torch.cat(tiled_images)
        return crop_to(output, height, width)

    def _translate_tiled(self, translation: Translation, image: Tensor, tiling: Tiling) -> Tensor:
        gen = getattr(self, translation.generator)
        return translate_tiled(
            lambda tile: self.generate_for_inference(translation, tile),
            image,
            tiling.tile,
            tiling.overlap,
            multiple=getattr(gen, "size_multiple", 1),
            ramp=tiling.ramp,
            statistics=tiling.statistics,
            network=gen,
            context=tiling.context,
            prepare=lambda region: self.prepare_images(region, translation.direction[0]),
        )

    def choose_sampling(self, seed: Optional[int] = None, steps: Optional[int] = None) -> None:
        """Set the seed and step count of a translation that is a seeded multi-step sampler.

        A method whose translation is one deterministic pass (every method but a sampler, which
        overrides this) takes neither: asking for either is an error, not silently ignored.

        Raises:
            OptionError: ``seed`` or ``steps`` given to a method that does not sample.
        """
        for name, value in (("seed", seed), ("steps", steps)):
            if value is not None:
                raise OptionError(
                    f"{name}={value}: {type(self).__name__} translates in one deterministic pass; "
                    f"{name} applies to methods whose translation samples a path (UNSB).",
                    option=name,
                )

    def generate_for_inference(self, translation: Translation, images: Tensor) -> Tensor:
        """The translation of prepared, padded images (a method with a multi-step sampler overrides this)."""
        return getattr(self, translation.generator)(images)

    def forward(self, images: Tensor) -> Tensor:
        """Translate in the method's main direction (A -> B)."""
        return self.translate(images, self.directions[0])

    def predict_step(self, batch: Dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> Dict[str, Any]:
        """Translate a batch of ``image`` (or ``A``) in the direction its loader names (``direction``).

        Loaders of images to translate name the direction in every item (without one, the main
        direction is used) and the tiling (``tiling``: a dict of :class:`Tiling`'s fields), if any.
        """
        images = batch["image"] if "image" in batch else batch["A"]
        direction = _first(batch.get("direction")) or self.directions[0]
        paths = batch.get("path", batch.get("A_paths"))
        translated = self.translate(images, direction, Tiling.from_batch(batch.get("tiling")))
        # The output domain names the intensity mapping that gives the images' stored values back.
        result = {"images": translated, "path": paths, "domain": direction[-1]}
        result["relpath"] = batch.get("relpath", [p.rsplit("/", 1)[-1] for p in paths] if paths else None)
        return result

    # --- evaluation -------------------------------------------------------------------------
    def _evaluation_step(self, stage: str, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        visuals = self.visuals(batch)
        losses = self.evaluation_losses(batch, visuals)
        if losses:
            self.log_dict(
                {f"{stage}/{name}": value for name, value in losses.items()},
                on_epoch=True,
                sync_dist=True,
                batch_size=batch["A"].shape[0],
            )
        # Returned so callbacks (FID, results pages) use these images instead of translating again.
        return {name: image.detach() for name, image in visuals.items()}

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Tensor]:
        return self._evaluation_step("val", batch)

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Tensor]:
        return self._evaluation_step("test", batch)
