"""Why a prediction, in AppTest on the shipped runs and the real test images: Grad-CAM strips in
the galleries, the suspected-label filter, one image inspected with its nearest training images,
and Grad-CAM on the Predict page. Expected values are computed here from core's maths directly."""

from __future__ import annotations

import base64
import html
import io
import re

import numpy as np
import pytest
from PIL import Image

from core import artifacts, explain
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES, REGISTRY
from core.predict import load_predictor
from tests import apptools
from tests.apptools import gallery_count
from widgets import explain as explain_view

SHIRT, TSHIRT = CLASS_NAMES.index("Shirt"), CLASS_NAMES.index("T-shirt/top")
TRAIN_SUBSET = 3000  # neighbours are searched among these (all 60,000 take minutes here)


@pytest.fixture(scope="module")
def runs(shipped_root):
    return {m: artifacts.load_run(m, root=shipped_root) for m in MODEL_NAMES}


@pytest.fixture
def confusion(shipped_root, monkeypatch):
    return apptools.open_page(shipped_root, monkeypatch, "pages/confusion.py")


def test_grad_cam_strip_is_the_image_then_each_models_map(runs, dataset):
    index = 42
    strip = np.asarray(Image.open(io.BytesIO(explain_view.cam_strip_png(runs, index))))
    scale, gap = explain_view.TILE_SCALE, explain_view.GAP
    side = 28 * scale
    assert strip.shape == (side, 3 * side + 2 * gap, 3)
    image = dataset.x_test[index]
    grey = np.kron(image, np.ones((scale, scale), np.uint8))
    assert np.array_equal(strip[:, :side, 0], grey)
    for k, run in enumerate(runs.values(), start=1):
        predicted = int(run.y_prob[index].argmax())
        cam = explain.grad_cam(load_predictor(run), image[None] / 255, predicted)[0]
        panel = strip[:, k * (side + gap) : k * (side + gap) + side]
        assert np.array_equal(panel, explain.overlay(image, cam, scale=scale))


def gallery_tiles(at) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """(caption, (width, height) of its PNG, (width, height) it is shown at) of each image of
    the gallery's grid (one block of inline PNGs, widgets.images.image_grid)."""
    (grid,) = [h.proto.body for h in at.get("html") if "gallery-grid" in h.proto.body]
    images = re.findall(r'src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)"', grid)
    captions = [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", grid)]
    return [
        (c, Image.open(io.BytesIO(base64.b64decode(data))).size, (int(w), int(h)))
        for c, (data, w, h) in zip(captions, images, strict=True)
    ]


def test_gallery_shows_strips_when_grad_cam_is_on(confusion):
    plain = gallery_tiles(confusion)
    confusion.toggle(key="confusion_gallery_cams").set_value(True).run()
    assert not confusion.exception
    assert any("Each strip: the image, then Grad-CAM" in c.value for c in confusion.caption)
    strips = gallery_tiles(confusion)
    assert len(strips) == len(plain) > 0  # the same images...
    assert [c for c, *_ in strips] == [c for c, *_ in plain]
    tile = 28 * explain_view.TILE_SCALE  # ...drawn anew, as strips: the image and each model's map
    # the plain images are sent as they are (28 px) and shown six times larger
    assert {(sent, shown) for _, sent, shown in plain} == {((28, 28), (28 * 6, 28 * 6))}
    n = len(MODEL_NAMES)
    strip = (tile * (n + 1) + explain_view.GAP * n, tile)
    assert {(sent, shown) for _, sent, shown in strips} == {(strip, strip)}


def test_suspected_label_filter_counts_what_both_models_confidently_call_otherwise(confusion, runs):
    y_true = runs["baseline"].y_true
    probs = {m: r.y_prob for m, r in runs.items()}
    preds = {m: p.argmax(axis=1) for m, p in probs.items()}
    in_cell = (y_true == SHIRT) & (preds["baseline"] == TSHIRT)  # the page's opening cell
    sure = np.ones_like(in_cell)
    for m in probs:
        sure &= (preds[m] == preds["baseline"]) & (probs[m].max(axis=1) >= 0.9)
    expected = int((in_cell & sure & (preds["baseline"] != y_true)).sum())
    assert expected > 0  # the shipped runs have such shirts
    confusion.selectbox(key="confusion_gallery_suspects").set_value("agree").run()
    assert not confusion.exception
    assert gallery_count(confusion) == expected


def test_inspecting_an_image_shows_both_maps_and_its_nearest_training_images(
    confusion, runs, dataset, monkeypatch
):
    x_sub, y_sub = dataset.x_train[:TRAIN_SUBSET], dataset.y_train[:TRAIN_SUBSET]
    monkeypatch.setattr(explain_view, "train_images", lambda: (x_sub, y_sub))
    monkeypatch.setattr(
        explain_view.neighbours, "features_path", lambda run: run.path / "cache" / "subset.npz"
    )
    options = confusion.selectbox(key="confusion_gallery_inspect").options
    index = int(options[0].removeprefix("test image "))
    confusion.selectbox(key="confusion_gallery_inspect").set_value(index).run()
    assert not confusion.exception
    shown = " ".join(m.value for m in confusion.markdown)
    assert f"**Test image {index}**, labelled **Shirt**" in shown
    confusion.toggle(key="confusion_gallery_detail_neighbours").set_value(True).run()
    assert not confusion.exception
    captions = [
        c.value for c in confusion.caption if "nearest training images are labelled" in c.value
    ]
    assert len(captions) == len(runs)
    for caption, run in zip(captions, runs.values(), strict=True):
        model = load_predictor(run)
        train = model.penultimate(x_sub / 255).astype(np.float64)
        query = model.penultimate(dataset.x_test[index : index + 1] / 255).astype(np.float64)[0]
        cosine = 1 - train @ query / (np.linalg.norm(train, axis=1) * np.linalg.norm(query))
        nearest = np.argsort(cosine, kind="stable")[: explain_view.NEIGHBOURS]
        same = int((y_sub[nearest] == SHIRT).sum())
        assert caption.startswith(f"{same} of {explain_view.NEIGHBOURS} nearest training images")


def test_predict_page_explains_a_test_image(shipped_root, monkeypatch, runs, dataset):
    at = apptools.open_page(shipped_root, monkeypatch, "pages/predict.py")
    at.radio(key="predict_source").set_value("Test image").run()
    assert not at.exception
    index = int(at.selectbox(key="predict_example").value)
    for model, run in runs.items():
        predicted = CLASS_NAMES[int(run.y_prob[index].argmax())]
        captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
        assert f"{REGISTRY[model].display_name}: why {predicted}" in captions
