"""save_pretrained / from_pretrained folders: safetensors, config.json, a model card; no pickle."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from cyclegan_pl import CycleGAN, Pix2Pix, load_checkpoint
from cyclegan_pl.errors import CheckpointError, OptionError, UserError
from cyclegan_pl.models import ImageTranslationModule

TINY_CYCLEGAN = dict(generator="resnet_2blocks", ngf=8, ndf=8)
TINY_PIX2PIX = dict(generator="unet_32", ngf=8, ndf=8, init_gain=0.2)
FOLDER_FILES = ["README.md", "config.json", "model.safetensors"]


def _images(size: int = 36, seed: int = 1) -> torch.Tensor:
    return torch.rand(2, 3, size, size + 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _trained_looking_pix2pix() -> Pix2Pix:
    torch.manual_seed(0)
    module = Pix2Pix(**TINY_PIX2PIX, eval_mode=True, lambda_l1=50.0)
    for layer in module.modules():  # running statistics that differ from a fresh network's
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.1, 0.1)
            layer.running_var.uniform_(0.5, 1.5)
            layer.num_batches_tracked.fill_(7)
    return module


def _assert_no_pickle(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == FOLDER_FILES
    for path in folder.iterdir():
        head = path.read_bytes()[:16]
        # torch.save writes a zip ("PK") holding a pickle, or a bare pickle (protocol byte 0x80).
        assert not head.startswith(b"PK") and not head.startswith(b"\x80"), path.name
    json.loads((folder / "config.json").read_text())
    from safetensors.torch import load_file

    assert load_file(str(folder / "model.safetensors"))  # tensors only, by construction


@pytest.mark.parametrize("method", ["cyclegan", "pix2pix"])
def test_round_trip_gives_identical_outputs_and_holds_no_pickle(tmp_path, method):
    if method == "cyclegan":
        torch.manual_seed(0)
        module = CycleGAN(**TINY_CYCLEGAN, lambda_identity=0.0)
    else:
        module = _trained_looking_pix2pix()
    folder = module.save_pretrained(tmp_path / "model")
    _assert_no_pickle(folder)

    loaded = type(module).from_pretrained(folder)
    assert type(loaded) is type(module) and dict(loaded.hparams) == dict(module.hparams)
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = _images()
    for direction in module.directions:
        torch.manual_seed(3)
        expected = module.translate(x, direction)
        torch.manual_seed(3)
        torch.testing.assert_close(loaded.translate(x, direction), expected, rtol=0, atol=0)
    # The base class picks the method from config.json; load_checkpoint takes the folder too.
    assert type(ImageTranslationModule.from_pretrained(folder)) is type(module)
    assert type(load_checkpoint(folder)) is type(module)


def test_one_direction_model_stays_one_direction(tmp_path):
    torch.manual_seed(0)
    module = CycleGAN(**TINY_CYCLEGAN)
    module.trained_directions = ("BtoA",)
    loaded = load_checkpoint(module.save_pretrained(tmp_path / "z2h"))
    assert loaded.trained_directions == ("BtoA",)
    with pytest.raises(OptionError, match="AtoB generator was never trained"):
        loaded.translate(_images(), "AtoB")
    assert "BtoA only" in (tmp_path / "z2h" / "README.md").read_text()


def test_model_card_names_method_dataset_epochs_command_and_numbers(tmp_path):
    module = CycleGAN(**TINY_CYCLEGAN)
    module.card_info = {"dataset": "horse2zebra", "epochs": 200, "command": "python -m cyclegan_pl fit --config x"}
    folder = module.save_pretrained(tmp_path / "h2z", metrics={"fid/a2b": 61.25}, description="Horses to zebras.")
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: cyclegan_pl\n")
    for text in [
        "# h2z (CycleGAN)",
        "Horses to zebras.",
        "| method | CycleGAN: unpaired image-to-image translation",
        "| dataset | horse2zebra |",
        "| epochs | 200 |",
        "python -m cyclegan_pl fit --config x",
        "| fid/a2b | 61.25 |",
        "resnet_2blocks, ngf 8",
    ]:
        assert text in card, text
    # The card's facts travel with the folder and come back out of it.
    assert load_checkpoint(folder).card_info["metrics"] == {"fid/a2b": 61.25}
    with pytest.raises(OptionError, match="unknown model card entries"):
        module.save_pretrained(tmp_path / "x", epoch=3)


def test_checkpoint_card_and_translate_and_export_accept_the_folder(tmp_path, make_trainer):

    from cyclegan_pl.commands import export, translate

    torch.manual_seed(0)
    module = CycleGAN(**TINY_CYCLEGAN)
    module.card_info = {"dataset": "horse2zebra"}
    trainer = make_trainer(limit_val_batches=None)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    from_ckpt = load_checkpoint(tmp_path / "m.ckpt")
    assert from_ckpt.card_info["dataset"] == "horse2zebra"
    folder = from_ckpt.save_pretrained(tmp_path / "folder")

    (tmp_path / "in").mkdir()
    Image.new("RGB", (30, 22), (200, 30, 10)).save(tmp_path / "in" / "a.png")
    translate(tmp_path / "m.ckpt", tmp_path / "in", tmp_path / "out_ckpt", device="cpu")
    translate(folder, tmp_path / "in", tmp_path / "out_folder", direction="BtoA", device="cpu")
    translate(tmp_path / "m.ckpt", tmp_path / "in", tmp_path / "out_ckpt_b", direction="BtoA", device="cpu")
    assert Image.open(tmp_path / "out_folder" / "a.png").size == (30, 22)
    assert (tmp_path / "out_folder" / "a.png").read_bytes() == (tmp_path / "out_ckpt_b" / "a.png").read_bytes()
    export(folder, tmp_path / "g.pt", direction="AtoB")
    assert (tmp_path / "g.pt").is_file()


def test_wrong_method_missing_and_damaged_files_are_one_line_errors(tmp_path):
    folder = _trained_looking_pix2pix().save_pretrained(tmp_path / "p2p")
    with pytest.raises(CheckpointError, match="holds a Pix2Pix, not a CycleGAN"):
        CycleGAN.from_pretrained(folder)
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(folder)
    config = json.loads((folder / "config.json").read_text())
    config["hparams"]["ngf"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(weights)
    with pytest.raises(CheckpointError, match="does not fit the Pix2Pix"):
        load_checkpoint(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no config.json"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="neither a folder"):
        ImageTranslationModule.from_pretrained(tmp_path / "not" / "a" / "repo")


def test_hub_ids_go_through_huggingface_hub(tmp_path, monkeypatch):
    torch.manual_seed(0)
    module = CycleGAN(**TINY_CYCLEGAN)
    calls = {}

    def snapshot_download(repo_id, revision=None, allow_patterns=None, local_files_only=False):
        calls["download"] = (repo_id, revision, sorted(allow_patterns), local_files_only)
        return str(module.save_pretrained(tmp_path / "cache" / repo_id.replace("/", "--")))

    class HfApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False, repo_type=None):
            calls["create"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message, repo_type):
            calls["uploaded"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["card"] = (Path(folder_path) / "README.md").read_text()
            return types.SimpleNamespace(commit_url=f"https://hub.invalid/{repo_id}/commit/1")

    fake_hub = types.SimpleNamespace(snapshot_download=snapshot_download, HfApi=HfApi)
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake_hub)
    loaded = load_checkpoint("hf://someone/h2z")  # what --ckpt_path takes
    assert calls["download"] == ("someone/h2z", None, FOLDER_FILES, True)  # CYCLEGAN_PL_OFFLINE: cache only
    assert torch.equal(loaded.gen_ab.state_dict()["model.1.weight"], module.gen_ab.state_dict()["model.1.weight"])
    assert type(CycleGAN.from_pretrained("someone/h2z", revision="v1")) is CycleGAN  # bare ids, as on the Hub
    assert calls["download"][1] == "v1"

    url = module.push_to_hub("someone/h2z", private=True, dataset="horse2zebra")
    assert url == "https://hub.invalid/someone/h2z/commit/1"
    assert calls["create"] == ("someone/h2z", True, True)
    assert calls["uploaded"] == FOLDER_FILES and "# h2z (CycleGAN)" in calls["card"]

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(UserError, match=r"pip install 'cyclegan_pl\[hub\]'"):
        load_checkpoint("hf://someone/h2z")


# --- a config.json is checked before anything is built ---------------------------------------


def _edited_folder(tmp_path: Path, edit) -> Path:
    torch.manual_seed(0)
    folder = CycleGAN(**TINY_CYCLEGAN).save_pretrained(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    text = edit(config)
    (folder / "config.json").write_text(text if isinstance(text, str) else json.dumps(config))
    return folder


CONFIG_EDITS = {
    "format_text": lambda c: c.update(format="abc"),
    "format_bool": lambda c: c.update(format=True),
    "directions_number": lambda c: c.update(trained_directions=5),
    "directions_unknown": lambda c: c.update(trained_directions=["AtoC"]),
    "card_list": lambda c: c.update(card=["a"]),
    "card_metrics_text": lambda c: c.update(card={"metrics": {"fid": "low"}}),
    "hparams_list": lambda c: c.update(hparams=[1]),
    "ngf_negative": lambda c: c["hparams"].update(ngf=-5),
    "ngf_fraction": lambda c: c["hparams"].update(ngf=8.5),
    "ngf_nan": lambda c: c["hparams"].update(ngf=float("nan")),
    "ngf_text": lambda c: c["hparams"].update(ngf="8"),
    "unknown_option": lambda c: c["hparams"].update(lambda_typo=1.0),
    "class_path_number": lambda c: c.update(class_path=7),
    "deeply_nested": lambda c: "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("edit", list(CONFIG_EDITS))
def test_a_config_of_wrong_types_is_one_line_naming_the_file(tmp_path, edit):
    folder = _edited_folder(tmp_path, CONFIG_EDITS[edit])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(folder)
    message = str(error.value)
    assert "\n" not in message and str(folder / "config.json") in message, message


@pytest.mark.parametrize("hparams", [{"ngf": 1024}, {"generator": "resnet_100000blocks"}])
def test_a_huge_architecture_in_a_config_is_refused_without_building_it(tmp_path, request, hparams):
    folder = _edited_folder(tmp_path, lambda config: config["hparams"].update(hparams))
    request.getfixturevalue("refuse_large_builds")  # after the folder is written for real
    with pytest.raises(CheckpointError, match="model.safetensors") as error:
        load_checkpoint(folder)
    assert "\n" not in str(error.value)


def test_a_config_file_too_large_to_be_one_is_not_read(tmp_path):
    folder = _edited_folder(tmp_path, lambda config: None)
    with open(folder / "config.json", "a") as handle:
        handle.truncate(64 << 20)  # sparse: nothing is written, the size is what counts
    with pytest.raises(CheckpointError, match="config.json is 64.0 MiB"):
        load_checkpoint(folder)


# --- the model card names no local folder ---------------------------------------------------


def test_the_model_card_uses_a_relative_folder_or_the_hub_id_never_the_local_path(tmp_path, monkeypatch):
    torch.manual_seed(0)
    module = CycleGAN(**TINY_CYCLEGAN)
    card = (module.save_pretrained(tmp_path / "deep" / "h2z") / "README.md").read_text()
    assert str(tmp_path) not in card
    assert "--ckpt_path ./h2z " in card and 'load_checkpoint("./h2z")' in card

    uploaded = {}

    class HfApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False, repo_type=None):
            pass

        def upload_folder(self, repo_id, folder_path, commit_message, repo_type):
            uploaded["card"] = (Path(folder_path) / "README.md").read_text()
            uploaded["folder"] = str(folder_path)
            return types.SimpleNamespace(commit_url="https://hub.invalid/commit/1")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(HfApi=HfApi))
    module.push_to_hub("someone/h2z")
    assert uploaded["folder"] not in uploaded["card"] and "cyclegan_pl_push_" not in uploaded["card"]
    assert "--ckpt_path hf://someone/h2z " in uploaded["card"]
    assert 'load_checkpoint("hf://someone/h2z")' in uploaded["card"]
