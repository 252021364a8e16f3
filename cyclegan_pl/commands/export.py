"""Export a trained generator as a standalone TorchScript or ONNX file.

The exported program needs neither this package nor Lightning: ``torch.jit.load`` (Python or
C++ LibTorch) or any ONNX runtime runs it. It takes images (N, C, H, W) in [-1, 1] of any size and
returns the translated images at the same size, padding to the generator's ``size_multiple`` and
cropping back inside the program with the code ``translate`` uses
(:class:`~cyclegan_pl.networks.padding.PaddedGenerator`).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from cyclegan_pl.directions import Direction
from cyclegan_pl.errors import OptionError
from cyclegan_pl.files import atomic_file
from cyclegan_pl.models.base import ImageTranslationModule
from cyclegan_pl.networks.padding import PaddedGenerator
from cyclegan_pl.weights import load_checkpoint

__all__ = ["export"]

ExportFormat = Literal["torchscript", "onnx"]
OnnxExporter = Literal["auto", "dynamo", "legacy"]

# The dynamo-based ONNX exporter has no implementations below this opset.
_DYNAMO_MIN_OPSET = 18


def _build_wrapper(generator: nn.Module) -> PaddedGenerator:
    layers = getattr(generator, "model", None)
    if not isinstance(layers, nn.Module):
        raise OptionError(
            f"Cannot export {type(generator).__name__}: export expects the generator's layers in a "
            "`model` attribute, as the ResNet and U-Net generators of cyclegan_pl.networks have."
        )
    wrapper = PaddedGenerator(layers, int(getattr(generator, "size_multiple", 1)))
    wrapper.eval()
    wrapper.requires_grad_(False)
    return wrapper


def _refuse_samplers(module: ImageTranslationModule) -> None:
    """A method whose translation is more than one generator call (it overrides
    ``generate_for_inference``, e.g. UNSB's multi-step sampler) has no single network to export."""
    if type(module).generate_for_inference is not ImageTranslationModule.generate_for_inference:
        name = type(module).__name__
        raise OptionError(
            f"Cannot export a {name}: it translates with a multi-step sampler (several calls of its generator "
            "with fresh latents and noise in between), which a single exported network does not reproduce. "
            f"Translate with the checkpoint instead (translate, predict or {name}.translate).",
            option="ckpt_path",
        )


def _save_torchscript(wrapper: PaddedGenerator, path: str) -> None:
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream but is still what LibTorch (C++) loads.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=FutureWarning)
        torch.jit.save(torch.jit.script(wrapper), path)


def _resolve_onnx_exporter(onnx_exporter: OnnxExporter, opset: int) -> str:
    has_onnxscript = importlib.util.find_spec("onnxscript") is not None
    if onnx_exporter == "auto":
        if has_onnxscript and opset >= _DYNAMO_MIN_OPSET:
            return "dynamo"
        if not has_onnxscript:
            print(
                "note: onnxscript is not installed; using torch's legacy TorchScript-based ONNX "
                "exporter (`pip install onnxscript` for the current one)."
            )
        return "legacy"
    if onnx_exporter == "dynamo":
        if not has_onnxscript:
            raise OptionError(
                "--onnx_exporter dynamo needs the onnxscript package: `pip install onnxscript`, "
                "or use --onnx_exporter legacy."
            )
        if opset < _DYNAMO_MIN_OPSET:
            raise OptionError(
                f"--opset {opset} is below {_DYNAMO_MIN_OPSET}, the lowest opset of the dynamo ONNX "
                f"exporter: use --opset {_DYNAMO_MIN_OPSET} or higher, or --onnx_exporter legacy."
            )
    return onnx_exporter


def _save_onnx(wrapper: PaddedGenerator, example: Tensor, path: str, opset: int, exporter: str) -> None:
    names = dict(input_names=["images"], output_names=["translated"], opset_version=opset)
    if exporter == "dynamo":
        from torch.export import Dim

        dims = {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, verbose=False, dynamic_shapes={"images": dims}, **names
        )
        # The crop leaves symbolic sides like "Min(height, 4*((height + 3)//4))"; declaring the
        # input's own dims tells ONNX users that the output has the input's size.
        images, translated = program.model.graph.inputs[0], program.model.graph.outputs[0]
        translated.shape = type(images.shape)([images.shape[0], translated.shape[1], images.shape[2], images.shape[3]])
        # One self-contained file: external weights would be named after the temporary file.
        program.save(path, external_data=False)
        return
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The legacy exporter's own deprecation notice and its notes on tracing the shape checks
        # of the norm layers, which hold for every input that reaches the exported graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*(Constant folding|instance_norm' is set to train)")
        torch.onnx.export(
            wrapper, (example,), path, dynamo=False, dynamic_axes={"images": axes, "translated": axes}, **names
        )


def export(
    ckpt_path: Path,
    output: Path,
    format: ExportFormat = "torchscript",
    direction: Direction = "AtoB",
    height: int = 256,
    width: int = 256,
    opset: int = 18,
    onnx_exporter: OnnxExporter = "auto",
) -> Path:
    """Export one generator of a trained checkpoint as a standalone TorchScript or ONNX file.

    The exported program maps images (N, C, H, W) in [-1, 1] to translated images of the same
    size, for any batch size, height and width: it pads to the generator's size multiple
    (reflection, or edge replication for images smaller than the padding) and crops back, like
    ``translate``. Running it needs only ``torch`` (``torch.jit.load``, also LibTorch in C++) or
    an ONNX runtime, not cyclegan_pl.

    The generator is always exported in eval mode: dropout off and BatchNorm using its running
    statistics, so the output is deterministic and independent of the batch. This equals
    ``translate`` with ``model.eval_mode=true``. The reference code's default test-time behaviour
    (train mode: dropout and batch statistics on, as ``eval_mode=false`` does) is not exported;
    with instance norm and no dropout (CycleGAN's defaults) both give the same images.

    Args:
        ckpt_path: a checkpoint written by ``fit``, ``import-reference`` or ``download-model``
            (CycleGAN, Pix2Pix, CUT or DCLGAN; UNSB's multi-step sampler is refused), a
            ``save_pretrained`` folder or ``hf://owner/name``.
        output: the file to write (e.g. ``horse2zebra.pt`` or ``horse2zebra.onnx``); its folder is
            created. Written atomically: an interrupted export leaves no partial file.
        format: ``torchscript`` (load with ``torch.jit.load``) or ``onnx``.
        direction: which generator to export: ``AtoB`` or ``BtoA`` (CycleGAN and DCLGAN; Pix2Pix
            and CUT have one generator, ``AtoB``).
        height: height of the example input used while exporting; the exported program accepts
            any size.
        width: width of the example input used while exporting.
        opset: ONNX opset version (``onnx`` only); the dynamo exporter needs 18 or higher.
        onnx_exporter: ``dynamo`` (torch.export-based, needs the ``onnxscript`` package),
            ``legacy`` (TorchScript-based, deprecated by PyTorch) or ``auto`` (dynamo when
            onnxscript is installed and ``opset`` >= 18, else legacy).

    Returns:
        The path of the written file.

    Raises:
        CheckpointError: ``ckpt_path`` is missing, unreadable or unsafe.
        OptionError: an option does not fit the checkpoint (e.g. ``BtoA`` for Pix2Pix or CUT), or
            the method translates with a multi-step sampler (UNSB).
    """
    ckpt_path, output = Path(ckpt_path), Path(output)
    if height < 1 or width < 1:
        raise OptionError(f"height={height}, width={width}: both must be positive.", option=("height", "width"))
    module = load_checkpoint(ckpt_path)
    module.translation(direction)
    _refuse_samplers(module)
    wrapper = _build_wrapper(module.generator_for(direction))
    example = torch.rand(1, module.source_channels(direction), height, width) * 2 - 1
    with atomic_file(output) as tmp:
        if format == "torchscript":
            _save_torchscript(wrapper, str(tmp))
        else:
            _save_onnx(wrapper, example, str(tmp), opset, _resolve_onnx_exporter(onnx_exporter, opset))
    print(f"exported the {direction} generator of {ckpt_path} as {format} to {output}")
    return output
