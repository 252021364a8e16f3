"""Weights I/O: every way a model goes to and comes from a file.

* :mod:`~cyclegan_pl.weights.checkpoints`: Lightning checkpoints (read without running code,
  written atomically), and :func:`load_checkpoint`, which builds the right method from any form;
* :mod:`~cyclegan_pl.weights.hub`: ``save_pretrained`` folders (safetensors, ``config.json``, a
  model card) and the Hugging Face Hub;
* :mod:`~cyclegan_pl.weights.reference`: one network's weights saved by the reference code;
* :mod:`~cyclegan_pl.weights.reference_import`: a reference run folder or generator file made
  into a module and a checkpoint;
* :mod:`~cyclegan_pl.weights.published`: the models the methods' authors published, downloaded.

It stands on the ground floor (:mod:`cyclegan_pl.files`, :mod:`cyclegan_pl.fetch`) and finds
methods through :data:`cyclegan_pl.methods.METHODS`, never by importing ``models/``.
"""

from cyclegan_pl.weights.checkpoints import (
    CHECKPOINT_KEY,
    SafeCheckpointIO,
    checkpoint_method,
    load_checkpoint,
    load_lightning_checkpoint,
)
from cyclegan_pl.weights.hub import PretrainedMixin, from_pretrained, is_pretrained_source, push_to_hub, save_pretrained
from cyclegan_pl.weights.published import PublishedModel, download_model, published_model, published_models
from cyclegan_pl.weights.reference import (
    convert_reference_state_dict,
    describe_network,
    describe_state_dict,
    format_fixes,
    load_reference_state_dict,
    read_state_dict,
)
from cyclegan_pl.weights.reference_import import imported_module, plan_import, save_imported_checkpoint

__all__ = [
    "CHECKPOINT_KEY",
    "PretrainedMixin",
    "PublishedModel",
    "SafeCheckpointIO",
    "checkpoint_method",
    "convert_reference_state_dict",
    "describe_network",
    "describe_state_dict",
    "download_model",
    "format_fixes",
    "from_pretrained",
    "imported_module",
    "is_pretrained_source",
    "load_checkpoint",
    "load_lightning_checkpoint",
    "load_reference_state_dict",
    "plan_import",
    "published_model",
    "published_models",
    "push_to_hub",
    "read_state_dict",
    "save_imported_checkpoint",
    "save_pretrained",
]
