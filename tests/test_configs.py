"""Every shipped config parses and type-checks; the 1024 px config is the recipe plus memory options."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.name)
def test_config_parses(config, cli_in_process, tmp_path):
    printed = cli_in_process("fit", "--config", str(config), "--print_config", cwd=tmp_path).stdout
    assert "class_path" in printed


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = ((str(index), value) for index, value in enumerate(tree))
    else:
        return {prefix: tree}
    flat = {}
    for key, value in items:
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def test_the_1024_config_changes_only_size_memory_options_and_names():
    recipe = _flatten(yaml.safe_load((CONFIGS / "h2z.yaml").read_text()))
    high = _flatten(yaml.safe_load((CONFIGS / "h2z_1024.yaml").read_text()))
    changed = {key for key in recipe.keys() | high.keys() if recipe.get(key) != high.get(key)}
    assert changed == {
        "trainer.default_root_dir",
        "trainer.logger.init_args.name",
        "trainer.callbacks.2.init_args.num_images",
        "model.init_args.gradient_checkpointing",
        "model.init_args.discriminator_checkpointing",
        "data.init_args.load_size",
        "data.init_args.crop_size",
    }
    assert high["data.init_args.load_size"] / high["data.init_args.crop_size"] == pytest.approx(286 / 256, abs=1e-3)
