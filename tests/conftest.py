"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    """2 cores shared by many jobs: a second torch thread only spins (5x slower measured here).

    Not autouse: torch is imported only by the tests that ask for this, so the torch-free edge and
    renderer tests never load it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
