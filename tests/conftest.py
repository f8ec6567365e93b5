import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent


def shared_cifar10() -> Path | None:
    """The local CIFAR-10 folder: $KERAS_ANYTIME_DATA, else ../shared/data/cifar10."""
    candidate = Path(os.environ.get("KERAS_ANYTIME_DATA", REPO.parent / "shared/data/cifar10"))
    return candidate if (candidate / "train-0.npz").is_file() else None


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts in float32, whatever an earlier one in this worker set."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    yield


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    path = shared_cifar10()
    if path is None:
        pytest.skip(
            "CIFAR-10 NumPy files not found: set KERAS_ANYTIME_DATA "
            "or provide ../shared/data/cifar10"
        )
    return path


@pytest.fixture
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(64,))
    return x, y
