"""Models as folders, the way the field shares them: safetensors weights, ``config.json``, a model card.

:func:`save_pretrained`, :func:`from_pretrained` and :func:`push_to_hub` read and write such
folders; :class:`PretrainedMixin` makes them methods of every method's class. A folder holds no
pickle: the weights are a safetensors file and the configuration is JSON, so loading one never
runs code from it. ``huggingface_hub`` is needed only
for Hub repos (``pip install 'cyclegan_pl[hub]'``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from torch import Tensor

from cyclegan_pl.data.intensity import load_intensity
from cyclegan_pl.errors import CheckpointError, DownloadError, OptionError, UserError
from cyclegan_pl.files import atomic_file
from cyclegan_pl.methods import METHODS, class_path
from cyclegan_pl.weights.tensors import TensorSpec, conform_tensors, module_for_weights

#: The files of a :func:`save_pretrained` folder.
PRETRAINED_WEIGHTS = "model.safetensors"
PRETRAINED_CONFIG = "config.json"
PRETRAINED_CARD = "README.md"
#: Bumped when the folder's layout changes in a way older readers would misread.
PRETRAINED_FORMAT = 1
#: How a Hugging Face Hub repo is named where a local path is also accepted (``hf://owner/name``;
#: pathlib turns ``//`` into ``/``, so one slash is accepted too).
HUB_PREFIX = re.compile(r"^hf:/+")
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
#: What ``card_info`` may hold: shown in the model card, kept in checkpoints and folders.
CARD_FIELDS = ("name", "description", "dataset", "epochs", "command", "metrics", "source")
#: The largest config.json read: the package writes a few kB (the hyperparameters and the card).
MAX_CONFIG_BYTES = 1 << 20


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` as methods of every method's class.

    The module provides ``hparams``, ``state_dict``, ``directions``, ``trained_directions``,
    ``card_info`` (what the model card says; kept in checkpoints too) and the class's
    ``card_summary``.
    """

    def current_card_info(self) -> Dict[str, Any]:
        """:attr:`card_info` completed from the run that trains or tests the model, if any.

        The epochs trained, the dataset's name and the FID / test numbers last logged (``fid/*``,
        ``test/*``) are taken from the attached Trainer; what ``card_info`` already says is kept
        where the Trainer knows nothing.
        """
        card = {key: value for key, value in self.card_info.items() if value is not None}
        trainer = self._trainer
        if trainer is None:
            return card
        if trainer.state.fn == "fit" or "epochs" not in card:
            card["epochs"] = int(trainer.current_epoch)
        dataset = getattr(getattr(trainer, "datamodule", None), "dataset_name", None)
        if dataset:
            card["dataset"] = str(dataset)
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith(("fid/", "test/")) and getattr(value, "numel", lambda: 1)() == 1
        }
        if metrics:
            card["metrics"] = {**card.get("metrics", {}), **metrics}
        return card

    def save_pretrained(self, directory: Union[str, Path], repo_id: Optional[str] = None, **card: Any) -> Path:
        """Write the model as a folder: ``model.safetensors``, ``config.json`` and ``README.md``.

        See :func:`save_pretrained`; ``repo_id`` is the Hub repo the folder is meant for, and
        ``card`` entries override what the model knows (:data:`CARD_FIELDS`), e.g.
        ``dataset="horse2zebra"``, ``metrics={"fid/a2b": 61.2}``.
        """
        return save_pretrained(self, directory, repo_id=repo_id, **card)

    @classmethod
    def from_pretrained(cls, source: Union[str, Path], revision: Optional[str] = None, map_location: str = "cpu"):
        """Load a :func:`save_pretrained` folder or a Hugging Face Hub repo holding one.

        Called on the base class it builds whichever method the folder holds; called on a method
        (``CycleGAN.from_pretrained``) it refuses a folder of another method. See
        :func:`from_pretrained`.
        """
        return from_pretrained(source, revision=revision, map_location=map_location, expected=cls)

    def push_to_hub(
        self,
        repo_id: str,
        private: Optional[bool] = None,
        commit_message: str = "Upload cyclegan_pl model",
        token: Optional[str] = None,
        **card: Any,
    ) -> str:
        """Upload the :func:`save_pretrained` folder to a Hub model repo; see :func:`push_to_hub`."""
        return push_to_hub(self, repo_id, private=private, commit_message=commit_message, token=token, **card)


def save_pretrained(module: Any, directory: Union[str, Path], repo_id: Optional[str] = None, **card: Any) -> Path:
    """Write ``module`` as a folder: ``model.safetensors``, ``config.json`` and ``README.md``.

    The weights are a safetensors file (tensors only: nothing runs when it is read), the
    configuration holds the class and its hyperparameters and the directions it translates,
    and the model card says what the model is: method, dataset when known, epochs, the
    command that reproduces it and evaluation numbers when known. The folder loads with
    :func:`from_pretrained`, ``load_checkpoint`` and ``--ckpt_path`` (``translate``,
    ``export``, ``app``). Each file is written atomically; other files in the folder are left.

    Args:
        module: the model (any registered method).
        directory: the folder to write (created when missing).
        repo_id: the Hugging Face Hub repo (``owner/name``) the folder is uploaded to: the model
            card's usage lines then load ``hf://owner/name``. Without it they name the folder as
            ``./<its name>``: the card never shows where it was saved on this machine.
        **card: model card entries overriding what the model knows (:data:`CARD_FIELDS`).

    Returns:
        The folder.
    """
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise OptionError(f"save_pretrained: unknown model card entries {unknown}; use {', '.join(CARD_FIELDS)}.")
    from safetensors.torch import save_file

    folder = Path(directory)
    info = {**module.current_card_info(), **{k: v for k, v in card.items() if v is not None}}
    info.setdefault("name", folder.resolve().name)
    config = {
        "library": "cyclegan_pl",
        "format": PRETRAINED_FORMAT,
        "class_path": class_path(type(module)),
        "hparams": dict(module.hparams),
        "trained_directions": list(module.trained_directions),
        "intensity": {domain: mapping.to_dict() for domain, mapping in module.intensity.items()},
        "card": info,
    }
    try:
        config_text = json.dumps(config, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise OptionError(f"save_pretrained: the hparams or card entries are not JSON ({error}).") from None
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in module.state_dict().items()}
    with atomic_file(folder / PRETRAINED_WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "class_path": config["class_path"]})
    with atomic_file(folder / PRETRAINED_CONFIG) as tmp:
        tmp.write_text(config_text)
    with atomic_file(folder / PRETRAINED_CARD) as tmp:
        tmp.write_text(_model_card(type(module), config, info, folder, repo_id))
    return folder


def from_pretrained(
    source: Union[str, Path], revision: Optional[str] = None, map_location: str = "cpu", expected: Any = None
) -> Any:
    """Load a folder written by :func:`save_pretrained`, or a Hugging Face Hub repo holding one.

    Args:
        source: the folder, or a Hub repo id (``owner/name`` when no such local folder
            exists, or explicitly ``hf://owner/name``), downloaded with ``huggingface_hub``
            (``pip install 'cyclegan_pl[hub]'``).
        revision: the Hub revision (branch, tag or commit); ignored for folders.
        map_location: the device the module is moved to.
        expected: a class the folder's method must be (or derive from); None accepts any method.

    Raises:
        CheckpointError: the folder lacks a file, holds another method, or its weights do
            not fit its configuration.
        DownloadError: the Hub repo could not be downloaded.
    """
    folder = _pretrained_folder(source, revision)
    config = _read_pretrained_config(folder)
    module_class = _pretrained_class(config, folder)
    if expected is not None and not issubclass(module_class, expected):
        raise CheckpointError(
            f"{folder} holds a {module_class.__name__}, not a {expected.__name__}: load it with "
            f"{module_class.__name__}.from_pretrained or cyclegan_pl.load_checkpoint."
        )
    directions = [translation.direction for translation in module_class.translations]
    trained = tuple(config["trained_directions"] or directions)
    if not set(trained) <= set(directions):
        raise CheckpointError(
            f"{folder / PRETRAINED_CONFIG}: trained_directions {list(trained)} are not directions a "
            f"{module_class.__name__} translates ({', '.join(directions)})."
        )
    weights = folder / PRETRAINED_WEIGHTS
    module = module_for_weights(
        module_class,
        config["hparams"],
        _safetensors_header(weights, folder),
        options_origin=f"The hparams of {folder / PRETRAINED_CONFIG}",
        weights_origin=str(weights),
        described_by=f"its {PRETRAINED_CONFIG}",
    )
    state = _read_pretrained_weights(weights)
    module.load_state_dict(conform_tensors(state, module.state_dict(), str(weights), module.generator_names()))
    module.trained_directions = trained
    module.card_info = config["card"]
    try:
        # Folders of 0.2.0 hold 8-bit models: the default mapping.
        module.use_intensity(load_intensity(config.get("intensity", {})))
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{folder / PRETRAINED_CONFIG}: its intensity entry cannot be used ({error}).") from None
    return module.to(map_location)


def push_to_hub(
    module: Any,
    repo_id: str,
    private: Optional[bool] = None,
    commit_message: str = "Upload cyclegan_pl model",
    token: Optional[str] = None,
    **card: Any,
) -> str:
    """Upload the :func:`save_pretrained` folder of ``module`` to a Hugging Face Hub model repo (created if new).

    Needs ``huggingface_hub`` (``pip install 'cyclegan_pl[hub]'``) and a Hub token (``hf auth
    login`` or ``token``). Returns the URL of the commit.
    """
    hub = _import_hub(f"push_to_hub('{repo_id}')")
    api = hub.HfApi(token=token)
    staging = Path(tempfile.mkdtemp(prefix="cyclegan_pl_push_"))
    try:
        save_pretrained(module, staging, repo_id=repo_id, **{"name": repo_id.rsplit("/", 1)[-1], **card})
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=str(staging), commit_message=commit_message, repo_type="model"
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(getattr(commit, "commit_url", commit))


def is_pretrained_source(source: Union[str, Path]) -> bool:
    """Whether ``source`` names a :func:`save_pretrained` folder or Hub repo
    (a folder, or ``hf://owner/name``) rather than a checkpoint file."""
    return bool(HUB_PREFIX.match(str(source))) or Path(source).is_dir()


def _import_hub(what: str) -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(
            f"{what} needs the huggingface_hub package: pip install 'cyclegan_pl[hub]' "
            "(or download the repo's files by hand and pass their folder)."
        ) from None
    return huggingface_hub


def _pretrained_folder(source: Union[str, Path], revision: Optional[str]) -> Path:
    """The local folder of ``source``: itself, or the Hub repo's files downloaded."""
    text = str(source)
    explicit_hub = HUB_PREFIX.match(text)
    if not explicit_hub:
        path = Path(text)
        if path.is_dir():
            return path
        if path.exists():
            raise CheckpointError(
                f"{path} is a file; from_pretrained takes a folder written by save_pretrained (or a Hub repo "
                "id). Load a .ckpt file with cyclegan_pl.load_checkpoint."
            )
    repo_id = HUB_PREFIX.sub("", text)
    if not _REPO_ID.fullmatch(repo_id):
        raise CheckpointError(
            f"{source} is neither a folder written by save_pretrained nor a Hugging Face Hub repo id (owner/name)."
        )
    hub = _import_hub(f"Loading '{repo_id}' from the Hugging Face Hub")
    offline = bool(os.environ.get("CYCLEGAN_PL_OFFLINE"))
    local = "" if explicit_hub else f" (there is no local folder {source} either)"
    try:
        folder = hub.snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=[PRETRAINED_CONFIG, PRETRAINED_WEIGHTS, PRETRAINED_CARD],
            local_files_only=offline,
        )
    except Exception as error:  # noqa: BLE001 - the hub's errors are many; each is one line here
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        cache = " from the local cache (CYCLEGAN_PL_OFFLINE is set)" if offline else ""
        raise DownloadError(
            f"Could not get the Hub repo {repo_id}{cache}{local}: {type(error).__name__}: {first_line}. "
            "Check the name and the network, or download its config.json and model.safetensors by hand "
            "into a folder and pass that folder."
        ) from None
    return Path(folder)


def _read_pretrained_config(folder: Path) -> Dict[str, Any]:
    """The folder's config.json, each entry of the type the package writes (or one line naming it)."""
    path = folder / PRETRAINED_CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{folder} holds no {PRETRAINED_CONFIG}: pass a folder written by save_pretrained, or a "
            ".ckpt checkpoint file."
        )
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{path} is {size / 2**20:.1f} MiB, far more than a model folder's {PRETRAINED_CONFIG} (a few kB): it was "
            "not written by save_pretrained; copy the folder again."
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} cannot be read as JSON ({error}).") from None
    except RecursionError:
        raise CheckpointError(f"{path} nests too deeply to be a cyclegan_pl config.") from None
    if not isinstance(config, dict) or not isinstance(config.get("hparams"), dict):
        raise CheckpointError(f"{path} is not a cyclegan_pl config (no 'hparams' mapping).")
    version = config.get("format", PRETRAINED_FORMAT)
    if type(version) is not int or version < 1:
        raise CheckpointError(f"{path}: format must be a positive integer, not {_shown(version)}.")
    if version > PRETRAINED_FORMAT:
        raise CheckpointError(
            f"{path} was written by a newer cyclegan_pl (format {version}); upgrade cyclegan_pl to load it."
        )
    directions = config.get("trained_directions")
    if directions is not None and not (
        isinstance(directions, list) and all(isinstance(direction, str) for direction in directions)
    ):
        raise CheckpointError(f"{path}: trained_directions must be a list of directions, not {_shown(directions)}.")
    return {**config, "trained_directions": directions, "card": _checked_card(config.get("card"), path)}


def _checked_card(card: Any, path: Path) -> Dict[str, Any]:
    """The model card entries of a config (:data:`CARD_FIELDS`), each of the type the package writes."""
    if card is None:
        return {}
    if not isinstance(card, dict):
        raise CheckpointError(f"{path}: card must be a mapping of model card entries, not {_shown(card)}.")
    checked: Dict[str, Any] = {}
    for key in CARD_FIELDS:
        value = card.get(key)
        if value is None:
            continue
        if key == "metrics":
            if not isinstance(value, dict) or not all(_is_number(number) for number in value.values()):
                raise CheckpointError(f"{path}: card.metrics must map names to numbers, not {_shown(value)}.")
            value = {str(name): float(number) for name, number in value.items()}
        elif key == "epochs":
            if type(value) is not int or value < 0:
                raise CheckpointError(f"{path}: card.epochs must be a count of epochs, not {_shown(value)}.")
        elif not isinstance(value, str):
            raise CheckpointError(f"{path}: card.{key} must be text, not {_shown(value)}.")
        checked[key] = value
    return checked


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pretrained_class(config: Dict[str, Any], folder: Path) -> Any:
    module_class = METHODS.from_class_path(config.get("class_path"))
    if module_class is None:
        raise CheckpointError(
            f"{folder / PRETRAINED_CONFIG} names the class {config.get('class_path')!r}, none of the methods "
            f"{', '.join(cls.__name__ for cls in METHODS.classes())}."
        )
    return module_class


def _safetensors_header(path: Path, folder: Path) -> Dict[str, TensorSpec]:
    """The shape and dtype of each tensor of a safetensors file, from its header: no tensor is read."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"{folder} holds no {PRETRAINED_WEIGHTS}: copy it there from where the folder came from.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: _header_spec(handle.get_slice(key)) for key in handle.keys()}  # noqa: SIM118 - not iterable
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({error}); copy it again.") from None


def _header_spec(piece: Any) -> TensorSpec:
    return tuple(piece.get_shape()), _SAFETENSORS_DTYPES.get(piece.get_dtype())


# The dtypes safetensors names in its header; others (F8 variants...) are left unnamed here and
# refused by conform_tensors once read.
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "C64": torch.complex64,
}


def _read_pretrained_weights(path: Path) -> Dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({error}); copy it again.") from None


def _model_card(
    method_class: Any, config: Dict[str, Any], card: Dict[str, Any], folder: Path, repo_id: Optional[str]
) -> str:
    """The README.md of a save_pretrained folder: front matter for the Hub, then the facts.

    Its usage lines load ``hf://<repo_id>`` when the folder goes to the Hub, else ``./<folder's
    name>``: a card shared with others must not show this machine's folders.
    """
    source = f"hf://{repo_id}" if repo_id else f"./{folder.resolve().name}"
    hp = config["hparams"]
    method = method_class.__name__
    all_directions = [translation.direction for translation in method_class.translations]
    directions = config["trained_directions"]
    dataset = card.get("dataset")
    lines = ["---", "library_name: cyclegan_pl", "pipeline_tag: image-to-image", "tags:"]
    lines += [f"- {tag}" for tag in ("image-to-image", method.lower(), "pytorch-lightning")]
    if dataset:
        lines += ["datasets:", f"- {dataset}"]
    lines += ["---", "", f"# {card.get('name', folder.name)} ({method})", ""]
    if card.get("description"):
        lines += [str(card["description"]), ""]
    only = " only" if len(directions) < len(all_directions) else ""
    rows = [
        ("method", f"{method}: {method_class.card_summary}"),
        ("translates", " and ".join(directions) + only),
        ("dataset", dataset or "not recorded"),
        ("epochs", card.get("epochs", "not recorded")),
        (
            "generator",
            f"{hp.get('generator')}, ngf {hp.get('ngf')}, {hp.get('norm')} norm, dropout {hp.get('dropout')}",
        ),
        ("channels", f"{hp.get('input_nc')} -> {hp.get('output_nc')}"),
    ]
    if card.get("source"):
        rows.append(("source", card["source"]))
    lines += ["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows] + [""]
    lines += ["## Reproduce", ""]
    if card.get("command"):
        lines += ["```bash", str(card["command"]), "```", ""]
    else:
        lines += ["The command that trained it was not recorded.", ""]
    lines += ["## Evaluation", ""]
    metrics = card.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())]
    else:
        lines += ["No evaluation numbers were recorded."]
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"python -m cyclegan_pl translate --ckpt_path {source} --input IMAGES --output OUT --direction {directions[0]}",
        "```",
        "",
        "```python",
        "from cyclegan_pl import load_checkpoint",
        f'model = load_checkpoint("{source}")  # or {method}.from_pretrained(...)',
        f'images_out = model.translate(images_in, "{directions[0]}")  # N, C, H, W in [-1, 1]',
        "```",
        "",
    ]
    return "\n".join(lines)
