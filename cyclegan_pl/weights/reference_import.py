"""Weights saved by the methods' reference code, turned into a module and a Lightning checkpoint.

Reference implementations save one ``state_dict`` per network in a run folder, named
``<epoch>_net_<NAME>.pth``, and publish single generators such as ``horse2zebra.pth``. Each method
declares its networks under those names (``reference_networks``, e.g. CycleGAN's ``G_A`` ->
``gen_ab``, ``D_A`` -> ``disc_b``) and how well a generator architecture fits it
(``reference_fit``); :func:`imported_module` reads a run folder or one generator file, picks the
method from the names of the files and the generator's architecture (unless told), builds it
with the architecture the tensors were saved from, loads every file strictly and records where
the weights came from. :func:`save_imported_checkpoint` writes it as the checkpoint of a run that
has not trained yet, which ``load_checkpoint``, ``translate``, ``test``/``predict`` and
``fit --ckpt_path`` accept.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import lightning.pytorch as pl

from cyclegan_pl.errors import CheckpointError, CheckpointMismatchError, OptionError
from cyclegan_pl.files import atomic_torch_save
from cyclegan_pl.methods import METHODS, class_path
from cyclegan_pl.weights.reference import describe_state_dict, format_fixes, load_reference_state_dict, read_state_dict

#: What ``model`` takes besides a method name: choose from the files.
AUTO = "auto"
_LATEST = "latest"
# The network builders' argument names that the modules call differently.
_OPTION_NAMES = {"n_layers": "n_layers_d"}


@dataclass
class ImportPlan:
    """Which file fills which network of which method.

    Attributes:
        method: the method class.
        files: module attribute -> file.
        reference_names: module attribute -> the reference's name for it (``G_A``...), or the
            file's stem for a lone generator file.
        epoch_label: the ``<epoch>`` of the run folder's file names, if any.
    """

    method: Any
    files: Dict[str, Path]
    reference_names: Dict[str, str] = field(default_factory=dict)
    epoch_label: Optional[str] = None


def _reference_file_pattern() -> re.Pattern[str]:
    names = {name for cls in METHODS.classes() for name in cls.reference_networks}
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(rf"(?P<epoch>.+)_net_(?P<net>{alternatives})\.pth")


def expected_file_names() -> str:
    """The run folder files every method's reference code writes, for messages."""
    parts = [
        f"{', '.join(f'<epoch>_net_{name}.pth' for name in cls.reference_networks)} ({cls.__name__})"
        for cls in METHODS.classes()
    ]
    return "; ".join(parts) + ", e.g. latest_net_G_A.pth"


def _scan_run_folder(folder: Path) -> Dict[str, Dict[str, Path]]:
    """{epoch label: {reference network name: file}} of the folder's reference files."""
    pattern = _reference_file_pattern()
    runs: Dict[str, Dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            runs.setdefault(match["epoch"], {})[match["net"]] = path
    return runs


def _pick_epoch(folder: Path, runs: Mapping[str, Mapping[str, Path]], epoch: Optional[str]) -> str:
    labels = sorted(runs, key=lambda label: (not label.isdigit(), int(label) if label.isdigit() else 0, label))
    if epoch is not None:
        if str(epoch) not in runs:
            raise OptionError(
                f"epoch={epoch}: {folder} has no reference files for that epoch; it has epochs {', '.join(labels)}.",
                option="epoch",
            )
        return str(epoch)
    if _LATEST in runs:
        return _LATEST
    numbered = [label for label in labels if label.isdigit()]
    if numbered:
        return numbered[-1]
    if len(labels) == 1:
        return labels[0]
    raise OptionError(
        f"{folder} holds reference files of several runs ({', '.join(labels)}); pick one with epoch.", option="epoch"
    )


def _generator_attribute(method: Any, direction: str) -> str:
    """The attribute of ``method``'s generator for ``direction`` (checked against what it translates)."""
    for translation in method.translations:
        if translation.direction == direction:
            return translation.generator
    ways = " and ".join(t.direction for t in method.translations)
    raise OptionError(
        f"direction={direction}: a {method.__name__} translates {ways} only, so a lone generator file can only "
        f"fill its {ways} generator.",
        option="direction",
    )


def _best_fit(candidates: List[Any], generator: Mapping[str, Any], what: str, held: Set[str] = frozenset()) -> Any:
    """The candidate whose published architecture the generator is.

    Ties go to the method that misses the fewest of its networks among the ``held`` reference
    names (a G/D folder is pix2pix's rather than CUT's without F), then to the one with fewer
    networks, then to the first registered.
    """

    def rank(cls: Any) -> Tuple[int, int, int]:
        missing = len(set(cls.reference_networks) - set(held)) if held else 0
        return (-cls.reference_fit(generator), missing, len(cls.reference_networks))

    best = min(candidates, key=rank)
    if best.reference_fit(generator) <= 0:
        names = ", ".join(cls.method_name for cls in candidates)
        raise CheckpointError(
            f"{what} holds a generator none of {names} is built from; pass model and the architecture options."
        )
    return best


def _single_generator_plan(path: Path, model: str, direction: str, label: Optional[str]) -> ImportPlan:
    info = describe_state_dict(read_state_dict(path))
    if info["role"] == "discriminator":
        raise CheckpointError(
            f"{path} holds a discriminator ({info['name']}); import a generator file, or the run "
            "folder to import generators and discriminators together."
        )
    method = METHODS.get(model) if model != AUTO else _best_fit(list(METHODS.classes()), info, str(path))
    attribute = _generator_attribute(method, direction)
    return ImportPlan(method, {attribute: path}, {attribute: path.stem}, label)


def _run_folder_plan(source: Path, model: str, epoch: Optional[str], direction: str) -> ImportPlan:
    runs = _scan_run_folder(source)
    if not runs:
        raise CheckpointError(
            f"{source} holds no reference checkpoint files; expected {expected_file_names()}, "
            "or pass one generator file such as horse2zebra.pth."
        )
    label = _pick_epoch(source, runs, epoch)
    nets = runs[label]
    held = ", ".join(path.name for path in nets.values())
    if model != AUTO:
        candidates = [METHODS.get(model)]
    else:
        candidates = [cls for cls in METHODS.classes() if set(nets) <= set(cls.reference_networks)]
    generator_files = [path for name, path in nets.items() if any(_is_generator_name(cls, name) for cls in candidates)]
    if not generator_files:
        if len(nets) == 1:
            # A lone file may be a generator under another method's name (the reference's
            # test-only folders hold any method's generator as <epoch>_net_G.pth).
            return _single_generator_plan(next(iter(nets.values())), model, direction, label)
        whose = f"a {candidates[0].__name__} run" if model != AUTO else "any method's run"
        raise CheckpointError(f"{source} holds {held}: no generator file of {whose}; expected {expected_file_names()}.")
    generator = describe_state_dict(read_state_dict(generator_files[0]))
    method = candidates[0] if model != AUTO else _best_fit(candidates, generator, str(generator_files[0]), set(nets))
    if model == AUTO and len(nets) == 1 and method.reference_fit(generator) < 2:
        return _single_generator_plan(generator_files[0], model, direction, label)
    files = {name: path for name, path in nets.items() if name in method.reference_networks}
    return ImportPlan(
        method,
        {method.reference_networks[name]: path for name, path in files.items()},
        {method.reference_networks[name]: name for name in files},
        label,
    )


def _is_generator_name(method: Any, name: str) -> bool:
    """Whether ``name`` is one of ``method``'s reference generator names."""
    return method.reference_networks.get(name) in {t.generator for t in method.translations}


def plan_import(source: Path, model: str = AUTO, epoch: Optional[str] = None, direction: str = "AtoB") -> ImportPlan:
    """Which method to build and which file fills which of its networks.

    Args:
        source: a reference run folder or one generator file.
        model: a method name (``cyclegan``...) or ``auto``: from the files' names and, where several
            methods save the same names, the generator's architecture (each method's
            ``reference_fit``; the first registered wins a tie).
        epoch: the ``<epoch>`` of a run folder's files (default ``latest``, else the highest number).
        direction: for a lone generator, the direction of the generator it fills.
    """
    if not source.exists():
        raise CheckpointError(
            f"{source} does not exist; pass a reference run folder (holding {expected_file_names()}) "
            "or one generator file such as horse2zebra.pth."
        )
    if source.is_file():
        match = _reference_file_pattern().fullmatch(source.name)
        return _single_generator_plan(source, model, direction, match["epoch"] if match else None)
    return _run_folder_plan(source, model, epoch, direction)


def _inferred_options(plan: ImportPlan) -> Dict[str, Any]:
    """Module arguments that rebuild the architecture the files were saved from."""
    options: Dict[str, Any] = {}
    method = plan.method
    generator_of = {t.generator: t.direction for t in method.translations}
    attribute = next((a for a in generator_of if a in plan.files), None)
    if attribute is not None:
        gen = describe_state_dict(read_state_dict(plan.files[attribute]))
        if gen["role"] == "generator":
            options.update(method.reference_options(gen, generator_of[attribute]))
    for attribute in method.reference_networks.values():
        if attribute not in plan.files:
            continue
        disc = describe_state_dict(read_state_dict(plan.files[attribute]))
        if disc["role"] == "discriminator":
            options.update(discriminator=disc["name"], ndf=disc["ndf"])
            if disc["n_layers"] is not None:
                options["n_layers_d"] = disc["n_layers"]
            break
    return options


def _build_module(method: Any, options: Dict[str, Any]) -> Any:
    try:
        return method(**options)
    except TypeError as err:
        raise OptionError(
            f"Cannot build a {method.__name__} from {sorted(options)}: {err}. "
            f"Check the keys of hparams against the {method.__name__} arguments.",
            option="hparams",
        ) from None


def imported_module(
    source: Path,
    model: str = AUTO,
    epoch: Optional[str] = None,
    direction: str = "AtoB",
    named: Optional[Dict[str, Any]] = None,
    start_epoch: Optional[int] = None,
    hparams: Optional[Dict[str, Any]] = None,
    shown_as: Optional[Path] = None,
) -> Tuple[Any, int, Dict[str, Any]]:
    """The module a reference run folder or generator file holds, its start epoch and its provenance.

    Args:
        source, model, epoch, direction: as :func:`plan_import`.
        named: architecture options given by the user (``generator``, ``ngf``, ``norm``...; None
            entries are inferred from the files).
        start_epoch: epochs the checkpoint counts as completed (default: the number in the file
            names, else 0).
        hparams: further module arguments; ``named`` takes precedence.
        shown_as: where ``source`` ends up, when it is a staging copy checked before it replaces
            that (``download-model``): notes and the provenance name it instead of ``source``.

    Raises:
        CheckpointError: ``source`` does not exist, holds no reference files, or a file is
            unreadable or unsafe.
        OptionError: an option does not fit the files.
        CheckpointMismatchError: a file does not fit the network built from the options; the
            message names the file's architecture and the options that build it.
    """
    source = Path(source)
    if start_epoch is not None and start_epoch < 0:
        raise OptionError(f"start_epoch must be >= 0, got {start_epoch}.", option="start_epoch")
    plan = plan_import(source, model, epoch, direction)
    method = plan.method

    options = _inferred_options(plan)
    options.update(hparams or {})
    options.update({name: value for name, value in (named or {}).items() if value is not None})
    if "generator" not in options:
        raise CheckpointError(
            f"{plan.files[next(iter(plan.files))]} does not look like a generator of {method.__name__}; "
            "pass the architecture (generator, ngf, norm) if it is one."
        )
    options.update(method.reference_option_fixes(options))
    module = _build_module(method, options)

    for attribute, path in plan.files.items():
        try:
            load_reference_state_dict(getattr(module, attribute), path)
        except CheckpointMismatchError as err:
            fixes = format_fixes(err.fixes, _OPTION_NAMES, style="{}={}")
            advice = f" Pass {fixes}." if fixes else ""
            error = CheckpointMismatchError(
                f"{err}\n(While importing {plan.reference_names.get(attribute, path.name)} into {attribute}."
                f"{advice} Left out, these options are inferred from the files.)",
                err.fixes,
            )
            error.options = tuple(_OPTION_NAMES.get(name, name) for name in err.fixes)
            raise error from None
    shown = Path(shown_as) if shown_as is not None else source
    untouched = [attribute for attribute in method.reference_networks.values() if attribute not in plan.files]
    if untouched:
        print(f"note: {', '.join(sorted(untouched))} not found in {shown}: left at their random initialization.")

    module.trained_directions = tuple(t.direction for t in method.translations if t.generator in plan.files)
    if start_epoch is None:
        start_epoch = int(plan.epoch_label) if plan.epoch_label and plan.epoch_label.isdigit() else 0
    provenance = {
        "source": str(shown),
        "files": {
            attribute: str(shown if path == source else shown / path.relative_to(source))
            for attribute, path in plan.files.items()
        },
        "reference_names": plan.reference_names,
        "epoch": plan.epoch_label,
    }
    return module, start_epoch, provenance


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


def _lightning_checkpoint(module: Any, start_epoch: int, provenance: Dict[str, Any]) -> Dict[str, Any]:
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
            "_class_path": class_path(type(module)),
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


def save_imported_checkpoint(module: Any, start_epoch: int, provenance: Dict[str, Any], output: Path) -> Path:
    """Write ``module`` as the Lightning checkpoint of an untrained run at ``start_epoch`` (atomically)."""
    atomic_torch_save(_lightning_checkpoint(module, start_epoch, provenance), output)
    return Path(output)
