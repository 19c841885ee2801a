"""Your own test set (core.testset): the store, crashes mid-write, zip export and import, and
the scores against an independent computation."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import statistics
import threading
import warnings
import zipfile
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from core import artifacts
from core import testset as store
from core.data import CLASS_NAMES
from core.models import MODEL_NAMES

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def garments(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct images (n, 28, 28) float32 in [0, 1] on the 8-bit grid, as test images."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28)) / 255).astype(np.float32)


def png(image: np.ndarray, mode: str = "L", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def make_zip(members: dict[str, bytes | str], duplicate: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if duplicate is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns of the duplicate: we want it
                zf.writestr(duplicate, members[duplicate])
    return buffer.getvalue()


def labels_csv(rows: list[tuple[str, str]], header=("file", "label")) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def snapshot(root) -> dict[str, bytes]:
    """Every file of the store, by path: equal snapshots, nothing changed."""
    folder = store.store_dir(root)
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != store.LOCK
    }


@pytest.fixture
def filled(tmp_path):
    """A store under ``tmp_path`` holding three items; returns (root, images, labels)."""
    images = garments(3)
    labels = [6, 0, 9]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        store.add(image, label, f"source {i}", tmp_path, now=NOW.replace(second=i))
    return tmp_path, images, labels


# ----------------------------------------------------------------------------------------------
# The store


def test_round_trip_keeps_pixels_labels_order_and_checksums(filled):
    root, images, labels = filled
    testset = store.load(root)
    assert len(testset) == 3 and not testset.problems
    np.testing.assert_array_equal(testset.pixels, images)  # on the 8-bit grid: exact
    assert testset.pixels.dtype == np.float32 and testset.pixels.shape == (3, 28, 28)
    assert testset.labels.tolist() == labels
    assert [item.source for item in testset.items] == ["source 0", "source 1", "source 2"]
    manifest = json.loads((store.store_dir(root) / store.MANIFEST).read_text())
    for item, entry, image in zip(testset.items, manifest["items"], images, strict=True):
        data = (store.store_dir(root) / store.ITEMS / item.file).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["label_name"] == CLASS_NAMES[entry["label"]]
        pixels = np.rint(image * 255).astype(np.uint8)
        assert item.id.endswith(hashlib.sha256(pixels.tobytes()).hexdigest()[:12])
        with Image.open(io.BytesIO(data)) as stored:  # as the dataset: 8-bit grey, 28x28
            assert (stored.format, stored.mode, stored.size) == ("PNG", "L", (28, 28))
    assert [item.added for item in testset.items] == [NOW.replace(second=i) for i in range(3)]
    assert sorted(os.listdir(store.store_dir(root) / store.ITEMS)) == sorted(
        item.file for item in testset.items
    )  # nothing else left behind


def test_float_drawings_are_stored_rounded_to_8_bits(tmp_path):
    drawing = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    store.add(drawing, 3, root=tmp_path)
    (stored,) = store.load(tmp_path).pixels
    np.testing.assert_array_equal(stored, np.rint(drawing * 255) / np.float32(255))
    assert np.abs(stored - drawing).max() <= 0.5 / 255 + 1e-7


def test_the_same_pixels_are_not_added_twice(filled):
    root, images, _ = filled
    before = snapshot(root)
    done = store.add(images[1], 4, root=root)
    assert done.duplicate and done.item.label == 0  # the item already there, unchanged
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("pixels", "label", "match"),
    [
        (np.zeros((28, 27), np.float32), 0, "one 28x28 image"),
        (np.full((28, 28), 2.0, np.float32), 0, r"lie in \[0, 1\]"),
        (np.full((28, 28), np.nan, np.float32), 0, "finite"),
        (np.zeros((28, 28), np.float32), 10, "class index 0-9"),
        (np.zeros((28, 28), np.float32), True, "class index 0-9"),
    ],
)
def test_bad_items_are_refused(tmp_path, pixels, label, match):
    with pytest.raises(store.TestSetError, match=match):
        store.add(pixels, label, root=tmp_path)
    assert store.load(tmp_path).items == ()


def test_remove_drops_items_and_their_files(filled):
    root, images, _ = filled
    items = store.load(root).items
    assert store.remove([items[1].id, "not-an-id"], root) == 1
    after = store.load(root)
    assert [item.id for item in after.items] == [items[0].id, items[2].id]
    np.testing.assert_array_equal(after.pixels, images[[0, 2]])
    assert not (store.store_dir(root) / store.ITEMS / items[1].file).exists()
    assert store.remove([items[1].id], root) == 0


def test_an_empty_store_is_read_without_creating_anything(tmp_path):
    testset = store.load(tmp_path)
    assert len(testset) == 0 and testset.pixels.shape == (0, 28, 28)
    assert store.remove(["x"], tmp_path) == 0
    assert not store.store_dir(tmp_path).exists()


def test_the_folder_does_not_confuse_the_run_store(filled):
    root, _, _ = filled
    assert store.store_dir(root) == artifacts.artifacts_root(root) / "testset"
    assert all(artifacts.list_runs(model, root) == [] for model in MODEL_NAMES)


def test_concurrent_writers_lose_nothing(tmp_path):
    images = garments(8, seed=1)
    threads = [
        threading.Thread(target=store.add, args=(image, i % 10), kwargs={"root": tmp_path})
        for i, image in enumerate(images)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    testset = store.load(tmp_path)
    assert len(testset) == 8
    assert {tuple(p.ravel()[:8]) for p in testset.pixels} == {tuple(p.ravel()[:8]) for p in images}


def test_the_set_has_a_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_ITEMS", 2)
    images = garments(3, seed=2)
    store.add(images[0], 0, root=tmp_path)
    store.add(images[1], 1, root=tmp_path)
    with pytest.raises(store.TestSetError, match="already holds 2 items, its limit"):
        store.add(images[2], 2, root=tmp_path)
    data = make_zip({"labels.csv": labels_csv([("c.png", "Bag")]),
                     "c.png": png(np.rint(images[2] * 255).astype(np.uint8))})  # fmt: skip
    with pytest.raises(store.ImportRefused, match="would hold 3 items, more than its limit of 2"):
        store.import_zip(data, "merge", tmp_path)
    assert store.import_zip(data, "replace", tmp_path).total == 1  # replacing makes room


# ----------------------------------------------------------------------------------------------
# Checksums


def test_a_tampered_item_is_named_and_left_out(filled):
    root, images, labels = filled
    items = store.load(root).items
    path = store.store_dir(root) / store.ITEMS / items[1].file
    path.write_bytes(png(np.zeros((28, 28), np.uint8)))  # a valid PNG, other pixels
    (store.store_dir(root) / store.ITEMS / items[2].file).unlink()
    testset = store.load(root)
    assert [item.id for item in testset.items] == [items[0].id]
    np.testing.assert_array_equal(testset.pixels, images[:1])
    assert testset.labels.tolist() == labels[:1]
    assert dict(testset.problems) == {
        items[1].id: "its file does not match its checksum (altered or truncated)",
        items[2].id: "its file is missing",
    }
    assert store.remove([items[1].id, items[2].id], root) == 2  # damaged items can go
    assert store.load(root).problems == ()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "manifest.json is unreadable"),
        (json.dumps({"format": "something else", "version": 1, "items": []}), "not a test set"),
        (json.dumps({"format": store.FORMAT, "version": 9, "items": []}), "has version `9`"),
        (
            json.dumps({"format": store.FORMAT, "version": 1, "items": [{"id": "../../x"}]}),
            "is not an id this store writes",
        ),
        (json.dumps({"format": store.FORMAT, "version": 1, "items": {}}), "no list of items"),
    ],
)
def test_an_unreadable_manifest_refuses_the_set_and_every_change(filled, content, match):
    root, _, _ = filled
    (store.store_dir(root) / store.MANIFEST).write_text(content)
    before = snapshot(root)
    with pytest.raises(store.TestSetError, match=match) as raised:
        store.load(root)
    assert "Move that folder away" in str(raised.value)
    with pytest.raises(store.TestSetError, match=match):
        store.add(garments(1, seed=9)[0], 1, root=root)
    with pytest.raises(store.TestSetError, match=match):
        store.remove(["anything"], root)
    assert snapshot(root) == before  # nothing overwritten, no image deleted


# ----------------------------------------------------------------------------------------------
# A crash at any point of a write leaves the previous set


def crash_on(monkeypatch, nth: int) -> list[str]:
    """``os.replace`` (the rename of every atomic write) raises on its ``nth`` call."""
    real, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        calls.append(os.path.basename(dst))
        if len(calls) == nth:
            raise OSError(28, "No space left on device (simulated)")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.parametrize("nth", [1, 2], ids=["writing the image", "writing the manifest"])
def test_a_crash_while_adding_leaves_the_old_set(filled, monkeypatch, nth):
    root, _, _ = filled
    before = store.load(root)
    calls = crash_on(monkeypatch, nth)
    with pytest.raises(OSError, match="simulated"):
        store.add(garments(1, seed=5)[0], 2, root=root)
    assert calls[-1] == store.MANIFEST if nth == 2 else calls[-1].endswith(".png")
    after = store.load(root)
    assert after.items == before.items and not after.problems
    np.testing.assert_array_equal(after.pixels, before.pixels)
    assert not [n for n in os.listdir(store.store_dir(root)) if n.endswith(".tmp")]
    monkeypatch.undo()
    store.add(garments(1, seed=6)[0], 2, root=root)  # the next change works and tidies up
    files = sorted(os.listdir(store.store_dir(root) / store.ITEMS))
    assert files == sorted(item.file for item in store.load(root).items)


@pytest.mark.parametrize(
    ("change", "nth"),
    [("remove", 1), ("replace", 1), ("replace", 2)],
    ids=["remove: the manifest", "replace: an image", "replace: the manifest"],
)
def test_a_crash_while_removing_or_replacing_leaves_the_old_set(filled, monkeypatch, change, nth):
    root, _, _ = filled
    before = snapshot(root)
    exported = store.export_zip(store.load(root))
    other = make_zip({"labels.csv": labels_csv([("a.png", "Bag")]),
                      "a.png": png(np.full((28, 28), 7, np.uint8))})  # fmt: skip
    first = store.load(root).items[0].id
    crash_on(monkeypatch, nth)
    with pytest.raises(OSError, match="simulated"):
        if change == "remove":
            store.remove([first], root)
        else:
            store.import_zip(other, "replace", root)
    monkeypatch.undo()
    assert store.export_zip(store.load(root)) == exported  # every item still there, whole
    after = snapshot(root)
    assert {name: data for name, data in after.items() if name in before} == before


# ----------------------------------------------------------------------------------------------
# Export and import


def test_export_then_import_gives_the_same_set(filled, tmp_path_factory):
    root, _, _ = filled
    original = store.load(root)
    data = store.export_zip(original)
    assert data == store.export_zip(store.load(root))  # the same set, the same bytes
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        rows = list(csv.DictReader(io.TextIOWrapper(zf.open(store.CSV_NAME), "utf-8")))
        assert [(r["file"], r["label"]) for r in rows] == [
            (item.file, item.label_name) for item in original.items
        ]
    other = tmp_path_factory.mktemp("other")
    result = store.import_zip(data, "merge", other)
    assert (result.added, result.skipped, result.total) == (3, (), 3)
    copy = store.load(other)
    assert copy.items == original.items  # ids, labels and checksums kept
    np.testing.assert_array_equal(copy.pixels, original.pixels)
    again = store.import_zip(data, "merge", other)  # merging it again changes nothing
    assert (again.added, len(again.skipped), again.total) == (0, 3, 3)
    assert store.load(other).items == original.items


def test_import_merges_or_replaces(filled):
    root, images, labels = filled
    new = (garments(2, seed=3) * 255).astype(np.uint8)
    data = make_zip({
        "mine/labels.csv": labels_csv([("one.png", "ankle BOOT "), ("sub/two.png", "3"),
                                       ("dup.png", "Coat")]),
        "mine/one.png": png(new[0]), "mine/sub/two.png": png(new[1]),
        "mine/dup.png": png(np.rint(images[2] * 255).astype(np.uint8)),  # already in the set
        "__MACOSX/mine/._one.png": b"resource fork", "mine/README.txt": b"notes",
    })  # fmt: skip
    result = store.import_zip(data, "merge", root, now=NOW)
    assert (result.added, result.skipped, result.total) == (2, ("dup.png",), 5)
    assert "skipped 1 already in the set" in result.summary()
    testset = store.load(root)
    assert testset.labels.tolist() == [*labels, 9, 3]  # names in any case, or indices
    np.testing.assert_array_equal(testset.pixels[3:], new / np.float32(255))
    assert [item.source for item in testset.items[3:]] == ["import: one.png", "import: sub/two.png"]
    result = store.import_zip(data, "replace", root, now=NOW)
    assert (result.added, result.removed, result.total) == (3, 5, 3)
    assert store.load(root).labels.tolist() == [9, 3, 4]
    assert len(os.listdir(store.store_dir(root) / store.ITEMS)) == 3  # the old images went


GOOD = np.full((28, 28), 200, np.uint8)


def one(name="a.png", label="Shirt", image=GOOD, **extra) -> dict:
    return {"labels.csv": labels_csv([(name, label)]), name: png(image)} | extra


BAD_ZIPS = {
    "not a zip": (lambda: b"these are not the bytes of a zip", "not a zip archive"),
    "too large": (lambda: bytes(store.MAX_ZIP_BYTES + 1), "may be at most 10 MB"),
    "a bomb": (lambda: make_zip({f"{i}.bin": bytes(1 << 20) for i in range(65)}), "zip bomb"),
    "a huge member": (lambda: make_zip(one() | {"a.png": bytes(1 << 20)}), "more than 256 KB"),
    "no CSV": (lambda: make_zip({"a.png": png(GOOD)}), "has no labels CSV"),
    "two CSVs": (lambda: make_zip(one() | {"other.csv": "file,label\n"}), "several CSV files"),
    "no columns": (
        lambda: make_zip(one() | {"labels.csv": "name,class_id\na.png,6\n"}),
        "needs a header row with the columns file,label",
    ),
    "no rows": (lambda: make_zip({"labels.csv": "file,label\n"}), "lists no images"),
    "not UTF-8": (
        lambda: make_zip(one() | {"labels.csv": "file,label\na.png,\xe9\n".encode("latin-1")}),
        "not UTF-8",
    ),
    "unknown label": (lambda: make_zip(one(label="Hat")), "unknown label `Hat`"),
    "label out of range": (lambda: make_zip(one(label="10")), "unknown label `10`"),
    "missing image": (
        lambda: make_zip({"labels.csv": labels_csv([("a.png", "Bag")])}),
        "`a.png` is not in the zip",
    ),
    "unlisted image": (
        lambda: make_zip(one(**{"b.png": png(GOOD // 2)})),
        "`b.png` is in the zip but not",
    ),
    "wrong size": (
        lambda: make_zip(one(image=np.zeros((30, 28), np.uint8))),
        "is 28x30 pixels, not 28x28",
    ),
    "RGB": (
        lambda: make_zip({"labels.csv": labels_csv([("a.png", "Bag")]), "a.png": png(GOOD, "RGB")}),
        "in mode RGB, not 8-bit greyscale",
    ),
    "16-bit": (
        lambda: make_zip(
            {
                "labels.csv": labels_csv([("a.png", "Bag")]),
                "a.png": png(GOOD.astype(np.uint16) * 256, "I;16"),
            }
        ),
        "in mode I",
    ),
    "JPEG": (
        lambda: make_zip(
            {"labels.csv": labels_csv([("a.png", "Bag")]), "a.png": png(GOOD, fmt="JPEG")}
        ),
        "is a JPEG file, not a PNG",
    ),
    "not an image": (
        lambda: make_zip(one() | {"a.png": b"hello"}),
        "is not an image Pillow can read",
    ),
    "member ../": (
        lambda: make_zip(one() | {"../x.png": png(GOOD)}),
        r"`\.\./x\.png` is a path with '\.\.'",
    ),
    "member absolute": (lambda: make_zip(one() | {"/etc/x.png": png(GOOD)}), "absolute"),
    "CSV ../": (
        lambda: make_zip({"d/labels.csv": labels_csv([("../a.png", "Bag")]), "a.png": png(GOOD)}),
        r"line 2: `\.\./a\.png` is a path with '\.\.'",
    ),
    "duplicate member": (lambda: make_zip(one(), duplicate="a.png"), "`a.png` is in the zip twice"),
    "listed twice": (
        lambda: make_zip(
            {"labels.csv": labels_csv([("a.png", "Bag"), ("a.png", "Coat")]), "a.png": png(GOOD)}
        ),
        "line 3: `a.png` is listed twice",
    ),
    "same image twice": (
        lambda: make_zip(
            {
                "labels.csv": labels_csv([("a.png", "Bag"), ("b.png", "Bag")]),
                "a.png": png(GOOD),
                "b.png": png(GOOD),
            }
        ),
        "`a.png` and `b.png` are the same image",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_a_bad_zip_says_why_and_changes_nothing(filled, case):
    root, _, _ = filled
    build, match = BAD_ZIPS[case]
    data = build()
    before = snapshot(root)
    for mode in store.IMPORT_MODES:
        with pytest.raises(store.ImportRefused, match=match) as raised:
            store.import_zip(data, mode, root)
        assert "Nothing was imported." in str(raised.value)
    assert snapshot(root) == before


def test_an_encrypted_member_is_refused(filled):
    root, _, _ = filled
    data = bytearray(make_zip(one()))
    entry = data.rindex(b"PK\x01\x02")  # a.png's central directory entry: set "encrypted"
    data[entry + 8] |= 0x1  # zipfile cannot write encryption; the flag is what readers see
    with pytest.raises(store.ImportRefused, match=r"`a\.png` is encrypted"):
        store.import_zip(bytes(data), "merge", root)


def test_many_problems_are_counted(filled):
    root, _, _ = filled
    rows = [(f"{i}.png", "Hat") for i in range(8)]
    data = make_zip(
        {"labels.csv": labels_csv(rows)} | {f"{i}.png": png(GOOD - i) for i in range(8)}
    )
    with pytest.raises(store.ImportRefused, match=r"\(and 3 more\)"):
        store.import_zip(data, "merge", root)


# ----------------------------------------------------------------------------------------------
# Scores, against an independent computation


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def mcnemar_exact(b: int, c: int) -> float:
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("n", [1, 7, 40])
def test_scores_equal_an_independent_computation(n):
    rng = np.random.default_rng(n)
    y_true = rng.integers(0, 10, n)
    probs = {}
    for model in ("a", "b"):
        logits = rng.normal(size=(n, 10))
        logits[np.arange(n), y_true] += rng.normal(1.0, 1.5, n)  # right more often than not
        probs[model] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = store.score_models(y_true, probs)
    z = statistics.NormalDist().inv_cdf(0.975)
    for model, prob in probs.items():
        score, pred = scores[model], prob.argmax(axis=1)
        right = int(sum(int(p == t) for p, t in zip(pred, y_true, strict=True)))
        assert (score.n, score.correct) == (n, right)
        assert score.accuracy == pytest.approx(right / n)
        assert (score.ci_low, score.ci_high) == pytest.approx(wilson(right, n, z), abs=1e-9)
        expected = np.zeros((10, 10), int)
        for t, p in zip(y_true, pred, strict=True):
            expected[t, p] += 1
        np.testing.assert_array_equal(score.confusion, expected)
    pred_a, pred_b = probs["a"].argmax(axis=1), probs["b"].argmax(axis=1)
    only_a = int(((pred_a == y_true) & (pred_b != y_true)).sum())
    only_b = int(((pred_a != y_true) & (pred_b == y_true)).sum())
    comparison = store.compare_pair(y_true, probs["a"], probs["b"])
    assert (comparison.agreement["only_a"], comparison.agreement["only_b"]) == (only_a, only_b)
    expected_p = mcnemar_exact(only_a, only_b) if only_a + only_b else 1.0
    assert comparison.mcnemar_p == pytest.approx(expected_p, rel=1e-9)
    assert comparison.difference == pytest.approx(scores["b"].accuracy - scores["a"].accuracy)


def test_the_items_table_lists_each_models_answer(filled):
    root, _, labels = filled
    testset = store.load(root)
    prob = np.full((3, 10), 0.05)
    prob[[0, 1, 2], [6, 3, 9]] = 0.55  # right, wrong, right
    table = store.items_table(testset, {"baseline": prob})
    assert table["label"].tolist() == [CLASS_NAMES[k] for k in labels]
    assert table["baseline predicted"].tolist() == ["Shirt", "Dress", "Ankle boot"]
    assert table["baseline right"].tolist() == [True, False, True]
    assert table["baseline confidence"].tolist() == pytest.approx([0.55] * 3)
