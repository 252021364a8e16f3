"""Turn weights saved by the reference CycleGAN/pix2pix and CUT code into a Lightning checkpoint.

The reference code saves one ``state_dict`` per network in its run folder
(``<epoch>_net_G_A.pth``, ``<epoch>_net_G_B.pth``, ``<epoch>_net_D_A.pth``, ``<epoch>_net_D_B.pth``
for CycleGAN; ``<epoch>_net_G.pth``, ``<epoch>_net_D.pth`` for pix2pix; those and
``<epoch>_net_F.pth`` for CUT) and publishes single generators such as ``horse2zebra.pth``.
:func:`import_reference` infers the architecture from those tensors, loads them strictly into a
:class:`~cyclegan_pl.CycleGAN`, :class:`~cyclegan_pl.Pix2Pix` or :class:`~cyclegan_pl.CUT` and writes
a ``.ckpt`` that ``load_checkpoint``, ``translate``, ``test``/``predict`` and ``fit --ckpt_path``
accept.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Mapping, Optional, Tuple, Type

import lightning.pytorch as pl

from cyclegan_pl.errors import CheckpointError, CheckpointMismatchError, OptionError
from cyclegan_pl.files import atomic_torch_save
from cyclegan_pl.models import CUT, CycleGAN, ImageTranslationModule, Pix2Pix
from cyclegan_pl.networks import describe_state_dict, format_fixes, load_reference_state_dict, read_state_dict

__all__ = ["CUT_NETWORKS", "CYCLEGAN_NETWORKS", "PIX2PIX_NETWORKS", "import_reference"]

Method = Literal["cyclegan", "pix2pix", "cut"]

# Reference network name -> module attribute. The reference's D_A judges domain B images (it
# is trained against G_A's fakes), so it is our disc_b; D_B is disc_a.
CYCLEGAN_NETWORKS: Dict[str, str] = {"G_A": "gen_ab", "G_B": "gen_ba", "D_A": "disc_b", "D_B": "disc_a"}
PIX2PIX_NETWORKS: Dict[str, str] = {"G": "gen", "D": "disc"}
CUT_NETWORKS: Dict[str, str] = {"G": "gen", "D": "disc", "F": "projection"}
_NETWORKS = {"cyclegan": CYCLEGAN_NETWORKS, "pix2pix": PIX2PIX_NETWORKS, "cut": CUT_NETWORKS}

_MODULES: Dict[str, Type[ImageTranslationModule]] = {"cyclegan": CycleGAN, "pix2pix": Pix2Pix, "cut": CUT}
_REFERENCE_FILE = re.compile(r"(?P<epoch>.+)_net_(?P<net>G_A|G_B|D_A|D_B|G|D|F)\.pth")
_EXPECTED_NAMES = (
    "<epoch>_net_G_A.pth, <epoch>_net_G_B.pth, <epoch>_net_D_A.pth, <epoch>_net_D_B.pth (CycleGAN), "
    "<epoch>_net_G.pth, <epoch>_net_D.pth (pix2pix) or those and <epoch>_net_F.pth (CUT), e.g. latest_net_G_A.pth"
)
_LATEST = "latest"
# The network builders' argument names that import-reference calls differently.
_OPTION_NAMES = {"n_layers": "n_layers_d"}
# Which direction each generator attribute translates.
_DIRECTION_OF = {"gen_ab": "AtoB", "gen_ba": "BtoA", "gen": "AtoB"}


@dataclass
class _ImportPlan:
    """Which file fills which network of which module."""

    method: Method
    files: Dict[str, Path]  # module attribute -> file
    reference_names: Dict[str, str] = field(default_factory=dict)  # module attribute -> G_A, ...
    epoch_label: Optional[str] = None


def _scan_run_folder(folder: Path) -> Dict[str, Dict[str, Path]]:
    """{epoch label: {reference network name: file}} of the folder's reference files."""
    runs: Dict[str, Dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _REFERENCE_FILE.fullmatch(path.name)
        if match and path.is_file():
            runs.setdefault(match["epoch"], {})[match["net"]] = path
    return runs


def _pick_epoch(folder: Path, runs: Mapping[str, Mapping[str, Path]], epoch: Optional[str]) -> str:
    labels = sorted(runs, key=lambda label: (not label.isdigit(), int(label) if label.isdigit() else 0, label))
    if epoch is not None:
        if str(epoch) not in runs:
            raise OptionError(
                f"--epoch {epoch}: {folder} has no reference files for that epoch; it has epochs {', '.join(labels)}."
            )
        return str(epoch)
    if _LATEST in runs:
        return _LATEST
    numbered = [label for label in labels if label.isdigit()]
    if numbered:
        return numbered[-1]
    if len(labels) == 1:
        return labels[0]
    raise OptionError(f"{folder} holds reference files of several runs ({', '.join(labels)}); pick one with --epoch.")


def _single_generator_plan(path: Path, model: str, direction: str, label: Optional[str]) -> _ImportPlan:
    info = describe_state_dict(read_state_dict(path))
    if info["role"] == "discriminator":
        raise CheckpointError(
            f"{path} holds a discriminator ({info['name']}); import a generator file, or the run "
            "folder to import generators and discriminators together."
        )
    method = model if model != "auto" else _method_of_generator(info)
    if method in ("pix2pix", "cut"):
        if direction != "AtoB":
            name = _MODULES[method].__name__
            raise OptionError(
                f"--direction {direction}: a {name} model has one generator (A -> B), "
                f"so {path} can only fill it with --direction AtoB."
            )
        return _ImportPlan(method, {"gen": path}, {"gen": "G"}, label)
    attribute = "gen_ab" if direction == "AtoB" else "gen_ba"
    return _ImportPlan("cyclegan", {attribute: path}, {attribute: path.stem}, label)


def _method_of_generator(info: Mapping[str, Any]) -> Method:
    """The method a lone generator belongs to, by the published architectures: U-Net -> pix2pix,
    anti-aliased ResNet -> CUT, other ResNet -> CycleGAN."""
    if info["kind"] == "unet":
        return "pix2pix"
    return "cut" if info["antialias"] else "cyclegan"


def _plan(source: Path, model: str, epoch: Optional[str], direction: str) -> _ImportPlan:
    if not source.exists():
        raise CheckpointError(
            f"{source} does not exist; pass a reference run folder (holding {_EXPECTED_NAMES}) "
            "or one generator file such as horse2zebra.pth."
        )
    if source.is_file():
        match = _REFERENCE_FILE.fullmatch(source.name)
        return _single_generator_plan(source, model, direction, match["epoch"] if match else None)

    runs = _scan_run_folder(source)
    if not runs:
        raise CheckpointError(
            f"{source} holds no reference checkpoint files; expected {_EXPECTED_NAMES}, "
            "or pass one generator file such as horse2zebra.pth."
        )
    label = _pick_epoch(source, runs, epoch)
    nets = runs[label]
    cyclegan = {name: path for name, path in nets.items() if name in CYCLEGAN_NETWORKS}
    pix2pix = {name: path for name, path in nets.items() if name in PIX2PIX_NETWORKS}
    if cyclegan and model not in ("pix2pix", "cut"):
        if not {"G_A", "G_B"} & cyclegan.keys():
            raise CheckpointError(
                f"{source} has no generator for epoch {label} ({label}_net_G_A.pth / {label}_net_G_B.pth)."
            )
        return _ImportPlan(
            "cyclegan",
            {CYCLEGAN_NETWORKS[name]: path for name, path in cyclegan.items()},
            {CYCLEGAN_NETWORKS[name]: name for name in cyclegan},
            label,
        )
    if "G" not in pix2pix:
        wanted = f"{label}_net_G.pth" if model == "pix2pix" else f"{label}_net_G_A.pth or {label}_net_G.pth"
        raise CheckpointError(
            f"{source} has no generator file {wanted} for --model {model}; expected {_EXPECTED_NAMES}."
        )
    if "G" in pix2pix and (model == "cut" or (model == "auto" and _is_cut_run(nets))):
        cut = {name: path for name, path in nets.items() if name in CUT_NETWORKS}
        return _ImportPlan(
            "cut",
            {CUT_NETWORKS[name]: path for name, path in cut.items()},
            {CUT_NETWORKS[name]: name for name in cut},
            label,
        )
    if "D" not in pix2pix:
        # A lone G is how the reference's test-only folders hold CycleGAN and pix2pix generators.
        return _single_generator_plan(pix2pix["G"], model, direction, label)
    if model == "cyclegan":
        raise OptionError(
            f"{source} holds a pix2pix run ({label}_net_G.pth and {label}_net_D.pth); use --model pix2pix or auto."
        )
    return _ImportPlan(
        "pix2pix",
        {PIX2PIX_NETWORKS[name]: path for name, path in pix2pix.items()},
        {PIX2PIX_NETWORKS[name]: name for name in pix2pix},
        label,
    )


def _is_cut_run(nets: Mapping[str, Path]) -> bool:
    """A G/D run folder is CUT's when it holds F or its G is anti-aliased (pix2pix's never is)."""
    return "F" in nets or bool(describe_state_dict(read_state_dict(nets["G"]))["antialias"])


def _inferred_options(plan: _ImportPlan) -> Dict[str, Any]:
    """Module arguments that rebuild the architecture the files were saved from."""
    options: Dict[str, Any] = {}
    generator_attribute = next(a for a in ("gen_ab", "gen_ba", "gen") if a in plan.files)
    gen = describe_state_dict(read_state_dict(plan.files[generator_attribute]))
    if gen["role"] == "generator":
        options.update(generator=gen["name"], ngf=gen["ngf"], norm=gen["norm"])
        # gen_ba maps B -> A: its input channels are domain B's.
        a_channels, b_channels = gen["input_nc"], gen["output_nc"]
        if generator_attribute == "gen_ba":
            a_channels, b_channels = b_channels, a_channels
        options.update(input_nc=a_channels, output_nc=b_channels)
        if gen["dropout"] is not None:
            options["dropout"] = gen["dropout"]
        if plan.method == "cut":
            options["antialias"] = gen["antialias"]
    disc_attribute = next((a for a in ("disc_b", "disc_a", "disc") if a in plan.files), None)
    if disc_attribute is not None:
        disc = describe_state_dict(read_state_dict(plan.files[disc_attribute]))
        if disc["role"] == "discriminator":
            options.update(discriminator=disc["name"], ndf=disc["ndf"])
            if disc["n_layers"] is not None:
                options["n_layers_d"] = disc["n_layers"]
    return options


def _build_module(method: Method, options: Dict[str, Any]) -> ImageTranslationModule:
    module_class = _MODULES[method]
    try:
        return module_class(**options)
    except TypeError as err:
        raise OptionError(
            f"Cannot build a {module_class.__name__} from {sorted(options)}: {err}. "
            f"Check the keys of --hparams against the {module_class.__name__} arguments."
        ) from None


def _loops_state(start_epoch: int) -> Dict[str, Any]:
    """The loop progress of a Trainer that has completed ``start_epoch`` epochs and no step."""
    # This Trainer never runs; its start-up notes (accelerators, tips) would only confuse.
    notes = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = notes.level
    notes.setLevel(logging.WARNING)
    try:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    finally:
        notes.setLevel(level)
    progress = trainer.fit_loop.epoch_progress
    for tracker in (progress.total, progress.current):
        tracker.ready = tracker.started = tracker.processed = tracker.completed = start_epoch
    loops = {
        "fit_loop": trainer.fit_loop,
        "validate_loop": trainer.validate_loop,
        "test_loop": trainer.test_loop,
        "predict_loop": trainer.predict_loop,
    }
    return {name: loop.state_dict() for name, loop in loops.items()}


def _lightning_checkpoint(
    module: ImageTranslationModule, start_epoch: int, provenance: Dict[str, Any]
) -> Dict[str, Any]:
    """What ``Trainer.save_checkpoint`` writes for a module that has not trained yet."""
    optimizers = module.configure_optimizers()
    checkpoint: Dict[str, Any] = {
        "epoch": start_epoch,
        "global_step": 0,
        "pytorch-lightning_version": pl.__version__,
        "state_dict": module.state_dict(),
        "loops": _loops_state(start_epoch),
        "callbacks": {},
        "optimizer_states": [optimizer.state_dict() for optimizer in optimizers],
        "lr_schedulers": [],
        # The class path entries are what LightningCLI stores: `fit --ckpt_path` and
        # `load_from_checkpoint` use them to rebuild the module (load_checkpoint skips them).
        "hyper_parameters": {
            "_class_path": f"cyclegan_pl.{type(module).__name__}",
            "_instantiator": "lightning.pytorch.cli.instantiate_module",
            **module.hparams,
        },
        "reference_import": provenance,
    }
    module.on_save_checkpoint(checkpoint)
    hparams_name = getattr(module, "_hparams_name", None)
    if hparams_name:
        checkpoint["hparams_name"] = hparams_name
    return checkpoint


def import_reference(
    source: Path,
    output: Path,
    model: Literal["cyclegan", "pix2pix", "cut", "auto"] = "auto",
    epoch: Optional[str] = None,
    direction: Literal["AtoB", "BtoA"] = "AtoB",
    generator: Optional[str] = None,
    discriminator: Optional[str] = None,
    ngf: Optional[int] = None,
    ndf: Optional[int] = None,
    n_layers_d: Optional[int] = None,
    norm: Optional[str] = None,
    dropout: Optional[bool] = None,
    start_epoch: Optional[int] = None,
    hparams: Optional[Dict[str, Any]] = None,
) -> Path:
    """Convert weights saved by the reference CycleGAN/pix2pix or CUT code into a Lightning checkpoint.

    Reads a reference run folder or one generator file, builds a CycleGAN, Pix2Pix or CUT with the
    architecture the tensors were saved from (inferred from their names and shapes unless given),
    loads every file strictly and writes a ``.ckpt`` that ``translate``, ``test``, ``predict``,
    ``export`` and ``fit --ckpt_path`` accept. Reference names map to ours as G_A -> gen_ab,
    G_B -> gen_ba, D_A -> disc_b (D_A judges domain B), D_B -> disc_a; pix2pix G -> gen,
    D -> disc; CUT G -> gen, D -> disc, F -> projection. Old files with InstanceNorm running
    statistics, without BatchNorm ``num_batches_tracked`` or saved through DataParallel load as
    the reference loader does.

    The reference saves no optimizer state: ``fit --ckpt_path`` on the result starts both Adam
    optimizers fresh (lr from the module, 2e-4 unless ``hparams`` says otherwise) and the image
    buffers empty, like the reference's ``--continue_train``. It continues at epoch
    ``start_epoch`` (global step 0), so the learning-rate schedule resumes there.

    Args:
        source: a reference run folder (``checkpoints/NAME``) holding ``<epoch>_net_G_A.pth``,
            ``<epoch>_net_G_B.pth``, ``<epoch>_net_D_A.pth``, ``<epoch>_net_D_B.pth`` (CycleGAN) or
            ``<epoch>_net_G.pth``, ``<epoch>_net_D.pth`` (pix2pix), those and
            ``<epoch>_net_F.pth`` (CUT), or one generator file such as a published
            ``horse2zebra.pth``. A folder with only ``<epoch>_net_G.pth`` is imported
            like a single generator file.
        output: the ``.ckpt`` file to write; its folder is created. Written atomically.
        model: ``cyclegan``, ``pix2pix``, ``cut`` or ``auto``: from the file names for a run
            folder (an F file, or an anti-aliased G, makes a CUT); for a single generator a U-Net
            makes a Pix2Pix, an anti-aliased ResNet a CUT and any other ResNet a CycleGAN (the
            published models' architectures).
        epoch: which files of a run folder to import, e.g. ``latest``, ``200`` or ``iter_5000``;
            default ``latest`` when present, else the highest epoch number.
        direction: for a single generator file, the CycleGAN generator it fills: ``AtoB``
            (``gen_ab``, the reference's G_A) or ``BtoA`` (``gen_ba``). The other networks keep
            their random initialization (a note is printed). Pix2Pix and CUT allow only ``AtoB``.
        generator: generator architecture (``resnet_9blocks``, ``unet_256``, ...); inferred.
        discriminator: discriminator architecture (``basic``, ``n_layers``, ``pixel``); inferred
            from the discriminator files, else the model's default.
        ngf: generator filters of the first conv layer; inferred.
        ndf: discriminator filters of the first conv layer; inferred from the discriminator files.
        n_layers_d: strided layers of an ``n_layers`` discriminator; inferred.
        norm: ``instance``, ``batch`` or ``none``. Inferred as ``batch`` when the files hold
            BatchNorm weights, else ``instance``: set ``none`` yourself for a run trained with
            ``--norm none``, whose files look the same as instance norm ones.
        dropout: dropout in the generator. Inferred for ResNet generators; for U-Nets (whose
            files cannot tell) the model's default: True for Pix2Pix, False for CycleGAN.
        start_epoch: epochs the checkpoint counts as completed, where ``fit --ckpt_path``
            continues; default: the number in the file names (``200_net_G_A.pth`` -> 200),
            else 0 (``latest_`` files and published models carry no epoch). Lightning refuses to
            resume when ``trainer.max_epochs`` is below it: use 0 to fine-tune on a fresh schedule.
        hparams: further CycleGAN / Pix2Pix / CUT arguments stored in the checkpoint, e.g.
            ``{"lambda_identity": 0, "lr": 1e-4, "eval_mode": true}``; the named options above
            take precedence.

    Returns:
        The path of the written checkpoint.

    Raises:
        CheckpointError: ``source`` does not exist, holds no reference files, or a file is
            unreadable or unsafe.
        OptionError: an option does not fit the files (e.g. an unknown ``--epoch``).
        CheckpointMismatchError: a file does not fit the network built from the options; the
            message names the file's architecture and the options that build it.
    """
    source, output = Path(source), Path(output)
    named = dict(
        generator=generator,
        discriminator=discriminator,
        ngf=ngf,
        ndf=ndf,
        n_layers_d=n_layers_d,
        norm=norm,
        dropout=dropout,
    )
    module, start_epoch, provenance = imported_module(source, model, epoch, direction, named, start_epoch, hparams)
    save_imported_checkpoint(module, start_epoch, provenance, output)
    loaded = ", ".join(f"{provenance['reference_names'][a]} -> {a}" for a in provenance["files"])
    print(f"imported {loaded} into a {type(module).__name__} checkpoint at {output} (epoch {start_epoch})")
    return output


def imported_module(
    source: Path,
    model: Literal["cyclegan", "pix2pix", "cut", "auto"] = "auto",
    epoch: Optional[str] = None,
    direction: Literal["AtoB", "BtoA"] = "AtoB",
    named: Optional[Dict[str, Any]] = None,
    start_epoch: Optional[int] = None,
    hparams: Optional[Dict[str, Any]] = None,
) -> Tuple[ImageTranslationModule, int, Dict[str, Any]]:
    """The module :func:`import_reference` writes, its start epoch and where its weights came from.

    ``named`` holds the architecture options of :func:`import_reference` (``generator``,
    ``ngf``, ``norm``...; None entries are inferred); every file is loaded strictly.
    """
    source = Path(source)
    if start_epoch is not None and start_epoch < 0:
        raise OptionError(f"--start_epoch must be >= 0, got {start_epoch}.")
    plan = _plan(source, model, epoch, direction)

    options = _inferred_options(plan)
    options.update(hparams or {})
    options.update({name: value for name, value in (named or {}).items() if value is not None})
    if "generator" not in options:
        raise CheckpointError(
            f"{plan.files[next(iter(plan.files))]} does not look like a ResNet or U-Net generator; "
            "pass the architecture with --generator (and --ngf, --norm) if it is one."
        )
    if (
        plan.method == "cyclegan"
        and "lambda_identity" not in options
        and options.get("input_nc", 3) != options.get("output_nc", 3)
    ):
        # The reference allows the identity loss only between domains with equal channels.
        options["lambda_identity"] = 0.0
    if plan.method == "cut" and "nce_idt" not in options and options.get("input_nc", 3) != options.get("output_nc", 3):
        options["nce_idt"] = False
    module = _build_module(plan.method, options)

    for attribute, path in plan.files.items():
        try:
            load_reference_state_dict(getattr(module, attribute), path)
        except CheckpointMismatchError as err:
            fixes = format_fixes(err.fixes, _OPTION_NAMES, style="--{} {}")
            advice = f" Pass {fixes}." if fixes else ""
            raise CheckpointMismatchError(
                f"{err}\n(While importing {plan.reference_names.get(attribute, path.name)} into {attribute}."
                f"{advice} Left out, these options are inferred from the files.)",
                err.fixes,
            ) from None
    networks = _NETWORKS[plan.method]
    untouched = [attribute for attribute in networks.values() if attribute not in plan.files]
    if untouched:
        print(f"note: {', '.join(sorted(untouched))} not found in {source}: left at their random initialization.")

    module.trained_directions = tuple(_DIRECTION_OF[a] for a in plan.files if a in _DIRECTION_OF)
    if start_epoch is None:
        start_epoch = int(plan.epoch_label) if plan.epoch_label and plan.epoch_label.isdigit() else 0
    provenance = {
        "source": str(source),
        "files": {attribute: str(path) for attribute, path in plan.files.items()},
        "reference_names": plan.reference_names,
        "epoch": plan.epoch_label,
    }
    return module, start_epoch, provenance


def save_imported_checkpoint(
    module: ImageTranslationModule, start_epoch: int, provenance: Dict[str, Any], output: Path
) -> Path:
    """Write ``module`` as the Lightning checkpoint of an untrained run at ``start_epoch`` (atomically)."""
    atomic_torch_save(_lightning_checkpoint(module, start_epoch, provenance), output)
    return Path(output)
