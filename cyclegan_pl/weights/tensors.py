"""A weights file against the network it is for: the checks every loader applies, in one place.

A file can come from anywhere, so before its tensors reach a network:

* :func:`module_for_weights` builds the module a file describes (a checkpoint's
  ``hyper_parameters``, a folder's ``config.json``) only once that is known to fit: the options
  are checked against the class's typed arguments (:func:`~cyclegan_pl.arguments.checked_arguments`),
  then the module is built on the ``meta`` device, which allocates nothing, and its tensors'
  names and shapes are compared with those the file holds (for a safetensors file, read from its
  header without reading a tensor). The meta build itself is given up as soon as it registers far
  more tensors than the file could fill, so options describing 100000 residual blocks cost
  nothing either. Only then is the module built for real, at the size the file proves.
* :func:`conform_tensors` checks each tensor's dtype and values, for every loader (Lightning
  checkpoints through ``load_checkpoint`` and ``--ckpt_path``, ``save_pretrained`` folders,
  reference-code ``.pth`` files):

  - where the network holds floating-point tensors, the file's must be floating point:
    ``float16``, ``bfloat16`` and ``float64`` are accepted and converted to the network's dtype
    (``float32``), as ``load_state_dict`` would copy them; a value that overflows in the
    conversion is refused. Boolean, integer and complex tensors are refused: no network of the
    package saves such weights, and copying them would silently give other numbers;
  - NaN and infinite values are refused in the networks that translate (the generators): they
    would give no image. In the others (discriminators, CUT's projection), which only training
    uses, they are reported as a warning naming the tensor and loaded: the generator still
    translates, and training from such a file stops at its first step with the non-finite loss
    check (``on_nonfinite``). Files of 0.2.0 exist whose projection layers diverged;
  - where the network holds integer buffers (BatchNorm's ``num_batches_tracked``), the file's
    must be integers.

Every refusal is one :class:`~cyclegan_pl.errors.CheckpointError` line naming the file and the tensor.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Collection, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)

from cyclegan_pl.arguments import checked_arguments
from cyclegan_pl.errors import CheckpointError, OptionError, UserError

#: A tensor as a file's header describes it: its shape and dtype (None: one torch has no name for).
TensorSpec = Tuple[Tuple[int, ...], Optional[torch.dtype]]

_EXAMPLES = 3


def tensor_specs(state: Mapping[str, Tensor]) -> Dict[str, TensorSpec]:
    """The shape and dtype of each tensor of a state_dict."""
    return {key: (tuple(value.shape), value.dtype) for key, value in state.items()}


def module_for_weights(
    module_class: Any,
    hparams: Mapping[str, Any],
    tensors: Mapping[str, TensorSpec],
    *,
    options_origin: str,
    weights_origin: str,
    described_by: str,
) -> Any:
    """``module_class(**hparams)``, built only once its tensors are known to be those of the file.

    Args:
        module_class: the method the file holds.
        hparams: its options, as the file stores them.
        tensors: the file's tensors by name (:data:`TensorSpec`), read without reading their data.
        options_origin: what the messages call the options (``The hparams of /m/config.json``).
        weights_origin: what the messages call the weights (the file).
        described_by: how the weights' messages name the options (``its config.json``).

    Raises:
        CheckpointError: an option is unknown or of another type, the options build no module,
            or the module's tensors are not the file's (missing, unexpected or of other shapes).
    """
    name = module_class.__name__
    try:
        options = checked_arguments(module_class, hparams)
    except OptionError as error:
        raise CheckpointError(f"{options_origin} do not build a {name}: {error}.") from None
    limit = 2 * len(tensors) + 64
    try:
        expected = _meta_tensors(module_class, options, limit)
    except _TooManyTensors:
        raise CheckpointError(
            f"{weights_origin} holds {len(tensors)} tensors, far fewer than the {name} {described_by} describes "
            f"(more than {limit}, so it was not built): the options and the weights do not belong together."
        ) from None
    except (TypeError, ValueError, RuntimeError, UserError) as error:
        raise CheckpointError(f"{options_origin} do not build a {name}: {_first_line(error)}.") from None
    mismatch = _mismatch(tensors, expected)
    if mismatch:
        raise CheckpointError(f"{weights_origin} does not fit the {name} {described_by} describes: {mismatch}.")
    return module_class(**options)


def checked_state_dict(
    state: Mapping[str, Tensor],
    expected: Mapping[str, Tensor],
    source: str,
    network: str,
    generators: Optional[Collection[str]] = None,
) -> Dict[str, Tensor]:
    """``state`` checked against a built network's ``expected`` state_dict: the same names and
    shapes, then :func:`conform_tensors`.

    Args:
        state: the file's tensors.
        expected: the network's state_dict.
        source: the file, for messages.
        network: what the messages call the network (``the CycleGAN configured``).
        generators: as :func:`conform_tensors`.

    Raises:
        CheckpointError: one line naming ``source``.
    """
    mismatch = _mismatch(tensor_specs(state), tensor_specs(expected))
    if mismatch:
        raise CheckpointError(f"{source} does not fit {network}: {mismatch}.")
    return conform_tensors(state, expected, source, generators)


def _mismatch(tensors: Mapping[str, TensorSpec], expected: Mapping[str, TensorSpec]) -> str:
    """What differs between two sets of tensors by name and shape, in words; empty when nothing."""
    missing = [key for key in expected if key not in tensors]
    unexpected = [key for key in tensors if key not in expected]
    reshaped = [
        f"{key} {tuple(tensors[key][0])} vs {tuple(expected[key][0])}"
        for key in expected
        if key in tensors and tuple(tensors[key][0]) != tuple(expected[key][0])
    ]
    if not (missing or unexpected or reshaped):
        return ""
    examples = ", ".join((missing + unexpected + reshaped)[:_EXAMPLES])
    return f"{len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped tensors (e.g. {examples})"


def conform_tensors(
    state: Mapping[str, Tensor],
    expected: Mapping[str, Union[Tensor, TensorSpec]],
    source: str,
    generators: Optional[Collection[str]] = None,
) -> Dict[str, Tensor]:
    """``state`` with each tensor the network has (``expected``) checked and in the network's dtype.

    See the module's doc for what is accepted, converted and refused. Tensors ``expected`` lacks
    are passed on unchecked (the key comparison is the caller's).

    Args:
        state: the file's tensors.
        expected: the network's tensors (or :data:`TensorSpec`), for their dtypes.
        source: the file, for messages.
        generators: for a whole module, the attributes of its networks that translate (its
            generators): non-finite values elsewhere are a warning. None: ``state`` is one network
            that translates, refused on any non-finite value.

    Raises:
        CheckpointError: one line naming ``source`` and the tensor.
    """
    conformed = dict(state)
    for key, tensor in state.items():
        if key in expected:
            target = expected[key]
            dtype = target.dtype if isinstance(target, Tensor) else target[1]
            translates = generators is None or key.split(".", 1)[0] in generators
            if dtype is not None:
                conformed[key] = _conformed(tensor, dtype, key, source, translates)
    return conformed


def _conformed(tensor: Tensor, dtype: torch.dtype, key: str, source: str, translates: bool) -> Tensor:
    given = _dtype_name(tensor.dtype)
    if not dtype.is_floating_point:
        if tensor.is_floating_point() or tensor.is_complex() or (tensor.dtype == torch.bool) != (dtype == torch.bool):
            raise CheckpointError(
                f"{source}: tensor {key} is {given}, where the network holds {_dtype_name(dtype)} (a counter): "
                "the file does not hold this network's weights."
            )
        return tensor.to(dtype)
    if not tensor.is_floating_point():
        raise CheckpointError(
            f"{source}: tensor {key} is {given}, not floating point like the network's {_dtype_name(dtype)} weights: "
            "the file does not hold this network's weights."
        )
    if not bool(torch.isfinite(tensor).all()):
        count = int((~torch.isfinite(tensor)).sum())
        if translates:
            raise CheckpointError(
                f"{source}: tensor {key} holds {count} non-finite value(s) (NaN or inf), so the network would give "
                "no image: use an earlier checkpoint of the run (training may have diverged)."
            )
        rank_zero_warn(
            f"{source}: tensor {key} holds {count} non-finite value(s) (NaN or inf). Its network does not "
            "translate, so the file loads, but training from it would stop at its first step."
        )
    converted = tensor.to(dtype)
    if converted is not tensor and not bool(torch.isfinite(converted).all()):
        raise CheckpointError(
            f"{source}: tensor {key} ({given}) holds values beyond the range of the network's {_dtype_name(dtype)}: "
            "the file does not hold usable weights."
        )
    return converted


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


class _TooManyTensors(Exception):
    """A build registered more tensors than its budget."""


@contextlib.contextmanager
def _tensor_budget(limit: int) -> Iterator[None]:
    """Stop a module build (in this thread) once it has registered more than ``limit`` parameters
    and buffers: the build's cost then stays in proportion to the file it is checked against."""
    thread = threading.get_ident()
    registered = [0]

    def count(module: Any, name: str, value: Any) -> None:
        if value is not None and threading.get_ident() == thread:
            registered[0] += 1
            if registered[0] > limit:
                raise _TooManyTensors

    handles = [register_module_parameter_registration_hook(count), register_module_buffer_registration_hook(count)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _meta_tensors(module_class: Any, options: Mapping[str, Any], limit: int) -> Dict[str, TensorSpec]:
    """The state_dict shapes and dtypes of ``module_class(**options)``, built on the meta device."""
    with _tensor_budget(limit), torch.device("meta"):
        module = module_class(**options)
    return tensor_specs(module.state_dict())


def _first_line(error: BaseException) -> str:
    lines: List[str] = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


__all__ = ["TensorSpec", "checked_state_dict", "conform_tensors", "module_for_weights", "tensor_specs"]
