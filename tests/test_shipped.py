"""The shipped default runs: report protocol, report-level accuracy, and they reproduce."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import artifacts, metrics
from core.data import normalise
from core.models import MODEL_NAMES
from core.predict import load_predictor

SHIPPED = artifacts.PROJECT_DIR / "artifacts"
MIN_TEST_ACCURACY = {"baseline": 0.895, "residual": 0.900}  # the report's, less two points


@pytest.fixture(scope="module", params=MODEL_NAMES)
def shipped(request):
    return artifacts.load_run(request.param, root=SHIPPED)


def test_follows_the_report_protocol(shipped):
    p = shipped.manifest.protocol
    assert (p.epochs, p.batch_size, p.seed) == (10, 32, 0)
    assert p.train_images == 60_000 and p.train_limit is None and p.follows_report
    assert p.optimizer == "Adam" and p.loss == "categorical_crossentropy"
    assert len(shipped.history) == 10 and len(shipped.manifest.seconds_per_epoch) == 10


def test_in_line_with_the_report(shipped):
    assert shipped.manifest.test_metrics.accuracy >= MIN_TEST_ACCURACY[shipped.model]
    assert shipped.history[-1]["accuracy"] > 0.94


def test_trained_on_the_data_we_have(shipped, dataset):
    assert shipped.manifest.dataset.sha256 == dataset.sha256
    np.testing.assert_array_equal(shipped.y_true, dataset.y_test)


def test_metrics_recomputed_from_stored_probabilities(shipped):
    evaluation = metrics.evaluate(shipped.y_true, shipped.y_prob)
    assert evaluation.accuracy == shipped.manifest.test_metrics.accuracy
    assert evaluation.loss == pytest.approx(shipped.manifest.test_metrics.loss, abs=1e-6)
    assert evaluation.confusion.sum() == 10_000


def test_stored_model_reproduces_stored_probabilities(shipped, dataset):
    x = normalise(dataset.x_test)
    keras_prob = shipped.load_keras_model().predict(x, batch_size=1000, verbose=0)
    np.testing.assert_allclose(keras_prob, shipped.y_prob, atol=1e-5)
    numpy_prob = load_predictor(shipped).predict(x)
    np.testing.assert_allclose(numpy_prob, shipped.y_prob, atol=1e-4)
    stored = shipped.manifest.test_metrics.accuracy
    assert (keras_prob.argmax(1) == dataset.y_test).mean() == stored
    assert (numpy_prob.argmax(1) == dataset.y_test).mean() == pytest.approx(stored, abs=2e-4)


def test_every_shipped_manifest_reads_and_writes_back_byte_for_byte():
    """The manifest's dataclasses keep the format: each shipped run (with or without the later
    ``compute`` field) parses, and serialises to exactly the text on disk."""
    runs = [info for model in MODEL_NAMES for info in artifacts.list_runs(model, SHIPPED)]
    assert runs and all(info.ok for info in runs), [info.problem for info in runs]
    for info in runs:
        text = (info.path / artifacts.MANIFEST).read_text(encoding="utf-8")
        assert json.dumps(info.manifest.to_dict(), indent=2) == text, info.run_id
    assert any(info.manifest.compute is None for info in runs)  # trained before it was recorded
