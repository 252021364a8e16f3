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
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

DEBUG_ENV = "CYCLEGAN_PL_DEBUG"


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
        from cyclegan_pl.checkpoint_io import AtomicCheckpointIO

        trainer_defaults = {"plugins": [AtomicCheckpointIO()]}
        trainer_defaults.update(kwargs.pop("trainer_defaults", {}))
        super().__init__(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=CyclePLArgumentParser,
            trainer_defaults=trainer_defaults,
            parser_kwargs={"epilog": _OTHER_COMMANDS_HELP},
            args=args,
            run=run,
            **kwargs,
        )


_OTHER_COMMANDS_HELP = (
    "Other commands: download (fetch a dataset), translate (a checkpoint on a folder of images). "
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
    """Translate a folder (recursively) or one image with a trained checkpoint.

    Every output image keeps its source's relative path, name and size.

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
    from cyclegan_pl.data import PredictDataModule
    from cyclegan_pl.models import load_checkpoint

    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"--ckpt_path {ckpt_path} does not exist; pass a .ckpt written by `fit`.")
    module = load_checkpoint(ckpt_path)
    if hasattr(module, "gen_ab"):
        module.predict_direction = direction
    elif direction != "AtoB":
        raise ValueError("--direction BtoA needs a CycleGAN checkpoint; Pix2Pix translates input -> output only.")
    if eval_mode is not None:
        module.eval_mode = eval_mode
    datamodule = PredictDataModule(
        path=input, batch_size=batch_size, num_workers=num_workers, input_nc=module.hparams.input_nc
    )
    trainer = pl.Trainer(
        accelerator=device, devices=1, logger=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[ImageWriter(output_dir=output, extension=extension)],
    )
    trainer.predict(module, datamodule=datamodule, return_predictions=False)
    print(f"translated images written to {output}")
    return Path(output)


TOOL_COMMANDS: Dict[str, Callable[..., Any]] = {"download": download, "translate": translate}


def main(args: Optional[Sequence[str]] = None) -> None:
    argv: List[str] = list(sys.argv[1:] if args is None else args)
    try:
        if argv and argv[0] in TOOL_COMMANDS:
            auto_cli({argv[0]: TOOL_COMMANDS[argv[0]]}, args=argv, parser_class=CyclePLToolParser,
                     prog="python -m cyclegan_pl")
        else:
            CycleGANCLI(args=argv)
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as err:  # noqa: BLE001 - one readable line instead of a traceback wall
        if os.environ.get(DEBUG_ENV) or not _is_user_facing(err):
            raise
        _fail(str(err))


def _is_user_facing(err: BaseException) -> bool:
    """Errors about the user's input (files, options, data), whose message says what to do."""
    from cyclegan_pl.models import NonFiniteLossError

    user_errors = (OSError, ValueError, KeyError, NonFiniteLossError)
    return isinstance(err, user_errors) and not isinstance(err, (MemoryError,))
