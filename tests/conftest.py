import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = Path(os.environ.get("LH_TINYSHAKESPEARE", REPO.parent / "shared/data/tinyshakespeare.txt"))


@pytest.fixture(autouse=True)
def _two_threads():
    # CI has 2 cores; more threads only add contention (and nondeterminism in timing-free tests).
    torch.set_num_threads(2)


@pytest.fixture
def shakespeare() -> Path:
    if not SHAKESPEARE.exists():
        pytest.skip(f"tinyshakespeare not found at {SHAKESPEARE} (set LH_TINYSHAKESPEARE)")
    return SHAKESPEARE
