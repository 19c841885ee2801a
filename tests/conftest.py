"""Shared fixtures: real Fashion-MNIST, one tiny trained run of every model, a seed sweep."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from core.models import MODEL_NAMES

# A few hundred images and one epoch: enough to exercise every code path in seconds.
TINY = {"epochs": 1, "batch_size": 32, "train_limit": 512, "log_every": 4}


FULL_DISK_FREE = 50 * 10**6  # what ``full_disk`` reports: below artifacts.MIN_FREE_BYTES


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """``shutil.disk_usage`` reports 50 MB free for paths under ``tmp_path`` (others: the truth)."""
    import shutil

    real = shutil.disk_usage

    def usage(path):
        if os.path.realpath(path).startswith(os.path.realpath(tmp_path)):
            return real(path)._replace(free=FULL_DISK_FREE)
        return real(path)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    return tmp_path


@pytest.fixture
def fake_canvas(monkeypatch):
    """The drawing pad's stand-in (bench.fakes) for AppTest runs of the pages."""
    from bench.fakes import CANVAS_MODULE, fake_canvas

    module = fake_canvas()
    monkeypatch.setitem(sys.modules, CANVAS_MODULE, module)
    return module


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


@pytest.fixture(scope="session")
def seed_root(tmp_path_factory, dataset):
    """A seed sweep (tests/seedtools.py): three report-protocol runs and one quick run of every
    model, with seed 0 the defaults. Shared: never change it (copy it first)."""
    from tests import seedtools

    return seedtools.make_seed_root(tmp_path_factory.mktemp("seeds") / "artifacts", dataset)


@pytest.fixture(scope="module")
def shipped_root(tmp_path_factory):
    """A copy of the shipped default runs (one per test module), without their caches, so caches
    the pages write beside them stay out of the repository."""
    import shutil

    from core import artifacts

    root = tmp_path_factory.mktemp("shipped") / "artifacts"
    for model in MODEL_NAMES:
        run = artifacts.load_run(model)
        shutil.copytree(run.path, root / model / run.run_id, ignore=shutil.ignore_patterns("cache"))
        artifacts.set_default(model, run.run_id, root)
    return root
