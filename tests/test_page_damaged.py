"""Damage as the dashboard shows it: damaged runs named with their reason and never served, a
Retrain link, the other model unaffected; a data set changed since training flagged on Overview."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import artifacts, data
from core.data import FILES
from tests.apptools import markdown_tables

APP = str(Path(__file__).resolve().parent.parent / "dashboard.py")
TRAINING = "training"  # the page_link proto names the page by its URL path
SECOND = "20990101-000000-seed1-2nd0"


pytestmark = pytest.mark.usefixtures("fake_canvas")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def truncate_model(path: Path) -> None:
    data = (path / artifacts.MODEL_FILE).read_bytes()
    (path / artifacts.MODEL_FILE).write_bytes(data[: len(data) // 2])


def alter_predictions(path: Path) -> None:
    import numpy as np

    with np.load(path / artifacts.PREDICTIONS) as npz:
        y_true, y_prob = npz["y_true"], npz["y_prob"].copy()
    y_prob[0] = np.roll(y_prob[0], 1)
    np.savez_compressed(path / artifacts.PREDICTIONS, y_true=y_true, y_prob=y_prob)


def drop_manifest(path: Path) -> None:
    (path / artifacts.MANIFEST).unlink()


def future_manifest(path: Path) -> None:
    manifest = json.loads((path / artifacts.MANIFEST).read_text())
    manifest["format_version"] = 99
    (path / artifacts.MANIFEST).write_text(json.dumps(manifest))


DAMAGE = {
    "truncated-model": (truncate_model, "model.keras does not match its checksum"),
    "altered-predictions": (alter_predictions, "predictions.npz does not match its checksum"),
    "missing-manifest": (drop_manifest, "manifest.json is missing"),
    "incompatible-version": (future_manifest, "format version 99"),
}


@pytest.fixture
def root(tmp_path, tiny_root, monkeypatch):
    root = Path(shutil.copytree(tiny_root, tmp_path / "artifacts"))
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(root))
    return root


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_models_only_run_damaged_is_named_with_a_retrain_link(root, kind):
    damage, reason = DAMAGE[kind]
    info = artifacts.list_runs("residual", root)[0]
    damage(info.path)
    at = open_page("overview")
    (error,) = at.error
    assert error.value.startswith("Residual CNN has no usable run: its only run is damaged")
    assert info.run_id in error.value and reason in error.value
    assert "Retrain it on the Training page" in error.value
    assert [link.proto.page for link in at.get("page_link")].count(TRAINING) == 2  # guard, sidebar
    assert not at.get("plotly_chart")  # nothing of either model is shown half
    # The sidebar lists it with its reason; the other model's run is still offered.
    assert f"{info.run_id}: " in " ".join(texts(at.sidebar.text))
    assert reason in " ".join(texts(at.sidebar.text))
    assert at.sidebar.selectbox(key="picker_baseline").value == artifacts.default_run_id(
        "baseline", root
    )
    assert "picker_residual" not in [s.key for s in at.sidebar.selectbox]


def test_a_damaged_second_run_is_listed_never_served(root):
    """A model with a good and a damaged run: the good one is shown, the damaged one is named
    in the sidebar with a Retrain link, and cannot be chosen, not even through the session."""
    good = artifacts.load_run("baseline", root=root)
    with artifacts.RunWriter("baseline", SECOND, root) as writer:
        for name in artifacts.RUN_FILES:
            shutil.copyfile(good.path / name, writer.file(name))
        second = writer.commit(replace(good.manifest, run_id=SECOND))
    truncate_model(second)
    at = open_page("overview")
    assert not at.error
    layers = [t for t in markdown_tables(at.markdown)
              if [t.index.name, *t.columns] == ["layer", "type", "output shape", "params"]]  # fmt: skip
    assert len(layers) == 2  # the page is shown on the good runs (their architectures)
    at.session_state["overview_architecture"] = at.tabs[-1].label  # the residual's layer graph
    assert "residual" in at.run().get("graphviz_chart")[0].proto.spec.lower()
    assert SECOND not in at.sidebar.selectbox(key="picker_baseline").options
    (expander,) = [e for e in at.sidebar.expander if "damaged baseline" in e.label]
    assert expander.label == "1 damaged baseline run(s)"
    assert any(SECOND in t and "checksum" in t for t in texts(expander.text))
    (link,) = expander.get("page_link")
    assert link.proto.page == TRAINING and link.proto.label == "Retrain"
    at.session_state["run_baseline"] = SECOND
    at.run()
    assert not at.exception
    assert at.session_state["run_baseline"] == good.run_id


@pytest.fixture
def dataset_copy(tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in FILES:
        shutil.copy(data.DEBIAN_DIR / name, folder / name)
    monkeypatch.setenv(data.ENV_VAR, str(folder))
    return folder


def test_overview_warns_when_the_data_set_changed_since_training(
    tiny_root, dataset_copy, monkeypatch
):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tiny_root))
    at = open_page("overview")
    assert not any("Fashion-MNIST files have changed" in w for w in texts(at.warning))
    path = dataset_copy / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 10])))  # one label
    at.run()
    assert not at.exception
    (warning,) = [w for w in texts(at.warning) if "Fashion-MNIST files have changed" in w]
    assert f"`t10k-labels-idx1-ubyte.gz in $FASHION_MNIST_DIR: {dataset_copy}: SHA-256" in warning
    assert "retrain" in warning
