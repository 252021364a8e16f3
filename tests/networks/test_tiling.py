"""Tiled translation: blending, tile grids, and tiles that match the whole-image translation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan_pl import CUT, DCLGAN, UNSB, CycleGAN, Pix2Pix
from cyclegan_pl.errors import OptionError
from cyclegan_pl.networks import define_generator
from cyclegan_pl.networks.padding import PaddedGenerator
from cyclegan_pl.networks.tiling import TileGrid, Tiling, area_scaled, blend_weights, tiles_of, translate_tiled

LSB = 2 / 255  # one 8-bit level in [-1, 1]


@pytest.fixture(scope="module")
def photo512(data_root) -> torch.Tensor:
    """A real horse2zebra image upscaled to 512 px, in [-1, 1]."""
    with Image.open(data_root / "horse2zebra" / "testA" / "n02381460_1000.jpg") as image:
        pixels = np.array(image.convert("RGB").resize((512, 512), Image.BICUBIC))
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1


def seam_ratio(image: torch.Tensor, borders: list) -> float:
    """Mean horizontal gradient across the given columns over the mean gradient elsewhere."""
    steps = (image[..., 1:] - image[..., :-1]).abs().mean(dim=(0, 1, 2))
    across = torch.tensor([steps[column - 1] for column in borders]).mean()
    elsewhere = torch.cat([steps[: borders[0] - 2], steps[borders[-1] + 2 :]]).mean()
    return float(across / elsewhere)


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "multiple"), [(512, 128, 32, 4), (100, 32, 8, 4), (75, 96, 16, 1)]
)
def test_tiles_cover_the_side_and_their_cores_partition_it(length, tile, overlap, multiple):
    grid = TileGrid(length, tile, overlap, multiple)
    spans, cores = grid.spans(), grid.cores()
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(start % multiple == 0 or end == length for start, end in spans)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end - start >= overlap  # neighbours overlap at least that much
    assert [a for a, _ in cores[1:]] == [b for _, b in cores[:-1]] and cores[0][0] == 0 and cores[-1][1] == length
    for (start, end), (core_start, core_end) in zip(spans, cores, strict=True):
        assert start <= core_start <= core_end <= end


@pytest.mark.parametrize("ramp", ["linear", "cosine"])
def test_blending_weights_sum_to_one_and_leave_single_tiles_alone(ramp):
    total = blend_weights(100, 75, 32, 8, 4, ramp=ramp)
    assert total.min() > 0
    rows, columns = TileGrid(100, 32, 8, 4), TileGrid(75, 32, 8, 4)
    # Across an overlap a tile fades out as its neighbour fades in.
    (_, end), (start, _) = rows.spans()[:2]
    fading_out, fading_in = rows.ramp(0, ramp)[start:end], rows.ramp(1, ramp)[: end - start]
    assert fading_out[0] > 0.9 and fading_out[-1] < 0.1 and (fading_out.diff() < 0).all()
    assert fading_in[0] < 0.1 and fading_in[-1] > 0.9 and (fading_in.diff() > 0).all()
    # Where one tile alone covers a position, its weight is 1: the output is that tile's value.
    alone = torch.zeros(100, 75)
    for (top, bottom, left, right), _, (i, j) in tiles_of(100, 75, 32, 8, 4):
        weight = rows.ramp(i, ramp)[:, None] * columns.ramp(j, ramp)[None, :]
        alone[top:bottom, left:right] += (weight > 0).float()
    assert torch.allclose(total[alone == 1], torch.ones(int((alone == 1).sum()), dtype=torch.float64))
    # Blending a constant gives the constant: the normalised weights sum to one everywhere.
    out = translate_tiled(
        lambda x: torch.ones_like(x), torch.zeros(1, 3, 100, 76), 32, 8, 4, ramp=ramp, statistics="per_tile"
    )
    assert torch.allclose(out, torch.ones_like(out))


def test_tiles_with_the_whole_images_statistics_match_the_whole_image(photo512):
    torch.manual_seed(0)
    generator = define_generator("resnet_9blocks", ngf=8).eval()
    with torch.no_grad():
        whole = generator(photo512)
        shared = translate_tiled(generator, photo512, 128, 32, 4, network=generator, context=64)
        naive = translate_tiled(generator, photo512, 128, 32, 4, statistics="per_tile", context=64)
    error = (shared - whole).abs().mean().item()
    assert error <= LSB / 2  # at most 1/255 of the 0..255 range
    assert (naive - whole).abs().mean().item() > 10 * error  # what the shared statistics are for
    borders = [start for start, _ in TileGrid(512, 128, 32, 4).spans()[1:]]
    middle_of_overlaps = [start + 16 for start in borders]
    assert abs(seam_ratio(shared, middle_of_overlaps) - seam_ratio(whole, middle_of_overlaps)) < 0.1


@pytest.mark.parametrize("method", ["cyclegan", "cut", "dclgan", "pix2pix"])
def test_every_method_translates_in_tiles_at_any_size(method):
    torch.manual_seed(0)
    module = {
        "cyclegan": lambda: CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks"),
        "cut": lambda: CUT(ngf=8, ndf=8, nce_layers=(0, 4)),
        "dclgan": lambda: DCLGAN(ngf=8, ndf=8, nce_layers=(0, 4)),
        "pix2pix": lambda: Pix2Pix(ngf=8, ndf=8, generator="unet_32"),
    }[method]()
    module.eval_mode = True
    for size in [(75, 100), (30, 20)]:  # odd sides; smaller than a tile
        images = torch.rand(2, 3, *size) * 2 - 1
        tiled = module.translate(images, tiling=Tiling(tile=32 if method != "pix2pix" else 64, overlap=8))
        assert tiled.shape == images.shape
        if method != "pix2pix":  # a U-Net sees its whole input: its tiles differ from the whole by design
            whole = module.translate(images)
            assert (tiled - whole).abs().mean() < 0.1
    with pytest.raises(OptionError, match="tile=48: the generator takes sides that are multiples of"):
        Pix2Pix(ngf=8, ndf=8, generator="unet_32").translate(
            torch.zeros(1, 3, 100, 100), tiling=Tiling(tile=48, overlap=8)
        )
    with pytest.raises(OptionError, match="tile=32, overlap=16: a tile must be more than twice the overlap"):
        module.translate(torch.zeros(1, 3, 100, 100), tiling=Tiling(tile=32, overlap=16))


def test_unsb_refuses_tiles_and_translates_whole_below_the_threshold():
    module = UNSB(ngf=8, ndf=8, nce_layers=(0, 4), inference_steps=1)
    with pytest.raises(OptionError, match="tile=32: UNSB's translation is a multi-step sampler"):
        module.translate(torch.zeros(1, 3, 100, 100), tiling=Tiling(tile=32, overlap=8))
    small = module.translate(torch.zeros(1, 3, 40, 40), tiling=Tiling(tile=32, overlap=8, above=100 * 100))
    assert small.shape == (1, 3, 40, 40)


def test_small_images_are_translated_whole_below_the_threshold():
    module = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks")
    tiling = Tiling(tile=32, overlap=8, above=64 * 64)
    assert not tiling.applies(64, 64) and tiling.applies(65, 64)
    small = torch.rand(1, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(module.translate(small, tiling=tiling), module.translate(small), rtol=0, atol=0)


def test_an_exported_program_is_driven_by_the_same_tiler():
    torch.manual_seed(0)
    module = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks")
    module.eval_mode = True
    program = torch.jit.script(PaddedGenerator(module.gen_ab.model, 4).eval())
    images = torch.rand(1, 3, 96, 80) * 2 - 1
    with torch.no_grad():
        from_program = translate_tiled(program, images, 32, 8, 4, statistics="per_tile")
    from_module = module.translate(images, tiling=Tiling(tile=32, overlap=8, statistics="per_tile"))
    torch.testing.assert_close(from_program, from_module, rtol=0, atol=1e-5)


def test_translate_tiles_images_over_the_threshold(tmp_path, monkeypatch):
    from cyclegan_pl.commands import translate
    from cyclegan_pl.models import base

    torch.manual_seed(0)
    module = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks")
    module.save_pretrained(tmp_path / "model")
    (tmp_path / "in").mkdir()
    pixels = (np.random.default_rng(0).random((90, 70, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in" / "big.png")
    Image.fromarray(pixels[:40, :40]).save(tmp_path / "in" / "small.png")
    calls = []
    real = base.translate_tiled
    monkeypatch.setattr(base, "translate_tiled", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    tiling = Tiling(tile=32, overlap=8, above=50 * 50)
    translate(tmp_path / "model", tmp_path / "in", tmp_path / "out", tiling=tiling)
    assert len(calls) == 1  # the big image only
    with Image.open(tmp_path / "out" / "big.png") as written:
        assert written.size == (70, 90)
        expected = module.translate(torch.from_numpy(pixels).permute(2, 0, 1)[None], tiling=tiling)[0]
        wrote = torch.from_numpy(np.array(written)).permute(2, 0, 1).float()
        assert (wrote - ((expected + 1) / 2 * 255).clamp(0, 255)).abs().max() <= 1


@pytest.mark.parametrize("statistics", ["whole_image", "thumbnail", "per_tile"])
def test_stored_8bit_images_are_converted_tile_by_tile(statistics):
    """An 8-bit image is tiled as stored: no float copy of the whole image, the same output."""
    torch.manual_seed(0)
    module = CycleGAN(ngf=8, ndf=8, generator="resnet_2blocks")
    module.eval_mode = True
    stored = torch.randint(0, 256, (1, 3, 300, 42), dtype=torch.uint8)
    tiling = Tiling(tile=32, overlap=8, statistics=statistics)
    converted = []
    real = module.prepare_images
    module.prepare_images = lambda images, domain="A": converted.append(images.shape[-2:]) or real(images, domain)
    from_stored = module.translate(stored, tiling=tiling)
    # Tiles, or the thumbnail's bands of 256 rows: never the whole (padded) image.
    assert converted and all(shape[0] <= 256 and shape[0] * shape[1] < 300 * 44 for shape in converted)
    from_float = module.translate(stored.float() / 127.5 - 1, tiling=tiling)
    # The thumbnail's average is summed in another order: float rounding, far below an 8-bit level.
    torch.testing.assert_close(from_stored, from_float, rtol=0, atol=1e-4)


def test_area_scaled_in_bands_is_the_whole_image_area_average():
    image = torch.randint(0, 256, (1, 3, 301, 203), dtype=torch.uint8)

    def prepare(region):
        return region.float() / 127.5 - 1

    whole = F.interpolate(prepare(image), size=[64, 44], mode="area")
    torch.testing.assert_close(area_scaled(image, [64, 44], prepare, band=50), whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(area_scaled(image, [301, 203], prepare), prepare(image))
