"""Your own test set in AppTest: add from Predict, the My test set page scores it, remove,
explain, download, import, the empty state; and the page never imports TensorFlow."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import _calculate_file_id
from streamlit.testing.v1 import AppTest

from core import access, artifacts
from core import testset as store
from core.data import CLASS_NAMES, first_per_class
from core.models import MODEL_NAMES, display_name
from core.predict import load_predictor
from tests.apptools import APP
from tests.test_pages import PROBE

PREDICT, PAGE = "pages/predict.py", "pages/testset.py"
pytestmark = pytest.mark.usefixtures("fake_canvas")


@pytest.fixture(scope="module")
def root(tiny_root, tmp_path_factory):
    """A copy of the tiny runs: the tests write a test set beside them."""
    root = tmp_path_factory.mktemp("mine") / "artifacts"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("cache"))
    return root


@pytest.fixture
def fresh(root):
    """The copied runs with no test set."""
    shutil.rmtree(store.store_dir(root), ignore_errors=True)
    return root


@pytest.fixture(scope="module")
def models(tiny_root):
    return {m: load_predictor(artifacts.load_run(m, root=tiny_root)) for m in MODEL_NAMES}


def open_page(root, monkeypatch, page: str) -> AppTest:
    """``page`` of the whole app over ``root``, opened straight away (not after the Overview)."""
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def image_of(dataset, index: int) -> np.ndarray:
    return (dataset.x_test[index] / 255).astype(np.float32)


def expected_scores(models, pixels: np.ndarray, labels: list[int]) -> dict[str, float]:
    """Each model's accuracy on the items, computed here from the models' own forward passes."""
    return {
        display_name(m): float(np.mean(model.predict(pixels).argmax(axis=1) == np.array(labels)))
        for m, model in models.items()
    }


def shown_scores(at) -> dict[str, float]:
    table = at.dataframe[0].value  # the scores: the first table on the page
    return dict(zip(table["Model"], table["Accuracy"], strict=True))


def test_add_on_predict_then_scored_removed_and_explained(fresh, monkeypatch, dataset, models):
    examples = first_per_class(dataset.y_test, 3).tolist()
    first, second = examples[0], examples[3]  # a T-shirt/top and a Trouser
    at = open_page(fresh, monkeypatch, PREDICT)
    at.radio(key="predict_source").set_value("Test image").run()
    pixels = image_of(dataset, first)
    mean = np.mean([model.predict(pixels[None])[0] for model in models.values()], axis=0)
    assert at.selectbox(key="testset_add_label").value == int(mean.argmax())  # the consensus

    at.selectbox(key="testset_add_label").set_value(int(dataset.y_test[first]))
    at.button(key="testset_add").click().run()
    assert not at.exception
    assert "Added to your test set as T-shirt/top." in [s.value for s in at.success]
    at.button(key="testset_add").click().run()  # the same image again: kept once
    assert any("already in your test set" in i.value for i in at.info)
    at.selectbox(key="predict_example").set_value(second).run()
    at.selectbox(key="testset_add_label").set_value(CLASS_NAMES.index("Bag"))  # a wrong label
    at.button(key="testset_add").click().run()
    testset = store.load(fresh)
    assert [item.label_name for item in testset.items] == ["T-shirt/top", "Bag"]
    assert [item.source for item in testset.items] == ["Test image", "Test image"]
    np.testing.assert_array_equal(testset.pixels[1], image_of(dataset, second))

    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [int(dataset.y_test[first]), CLASS_NAMES.index("Bag")]
    assert shown_scores(at) == pytest.approx(expected_scores(models, testset.pixels, labels))
    assert any("McNemar" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == len(MODEL_NAMES)  # a confusion matrix per model
    assert {"**T-shirt/top**", "**Bag**"} <= {m.value for m in at.markdown}
    captions = [c.value for c in at.caption]
    for item, pixels in zip(testset.items, testset.pixels, strict=True):
        for name, model in models.items():  # each model's answer and confidence, under each item
            prob = model.predict(pixels[None])[0]
            k = int(prob.argmax())
            mark = "✓" if k == item.label else "✗"
            assert f"{mark} {display_name(name)}: {CLASS_NAMES[k]} {prob[k]:.0%}" in captions

    at.toggle(key="testset_table").set_value(True).run()
    table = at.dataframe[1].value
    assert table["Label"].tolist() == ["T-shirt/top", "Bag"]
    for name, model in models.items():
        prob = model.predict(testset.pixels)  # (2, 10)
        shown = table[f"{display_name(name)}: predicted"].tolist()
        assert shown == [CLASS_NAMES[k] for k in prob.argmax(axis=1)]
        assert table[f"{display_name(name)}: confidence"].tolist() == pytest.approx(
            prob.max(axis=1), rel=1e-6
        )
    at.toggle(key="testset_table").set_value(False)

    at.button(key=f"testset_why_{testset.items[0].id}").click().run()
    assert not at.exception
    assert any(m.value.startswith("**Why: the item labelled T-shirt/top**") for m in at.markdown)

    at.button(key=f"testset_remove_{testset.items[1].id}").click().run()
    assert not at.exception
    assert "Removed 1 item(s) from your test set." in [s.value for s in at.success]
    assert [item.id for item in store.load(fresh).items] == [testset.items[0].id]
    assert shown_scores(at) == pytest.approx(
        expected_scores(models, testset.pixels[:1], labels[:1])
    )


def test_the_empty_set_points_to_predict(fresh, monkeypatch):
    at = open_page(fresh, monkeypatch, PAGE)
    assert any(i.value.startswith("Your test set is empty") for i in at.info)
    assert not at.get("plotly_chart") and not store.store_dir(fresh).exists()


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_download_and_import_on_the_page(fresh, monkeypatch, dataset):
    for index in (0, 1):
        store.add(image_of(dataset, index), int(dataset.y_test[index]), "test", fresh)
    at = open_page(fresh, monkeypatch, PAGE)
    (button,) = at.get("download_button")
    exported = store.export_zip(store.load(fresh))
    file_id = _calculate_file_id(exported, "application/zip", store.EXPORT_NAME)
    assert button.proto.url.split("/")[-1].split(".")[0] == file_id  # the export, byte for byte

    before = store.load(fresh)
    at.file_uploader(key="testset_upload_0").set_value(("bad.zip", b"nope", "application/zip"))
    at.run().button(key="testset_import").click().run()
    assert not at.exception
    assert at.error[0].value.startswith("`bad.zip` was not imported: the file is not a zip")
    assert store.load(fresh).items == before.items

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("labels.csv", "file,label\ntwo.png,2\nold.png,Ankle boot\n")
        zf.writestr("two.png", png(dataset.x_test[2]))
        zf.writestr("old.png", png(dataset.x_test[0]))  # already in the set: skipped
    at.file_uploader(key="testset_upload_0").set_value(("mine.zip", buffer.getvalue(), "zip"))
    at.run().button(key="testset_import").click().run()
    assert not at.exception
    assert at.success[0].value == (
        "Imported 1 item; skipped 1 already in the set (old.png). The set now holds 3."
    )
    assert store.load(fresh).labels.tolist() == [*before.labels.tolist(), 2]
    assert shown_scores(at) and len(at.get("plotly_chart")) == len(MODEL_NAMES)


def test_a_confusion_cell_filters_the_items(fresh, monkeypatch, dataset, models):
    for index in range(4):
        store.add(image_of(dataset, index), int(dataset.y_test[index]), "test", fresh)
    testset = store.load(fresh)
    model = MODEL_NAMES[0]
    predicted = models[model].predict(testset.pixels).argmax(axis=1)
    true_class, pred_class = int(testset.labels[0]), int(predicted[0])  # the first item's cell
    members = (testset.labels == true_class) & (predicted == pred_class)
    at = open_page(fresh, monkeypatch, PAGE)
    at.session_state["testset_cell"] = (true_class, pred_class, model)  # as a click sets it
    at.run()
    assert (
        f"Items labelled {CLASS_NAMES[true_class]} that {display_name(model)} calls "
        f"{CLASS_NAMES[pred_class]}: {int(members.sum())} of 4."
    ) in [c.value for c in at.caption]
    shown = {b.key.removeprefix("testset_remove_") for b in at.button
             if b.key.startswith("testset_remove_")}  # fmt: skip
    assert shown == {item.id for item, m in zip(testset.items, members, strict=True) if m}
    at.button(key="testset_show_all").click().run()
    assert len([b for b in at.button if b.key.startswith("testset_remove_")]) == 4


def test_a_damaged_item_is_named_left_out_and_removable(fresh, monkeypatch, dataset, models):
    for index in (0, 1):
        store.add(image_of(dataset, index), int(dataset.y_test[index]), "test", fresh)
    good, bad = store.load(fresh).items
    (store.store_dir(fresh) / store.ITEMS / bad.file).write_bytes(b"not the image any more")
    at = open_page(fresh, monkeypatch, PAGE)
    (warning,) = at.warning
    assert f"`{bad.id}`: its file does not match its checksum" in warning.value
    assert "Scores on your 1 item" in [s.value for s in at.subheader]
    pixels = image_of(dataset, 0)[None]
    assert shown_scores(at) == pytest.approx(expected_scores(models, pixels, [good.label]))
    at.button(key="testset_remove_damaged").click().run()
    assert not at.warning and store.load(fresh).problems == ()
    assert [item.id for item in store.load(fresh).items] == [good.id]


@pytest.fixture
def exposed(monkeypatch):
    """The dashboard as a server on every interface runs it, without an operator token."""
    from streamlit import config as st_config

    monkeypatch.delenv(access.TOKEN_ENV, raising=False)
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", before)


def test_visitors_of_an_exposed_dashboard_cannot_change_the_set(
    fresh, monkeypatch, exposed, dataset
):
    store.add(image_of(dataset, 0), 0, "test", fresh)
    before = store.load(fresh)
    at = open_page(fresh, monkeypatch, PAGE)
    changes = [b for b in at.button if b.key.startswith(("testset_remove_", "testset_import"))]
    assert changes and all(b.disabled for b in changes)
    assert any("read-only" in i.value for i in at.info)
    assert at.get("plotly_chart")  # the scores are still shown
    at.switch_page(PREDICT).run()
    at.radio(key="predict_source").set_value("Test image").run()
    assert at.button(key="testset_add").disabled
    assert any("off for visitors" in c.value for c in at.caption)
    assert store.load(fresh).items == before.items


def test_the_page_never_imports_tensorflow(fresh, dataset):
    store.add(image_of(dataset, 0), 0, "test", fresh)
    env = {**os.environ, "FMNIST_ARTIFACTS": str(fresh)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, PAGE],
        cwd=artifacts.PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300,
        check=True,
    )  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"errors": [], "heavy": []}
