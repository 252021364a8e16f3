"""Preprocess modes, flips, value range, and agreement with a PIL pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from cyclegan_pl.data import PREPROCESS, ImageTransform, PairedDataset
from cyclegan_pl.data.transforms import Geometry, apply_geometry, to_float


def _image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)


def test_registry_names_and_unknown_mode():
    assert PREPROCESS.names() == ["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
    with pytest.raises(ValueError, match="resize_and_crop"):
        ImageTransform("bogus")


@pytest.mark.parametrize(
    "preprocess, size, train, expected",
    [
        ("resize_and_crop", (50, 80), True, (32, 32)),
        ("resize_and_crop", (50, 80), False, (32, 32)),
        ("crop", (50, 80), True, (32, 32)),
        ("crop", (50, 80), False, (32, 32)),
        ("crop", (10, 20), True, (32, 32)),  # smaller than the crop: scaled up first
        ("scale_width", (50, 80), True, (32, 40)),  # height 25 raised to crop_size
        ("scale_width", (100, 80), True, (50, 40)),
        ("scale_width", (50, 80), False, (32, 32)),  # width -> crop_size, height at least crop_size
        ("scale_width", (100, 80), False, (40, 32)),
        ("scale_width_and_crop", (50, 80), True, (32, 32)),
        ("scale_width_and_crop", (100, 80), False, (32, 32)),
        ("none", (50, 81), True, (48, 80)),  # round() as the reference: 12.5 -> 12
        ("none", (54, 81), False, (56, 80)),
        ("none", (1, 1), False, (4, 4)),
    ],
)
def test_output_size(preprocess, size, train, expected):
    transform = ImageTransform(preprocess, load_size=40, crop_size=32, train=train)
    out = transform(_image(*size), torch.Generator().manual_seed(0))
    assert tuple(out.shape) == (3, *expected)
    assert out.dtype == torch.float32


def test_range_is_minus_one_to_one():
    black_white = torch.zeros(3, 40, 40, dtype=torch.uint8)
    black_white[:, :, 20:] = 255
    out = ImageTransform("resize_and_crop", 48, 40, train=True)(black_white, torch.Generator().manual_seed(1))
    assert out.min() == -1.0 and out.max() == 1.0  # resize overshoot is clipped, not kept
    levels = to_float(torch.tensor([0, 128, 255], dtype=torch.uint8)).tolist()
    assert levels == pytest.approx([-1, 0.00392, 1], abs=1e-4)


def test_evaluation_never_flips_or_jitters():
    transform = ImageTransform("resize_and_crop", 40, 32, flip=True, train=False)
    image = _image(50, 60)
    outs = [transform(image, torch.Generator().manual_seed(s)) for s in range(5)]
    assert all(torch.equal(outs[0], o) for o in outs)


def test_flip_and_crop_follow_the_generator():
    transform = ImageTransform("resize_and_crop", 40, 32, flip=True, train=True)
    geometries = {transform.sample(50, 50, torch.Generator().manual_seed(s)) for s in range(40)}
    assert {g.flip for g in geometries} == {True, False}
    assert len({g.crop for g in geometries}) > 5
    same = [transform.sample(50, 50, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert same[0] == same[1]
    no_flip = ImageTransform("resize_and_crop", 40, 32, flip=False, train=True)
    assert not any(no_flip.sample(50, 50, torch.Generator().manual_seed(s)).flip for s in range(20))


def test_paired_halves_get_the_same_crop_and_flip(tmp_path, helpers):
    """Each half is a left-to-right ramp; an unequal flip or crop breaks their equality."""
    helpers.make_paired(tmp_path, count=1, size=40, splits=("train",))
    transform = ImageTransform("resize_and_crop", 48, 32, flip=True, train=True)
    dataset = PairedDataset(tmp_path / "train", transform)
    flips = set()
    for epoch in range(12):
        item = dataset[(epoch, 0)]
        a, b = item["A"], item["B"]
        assert torch.allclose(a[0], b[1], atol=1e-6)  # A's red ramp == B's green ramp
        assert (a[1:] == -1).all() and (b[0] == -1).all() and (b[2] == -1).all()
        flips.add(bool(a[0, 0, 0] > a[0, 0, -1]))  # ramp descending -> flipped
    assert flips == {True, False}


def _pil_pipeline(size: int) -> T.Compose:
    return T.Compose(
        [
            T.Resize([size, size], interpolation=T.InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


@pytest.mark.parametrize("source, target", [((60, 80), 96), ((120, 100), 64), ((256, 256), 286)])
def test_tensor_pipeline_matches_pil(helpers, source, target):
    """uint8 bicubic (antialiased) resizes agree with PIL's bicubic to about 1e-4 on average."""
    rgb = helpers.gradient_rgb(*source)
    expected = _pil_pipeline(target)(Image.fromarray(rgb))
    got = to_float(apply_geometry(torch.from_numpy(rgb).permute(2, 0, 1), Geometry(resize=(target, target))))
    assert got.shape == expected.shape
    difference = (got - expected).abs()
    assert difference.mean() < 0.02
    assert difference.mean() < 1e-3  # in practice: rounding differences on a few pixels


def test_crop_then_flip_matches_pil(helpers):
    rgb = helpers.gradient_rgb(50, 70)
    geometry = Geometry(resize=(60, 60), crop=(3, 7, 48, 48), flip=True)
    got = to_float(apply_geometry(torch.from_numpy(rgb).permute(2, 0, 1), geometry))
    pil = Image.fromarray(rgb).resize((60, 60), Image.BICUBIC).crop((7, 3, 55, 51)).transpose(Image.FLIP_LEFT_RIGHT)
    expected = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert (got - expected).abs().mean() < 1e-3


def test_load_size_smaller_than_crop_is_refused():
    with pytest.raises(ValueError, match="load_size"):
        ImageTransform("resize_and_crop", load_size=30, crop_size=32)
