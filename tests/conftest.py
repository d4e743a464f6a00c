from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The public SR data beside the checkout (or $EDGESR_SHARED_DATA), if present."""
    env = os.environ.get("EDGESR_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "needs ../shared/data (or $EDGESR_SHARED_DATA) with the SR benchmark/training sets"
        )
    return path


@pytest.fixture
def set5(shared_data: Path) -> Path:
    path = shared_data / "benchmarks" / "Set5"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test convs run much faster on one thread than fighting for two busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
