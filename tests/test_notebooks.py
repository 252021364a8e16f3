"""The notebooks in notebooks/ run top to bottom, and are committed without outputs.

Each notebook is executed with nbclient in a kernel started by this interpreter
(``sys.executable -m ipykernel_launcher``): the test writes its own kernel spec under a
temporary JUPYTER_PATH, so it never depends on (or picks up) a kernel installed elsewhere on
the machine. The kernel's working directory is notebooks/, as when a user opens them there.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Dict, List

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
EXPECTED_NOTEBOOKS = {
    "quickstart.ipynb",
    "pix2pix_facades.ipynb",
    "inspect_networks.ipynb",
    "cut_horse2zebra.ipynb",
    "multiband.ipynb",
    "unsb_horse2zebra.ipynb",
}
KERNEL_NAME = "cyclegan-pl-tests"
# Per cell; generous because 2-core CI machines vary. No test measures wall-clock time.
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def jupyter_kernel(tmp_path_factory):
    """A kernel spec running this interpreter, visible only to this module's notebook runs."""
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_dir / "data" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cyclegan_pl tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter_dir / "data"))
        # Connection files and IPython's profile go to the temporary folder, not the home directory.
        patch.setenv("JUPYTER_RUNTIME_DIR", str(jupyter_dir / "runtime"))
        patch.setenv("IPYTHONDIR", str(jupyter_dir / "ipython"))
        patch.setenv("WANDB_MODE", "offline")
        # The kernel's sys.path starts with notebooks/, so without this it would import whichever
        # checkout the environment's editable install points to, not necessarily this one.
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        yield KERNEL_NAME


def run_notebook(name: str, kernel_name: str) -> nbformat.NotebookNode:
    """Execute notebooks/<name> in memory (the file is not modified); raises on a failing cell."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def outputs_of(notebook: nbformat.NotebookNode) -> List[Dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def printed_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for output in outputs_of(notebook):
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def png_count(notebook: nbformat.NotebookNode) -> int:
    return sum(
        1
        for output in outputs_of(notebook)
        if output.output_type in ("execute_result", "display_data") and "image/png" in output.data
    )


def test_quickstart_trains_translates_and_reloads(jupyter_kernel, data_root, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_PL_DATA", str(data_root))
    notebook = run_notebook("quickstart.ipynb", jupyter_kernel)
    # The sample grid written during training and the input | translation pair.
    assert png_count(notebook) >= 2
    text = printed_text(notebook)
    assert "all equal; same translation" in text
    assert "(1, 3, 256, 256) -> (1, 3, 256, 256)" in text


def test_pix2pix_facades_trains_shows_visuals_and_reloads(jupyter_kernel, data_root, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_PL_DATA", str(data_root))
    notebook = run_notebook("pix2pix_facades.ipynb", jupyter_kernel)
    assert png_count(notebook) >= 2
    text = printed_text(notebook)
    assert "direction: BtoA" in text
    assert "all equal" in text


def test_cut_notebook_trains_translates_and_reloads(jupyter_kernel, data_root, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_PL_DATA", str(data_root))
    notebook = run_notebook("cut_horse2zebra.ipynb", jupyter_kernel)
    # The sample grid written during training and the input | translation pair.
    assert png_count(notebook) >= 2
    text = printed_text(notebook)
    # The three options FastCUT changes, read from the two configs.
    assert "flip_equivariance: CUT False | FastCUT True" in text
    assert "lambda_nce: CUT 1.0 | FastCUT 10.0" in text
    assert "nce_idt: CUT True | FastCUT False" in text
    assert "resnet_6blocks: 29 model entries, antialias=True" in text
    assert "iterations: 24 | optimizer steps: 72" in text
    # Feature maps of a 256x256 image at NCE layers 0 and 16, and PatchNCE with itself < with another image.
    assert "(1, 3, 262, 262)" in text and "(1, 32, 64, 64)" in text
    nce = re.search(r"mean over layers: same image (\d+\.\d+) < another image (\d+\.\d+)", text)
    assert nce is not None, text
    assert float(nce.group(1)) < float(nce.group(2))
    assert "(1, 3, 256, 256) -> (1, 3, 256, 256)" in text
    assert "OptionError: direction=BtoA: a CUT translates AtoB only" in text
    assert re.search(r"cut\.ckpt: CUT, \d+ tensors \(\d+ of F\), all equal; same translation", text), text
    # The temporary folder is gone at the end.
    work = re.search(r"outputs: (\S+)", text)
    assert work is not None and f"removed {work.group(1)}" in text
    assert not Path(work.group(1)).exists()


def test_unsb_notebook_trains_and_follows_the_multi_step_translation(jupyter_kernel, data_root, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_PL_DATA", str(data_root))
    notebook = run_notebook("unsb_horse2zebra.ipynb", jupyter_kernel)
    # The sample grid written during training and the horse beside its five step predictions.
    assert png_count(notebook) >= 2
    text = printed_text(notebook)
    assert "'lambda_sb': 1.0" in text and "'num_timesteps': 5" in text
    assert "iterations: 24 | optimizer steps: 96" in text
    assert "time grid: [0.0, 0.5, 0.74, 0.86, 0.94, 1.0]" in text
    assert "(1, 3, 256, 256) -> [(1, 3, 256, 256), (1, 3, 256, 256), (1, 3, 256, 256)" in text
    changes = [
        float(value) for value in re.findall(r"step \d: mean \|change\| from the previous image (\d+\.\d+)", text)
    ]
    assert len(changes) == 5 and all(change > 0 for change in changes), text
    assert "same seed: same translation" in text and "2 steps: the second prediction of the same path" in text
    seed = re.search(r"seed 1: mean \|difference\| (\d+\.\d+)", text)
    assert seed is not None and float(seed.group(1)) > 0, text
    assert "OptionError: direction=BtoA: a UNSB translates AtoB only" in text
    assert "G(x, t, z) is the same for t = 0 ... 4" in text
    assert re.search(r"unsb\.ckpt: UNSB, \d+ tensors of \['disc', 'energy', 'gen', 'projection'\], all equal", text), (
        text
    )
    work = re.search(r"outputs: (\S+)", text)
    assert work is not None and f"removed {work.group(1)}" in text
    assert not Path(work.group(1)).exists()


def test_multiband_notebook_keeps_16_bits_and_4_bands(jupyter_kernel, monkeypatch):
    monkeypatch.delenv("CYCLEGAN_PL_DATA", raising=False)  # it draws its own images
    notebook = run_notebook("multiband.ipynb", jupyter_kernel)
    assert png_count(notebook) >= 2  # the sample grid and the input | translation pair
    text = printed_text(notebook)
    assert "one image: uint16 (32, 32, 4)" in text
    assert "training batch: torch.int32 (4, 4, 32, 32)" in text
    assert "translation: uint16 (32, 32, 4)" in text
    assert "at most 0 level(s) of 65536" in text or "at most 1 level(s) of 65536" in text
    work = re.search(r"outputs: (\S+)", text)
    assert work is not None and f"removed {work.group(1)}" in text


def test_inspect_networks_needs_no_data(jupyter_kernel, monkeypatch):
    monkeypatch.delenv("CYCLEGAN_PL_DATA", raising=False)
    notebook = run_notebook("inspect_networks.ipynb", jupyter_kernel)
    text = printed_text(notebook)
    assert "(11378179)" in text  # resnet_9blocks, checked against docs/method.md#parameter-counts in the notebook
    assert "receptive field: 70" in text
    assert "(1, 1, 30, 30)" in text
    assert "does not fit the network" in text and "generator='resnet_6blocks', ngf=16" in text


def committed_notebooks() -> List[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_expected_notebooks_exist():
    assert {path.name for path in committed_notebooks()} >= EXPECTED_NOTEBOOKS


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda path: path.name)
def test_committed_notebook_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name} cell {index} has outputs: clear them before committing"
        assert cell.execution_count is None, (
            f"{path.name} cell {index} has an execution count: clear outputs before committing"
        )
