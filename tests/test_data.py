"""core.data: IDX parsing, checksums, the order of places searched, and the real data set."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from core import data
from core.data import FILES, DatasetError, load_dataset, parse_idx, read_verified

DEBIAN = data.DEBIAN_DIR


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_round_trip():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 9], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels)), labels)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x00\x00\x0d\x01" + b"\x00" * 8, "bad magic number 0x00000d01"),
        (b"\x08\x03\x00\x00" + b"\x00" * 8, "bad magic number"),
        (b"\x00\x00\x08\x02" + b"\x00" * 12, "bad magic number"),
        (b"\x00\x00", "too short"),
        (idx_bytes(np.zeros((3, 28, 28)))[:-5], "truncated or corrupted"),
        (idx_bytes(np.zeros((1, 28, 28)))[:10], "truncated header"),
        (idx_bytes(np.zeros((1, 32, 32))), "images are 32x32, expected 28x28"),
    ],
)
def test_parse_idx_rejects(raw, message):
    with pytest.raises(DatasetError, match=message):
        parse_idx(raw, "some-file")


def copy_release(dest: Path, skip: str | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if name != skip:
            (dest / name).symlink_to(DEBIAN / name)
    return dest


def replace_with(folder: Path, name: str, payload: bytes) -> None:
    (folder / name).unlink(missing_ok=True)
    (folder / name).write_bytes(payload)


def test_checksum_mismatch_is_named(tmp_path):
    raw = gzip.decompress((DEBIAN / "t10k-labels-idx1-ubyte.gz").read_bytes())
    altered = raw[:-1] + bytes([(raw[-1] + 1) % 10])  # one label changed
    replace_with(tmp_path, "t10k-labels-idx1-ubyte.gz", gzip.compress(altered))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 .* does not match"):
        read_verified(tmp_path / "t10k-labels-idx1-ubyte.gz")


def test_truncated_gzip_is_named(tmp_path):
    whole = (DEBIAN / "t10k-labels-idx1-ubyte.gz").read_bytes()
    replace_with(tmp_path, "t10k-labels-idx1-ubyte.gz", whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match="cannot be decompressed"):
        read_verified(tmp_path / "t10k-labels-idx1-ubyte.gz")


def test_recompressed_file_with_another_gzip_header_verifies(tmp_path):
    # The check is on the content, so a re-packaged .gz (other header, other level) passes.
    raw = gzip.decompress((DEBIAN / "t10k-labels-idx1-ubyte.gz").read_bytes())
    replace_with(tmp_path, "t10k-labels-idx1-ubyte.gz", gzip.compress(raw, compresslevel=1))
    assert (
        read_verified(tmp_path / "t10k-labels-idx1-ubyte.gz")[1]
        == FILES["t10k-labels-idx1-ubyte.gz"]
    )


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No real place is visible: an empty Debian folder and an empty Keras cache."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path


def test_env_var_comes_first(isolated, monkeypatch):
    copy_release(isolated / "mine")
    copy_release(isolated / "debian")
    monkeypatch.setenv(data.ENV_VAR, str(isolated / "mine"))
    assert load_dataset(allow_download=False).source.startswith("$FASHION_MNIST_DIR")


def test_debian_before_keras_cache(isolated):
    copy_release(isolated / "debian")
    copy_release(isolated / "keras" / "datasets" / "fashion-mnist")
    assert "Debian package" in load_dataset(allow_download=False).source


def test_falls_through_to_keras_cache_past_a_damaged_place(isolated, monkeypatch):
    mine = copy_release(isolated / "mine", skip="train-labels-idx1-ubyte.gz")
    monkeypatch.setenv(data.ENV_VAR, str(mine))
    copy_release(isolated / "keras" / "datasets" / "fashion-mnist")
    assert load_dataset(allow_download=False).source.startswith("Keras cache")


def test_download_is_the_last_resort(isolated, monkeypatch):
    # A file:// mirror exercises the real download path without a network.
    monkeypatch.setattr(data, "DOWNLOAD_MIRRORS", ("file:///nowhere/", DEBIAN.as_uri() + "/"))
    ds = load_dataset(allow_download=True)
    assert ds.source.startswith("download into")
    assert sorted(p.name for p in data.keras_cache_dir().iterdir()) == sorted(FILES)


def test_download_replaces_a_damaged_cached_file(isolated, monkeypatch):
    cache = copy_release(data.keras_cache_dir(), skip="t10k-labels-idx1-ubyte.gz")
    replace_with(cache, "t10k-labels-idx1-ubyte.gz", b"not gzip")
    monkeypatch.setattr(data, "DOWNLOAD_MIRRORS", (DEBIAN.as_uri() + "/",))
    load_dataset(allow_download=True)
    assert read_verified(cache / "t10k-labels-idx1-ubyte.gz")


def test_nothing_found_names_every_place_and_the_fixes(isolated, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(isolated / "mine"))
    monkeypatch.setattr(data, "DOWNLOAD_MIRRORS", ("file:///nowhere/",))
    with pytest.raises(DatasetError) as info:
        load_dataset(allow_download=True)
    message = str(info.value)
    for expected in (
        "$FASHION_MNIST_DIR",
        str(isolated / "mine"),
        "Debian package dataset-fashion-mnist",
        str(isolated / "debian"),
        "Keras cache",
        "download into",
        "apt-get install -y dataset-fashion-mnist",
        "set FASHION_MNIST_DIR",
        "connect to the internet",
    ):
        assert expected in message


def test_real_dataset(dataset):
    assert dataset.x_train.shape == (60_000, 28, 28) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (10_000, 28, 28)
    assert np.bincount(dataset.y_train).tolist() == [6000] * 10
    assert np.bincount(dataset.y_test).tolist() == [1000] * 10
    assert dataset.y_train[0] == 9 and dataset.y_test[0] == 9  # both start with an ankle boot
    assert dataset.sha256 == FILES


def test_normalise_and_one_hot():
    x = np.array([[[0, 255]]], dtype=np.uint8)
    assert data.normalise(x).tolist() == [[[[0.0], [1.0]]]]
    np.testing.assert_array_equal(data.one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])


def test_keras_cache_follows_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert data.keras_cache_dir() == tmp_path / "datasets" / "fashion-mnist"
    monkeypatch.delenv("KERAS_HOME")
    assert data.keras_cache_dir() == Path(os.path.expanduser("~/.keras/datasets/fashion-mnist"))


def test_class_names_defined_once():
    assert len(data.CLASS_NAMES) == data.NUM_CLASSES == 10
    assert data.CLASS_NAMES[6] == "Shirt" and data.CLASS_NAMES[0] == "T-shirt/top"
