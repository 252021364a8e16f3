"""Command line: ``python -m cyclegan_pl {fit,validate,test,predict,download,translate,...}``.

``fit``/``validate``/``test``/``predict`` are LightningCLI subcommands (models and datamodules
chosen by ``class_path`` in the config). The other commands are plain typed functions turned
into jsonargparse subcommands, so ``--help`` documents them the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, NoReturn, Optional, Sequence

from jsonargparse import ArgumentParser, auto_cli
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from cyclegan_pl.export import export
from cyclegan_pl.reference_import import import_reference

DEBUG_ENV = "CYCLEGAN_PL_DEBUG"
PROG = "python -m cyclegan_pl"


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    if not os.environ.get(DEBUG_ENV):
        print(f"(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
    sys.exit(1)


class ConciseParserMixin:
    """Print a parse error as one line plus a pointer to --help, not the whole usage block."""

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:  # type: ignore[override]
        if os.environ.get(DEBUG_ENV) and ex is not None:
            raise ex
        first_lines = " ".join(line.strip() for line in str(message).strip().splitlines()[:3])
        print(f"error: {first_lines}\n(see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


class CyclePLArgumentParser(ConciseParserMixin, LightningArgumentParser):
    pass


class CyclePLToolParser(ConciseParserMixin, ArgumentParser):
    pass


class CycleGANCLI(LightningCLI):
    """LightningCLI with the package's defaults: atomic checkpoints and concise errors."""

    def __init__(self, args: Optional[Sequence[str]] = None, run: bool = True, **kwargs: Any) -> None:
        super().__init__(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=CyclePLArgumentParser,
            parser_kwargs={"epilog": _OTHER_COMMANDS_HELP, "prog": PROG},
            # `fit --ckpt_path last` and `predict` run again in the run folder of a `fit`.
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
            **kwargs,
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured Trainer, writing checkpoints atomically unless a CheckpointIO is set."""
        from cyclegan_pl.checkpoint_io import AtomicCheckpointIO

        plugins = kwargs.get("plugins", self._get(self.config_init, "trainer", default={}).get("plugins"))
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            kwargs["plugins"] = plugins + [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)


_OTHER_COMMANDS_HELP = (
    "Other commands: download (fetch a dataset), translate (a checkpoint on a folder of images), "
    "export (a generator as TorchScript or ONNX), import-reference (reference-code .pth files to a "
    "Lightning checkpoint). "
    "Run `python -m cyclegan_pl COMMAND --help` for their options."
)


def download(
    name: str,
    root: Path = Path("data"),
    url: Optional[str] = None,
) -> Path:
    """Download and unpack a known dataset into ROOT/NAME.

    Args:
        name: dataset name, e.g. horse2zebra, summer2winter_yosemite, facades.
        root: folder that receives the dataset folder.
        url: archive URL to use instead of the official one (a mirror).
    """
    from cyclegan_pl.data.download import download_dataset

    target = download_dataset(name, root, url=url)
    print(f"{name} is ready in {target}")
    return target


def translate(
    ckpt_path: Path,
    input: Path,
    output: Path,
    direction: Literal["AtoB", "BtoA"] = "AtoB",
    batch_size: int = 1,
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto",
    num_workers: int = 0,
    extension: str = "png",
    eval_mode: Optional[bool] = None,
) -> Path:
    """Translate a folder or one image with a checkpoint, keeping relative paths, names, sizes.

    Folders are searched recursively; each output image has its source's relative path, name and
    size (sides the generator cannot take are padded, then cropped back).

    Args:
        ckpt_path: a checkpoint written by ``fit`` (CycleGAN or Pix2Pix).
        input: an image file or a folder of images.
        output: folder that receives the translated images.
        direction: ``AtoB`` or ``BtoA`` (CycleGAN only; Pix2Pix translates input -> output).
        batch_size: images per forward pass (images of equal size are batched together).
        device: where to run: ``auto`` picks a GPU when there is one.
        num_workers: data loading processes.
        extension: file type of the written images (png, jpg, ...).
        eval_mode: override the model's ``eval_mode`` (True: dropout off and BatchNorm running
            statistics, deterministic output); None keeps what the model was trained with.
    """
    import lightning.pytorch as pl

    from cyclegan_pl.callbacks import ImageWriter
    from cyclegan_pl.data import UnpairedDataModule
    from cyclegan_pl.models import load_checkpoint

    if not Path(input).exists():
        raise FileNotFoundError(f"--input {input} does not exist; pass an image file or a folder of images.")
    module = load_checkpoint(ckpt_path)
    if direction != "AtoB" and not hasattr(module, "gen_ba"):
        raise ValueError("--direction BtoA needs a CycleGAN checkpoint; Pix2Pix translates input -> output only.")
    if eval_mode is not None:
        module.eval_mode = eval_mode
    input_nc = module.hparams.input_nc if direction == "AtoB" else module.hparams.output_nc
    # Only the predict side of the datamodule is used: every image of `input` at its own size.
    datamodule = UnpairedDataModule(
        root=str(input), predict_dir=str(input), val_batch_size=batch_size, num_workers=num_workers,
        input_nc=input_nc, output_nc=input_nc, predict_direction=direction,
    )
    trainer = pl.Trainer(
        accelerator=device, devices=1, logger=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[ImageWriter(output_dir=output, extension=extension)],
    )
    trainer.predict(module, datamodule=datamodule, return_predictions=False)
    print(f"translated images written to {output}")
    return Path(output)


TOOL_COMMANDS: Dict[str, Callable[..., Any]] = {
    "download": download,
    "translate": translate,
    "export": export,
    "import-reference": import_reference,
}
# Commands whose required arguments are positional (`download horse2zebra`); the others take
# every argument as an option (`translate --ckpt_path ... --input ... --output ...`).
_POSITIONAL_COMMANDS = {"download"}


def main(args: Optional[Sequence[str]] = None) -> None:
    argv: List[str] = list(sys.argv[1:] if args is None else args)
    try:
        if argv and argv[0] in TOOL_COMMANDS:
            auto_cli({argv[0]: TOOL_COMMANDS[argv[0]]}, args=argv, parser_class=CyclePLToolParser,
                     prog=PROG, as_positional=argv[0] in _POSITIONAL_COMMANDS)
        else:
            # LightningCLI reads sys.argv itself, and warns when handed a copy of it.
            CycleGANCLI(args=None if args is None else argv)
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as err:  # noqa: BLE001 - one readable line instead of a traceback wall
        if os.environ.get(DEBUG_ENV) or not _is_user_facing(err):
            raise
        _fail(str(err))


def _is_user_facing(err: BaseException) -> bool:
    """Errors about the user's input (files, options, data), whose message says what to do."""
    from cyclegan_pl.models import NonFiniteLossError

    from cyclegan_pl.callbacks import FIDUnavailableError
    from cyclegan_pl.data.download import DatasetDownloadError
    from cyclegan_pl.networks import CheckpointMismatchError

    user_errors = (OSError, ValueError, NonFiniteLossError, CheckpointMismatchError, DatasetDownloadError,
                   FIDUnavailableError)
    return isinstance(err, user_errors)
