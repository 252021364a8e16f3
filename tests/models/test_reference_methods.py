"""The plain-PyTorch DCLGAN and UNSB iterations (reference_dclgan.py, reference_unsb.py) give the
losses the authors' code gives.

``reference_data/losses.json`` holds the loss terms that JunlinHan/DCLGAN's ``DCLModel`` and
cyclomon/UNSB's ``SBModel`` (commits abb805c and d1f644f) logged over two ``optimize_parameters``
calls, run outside this project on the CPU from the cases built here: tiny networks (ngf 8, 32
px) from this package's builders, loaded strictly into the authors' models after their
``data_dependent_initialize``; the batches below; and every random draw below handed to their
code in place of their generators (their patch ``randperm`` / ``np.random.permutation``, their
step ``randint``, latents ``randn``, path noise ``randn_like``, and the two unused ``rand`` of
UNSB). The second iteration's losses depend on the first's updates of every network (optimizers,
learning rates, which terms reach which network).

The reference functions were also checked against the authors' code parameter by parameter (equal
bit for bit after one and two iterations, batch 1 and 2; /work/notes/dclgan_unsb_spec.md); these
losses keep that check runnable without their code.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List

import pytest
import torch

from cyclegan_pl.networks import (
    NLayerDiscriminator,
    PatchProjection,
    ResnetGenerator,
    TimeConditionalPatchDiscriminator,
    TimeConditionalResnetGenerator,
    energy_network,
)

HERE = Path(__file__).parent


def authors_losses(method: str, case: str) -> List[dict]:
    """The two iterations' loss terms the authors' code logged for ``case``."""
    return json.loads((HERE / "reference_data" / "losses.json").read_text())[method][case]


def load_reference(name: str) -> Any:
    """Import tests/models/<name>.py (not a package; dataclasses need it in sys.modules)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# The authors' run used --num_patches 64: their cosine PatchNCE compares every query row with every
# key row of the batch through an (N*P, N*P, 256) tensor, slow at 256 patches and batch 2.
DCLGAN_PATCHES = 64


def images(generator: torch.Generator, n: int, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=generator) * 2 - 1


# --- the cases (also rebuilt by the script that ran the authors' code) -------------------------
@dataclass
class DCLGANDraws:
    permutations: List[torch.Tensor]  # full randperms, NCE1's four layers then NCE2's


@dataclass
class DCLGANCase:
    nets: Any
    batches: List[dict]
    draws: List[DCLGANDraws]


def dclgan_case(batch_size: int) -> DCLGANCase:
    ref = load_reference("reference_dclgan")
    torch.manual_seed(0)
    nets = ref.DCLGANNetworks(
        g_a=ResnetGenerator(ngf=8, antialias=True),
        g_b=ResnetGenerator(ngf=8, antialias=True),
        d_a=NLayerDiscriminator(ndf=8, antialias=True),
        d_b=NLayerDiscriminator(ndf=8, antialias=True),
        f1=PatchProjection([16, 32, 32, 32]),
        f2=PatchProjection([16, 32, 32, 32]),
    )
    data = torch.Generator().manual_seed(100)
    draw = torch.Generator().manual_seed(200)
    batches, draws = [], []
    for _ in range(2):
        batches.append({"A": images(data, batch_size), "B": images(data, batch_size), "A_paths": [], "B_paths": []})
        # positions of G's layers 4, 8, 12, 16 at 32 px: 32x32, 16x16, 8x8, 8x8
        draws.append(DCLGANDraws([torch.randperm(p, generator=draw) for p in (1024, 256, 64, 64) * 2]))
    return DCLGANCase(nets, batches, draws)


@dataclass
class UNSBCase:
    nets: dict
    batches: List[tuple]
    draws: List[Any]


def unsb_case(batch_size: int, time_indices: tuple) -> UNSBCase:
    ref = load_reference("reference_unsb")
    torch.manual_seed(0)
    gen = TimeConditionalResnetGenerator(ngf=8, antialias=True)
    nets = {
        "G": gen,
        "D": TimeConditionalPatchDiscriminator(ndf=8),
        "E": energy_network(ndf=8),
        "F": PatchProjection(gen.feature_channels([0, 4, 8, 12, 16])),
    }
    data = torch.Generator().manual_seed(100)
    draw = torch.Generator().manual_seed(200)
    batches, draws = [], []
    for t in time_indices:
        real_a, real_b, real_a2 = images(data, batch_size), images(data, batch_size), images(data, batch_size)
        batches.append(
            (
                {"A": real_a, "B": real_b, "A_paths": [], "B_paths": []},
                {"A": real_a2, "B": images(data, batch_size), "A_paths": [], "B_paths": []},
            )
        )
        # positions of G's layers 0, 4, 8, 12, 16 at 32 px: 38x38 (padded input), 32x32, 16x16, 8x8, 8x8
        draws.append(ref.draw_in_authors_order(draw, real_a, gen.z_dim, (1444, 1024, 256, 64, 64), time_index=t))
    return UNSBCase(nets, batches, draws)


def assert_losses(ours: dict, theirs: dict, iteration: int) -> None:
    # The first iteration is forwards from equal weights; the second adds one Adam step, which
    # moves parameters with ~zero gradient (biases before InstanceNorm) by +-lr on rounding
    # noise, so it is compared more loosely.
    rtol = 1e-5 if iteration == 1 else 1e-3
    for name, value in theirs.items():
        assert float(ours[name]) == pytest.approx(value, rel=rtol, abs=1e-7), f"iteration {iteration}: {name}"


@pytest.mark.parametrize("batch_size", [1, 2])
def test_dclgan_reference_gives_the_authors_losses(batch_size):
    ref = load_reference("reference_dclgan")
    case = dclgan_case(batch_size)
    optimizers = ref.dclgan_optimizers(case.nets)
    for iteration, (batch, draws) in enumerate(zip(case.batches, case.draws, strict=True), start=1):
        ids = [p[:DCLGAN_PATCHES] for p in draws.permutations]
        losses = ref.dclgan_iteration(case.nets, optimizers, batch["A"], batch["B"], ids[:4], ids[4:])
        assert_losses(losses, authors_losses("dclgan", f"batch{batch_size}")[iteration - 1], iteration)


UNSB_CASES = {
    # name: (batch size, the two iterations' step indices, tau); tau 1 makes the entropy term's
    # gradients (through G(X_t^2) as well) large enough to show in the second iteration's losses.
    "batch1_t03": (1, (0, 3), 0.01),
    "batch2_t41": (2, (4, 1), 0.01),
    "batch2_t24_tau1": (2, (2, 4), 1.0),
}


@pytest.mark.parametrize("case", list(UNSB_CASES))
def test_unsb_reference_gives_the_authors_losses(case):
    batch_size, time_indices, tau = UNSB_CASES[case]
    ref = load_reference("reference_unsb")
    built = unsb_case(batch_size, time_indices)
    optimizers = {
        name: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999)) for name, net in built.nets.items()
    }
    for iteration, ((data, data2), draws) in enumerate(zip(built.batches, built.draws, strict=True), start=1):
        losses = ref.unsb_iteration(
            built.nets, optimizers, data["A"], data["B"], data2["A"], draws, lambda_sb=1.0, tau=tau
        )
        assert_losses(losses, authors_losses("unsb", case)[iteration - 1], iteration)


def test_unsb_time_grid():
    ref = load_reference("reference_unsb")
    # 0, then 0.5 + 0.5 * (0, 1, 1.5, 1.8333, 2.0833) / 2.0833
    expected = torch.tensor([0.0, 0.5, 0.74, 0.86, 0.94, 1.0])
    torch.testing.assert_close(ref.time_grid(5), expected)
