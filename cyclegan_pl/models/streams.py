"""Random streams that depend on (seed, epoch, batch index, rank) only, so a resumed run draws alike.

Before every training step the global generators (Python, NumPy, torch: dropout masks, penalty
mixes) are reseeded from the run's seed and the step's place, whatever ran before it (data loader
start, validation, sample grids). Draws a method makes itself (patch positions, flips, time steps)
come from a :class:`StepGenerator` on the training device, reseeded the same way with a stream
number of its own, so they need no host synchronisation.
"""

from __future__ import annotations

import random
from typing import Optional

import numpy as np
import torch

from cyclegan_pl.seeding import hash_seed


def step_seed(stream_seed: int, epoch: int, batch_idx: int, rank: int, stream: int = 0) -> int:
    """The seed of a training step's stream ``stream`` (0: the global generators)."""
    parts = (stream_seed, epoch, batch_idx, rank) + ((stream,) if stream else ())
    return hash_seed(*parts)


def reseed_global_generators(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators from one 63-bit seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class StepGenerator:
    """A ``torch.Generator`` on the training device, reseeded for each step.

    Args:
        stream: the stream number (distinct per kind of draw; 0 is the global generators').
    """

    def __init__(self, stream: int) -> None:
        if stream == 0:
            raise ValueError("stream 0 is the global generators' seed; use another number")
        self.stream = stream
        self._generator: Optional[torch.Generator] = None

    def for_step(
        self, device: torch.device, stream_seed: int, epoch: int, batch_idx: int, rank: int
    ) -> torch.Generator:
        """The generator, on ``device``, seeded for this step."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
        return self._generator.manual_seed(step_seed(stream_seed, epoch, batch_idx, rank, self.stream))
