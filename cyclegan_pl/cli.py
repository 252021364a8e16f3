"""Command line: ``python -m cyclegan_pl {fit,validate,test,predict,download,translate,...}``.

``fit``/``validate``/``test``/``predict`` are LightningCLI subcommands (models and datamodules
chosen by ``class_path`` in the config). The other commands are plain typed functions turned
into jsonargparse subcommands, so ``--help`` documents them the same way.

What this adds to LightningCLI:

* every folder of a run derives from ``--trainer.default_root_dir``: the logger's ``save_dir``
  and the ``ModelCheckpoint``'s ``dirpath`` default to it (and ``<root>/checkpoints``), so the
  samples, ``config.yaml`` and checkpoints follow it;
* checkpoints are read without running code from them and written atomically
  (:class:`~cyclegan_pl.weights.SafeCheckpointIO`); ``--ckpt_path`` is checked before
  anything starts: ``last`` is resolved (or said to be missing), an unreadable file is one line,
  and a checkpoint of another method than the config's stops instead of switching the model;
* ``--trainer.strategy ddp``, and the default ``auto`` when it would mean DDP (``--trainer.num_nodes``
  above 1, several devices), becomes DDP with ``find_unused_parameters`` (each step leaves the
  other networks without gradients);
* the optimizers are the methods' own (``--optimizer`` / ``--lr_scheduler`` are not offered:
  the learning-rate schedule is the ``LinearDecay`` callback);
* SIGTERM leaves ``last.ckpt`` and exits with status 143;
* one run at a time in a run folder: ``fit``/``validate``/``test``/``predict`` take the lock of
  ``default_root_dir`` (:class:`~cyclegan_pl.run_lock.RunLock`) before the Trainer writes anything
  and release it when the command ends; a second run there stops with one line naming the first,
  a lock left by a crashed run of this host is taken over (``--ckpt_path last`` resumes it), and
  under DDP rank 0 decides and every process follows (:class:`~cyclegan_pl.run_lock.RunLockAgreement`);
* errors the user must fix (:class:`~cyclegan_pl.errors.UserError`) print one ``error:`` line;
  anything else keeps its traceback.
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, Callable, List, NoReturn, Optional, Sequence

from jsonargparse import ArgumentParser, Namespace, auto_cli
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from cyclegan_pl.arguments import concise_parse_error
from cyclegan_pl.callbacks.sigterm_checkpoint import SigtermCheckpoint
from cyclegan_pl.commands import COMMANDS
from cyclegan_pl.errors import CheckpointError, RunFolderInUseError, UserError
from cyclegan_pl.run_lock import RunLock, RunLockAgreement
from cyclegan_pl.weights import SafeCheckpointIO, checkpoint_method, load_lightning_checkpoint

DEBUG_ENV = "CYCLEGAN_PL_DEBUG"
PROG = "python -m cyclegan_pl"
SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM

# Lightning's DDP strategies that look for unused parameters, by the plain name a user types.
_UNUSED_PARAMETER_STRATEGIES = {
    "ddp": "ddp_find_unused_parameters_true",
    "ddp_spawn": "ddp_spawn_find_unused_parameters_true",
    "ddp_fork": "ddp_fork_find_unused_parameters_true",
    "ddp_notebook": "ddp_notebook_find_unused_parameters_true",
}
_MODEL_CHECKPOINT = "lightning.pytorch.callbacks.ModelCheckpoint"
# ModelCheckpoint and the package's subclass: their dirpath follows default_root_dir.
_MODEL_CHECKPOINTS = (
    _MODEL_CHECKPOINT,
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
    "cyclegan_pl.callbacks.BestCheckpoint",
    "cyclegan_pl.callbacks.best_checkpoint.BestCheckpoint",
)


def _fail(message: str, status: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    if not os.environ.get(DEBUG_ENV):
        print(f"(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
    sys.exit(status)


class ConciseParserMixin:
    """Print a parse error as one line plus a pointer to --help, not the whole usage block."""

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:  # type: ignore[override]
        if os.environ.get(DEBUG_ENV) and ex is not None:
            raise ex
        print(f"error: {concise_parse_error(message)}\n(see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


class CyclePLArgumentParser(ConciseParserMixin, LightningArgumentParser):
    pass


class CyclePLToolParser(ConciseParserMixin, ArgumentParser):
    pass


class CycleGANCLI(LightningCLI):
    """LightningCLI with the package's defaults (see the module doc)."""

    def __init__(self, args: Optional[Sequence[str]] = None, run: bool = True, **kwargs: Any) -> None:
        self.run_lock: Optional[RunLock] = None
        try:
            super().__init__(
                model_class=LightningModule,
                datamodule_class=LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                parser_class=CyclePLArgumentParser,
                parser_kwargs={"epilog": _OTHER_COMMANDS_HELP, "prog": PROG},
                # `fit --ckpt_path last` and `predict` run again in the run folder of a `fit`.
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
                args=args,
                run=run,
                **kwargs,
            )
        except UserError as error:
            subcommand = self.config.get("subcommand") if getattr(self, "config", None) is not None else None
            if subcommand:
                _in_option_syntax(error, lambda name: _config_option(self.config[subcommand], name))
            raise
        finally:
            if self.run_lock is not None:
                self.run_lock.release()

    # --- one run at a time in a run folder -----------------------------------------------------
    def before_fit(self) -> None:
        self._claim_run_folder()

    def before_validate(self) -> None:
        self._claim_run_folder()

    def before_test(self) -> None:
        self._claim_run_folder()

    def before_predict(self) -> None:
        self._claim_run_folder()

    def _claim_run_folder(self) -> None:
        """Take the run folder's lock on global rank 0 before the Trainer writes anything there.

        A refusal stops this process at once when no other process of the run exists yet (one
        process, or ranks that Lightning starts later from this one). Where the other ranks already
        run (torchrun, SLURM, several nodes), rank 0 keeps going without its loggers, so that it
        writes nothing, until every rank has heard the refusal in the Trainer's first callback hook.
        """
        trainer = self.trainer
        refusal = None
        if trainer.global_rank == 0:
            self.run_lock = RunLock(trainer.default_root_dir)
            refusal = self.run_lock.acquire()
        others_running = trainer.world_size > 1 and (
            trainer.strategy.cluster_environment.creates_processes_externally or trainer.num_nodes > 1
        )
        if refusal is not None and not others_running:
            raise RunFolderInUseError(refusal)
        if refusal is not None:
            trainer.loggers = []
        trainer.callbacks.insert(0, RunLockAgreement(refusal))

    # --- before anything is built -----------------------------------------------------------
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            _derive_run_folders(self.config[subcommand])
            self._check_ckpt_path(self.config[subcommand])

    def _check_ckpt_path(self, config: Namespace) -> None:
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path:
            return
        if ckpt_path == "last":
            ckpt_path = _last_checkpoint(config)
            config.ckpt_path = ckpt_path
            if ckpt_path is None:
                print(
                    f"--ckpt_path last: no checkpoint in {_checkpoint_dir(config)} yet, so training starts "
                    "from scratch."
                )
                return
            print(f"--ckpt_path last: resuming from {ckpt_path}")
        elif ckpt_path in ("best", "hpc", "registry") or "://" in str(ckpt_path):
            return  # resolved by Lightning later
        checkpoint = load_lightning_checkpoint(ckpt_path)
        method = checkpoint_method(checkpoint, ckpt_path)
        configured = str(config.model.class_path).rsplit(".", 1)[-1] if config.get("model") else None
        if configured is not None and configured != method.__name__:
            raise CheckpointError(
                f"--ckpt_path {ckpt_path} holds a {method.__name__}; the config's model is {configured}. "
                f"Pass a {configured} checkpoint, or the config it was trained with."
            )

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as error:
            # jsonargparse reports a class that refused its arguments as "does not validate
            # against the Union subtypes": the refusal itself is what the user must read.
            refusal = _user_error_cause(error)
            if refusal is None:
                raise
            raise refusal from None

    def before_instantiate_classes(self) -> None:
        if self.subcommand:
            # The checkpoint's own hyperparameters (merged by LightningCLI) may bring a `model`
            # class_path back: keep folders derived after that too.
            _derive_run_folders(self.config[self.subcommand])

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured Trainer with safe checkpoints, DDP fit for GANs and SIGTERM checkpoints."""
        trainer_config = self._get(self.config_init, "trainer", default={})
        plugins = kwargs.get("plugins", trainer_config.get("plugins"))
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            kwargs["plugins"] = plugins + [SafeCheckpointIO()]
        strategy = kwargs.get("strategy", trainer_config.get("strategy"))
        if strategy in (None, "auto") and _several_processes({**dict(trainer_config), **kwargs}):
            strategy = "ddp"  # what Lightning's auto chooses for several processes outside notebooks
        if isinstance(strategy, str) and strategy in _UNUSED_PARAMETER_STRATEGIES:
            kwargs["strategy"] = _UNUSED_PARAMETER_STRATEGIES[strategy]
        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(callback, SigtermCheckpoint) for callback in trainer.callbacks):
            trainer.callbacks.append(SigtermCheckpoint())
        return trainer


def _several_processes(trainer: Any) -> bool:
    """Whether the Trainer options ask for more than one process: several nodes or several devices."""
    if int(trainer.get("num_nodes") or 1) > 1:
        return True
    devices = trainer.get("devices")
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()]) > 1
    if devices in ("auto", -1, "-1", None):
        # Lightning's "auto" devices are every GPU (on a CPU, one process).
        return str(trainer.get("accelerator") or "auto") in ("auto", "gpu", "cuda") and _cuda_devices() > 1
    try:
        return int(devices) > 1
    except (TypeError, ValueError):
        return False


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _user_error_cause(error: BaseException) -> Optional[UserError]:
    """The first UserError among the exceptions that caused ``error``."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _in_option_syntax(error: UserError, option_of: Callable[[str], Optional[str]]) -> None:
    """Rewrite the ``name=`` arguments the error names (:attr:`UserError.options`) as command-line
    options (``option_of(name)``, e.g. ``--model.init_args.name``; None leaves a name as it is)."""
    message = str(error)
    for name in error.options:
        option = option_of(name)
        if option is not None:
            message = re.sub(rf"(?<![\w.-]){re.escape(name)}=", f"{option}=", message)
    error.args = (message,)


def _config_option(config: Namespace, name: str) -> Optional[str]:
    """``--model.init_args.NAME`` or ``--data.init_args.NAME``: the one section of the config that has it."""
    sections = [
        section
        for section in ("model", "data")
        if isinstance(config.get(section), Namespace)
        and isinstance(config[section].get("init_args"), Namespace)
        and name in config[section].init_args
    ]
    return f"--{sections[0]}.init_args.{name}" if len(sections) == 1 else None


def _logger_configs(trainer: Namespace) -> List[Namespace]:
    loggers = trainer.get("logger")
    loggers = loggers if isinstance(loggers, list) else [loggers]
    return [logger for logger in loggers if isinstance(logger, Namespace) and logger.get("init_args") is not None]


def _is_model_checkpoint(callback: Any) -> bool:
    return isinstance(callback, Namespace) and callback.get("class_path") in _MODEL_CHECKPOINTS


def _derive_run_folders(config: Namespace) -> None:
    """Loggers and ModelCheckpoint without their own folder write under default_root_dir."""
    trainer = config.get("trainer")
    if trainer is None:
        return
    root = trainer.get("default_root_dir") or "."
    for logger in _logger_configs(trainer):
        if "save_dir" in logger.init_args and logger.init_args.save_dir in (None, ".", "./"):
            logger.init_args.save_dir = root
    for callback in trainer.get("callbacks") or []:
        if _is_model_checkpoint(callback) and callback.init_args.get("dirpath") is None:
            callback.init_args.dirpath = os.path.join(root, "checkpoints")


def _checkpoint_dir(config: Namespace) -> str:
    trainer = config.get("trainer") or Namespace()
    for callback in trainer.get("callbacks") or []:
        if _is_model_checkpoint(callback) and callback.init_args.get("dirpath"):
            return str(callback.init_args.dirpath)
    return os.path.join(trainer.get("default_root_dir") or ".", "checkpoints")


def _last_checkpoint(config: Namespace) -> Optional[str]:
    """The newest ``last*.ckpt`` of the run's checkpoint folder (what Lightning's ``last`` means)."""
    candidates = sorted(Path(_checkpoint_dir(config)).glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    return str(candidates[-1]) if candidates else None


_OTHER_COMMANDS_HELP = (
    "Other commands: download (fetch a dataset), download-model (fetch a published model), "
    "translate (a checkpoint on a folder of images), "
    "evaluate (FID and KID of two folders, or of a checkpoint on its test split), "
    "export (a generator as TorchScript or ONNX), import-reference (reference-code .pth files to a "
    "Lightning checkpoint), app (a web page to try a model), optimize (image folders into LitData chunks for "
    "the streaming data modules). "
    "Run `python -m cyclegan_pl COMMAND --help` for their options."
)


# Commands whose required arguments are positional (`download horse2zebra`); the others take
# every argument as an option (`translate --ckpt_path ... --input ... --output ...`).
_POSITIONAL_COMMANDS = {"download", "download-model"}


def _run_tool(name: str, function: Callable[..., Any], argv: Sequence[str]) -> Any:
    """Parse ``argv`` into ``function``'s typed arguments (help from its docstring) and call it.

    jsonargparse's ``auto_cli`` reserves ``--config`` for a file of the command's own options
    (and drops a parameter of that name), so a command with a ``config`` parameter
    (``evaluate --config CONFIG``) is parsed here instead.
    """
    parameters = inspect.signature(function).parameters
    try:
        if "config" not in parameters:
            return auto_cli(
                {name: function},
                args=[name, *argv],
                parser_class=CyclePLToolParser,
                prog=PROG,
                as_positional=name in _POSITIONAL_COMMANDS,
            )
        doc = inspect.getdoc(function) or ""
        parser = CyclePLToolParser(prog=f"{PROG} {name}", description=doc.split("\n\n")[0])
        parser.add_function_arguments(function, as_positional=False)
        parsed = parser.parse_args(list(argv))
        return function(**{key: parsed[key] for key in parameters})
    except UserError as error:
        # A command that forwards **options to the library takes the library's arguments too.
        forwards = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values())
        _in_option_syntax(error, lambda option: f"--{option}" if option in parameters or forwards else None)
        raise


def main(args: Optional[Sequence[str]] = None) -> None:
    argv: List[str] = list(sys.argv[1:] if args is None else args)
    try:
        if argv and argv[0] in COMMANDS:
            _run_tool(argv[0], COMMANDS.get(argv[0]), argv[1:])
        else:
            # Parsers name the program (in errors and usage) after sys.argv[0].
            sys.argv[0] = PROG
            CycleGANCLI(args=None if args is None else argv)
    except SIGTERMException:
        print("stopped by SIGTERM; resume with --ckpt_path last", file=sys.stderr)
        sys.exit(SIGTERM_EXIT_STATUS)
    except KeyboardInterrupt:
        _fail("interrupted")
    except (UserError, MisconfigurationException) as err:
        # Lightning's MisconfigurationException is its own "the configuration is wrong".
        if os.environ.get(DEBUG_ENV):
            raise
        _fail(str(err) or type(err).__name__)


__all__ = ["CycleGANCLI", "concise_parse_error", "main"]
