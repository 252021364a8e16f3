"""CUT's projection network F and its patch sampling (docs/method.md#cut-and-fastcut)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

__all__ = ["PatchProjection", "draw_patch_ids", "sample_patches"]


def draw_patch_ids(
    features: Sequence[torch.Tensor], num_patches: int, generator: Optional[torch.Generator] = None
) -> List[torch.Tensor]:
    """For each feature map, ``num_patches`` distinct random positions (all of them when fewer).

    The positions index the flattened ``H * W`` grid and are shared by every image of the batch.

    Args:
        features: feature maps (N, C, H, W).
        num_patches: positions per map.
        generator: the random generator to draw from (on the features' device); the ids are
            drawn in the order of ``features``.
    """
    ids = []
    for feature in features:
        positions = feature.shape[2] * feature.shape[3]
        order = torch.randperm(positions, generator=generator, device=feature.device)
        ids.append(order[: min(num_patches, positions)])
    return ids


def sample_patches(feature: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The feature vectors at the flattened positions ``ids``: (N, C, H, W) -> (N, len(ids), C)."""
    return feature.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :]


class PatchProjection(nn.Module):
    """F: one two-layer MLP head per feature layer, L2-normalised output.

    Head ``mlp_<k>`` (Linear(C_k, units), ReLU, Linear(units, units)) projects the patches of the
    k-th feature layer; the result is divided by its L2 norm + 1e-7. The heads are built here from
    the known channel counts (the published code builds them lazily at the first batch, with the
    same shapes), so F exists, is initialised and has its optimizer from the start.

    Args:
        channels: channels of each feature layer (e.g. ``ResnetGenerator.feature_channels``).
        units: width of both linear layers (256).
    """

    def __init__(self, channels: Sequence[int], units: int = 256) -> None:
        super().__init__()
        self.channels = list(channels)
        self.units = units
        for k, width in enumerate(self.channels):
            setattr(self, f"mlp_{k}", nn.Sequential(nn.Linear(width, units), nn.ReLU(), nn.Linear(units, units)))

    def head(self, k: int) -> nn.Module:
        """The MLP of the k-th feature layer."""
        return getattr(self, f"mlp_{k}")

    def forward(self, features: Sequence[torch.Tensor], patch_ids: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Project the patches at ``patch_ids`` of each feature map.

        Args:
            features: one (N, C_k, H, W) map per head.
            patch_ids: one vector of flattened positions per map (:func:`draw_patch_ids`).

        Returns:
            One (N, P_k, units) tensor per map, each row of unit L2 norm.
        """
        if len(features) != len(self.channels) or len(patch_ids) != len(self.channels):
            raise ValueError(
                f"PatchProjection has {len(self.channels)} heads, got {len(features)} feature maps "
                f"and {len(patch_ids)} id vectors."
            )
        projected = []
        for k, (feature, ids) in enumerate(zip(features, patch_ids, strict=True)):
            patches = sample_patches(feature, ids)
            rows = self.head(k)(patches.flatten(0, 1))
            rows = rows / (rows.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)
            projected.append(rows.view(patches.shape[0], patches.shape[1], self.units))
        return projected
