"""Exported generators run without cyclegan_pl and match ``translate`` at any image size."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from cyclegan_pl import CycleGAN, Pix2Pix
from cyclegan_pl.commands import export
from cyclegan_pl.errors import CheckpointError
from cyclegan_pl.networks import define_generator
from cyclegan_pl.networks.padding import PaddedGenerator, pad_to_multiple
from cyclegan_pl.weights import load_checkpoint

# Larger initial weights than the reference's 0.02 keep the tiny U-Net's outputs (batch norm in
# eval mode does not rescale them) far enough from zero for the comparisons to mean something.
TINY_CYCLEGAN = dict(generator="resnet_2blocks", ngf=8, ndf=8)
TINY_PIX2PIX = dict(generator="unet_32", ngf=8, ndf=8, init_gain=0.2)

# Odd sides that need padding on both axes; for unet_32 the second one is smaller than the
# padding, which switches from reflection to edge replication.
SIZES = [(1, 3, 30, 45), (2, 3, 10, 13)]


def _random_batch(size: int = 32) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "A": torch.rand(1, 3, size, size, generator=generator) * 2 - 1,
        "B": torch.rand(1, 3, size, size, generator=generator) * 2 - 1,
        "A_paths": ["a.png"],
        "B_paths": ["b.png"],
    }


def _fit_one_step_and_save(module: pl.LightningModule, path: Path) -> Path:
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=DataLoader([_random_batch()], batch_size=None))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def cyclegan_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return _fit_one_step_and_save(CycleGAN(**TINY_CYCLEGAN), tmp_path_factory.mktemp("cyclegan") / "c.ckpt")


@pytest.fixture(scope="module")
def pix2pix_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return _fit_one_step_and_save(Pix2Pix(**TINY_PIX2PIX), tmp_path_factory.mktemp("pix2pix") / "p.ckpt")


def _expected(ckpt: Path, images: torch.Tensor, direction: str) -> torch.Tensor:
    module = load_checkpoint(ckpt)
    module.eval_mode = True
    expected = module.translate(images, direction)
    assert expected.std() > 0.01, "outputs too close to zero for a meaningful comparison"
    return expected


def _inputs(seed: int = 1) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(size, generator=generator) * 2 - 1 for size in SIZES]


# cyclegan_pl and Lightning are made unimportable, so loading proves the files stand alone.
_RUN_TORCHSCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["cyclegan_pl"] = None
    sys.modules["lightning"] = None
    import torch
    jobs = torch.load(sys.argv[1])
    with torch.no_grad():
        outputs = [[torch.jit.load(model)(x) for x in inputs] for model, inputs in jobs]
    torch.save(outputs, sys.argv[2])
    """
)


def test_torchscript_runs_standalone_and_matches_translate(cyclegan_ckpt, pix2pix_ckpt, tmp_path):
    cases = [(cyclegan_ckpt, "AtoB"), (cyclegan_ckpt, "BtoA"), (pix2pix_ckpt, "AtoB")]
    jobs = []
    for index, (ckpt, direction) in enumerate(cases):
        output = export(ckpt, tmp_path / f"net{index}.pt", format="torchscript", direction=direction)
        assert output == tmp_path / f"net{index}.pt"
        jobs.append((output.name, _inputs(seed=index)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net0.pt", "net1.pt", "net2.pt"]  # no temp files
    torch.save(jobs, tmp_path / "jobs.pt")
    # One fresh interpreter for all three keeps the test fast.
    run = subprocess.run(
        [sys.executable, "-I", "-c", _RUN_TORCHSCRIPT, "jobs.pt", "outputs.pt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    outputs = torch.load(tmp_path / "outputs.pt")
    for (ckpt, direction), (_, inputs), results in zip(cases, jobs, outputs, strict=True):
        for images, got in zip(inputs, results, strict=True):
            assert got.shape == images.shape
            assert (got - _expected(ckpt, images, direction)).abs().max() < 1e-5, direction


@pytest.mark.parametrize("onnx_exporter", ["dynamo", "legacy"])
@pytest.mark.parametrize("ckpt_name, direction", [("cyclegan_ckpt", "BtoA"), ("pix2pix_ckpt", "AtoB")])
def test_onnx_matches_translate_at_any_size(ckpt_name, direction, onnx_exporter, request, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if onnx_exporter == "dynamo":
        pytest.importorskip("onnxscript")
    ckpt = request.getfixturevalue(ckpt_name)
    output = export(
        ckpt,
        tmp_path / "net.onnx",
        format="onnx",
        direction=direction,
        height=32,
        width=32,
        onnx_exporter=onnx_exporter,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]  # weights inside, no temp file
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    assert (inputs.name, outputs.name) == ("images", "translated")
    assert inputs.shape == outputs.shape == ["batch", 3, "height", "width"]
    for images in _inputs():
        (got,) = session.run(None, {"images": images.numpy()})
        assert got.shape == tuple(images.shape)
        assert abs(got - _expected(ckpt, images, direction).numpy()).max() < 1e-4


def test_padded_generator_pads_exactly_like_translate():
    torch.manual_seed(0)
    gen = define_generator("unet_32", ngf=8, norm="instance").eval()
    wrapper = PaddedGenerator(gen.model, gen.size_multiple)
    for shape in [(1, 3, 30, 45), (1, 3, 5, 40), (1, 3, 64, 32)]:
        images = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            expected = gen(pad_to_multiple(images, gen.size_multiple))[..., : shape[2], : shape[3]]
            assert torch.equal(wrapper(images), expected)


def test_pix2pix_btoa_is_a_clear_error(pix2pix_ckpt, tmp_path):
    with pytest.raises(ValueError, match=r"direction=BtoA.*AtoB"):
        export(pix2pix_ckpt, tmp_path / "net.pt", direction="BtoA")
    assert not any(tmp_path.iterdir())


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.ckpt does not exist"):
        export(tmp_path / "missing.ckpt", tmp_path / "net.pt")


def test_dynamo_exporter_rejects_a_too_low_opset(cyclegan_ckpt, tmp_path):
    pytest.importorskip("onnxscript")
    with pytest.raises(ValueError, match="--opset 17"):
        export(cyclegan_ckpt, tmp_path / "net.onnx", format="onnx", opset=17, onnx_exporter="dynamo")


TINY_SIZES = [(1, 3, 1, 1), (2, 3, 2, 3), (1, 3, 4, 4), (1, 3, 3, 17)]


@pytest.mark.parametrize("format, onnx_exporter", [("torchscript", "auto"), ("onnx", "legacy"), ("onnx", "dynamo")])
def test_the_exported_file_takes_images_of_a_few_pixels(cyclegan_ckpt, tmp_path, format, onnx_exporter):
    # The export promises any size: a side of 1-4 px is padded inside the exported program.
    if format == "onnx":
        ort = pytest.importorskip("onnxruntime")
        if onnx_exporter == "dynamo":
            pytest.importorskip("onnxscript")
    output = export(
        cyclegan_ckpt, tmp_path / f"net.{'pt' if format == 'torchscript' else 'onnx'}", format=format,
        onnx_exporter=onnx_exporter, height=32, width=32,
    )  # fmt: skip
    if format == "torchscript":
        program = torch.jit.load(str(output))
        run = lambda images: program(images).numpy()  # noqa: E731
    else:
        session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        run = lambda images: session.run(None, {"images": images.numpy()})[0]  # noqa: E731
    module = load_checkpoint(cyclegan_ckpt)
    module.eval_mode = True
    for index, size in enumerate(TINY_SIZES):
        images = torch.rand(size, generator=torch.Generator().manual_seed(index)) * 2 - 1
        with torch.no_grad():
            got = run(images)
        assert got.shape == size and torch.isfinite(torch.from_numpy(got)).all()
        if size[2] * size[3] > 1:  # one pixel is flat: instance norm amplifies rounding alone
            assert abs(got - module.translate(images).numpy()).max() < 1e-4, size
