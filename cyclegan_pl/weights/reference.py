"""Loading network weights saved by the reference CycleGAN/pix2pix code.

The reference code saves one ``state_dict`` per network (``latest_net_G_A.pth``, published
``horse2zebra.pth``...). Those files differ from a freshly built network's ``state_dict`` in ways
that carry no weights, and :func:`convert_reference_state_dict` is the one place that undoes them:

* InstanceNorm layers (``affine=False``, no running statistics) saved by old PyTorch versions
  carry ``running_mean`` / ``running_var`` / ``num_batches_tracked`` entries: dropped.
* BatchNorm layers saved before PyTorch 0.4.1 lack ``num_batches_tracked``: added as 0.
* ``nn.DataParallel`` saves prefix every key with ``module.``: stripped.

When the tensors still do not fit, :func:`load_reference_state_dict` raises
:class:`~cyclegan_pl.errors.CheckpointMismatchError` saying which architecture the file holds
(inferred by :func:`describe_state_dict`) and which builder arguments build that architecture;
callers name those arguments as their own options.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from torch import nn

from cyclegan_pl.errors import CheckpointError, CheckpointMismatchError
from cyclegan_pl.files import load_torch_file
from cyclegan_pl.weights.tensors import conform_tensors

__all__ = [
    "CheckpointMismatchError",
    "convert_reference_state_dict",
    "describe_network",
    "describe_state_dict",
    "format_description",
    "format_fixes",
    "load_reference_state_dict",
    "read_state_dict",
]

StateDict = Mapping[str, torch.Tensor]

_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
_DATA_PARALLEL_PREFIX = "module."
_MAX_EXAMPLES = 3


def _strip_data_parallel_prefix(state_dict: StateDict) -> Dict[str, torch.Tensor]:
    return {
        (key[len(_DATA_PARALLEL_PREFIX) :] if key.startswith(_DATA_PARALLEL_PREFIX) else key): value
        for key, value in state_dict.items()
    }


def convert_reference_state_dict(state_dict: StateDict, net: Optional[nn.Module] = None) -> Dict[str, torch.Tensor]:
    """Turn a reference-code ``state_dict`` into one that loads strictly into our networks.

    Strips a leading ``module.``; drops the running statistics that old PyTorch saved for
    InstanceNorm layers (a norm layer with statistics but no ``weight`` in the file); adds a zero
    ``num_batches_tracked`` to BatchNorm layers saved without one. The input is not modified.

    Args:
        state_dict: the loaded checkpoint (one network's ``state_dict``).
        net: the network it is meant for. When given, statistics the network does have are never
            dropped and ``num_batches_tracked`` is only added where the network has it.

    Returns:
        A new dict, in the original key order.
    """
    stripped = _strip_data_parallel_prefix(state_dict)
    expected = set(net.state_dict()) if net is not None else None
    converted: Dict[str, torch.Tensor] = {}
    for key, value in stripped.items():
        prefix, _, leaf = key.rpartition(".")
        affine = f"{prefix}.weight" in stripped
        if leaf in _NORM_STATISTICS and not affine and (expected is None or key not in expected):
            continue
        converted[key] = value
        counter = f"{prefix}.num_batches_tracked"
        if leaf == "running_var" and affine and counter not in stripped and (expected is None or counter in expected):
            converted[counter] = torch.tensor(0, dtype=torch.long)
    return converted


def _conv_weight(state_dict: StateDict, key: str) -> Optional[torch.Tensor]:
    value = state_dict.get(key)
    return value if value is not None and value.dim() == 4 else None


def _layer_index(key: str, depth: int = 1) -> int:
    return int(key.split(".")[depth])


def describe_state_dict(state_dict: StateDict) -> Dict[str, Any]:
    """Infer which of our architectures (and which options) a ``state_dict`` was saved from.

    Args:
        state_dict: one network's weights (reference or ours, ``module.`` prefix allowed).

    Returns:
        A dict with ``kind`` (``resnet``, ``unet``, ``patchgan``, ``pixel``, UNSB's
        ``resnet_cond`` / ``patchgan_cond``, or ``unknown``),
        ``role`` (``generator`` / ``discriminator`` / None), ``name`` (the generator or
        discriminator option value building it, e.g. ``resnet_6blocks``, ``unet_256``, ``basic``),
        ``input_nc``, ``output_nc``, ``ngf``, ``ndf``, ``norm`` (``batch`` when the norm layers
        have weights, else ``instance``: keys cannot tell ``instance`` from ``none``),
        ``n_blocks``, ``num_downs``, ``n_layers``, ``dropout`` (known for ResNet only, where it
        shifts layer indices), ``antialias`` (the blur layers' ``filt`` buffers are present: CUT's
        networks) and ``num_tensors``. Entries that do not apply are None.
    """
    sd = {k: v for k, v in _strip_data_parallel_prefix(state_dict).items() if isinstance(v, torch.Tensor)}
    fields = ["role", "name", "input_nc", "output_nc", "ngf", "ndf", "n_blocks", "num_downs", "n_layers", "dropout"]
    info: Dict[str, Any] = dict.fromkeys(fields)
    info["kind"] = "unknown"
    info["num_tensors"] = len(sd)
    # The only 1-D weights in these networks belong to BatchNorm layers.
    info["norm"] = "batch" if any(k.endswith(".weight") and v.dim() == 1 for k, v in sd.items()) else "instance"
    info["antialias"] = any(k.endswith(".filt") for k in sd)

    with contextlib.suppress(ValueError, IndexError, KeyError):  # a damaged layout stays "unknown"
        info.update(_infer_architecture(sd))
    return info


def _infer_architecture(sd: StateDict) -> Dict[str, Any]:
    """The architecture entries of :func:`describe_state_dict`; {} when no layout matches."""
    conditional = _infer_conditional_architecture(sd)
    if conditional:
        return conditional
    unet_stem = _conv_weight(sd, "model.model.0.weight")
    patch_stem = _conv_weight(sd, "model.0.weight")
    resnet_stem = _conv_weight(sd, "model.1.weight")
    pixel_stem = _conv_weight(sd, "net.0.weight")

    if unet_stem is not None:
        unet_head = _conv_weight(sd, "model.model.3.weight")
        # Each nesting level adds one ".model." to the path; the outermost keys have two.
        depth = max(k.split(".").count("model") for k in sd)
        return dict(
            kind="unet",
            role="generator",
            num_downs=depth - 1,
            name=f"unet_{2 ** (depth - 1)}",
            ngf=unet_stem.shape[0],
            input_nc=unet_stem.shape[1],
            output_nc=unet_head.shape[1] if unet_head is not None else None,
        )
    if patch_stem is not None:
        # (the anti-aliased network's 4-D blur buffers `filt` are no convolutions)
        convs = [k for k in sd if k.startswith("model.") and k.endswith(".weight") and _conv_weight(sd, k) is not None]
        # Besides the n_layers strided convs: the stride-1 conv and the 1-channel output conv.
        n_layers = len(convs) - 2
        return dict(
            kind="patchgan",
            role="discriminator",
            n_layers=n_layers,
            name="basic" if n_layers == 3 else "n_layers",
            ndf=patch_stem.shape[0],
            input_nc=patch_stem.shape[1],
        )
    if resnet_stem is not None and resnet_stem.shape[-1] == 7:
        blocks = {_layer_index(k) for k in sd if ".conv_block." in k}
        convs = sorted(
            _layer_index(k)
            for k in sd
            if k.startswith("model.")
            and k.endswith(".weight")
            and ".conv_block." not in k
            and _conv_weight(sd, k) is not None
        )
        head = sd[f"model.{convs[-1]}.weight"]
        return dict(
            kind="resnet",
            role="generator",
            n_blocks=len(blocks),
            name=f"resnet_{len(blocks)}blocks",
            ngf=resnet_stem.shape[0],
            input_nc=resnet_stem.shape[1],
            output_nc=head.shape[0],
            dropout=_resnet_dropout(sd, min(blocks)) if blocks else None,
        )
    if pixel_stem is not None:
        return dict(
            kind="pixel",
            role="discriminator",
            name="pixel",
            ndf=pixel_stem.shape[0],
            input_nc=pixel_stem.shape[1],
        )
    return {}


def _infer_conditional_architecture(sd: StateDict) -> Dict[str, Any]:
    """UNSB's time-conditional networks (kinds ``resnet_cond`` and ``patchgan_cond``); {} for others."""
    stem = _conv_weight(sd, "model.1.weight")
    conditional = any(k.startswith("model_res.") for k in sd) and any(k.startswith("z_transform.") for k in sd)
    if stem is not None and conditional:
        blocks = {_layer_index(k) for k in sd if k.startswith("model_res.")}
        head = max((k for k in sd if k.startswith("model_upsample.") and k.endswith(".weight")), key=_layer_index)
        return dict(
            kind="resnet_cond",
            role="generator",
            n_blocks=len(blocks),
            name=f"resnet_{len(blocks)}blocks_cond",
            ngf=stem.shape[0],
            input_nc=stem.shape[1],
            output_nc=sd[head].shape[0],
            # [ReLU, (Dropout), pad, conv, norm]: a Dropout moves the second convolution along.
            dropout="model_res.0.conv_fin.3.weight" in sd,
        )
    first = _conv_weight(sd, "model_main.0.conv1.weight")
    if first is not None:
        stages = {_layer_index(k) for k in sd if k.startswith("model_main.")}
        return dict(
            kind="patchgan_cond",
            role="discriminator",
            n_layers=len(stages) - 1,
            name="basic_cond",
            ndf=first.shape[0],
            input_nc=first.shape[1],
        )
    return {}


def _resnet_dropout(sd: StateDict, block: int) -> bool:
    prefix = f"model.{block}.conv_block."
    convs = sorted(_layer_index(k, depth=3) for k in sd if k.startswith(prefix) and _conv_weight(sd, k) is not None)
    first, second = convs[0], convs[-1]
    # Without dropout the second conv follows [conv, norm, relu, (pad)]; a Dropout adds one slot.
    padded = first == 1
    gap_without_dropout = 4 if padded else 3
    return second - first > gap_without_dropout


def describe_network(net: nn.Module) -> Dict[str, Any]:
    """Describe a built network like :func:`describe_state_dict` does a checkpoint.

    The modules refine what keys cannot show: ``norm`` is ``none`` when the network has neither
    InstanceNorm nor BatchNorm layers, and ``dropout`` reflects its Dropout layers.

    Args:
        net: one of this package's generators or discriminators.
    """
    info = describe_state_dict(net.state_dict())
    modules = list(net.modules())
    if info["norm"] != "batch" and not any(isinstance(m, nn.InstanceNorm2d) for m in modules):
        info["norm"] = "none"
    if info["role"] == "generator":
        info["dropout"] = any(isinstance(m, nn.Dropout) for m in modules)
    return info


def format_description(info: Mapping[str, Any]) -> str:
    """One line describing the result of :func:`describe_state_dict` / :func:`describe_network`.

    Args:
        info: the description dict.
    """
    norm = f"{info['norm']} norm"
    if info["kind"] == "resnet":
        dropout = ", dropout" if info["dropout"] else ""
        return (
            f"ResNet generator {info['name']} ({info['n_blocks']} residual blocks{dropout}), "
            f"ngf={info['ngf']}, {info['input_nc']}->{info['output_nc']} channels, {norm}"
        )
    if info["kind"] == "unet":
        return (
            f"U-Net generator {info['name']} (num_downs={info['num_downs']}), ngf={info['ngf']}, "
            f"{info['input_nc']}->{info['output_nc']} channels, {norm}"
        )
    if info["kind"] == "patchgan":
        return (
            f"PatchGAN discriminator {info['name']} (n_layers={info['n_layers']}), "
            f"ndf={info['ndf']}, {info['input_nc']} input channels, {norm}"
        )
    if info["kind"] == "resnet_cond":
        dropout = ", dropout" if info["dropout"] else ""
        return (
            f"time-conditional ResNet generator {info['name']} ({info['n_blocks']} residual blocks{dropout}), "
            f"ngf={info['ngf']}, {info['input_nc']}->{info['output_nc']} channels, {norm}"
        )
    if info["kind"] == "patchgan_cond":
        return f"time-conditional PatchGAN {info['name']}, ndf={info['ndf']}, {info['input_nc']} input channels, {norm}"
    if info["kind"] == "pixel":
        return f"PixelGAN discriminator pixel, ndf={info['ndf']}, {info['input_nc']} input channels, {norm}"
    return (
        f"an unrecognised layout ({info['num_tensors']} tensor(s)) that matches none of the "
        "ResNet, U-Net, PatchGAN or PixelGAN networks"
    )


def _argument_fixes(ckpt: Mapping[str, Any], net: Mapping[str, Any]) -> Dict[str, Any]:
    """Builder arguments (``generator``, ``ngf``, ``n_layers``...) that would build the file's network."""
    fixes: Dict[str, Any] = {}
    role = ckpt["role"]
    if role is None or role != net["role"]:
        return fixes
    if ckpt["name"] != net["name"]:
        fixes[role] = ckpt["name"]
    if ckpt["name"] == "n_layers" and ckpt["n_layers"] != net["n_layers"]:
        fixes["n_layers"] = ckpt["n_layers"]
    # Keys cannot tell instance from none, and both load the same tensors.
    if (ckpt["norm"] == "batch") != (net["norm"] == "batch"):
        fixes["norm"] = ckpt["norm"]
    width = "ngf" if role == "generator" else "ndf"
    if ckpt[width] != net[width]:
        fixes[width] = ckpt[width]
    channel_arguments = ("input_nc", "output_nc") if role == "generator" else ()
    for channels in channel_arguments:
        if ckpt[channels] is not None and ckpt[channels] != net[channels]:
            fixes[channels] = ckpt[channels]
    if ckpt["kind"] == net["kind"] == "resnet" and ckpt["dropout"] not in (None, net["dropout"]):
        fixes["dropout"] = ckpt["dropout"]
    return fixes


def format_fixes(fixes: Mapping[str, Any], names: Optional[Mapping[str, str]] = None, style: str = "{}={!r}") -> str:
    """``generator='resnet_6blocks', ngf=8``: the fixes of a mismatch, renamed for the reader.

    Args:
        fixes: :attr:`CheckpointMismatchError.fixes`.
        names: how the caller calls each argument (e.g. ``{"n_layers": "n_layers_d"}``).
        style: format of one setting, given the name and the value.
    """
    names = names or {}
    return ", ".join(style.format(names.get(key, key), value) for key, value in fixes.items())


def _examples(keys: List[str]) -> str:
    shown = ", ".join(keys[:_MAX_EXAMPLES])
    more = ", ..." if len(keys) > _MAX_EXAMPLES else ""
    return f" (e.g. {shown}{more})" if keys else ""


def _mismatch_error(
    checkpoint: Mapping[str, torch.Tensor],
    net: nn.Module,
    missing: List[str],
    unexpected: List[str],
    reshaped: List[str],
    source_name: Optional[str],
) -> CheckpointMismatchError:
    ckpt_info = describe_state_dict(checkpoint)
    net_info = describe_network(net)
    what = f"Checkpoint '{source_name}'" if source_name else "The checkpoint"
    lines = [
        f"{what} does not fit the network.",
        f"  checkpoint holds: {format_description(ckpt_info)}",
        f"  network is:       {format_description(net_info)}",
    ]
    fixes = _argument_fixes(ckpt_info, net_info)
    if ckpt_info["role"] is not None and net_info["role"] is not None and (ckpt_info["role"] != net_info["role"]):
        lines.append(
            f"It holds a {ckpt_info['role']} but is being loaded into a {net_info['role']}: "
            "check which file goes with which network."
        )
    elif fixes:
        lines.append(f"To load it, build the network with {format_fixes(fixes)}.")
    elif ckpt_info["kind"] == "unknown":
        lines.append("Check that the file is a state_dict saved from one of these networks.")
    else:
        lines.append("The architecture options look the same; the file may be damaged or come from a modified network.")
    if ckpt_info["kind"] == "patchgan" and ckpt_info["input_nc"] != net_info["input_nc"]:
        lines.append(
            f"The discriminator was trained on {ckpt_info['input_nc']}-channel inputs "
            f"(pix2pix's conditional D sees input and output stacked)."
        )
    details = [
        f"{len(missing)} missing{_examples(missing)}",
        f"{len(unexpected)} unexpected{_examples(unexpected)}",
        f"{len(reshaped)} with other shapes{_examples(reshaped)}",
    ]
    lines.append("Keys: " + "; ".join(details) + ".")
    return CheckpointMismatchError("\n".join(lines), fixes)


def load_reference_state_dict(
    net: nn.Module,
    source: Union[StateDict, str, os.PathLike[str]],
    strict: bool = True,
) -> Any:
    """Load reference-code weights (a ``state_dict`` or a ``.pth`` file) into ``net``.

    The weights go through :func:`convert_reference_state_dict` first.

    Args:
        net: the network to fill, built with the options the checkpoint was trained with.
        source: a ``state_dict`` or the path of a ``.pth`` file holding one (see
            :func:`read_state_dict`).
        strict: require the keys to match exactly (shapes must always match).

    Returns:
        What ``nn.Module.load_state_dict`` returns (missing and unexpected keys).

    Raises:
        CheckpointError: ``source`` is missing, unreadable, unsafe, or not a ``state_dict`` of
            tensors.
        CheckpointMismatchError: the tensors do not fit ``net``; the message names the
            checkpoint's architecture and the builder arguments that build it (also in ``fixes``).
    """
    source_name = str(source) if isinstance(source, (str, os.PathLike)) else None
    state_dict = read_state_dict(source)
    converted = convert_reference_state_dict(state_dict, net)
    expected = net.state_dict()
    missing = [k for k in expected if k not in converted]
    unexpected = [k for k in converted if k not in expected]
    reshaped = [
        f"{k} {tuple(converted[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in converted and converted[k].shape != expected[k].shape
    ]
    if reshaped or (strict and (missing or unexpected)):
        raise _mismatch_error(_strip_data_parallel_prefix(state_dict), net, missing, unexpected, reshaped, source_name)
    converted = conform_tensors(converted, expected, source_name or "the given state_dict")
    return net.load_state_dict(converted, strict=strict)


def read_state_dict(source: Union[StateDict, str, os.PathLike[str]]) -> Dict[str, torch.Tensor]:
    """One network's ``state_dict`` of tensors, from a mapping or a ``.pth`` file read safely.

    Args:
        source: a ``state_dict`` or the path of a file holding one (loaded as tensors and plain
            data only: nothing in the file is executed).

    Raises:
        CheckpointError: the file is missing, unreadable or unsafe, or holds something other
            than one network's tensors (e.g. a Lightning checkpoint).
    """
    name = f"weights file {source}" if isinstance(source, (str, os.PathLike)) else "the given state_dict"
    state_dict = load_torch_file(source, "weights file") if isinstance(source, (str, os.PathLike)) else source
    if isinstance(state_dict, Mapping) and all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        return dict(state_dict)
    hint = (
        " It looks like a Lightning checkpoint, which loads through the model (`load_checkpoint`, "
        "`--ckpt_path`) and needs no conversion."
        if isinstance(state_dict, Mapping) and "state_dict" in state_dict
        else ""
    )
    raise CheckpointError(f"{name} does not hold one network's state_dict of tensors.{hint}")
