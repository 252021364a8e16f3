"""ResultsPage: every test image on an offline page whose links resolve (real splits, tiny sizes)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from cyclegan_pl.callbacks import ResultsPage
from cyclegan_pl.data import PairedDataModule, UnpairedDataModule
from cyclegan_pl.data.image import list_images

TINY = dict(load_size=32, crop_size=32, num_workers=0, val_batch_size=2)


def links(page: Path) -> list:
    return [unquote(link) for link in re.findall(r'(?:href|src)="([^"]+)"', page.read_text())]


def pages_of(folder: Path) -> list:
    return [folder / "index.html", *sorted(folder.glob("page_*.html"))]


def test_horse2zebra_page_lists_every_test_image_and_links_resolve(data_root, tmp_path, cyclegan, trainer_for):
    data = UnpairedDataModule(str(data_root / "horse2zebra"), max_dataset_size=3, **TINY)
    page = ResultsPage(output_dir=str(tmp_path / "results"), page_size=2)
    trainer_for(tmp_path, [page]).test(cyclegan(), datamodule=data)
    folder = tmp_path / "results"
    pages = pages_of(folder)
    assert [p.name for p in pages] == ["index.html", "page_0002.html"]  # 3 rows, 2 per page
    text = "".join(p.read_text() for p in pages)
    for split in ("testA", "testB"):
        for path in list_images(data_root / "horse2zebra" / split)[:3]:
            assert path.name in text
    for p in pages:
        for link in links(p):
            assert (folder / link).is_file(), link
    images = re.findall(r"<img [^>]*>", text)
    assert len(images) == 3 and all('loading="lazy"' in tag for tag in images)
    # Six visuals side by side at the test size; each translation alone at its source's size.
    side = list_images(folder / "side_by_side")
    assert len(side) == 3 and Image.open(side[0]).size == (6 * 32, 32)
    for visual, split in (("fake_B", "testA"), ("fake_A", "testB")):
        singles = list_images(folder / visual)
        sources = list_images(data_root / "horse2zebra" / split)[:3]
        assert [p.stem for p in singles] == [p.stem for p in sources]
        assert Image.open(singles[0]).size == Image.open(sources[0]).size
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results")]  # staging renamed


def test_facades_pairs_are_written_at_half_the_file_width(data_root, tmp_path, pix2pix, trainer_for):
    data = PairedDataModule(str(data_root / "facades"), direction="BtoA", max_dataset_size=2, **TINY)
    trainer = trainer_for(tmp_path, [ResultsPage()])
    trainer.test(pix2pix(), datamodule=data)
    folder = tmp_path / "results" / "test"  # the default: under the run folder
    text = (folder / "index.html").read_text()
    files = sorted((data_root / "facades" / "test").iterdir())[:2]
    assert all(f.name in text for f in files)
    assert all((folder / link).is_file() for link in links(folder / "index.html"))
    outputs = list_images(folder / "output")
    width, height = Image.open(files[0]).size
    assert len(outputs) == 2 and Image.open(outputs[0]).size == (width // 2, height)


def test_test_files_with_one_stem_get_their_own_translations(tmp_path, cyclegan, trainer_for):
    # dup.jpg / dup.png and a/n.jpg / b/n.jpg: one stem each, four different images of four sizes.
    root = tmp_path / "data"
    sources = {"a/n.jpg": (20, 12), "b/n.jpg": (14, 22), "dup.jpg": (18, 26), "dup.png": (30, 16)}
    for index, (name, size) in enumerate(sources.items()):
        for split in ("trainA", "testA"):
            (root / split / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (60 * index, 200 - 40 * index, 90)).save(root / split / name)
        for split in ("trainB", "testB"):
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (0, 30 * index, 0)).save(root / split / f"b{index}.png")
    page = ResultsPage(output_dir=str(tmp_path / "results"))
    trainer_for(tmp_path, [page]).test(cyclegan(), datamodule=UnpairedDataModule(str(root), **TINY))
    folder = tmp_path / "results"
    singles = [row["singles"]["fake_B"] for row in page.rows]
    assert len(set(singles)) == 4, singles  # each source its own file
    # Rows follow the sorted test files; each row's translation has its own source's size.
    assert [Image.open(folder / single).size for single in singles] == list(sources.values())
    assert sorted(p.relative_to(folder / "fake_B").as_posix() for p in (folder / "fake_B").rglob("*.png")) == [
        "a/n.png",
        "b/n.png",
        "dup.jpg.png",
        "dup.png.png",
    ]
    text = (folder / "index.html").read_text()
    assert "a/n.jpg" in text and "b/n.jpg" in text
    assert all((folder / link).is_file() for link in links(folder / "index.html"))
    assert not list(folder.rglob(".*"))  # no provisional names left


def test_a_failing_test_keeps_the_previous_pages(data_root, tmp_path, cyclegan, trainer_for, probe):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "index.html").write_text("previous")
    data = UnpairedDataModule(str(data_root / "horse2zebra"), max_dataset_size=2, **TINY)

    def fail(trainer, module):
        raise RuntimeError("stop")

    trainer = trainer_for(tmp_path, [ResultsPage(output_dir=str(folder)), probe("on_test_batch_end", fail)])
    with pytest.raises(RuntimeError, match="stop"):
        trainer.test(cyclegan(), datamodule=data)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".results")] == []
    assert (folder / "index.html").read_text() == "previous"


def test_wandb_table_has_a_row_per_test_item(data_root, tmp_path, cyclegan, trainer_for):
    data = UnpairedDataModule(str(data_root / "horse2zebra"), max_dataset_size=2, **TINY)
    page = ResultsPage(output_dir=str(tmp_path / "results"))
    trainer_for(tmp_path, [page]).test(cyclegan(), datamodule=data)

    class Recorder:
        def log_table(self, key, columns, data):
            self.logged = (key, columns, data)

    recorder = Recorder()
    page._log_table(recorder, tmp_path / "results")
    key, columns, rows = recorder.logged
    assert key == "test/results" and columns == ["files", "visuals", "fake_A", "fake_B"] and len(rows) == 2
    assert type(rows[0][1]).__name__ == "Image"
