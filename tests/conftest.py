"""Shared fixtures: real Fashion-MNIST, and one tiny trained run of every model per session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from core.models import MODEL_NAMES

# A few hundred images and one epoch: enough to exercise every code path in seconds.
TINY = {"epochs": 1, "batch_size": 32, "train_limit": 512, "log_every": 4}


@pytest.fixture(scope="session")
def dataset():
    """The real Fashion-MNIST (CI installs Debian's dataset-fashion-mnist)."""
    from core.data import load_dataset

    return load_dataset(allow_download=False)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory, dataset):
    """An artifacts folder holding one TINY run of each registered model (the defaults)."""
    from core.train import TrainConfig, train

    root = tmp_path_factory.mktemp("artifacts")
    for name in MODEL_NAMES:
        train(TrainConfig(name, seed=0, **TINY), dataset, root)
    return root
