"""The ``evaluate`` command on the real test folders (stand-in features: no Inception weights here)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cyclegan_pl import CycleGAN, Pix2Pix
from cyclegan_pl.cli import main
from cyclegan_pl.data.image import list_images, read_image, to_uint8
from cyclegan_pl.data.transforms import to_float
from cyclegan_pl.metrics import StandInFeatures, folder_metrics, paired_metrics
from cyclegan_pl.weights import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
STAND_IN = "cyclegan_pl.metrics.StandInFeatures"


def fit_one_step_and_save(module: pl.LightningModule, path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    batch = {
        "A": torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1,
        "B": torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1,
        "A_paths": ["a.png"],
        "B_paths": ["b.png"],
    }
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=DataLoader([batch], batch_size=None))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def cyclegan_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    module = CycleGAN(generator="resnet_2blocks", ngf=8, ndf=8)
    return fit_one_step_and_save(module, tmp_path_factory.mktemp("cyclegan") / "checkpoints" / "last.ckpt")


def run(capsys, *args: str) -> str:
    main(["evaluate", *args])
    return capsys.readouterr().out


def test_two_folders_print_fid_and_kid_and_write_json(data_root, tmp_path, capsys):
    real, fake = data_root / "horse2zebra" / "testB", data_root / "horse2zebra" / "testA"
    out = run(capsys, "--real", str(real), "--fake", str(fake), "--limit", "5", "--output", str(tmp_path),
              "--feature_extractor", STAND_IN, "--device", "cpu")  # fmt: skip
    saved = json.loads((tmp_path / "metrics.json").read_text())["fake_vs_real"]
    expected = folder_metrics(real, fake, StandInFeatures(), device="cpu", max_images=5)
    assert saved["fid"] == pytest.approx(expected["fid"], rel=1e-9) and saved["fake_count"] == 5
    assert saved["kid_mean"] == pytest.approx(expected["kid_mean"], rel=1e-9)
    assert f"FID {expected['fid']:.2f}  KID {expected['kid_mean']:.4f} ± " in out
    assert "(5 generated vs 5 real images)" in out and str(tmp_path / "metrics.json") in out


def small_horse2zebra(data_root: Path, folder: Path, n_a: int, n_b: int) -> Path:
    """horse2zebra with the first n_a testA and n_b testB files (links to the shared images)."""
    for split in ("trainA", "trainB"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / split).symlink_to(data_root / "horse2zebra" / split)
    for split, count in (("testA", n_a), ("testB", n_b)):
        (folder / split).mkdir()
        for path in list_images(data_root / "horse2zebra" / split)[:count]:
            (folder / split / path.name).symlink_to(path)
    return folder


def test_checkpoint_on_horse2zebra_test_split(data_root, cyclegan_ckpt, tmp_path, capsys):
    # 3 horses, 5 zebras: the test split pairs A i mod 3 with B i, so each horse comes round again.
    h2z = small_horse2zebra(data_root, tmp_path / "h2z", 3, 5)
    output = tmp_path / "eval"
    out = run(capsys, "--config", str(REPO / "configs" / "h2z.yaml"), "--ckpt_path", str(cyclegan_ckpt),
              "--data_root", str(h2z), "--output", str(output), "--feature_extractor", STAND_IN,
              "--device", "cpu")  # fmt: skip
    results = json.loads((output / "metrics.json").read_text())
    assert set(results) == {"a2b", "b2a"}
    module = load_checkpoint(cyclegan_ckpt)
    cases = [("a2b", "testA", "fake_B", "testB", 3, 5), ("b2a", "testB", "fake_A", "testA", 5, 3)]
    for name, source, fake_folder, real_folder, n_fake, n_real in cases:
        fakes = list_images(output / name / fake_folder)
        sources = list_images(h2z / source)
        # Every source file once, as a 256 px PNG named after it.
        assert [p.name for p in fakes] == [p.with_suffix(".png").name for p in sources]
        assert all(Image.open(p).size == (256, 256) for p in fakes)
        # The file is the translation of the (256 px) source image.
        direction = "AtoB" if name == "a2b" else "BtoA"
        expected = to_uint8(module.translate(to_float(read_image(sources[0])).unsqueeze(0), direction)[0])
        assert (read_image(fakes[0]).permute(1, 2, 0).numpy() == expected).all()
        # Scored against the other domain's test folder, each file once.
        reference = folder_metrics(h2z / real_folder, output / name / fake_folder, StandInFeatures(), device="cpu")
        assert (results[name]["fake_count"], results[name]["real_count"]) == (n_fake, n_real)
        assert results[name]["fid"] == pytest.approx(reference["fid"], rel=1e-9)
        assert results[name]["kid_mean"] == pytest.approx(reference["kid_mean"], rel=1e-9)
        assert results[name]["kid_std"] == pytest.approx(reference["kid_std"], rel=1e-6) and reference["kid_std"] > 0
        assert results[name]["real_dir"] == str(h2z / real_folder) and results[name]["size"] == 256
        assert f"{name}: FID {reference['fid']:.2f}" in out


def test_limit_takes_the_first_files_of_each_folder(data_root, cyclegan_ckpt, tmp_path, capsys):
    output = tmp_path / "eval"
    run(capsys, "--config", str(REPO / "configs" / "h2z.yaml"), "--ckpt_path", str(cyclegan_ckpt),
        "--data_root", str(data_root / "horse2zebra"), "--limit", "2", "--size", "64", "--output", str(output),
        "--feature_extractor", STAND_IN, "--device", "cpu")  # fmt: skip
    results = json.loads((output / "metrics.json").read_text())
    assert results["a2b"]["fake_count"] == results["a2b"]["real_count"] == 2
    fakes = list_images(output / "a2b" / "fake_B")
    assert [p.stem for p in fakes] == [p.stem for p in list_images(data_root / "horse2zebra" / "testA")[:2]]
    assert Image.open(fakes[0]).size == (64, 64)


def test_pix2pix_adds_paired_metrics_on_facades(data_root, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = fit_one_step_and_save(Pix2Pix(generator="unet_32", ngf=8, ndf=8), tmp_path / "p.ckpt")
    output = tmp_path / "eval"
    out = run(capsys, "--config", str(REPO / "configs" / "facades.yaml"), "--ckpt_path", str(ckpt),
              "--data_root", str(data_root / "facades"), "--limit", "3", "--size", "64", "--output", str(output),
              "--feature_extractor", STAND_IN, "--device", "cpu")  # fmt: skip
    (name,) = json.loads((output / "metrics.json").read_text())
    values = json.loads((output / "metrics.json").read_text())["a2b"]
    assert name == "a2b" and values["pairs"] == 3 and values["real_count"] == 3
    translation = Pix2Pix.translations[0]  # visuals "output" and "target": the folder names
    targets, outputs = output / "a2b" / translation.target, output / "a2b" / translation.output
    assert len(list_images(targets)) == 3 and len(list_images(outputs)) == 3
    expected = paired_metrics(targets, outputs)
    for key in ("l1", "psnr", "ssim"):
        assert values[key] == pytest.approx(expected[key], rel=1e-9)
    # facades is BtoA: the targets are the left halves (photos) of the test files at 64 px.
    first = sorted((data_root / "facades" / "test").iterdir())[0]
    photo = Image.open(first).convert("RGB")
    photo = photo.crop((0, 0, photo.width // 2, photo.height))
    written = Image.open(targets / f"{first.stem}.png").convert("RGB")
    assert written.size == (64, 64) and photo.size[0] > 64
    resized = torch.nn.functional.interpolate(
        to_float(read_image(first))[None, :, :, : photo.size[0]], size=(64, 64), mode="bicubic", antialias=True
    )
    assert abs(read_image(targets / f"{first.stem}.png").float() / 127.5 - 1 - resized[0]).mean() < 0.05
    assert "L1 " in out and "PSNR " in out and "SSIM " in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--real", "x"], "needs --real and --fake"),
        (["--real", "x", "--fake", "y", "--config", "c.yaml"], "needs --real and --fake"),
        (["--config", "c.yaml"], "needs --ckpt_path"),
        (["--real", "x", "--fake", "y", "--feature_extractor", "nowhere.Nothing"], "cannot import"),
    ],
)
def test_wrong_options_give_one_error_line(args, expected, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["evaluate", *args])
    assert caught.value.code == 1
    error = capsys.readouterr().err.splitlines()[0]
    assert error.startswith("error: ") and expected in error


def test_missing_inception_weights_offline_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("CYCLEGAN_PL_OFFLINE", "1")
    monkeypatch.delenv("CYCLEGAN_PL_INCEPTION_WEIGHTS", raising=False)
    for folder in ("real", "fake"):
        (tmp_path / folder).mkdir()
        for index in range(2):
            Image.new("RGB", (8, 8), (index * 100, 0, 0)).save(tmp_path / folder / f"{index}.png")
    with pytest.raises(SystemExit):
        main(["evaluate", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake")])
    error = capsys.readouterr().err.splitlines()[0]
    assert error.startswith("error: CYCLEGAN_PL_OFFLINE is set") and "6726825d" in error and "--weights_path" in error
