"""core.runcache: a run's cache files are written whole and read back only under the key they
were made for; a damaged, foreign, linked or unwritable cache answers None or False, never an
error. (Each cache's own invalidation: tests/test_neighbours.py, tests/test_projection.py.)"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os

import numpy as np
import pytest

from core import artifacts, runcache

KEY = {
    "model_sha256": "a" * 64,
    "version": 1,
    "params": {"n_neighbors": 15, "min_dist": 0.1, "standardise": False},
    "images_sha256": None,
}


@pytest.fixture
def path(tmp_path):
    """A cache file of a run folder whose cache folder does not exist yet."""
    (tmp_path / "run").mkdir()
    return tmp_path / "run" / runcache.CACHE_DIR / "thing.npz"


def refuse(*args, **kwargs):
    """A stand-in for a write on a read-only disk (root ignores chmod)."""
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def test_written_whole_and_read_back_under_its_key(path):
    arrays = {"coords": np.arange(6, dtype=np.float32).reshape(3, 2), "info": np.array("{}")}
    assert runcache.write(path, KEY, arrays)
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a dashboard of another user reads it
    found = runcache.read(path, KEY)
    assert sorted(found) == ["coords", "info"]  # the key's entries are not handed back
    np.testing.assert_array_equal(found["coords"], arrays["coords"])
    with np.load(path) as npz:  # strings and whole numbers as themselves, the rest as JSON
        assert str(npz["model_sha256"]) == "a" * 64 and int(npz["version"]) == 1
        assert json.loads(str(npz["params"])) == KEY["params"]
        assert json.loads(str(npz["images_sha256"])) is None


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "b" * 64},
        {"version": 2},
        {"params": {**KEY["params"], "min_dist": 0.2}},
        {"params": {"n_neighbors": 15, "min_dist": 0.1}},  # a parameter fewer
        {"images_sha256": "c" * 64},
        {"format": 1},  # not in the file at all
    ],
)
def test_another_key_is_a_miss(path, change):
    assert runcache.write(path, KEY, {"x": np.zeros(2)})
    assert runcache.read(path, {**KEY, **change}) is None
    assert runcache.read(path, KEY) is not None


def test_any_matches_whatever_was_stored(path):
    stored = {"key": {"n": 3, "images_sha256": "c" * 64}}
    assert runcache.write(path, stored, {"x": np.zeros(2)})
    assert runcache.read(path, {"key": {"n": 3, "images_sha256": runcache.ANY}}) is not None
    assert runcache.read(path, {"key": runcache.ANY}) is not None
    assert runcache.read(path, {"key": {"n": 4, "images_sha256": runcache.ANY}}) is None
    assert runcache.read(path, {"other": runcache.ANY}) is None  # present, whatever its value


def test_damaged_or_oversized_files_are_a_miss(path):
    assert runcache.write(path, KEY, {"x": np.zeros(1000)})
    size = path.stat().st_size
    assert runcache.read(path, KEY, max_bytes=size) is not None
    assert runcache.read(path, KEY, max_bytes=size - 1) is None
    whole = path.read_bytes()
    path.write_bytes(whole[:100])  # truncated
    assert runcache.read(path, KEY) is None
    path.write_bytes(b"not a zip file")
    assert runcache.read(path, KEY) is None
    npy = io.BytesIO()
    np.save(npy, np.zeros(3))  # an array, not an archive
    path.write_bytes(npy.getvalue())
    assert runcache.read(path, KEY) is None
    assert runcache.read(path.with_name("absent.npz"), KEY) is None
    assert runcache.write(path, KEY, {"x": np.ones(2)})  # replaced whole
    np.testing.assert_array_equal(runcache.read(path, KEY)["x"], np.ones(2))


def test_symbolic_links_are_neither_read_nor_written_through(tmp_path, path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert runcache.write(elsewhere / path.name, KEY, {"x": np.zeros(2)})
    path.parent.symlink_to(elsewhere, target_is_directory=True)  # the cache folder is a link
    assert runcache.read(path, KEY) is None
    assert not runcache.write(path, KEY, {"x": np.ones(2)})
    path.parent.unlink()
    path.parent.mkdir()
    path.symlink_to(elsewhere / path.name)  # the file is a link
    assert runcache.read(path, KEY) is None
    np.testing.assert_array_equal(runcache.read(elsewhere / path.name, KEY)["x"], np.zeros(2))


def test_an_unwritable_run_folder_caches_nothing_and_still_reads(path, monkeypatch):
    assert runcache.write(path, KEY, {"x": np.zeros(2)})
    path.parent.chmod(0o555)  # read-only for everyone but root ...
    monkeypatch.setattr(artifacts, "write_atomic", refuse)  # ... and root
    try:
        assert not runcache.write(path, KEY, {"x": np.ones(2)})
        np.testing.assert_array_equal(runcache.read(path, KEY)["x"], np.zeros(2))
        assert os.listdir(path.parent) == [path.name]
    finally:
        path.parent.chmod(0o755)
    other = path.with_name("other.npz")
    assert not runcache.write(other, KEY, {"x": np.ones(2)}) and not other.exists()


def test_a_cache_folder_that_is_a_file(path):
    path.parent.write_text("not a folder")  # mkdir fails, even for root
    assert not runcache.write(path, KEY, {"x": np.zeros(2)})
    assert runcache.read(path, KEY) is None
    assert path.parent.read_text() == "not a folder"


def test_key_and_arrays_may_not_share_names(path):
    with pytest.raises(ValueError, match="share names"):
        runcache.write(path, {"x": 1}, {"x": np.zeros(2)})


def test_array_sha256_sees_values_shape_and_type():
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    digest = runcache.array_sha256(x)
    assert digest == hashlib.sha256(b"|u1(3, 4)" + x.tobytes()).hexdigest()
    assert digest == runcache.array_sha256(np.asfortranarray(x))  # the values, in C order
    flipped = x.copy()
    flipped[0, 0] ^= 1
    others = [flipped, x.reshape(4, 3), x.astype(np.int8)]
    assert len({digest, *map(runcache.array_sha256, others)}) == 4
