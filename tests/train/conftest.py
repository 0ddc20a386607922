"""Fixtures for the trainer tests."""

import pytest
import torch
from train_helpers import TINY, TinyNet, make_data

from gridseq.data.contract import Dataset
from gridseq.models import registry


@pytest.fixture
def tiny():
    """The registry name of TinyNet, registered for the test only (so registry-wide tests never see it)."""
    registry.register(TINY, TinyNet, description="test model", kinds=("series",))
    yield TINY
    registry._entries.pop(TINY, None)


@pytest.fixture
def data() -> Dataset:
    return make_data()


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread; on a busy machine, extra threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
