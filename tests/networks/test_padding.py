"""Padding for any image size: tiny images (a side of 4 px or less) translate too, in Python and TorchScript."""

from __future__ import annotations

import warnings

import pytest
import torch

from cyclegan_pl.models import CUT, CycleGAN, Pix2Pix
from cyclegan_pl.networks import define_generator
from cyclegan_pl.networks.padding import PaddedGenerator, pad_to_multiple

TINY_SIDES = [(1, 1), (2, 3), (4, 4), (3, 17), (1, 40)]


def _tiny(method: str):
    torch.manual_seed(0)
    if method == "cyclegan":
        return CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    if method == "pix2pix":
        return Pix2Pix(generator="unet_32", ngf=8, ndf=8)
    return CUT(generator="resnet_2blocks", ngf=8, ndf=8)


@pytest.mark.parametrize("method", ["cyclegan", "pix2pix", "cut"])
@pytest.mark.parametrize("eval_mode", [False, True])
def test_translate_gives_tiny_images_back_at_their_size(method, eval_mode):
    module = _tiny(method)
    module.eval_mode = eval_mode
    for height, width in TINY_SIDES:
        images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(height * width)) * 2 - 1
        output = module.translate(images)
        assert output.shape == images.shape, (height, width)
        assert torch.isfinite(output).all()


@pytest.mark.parametrize("name", ["resnet_2blocks", "unet_32"])
def test_padded_generator_scripted_takes_tiny_images(name):
    torch.manual_seed(0)
    generator = define_generator(name, ngf=8, norm="instance").eval()
    wrapper = PaddedGenerator(generator.model, generator.size_multiple).eval()
    scripted = torch.jit.script(wrapper)
    for height, width in TINY_SIDES:
        images = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height + width)) * 2 - 1
        with torch.no_grad():
            eager, script = wrapper(images), scripted(images)
        assert eager.shape == script.shape == images.shape, (height, width)
        assert torch.allclose(eager, script, atol=1e-6)


def test_sides_of_8_px_and_more_are_padded_as_before():
    # Only the tiny sides change: reflection up to the next multiple as always, so translations
    # of ordinary images stay bit-identical.
    images = torch.arange(5 * 10, dtype=torch.float32).reshape(1, 1, 5, 10)
    padded = pad_to_multiple(images, 4)
    assert padded.shape == (1, 1, 8, 12)
    assert torch.equal(padded[..., :5, :10], images)
    assert torch.equal(padded[..., 5, :10], images[..., 3, :])  # reflected, not replicated
    big = torch.rand(1, 3, 30, 45)
    assert pad_to_multiple(big, 4).shape == (1, 3, 32, 48)
    assert pad_to_multiple(big, 32).shape == (1, 3, 32, 64)


def test_a_tiny_side_is_padded_to_8_by_replication():
    images = torch.tensor([[[[1.0, 2.0, 3.0]]]])  # 1 x 3
    padded = pad_to_multiple(images, 4)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded[0, 0, 0], torch.tensor([1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]))
    assert torch.equal(padded[0, 0, :, 0], torch.ones(8))


def test_an_onnx_file_traced_at_32_px_takes_tiny_images(tmp_path):
    # The legacy exporter traces the sides: a Python comparison in the padding would fix the
    # example's choice (no minimum) into the graph, and a 1 x 1 image would fail in the runtime.
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    generator = define_generator("resnet_2blocks", ngf=8, norm="instance").eval()
    wrapper = PaddedGenerator(generator.model, generator.size_multiple).eval().requires_grad_(False)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (torch.rand(1, 3, 32, 32),),
            str(tmp_path / "net.onnx"),
            dynamo=False,
            input_names=["images"],
            output_names=["translated"],
            dynamic_axes={"images": axes, "translated": axes},
        )
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    for height, width in TINY_SIDES:
        images = torch.rand(1, 3, height, width) * 2 - 1
        (output,) = session.run(None, {"images": images.numpy()})
        assert output.shape == tuple(images.shape)
        if height * width > 1:  # one pixel is a flat image: instance norm amplifies rounding alone
            with torch.no_grad():
                assert abs(torch.from_numpy(output) - wrapper(images)).max() < 1e-4
