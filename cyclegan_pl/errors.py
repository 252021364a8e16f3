"""The errors a user must fix, as opposed to bugs of the package.

Every error about the user's input (an option, a file, a folder, a checkpoint, the disk, the
network) derives from :class:`UserError`. Its message is complete on one line: what is wrong,
naming the option, file or folder, and what to do. The command line prints such errors as one
``error:`` line; anything else is a bug of ours and keeps its traceback.

The library names options as Python arguments (``lambda_identity=0.5``); an :class:`OptionError`
says which arguments it is about (:attr:`OptionError.options`), so that the command line can write
them the way it takes them (``--model.init_args.lambda_identity=0.5``, ``--direction BtoA``).

The concrete classes also derive from the built-in exception a Python caller would expect
(``ValueError`` for options, ``FileNotFoundError`` for missing folders, ``OSError`` for files...),
so ``except ValueError`` keeps working around the package.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union


class UserError(Exception):
    """Base class: the user's input is wrong or incomplete; the message says what to do.

    Attributes:
        options: the arguments the message names as ``name=value``, by their Python names (empty
            when it names none), which the command line rewrites into its own option syntax.
    """

    options: Tuple[str, ...] = ()


class OptionError(UserError, ValueError):
    """An option (a module, data module, callback or command argument) has an unusable value.

    Args:
        message: the one-line message, naming each option as ``name=value`` (or ``name``).
        option: the argument(s) the message is about, by their Python names.
    """

    def __init__(self, message: str, option: Union[str, Sequence[str], None] = None) -> None:
        super().__init__(message)
        self.options: Tuple[str, ...] = (option,) if isinstance(option, str) else tuple(option or ())


class DataLayoutError(UserError, FileNotFoundError):
    """A dataset folder is missing, empty or laid out differently from what the loader expects."""


class BadImageError(UserError, OSError):
    """An image file that cannot be decoded (corrupt, truncated or not an image).

    Args:
        path: the file.
        reason: what went wrong.
        advice: what to do (default: replace or delete the file). Callers that offer a way around
            it (a dataset's ``skip_bad_images``) add it with :meth:`with_advice`, so that nobody is
            told about an option their command does not take.
    """

    default_advice = "The file is corrupt, truncated or not an image: replace or delete it."

    def __init__(self, path: object, reason: str, advice: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.advice = advice or self.default_advice
        super().__init__(self._message())

    def _message(self) -> str:
        return f"Cannot read image file '{self.path}': {self.reason}. {self.advice}"

    def with_advice(self, extra: str) -> BadImageError:
        """The same error with ``extra`` appended to its advice."""
        error = type(self).__new__(type(self))
        error.path, error.reason, error.advice = self.path, self.reason, f"{self.advice} {extra}"
        Exception.__init__(error, error._message())
        return error


class ImageTooLargeError(BadImageError):
    """An image with more pixels than PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``)."""

    default_advice = (
        "Shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted "
        "(the limit guards against decompression bombs)."
    )

    def _message(self) -> str:
        return f"Image file '{self.path}' is too large: {self.reason}. {self.advice}"


class CheckpointError(UserError, ValueError):
    """A checkpoint or weights file cannot be used: missing, unreadable, unsafe or of another kind."""


class CheckpointMismatchError(UserError, RuntimeError):
    """The tensors of a weights file do not fit the network built from the current options.

    Attributes:
        fixes: the arguments, in the network builders' own names (``generator``, ``ngf``,
            ``n_layers``...), that would build the file's architecture; callers rename them to
            their options.
    """

    def __init__(self, message: str, fixes: dict | None = None) -> None:
        super().__init__(message)
        self.fixes = dict(fixes or {})


class DownloadError(UserError, RuntimeError):
    """A download or an archive failed; the message says how to put the files in place by hand."""


class WeightsUnavailableError(UserError, RuntimeError):
    """Pretrained weights a feature needs (e.g. FID's Inception network) are not on this machine."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss term became NaN or infinite; training stops instead of learning from it."""


class RunFolderInUseError(UserError, RuntimeError):
    """Another run writes into the run folder (``default_root_dir``) this run was given."""


class DiskFullError(UserError, OSError):
    """A file could not be written because the disk (or quota) is full; the old file is intact."""


class StorageError(UserError, OSError):
    """An object-store URL cannot be reached: no credentials, or the library its scheme needs is missing."""
