"""The commands besides LightningCLI's ``fit``/``validate``/``test``/``predict``, by their names.

Each is a typed function whose docstring documents its options (``--help``), built on the library:
``download`` (a dataset), ``download-model`` (a published model), ``translate`` (images through a
model), ``evaluate`` (FID and KID), ``export`` (TorchScript or ONNX), ``import-reference``
(reference-code weights), ``app`` (a web page to try a model) and ``optimize`` (image folders
into LitData chunks). :mod:`cyclegan_pl.cli` wires them
to the command line.
"""

from typing import Any, Callable

from cyclegan_pl.commands.app import app
from cyclegan_pl.commands.download import download
from cyclegan_pl.commands.download_model import download_model
from cyclegan_pl.commands.evaluate import evaluate
from cyclegan_pl.commands.export import export
from cyclegan_pl.commands.import_reference import import_reference
from cyclegan_pl.commands.optimize import optimize
from cyclegan_pl.commands.translate import translate
from cyclegan_pl.registry import Registry

#: The commands by the name the command line gives them.
COMMANDS: Registry[Callable[..., Any]] = Registry("command")
for _name, _function in (
    ("download", download),
    ("download-model", download_model),
    ("translate", translate),
    ("export", export),
    ("import-reference", import_reference),
    ("app", app),
    ("evaluate", evaluate),
    ("optimize", optimize),
):
    COMMANDS.add(_name, _function)
del _name, _function

__all__ = [
    "COMMANDS",
    "app",
    "download",
    "download_model",
    "evaluate",
    "export",
    "import_reference",
    "optimize",
    "translate",
]
