"""Fixtures of the weights tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def refuse_large_builds(monkeypatch) -> None:
    """Fail the test at once when a network is built off the meta device (it would allocate the
    size a file describes: ngf 1024 is over 10 GB) or when more than 100 residual blocks are built
    (a 100000-block generator takes minutes even on the meta device)."""
    from cyclegan_pl.models import base
    from cyclegan_pl.networks import generators

    define_generator, block_init = base.define_generator, generators.ResnetBlock.__init__
    blocks = []

    def on_meta_only(*args, **kwargs):
        assert torch.get_default_device().type == "meta", "a network of the described size was built"
        return define_generator(*args, **kwargs)

    def counted(self, *args, **kwargs):
        blocks.append(1)
        assert len(blocks) <= 100, "more than 100 residual blocks were built"
        block_init(self, *args, **kwargs)

    monkeypatch.setattr(base, "define_generator", on_meta_only)
    monkeypatch.setattr(generators.ResnetBlock, "__init__", counted)
