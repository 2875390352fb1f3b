"""Shared test settings: offline hub, a private workspace per test session, seeded RNGs."""

from __future__ import annotations

import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path, monkeypatch):
    """Every test gets its own TOKMAP_HOME so no test sees another's store or cache."""
    monkeypatch.setenv("TOKMAP_HOME", str(tmp_path / "workspace"))


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run far faster on one thread when the 2 shared cores are busy (thread contention).

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
