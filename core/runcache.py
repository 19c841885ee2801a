"""A run's derived cache, ``<run>/cache/``: what is computed from a run on first use and kept
beside it (the map's projections, the training images' features for nearest neighbours).

Each cache file is an ``.npz`` of its arrays and of the key it was computed for (the model
file's SHA-256, the inputs' SHA-256 from ``array_sha256``, a format version, parameters): a
file whose key differs from the one asked for, or that cannot be read whole, answers None and
the caller computes again. Writes are atomic (``artifacts.write_atomic``); a run folder that
cannot be written still gets its answers, only not cached. The cache is git-ignored and never
part of a run's checksums. No TensorFlow and no Streamlit here.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from core import artifacts

CACHE_DIR = "cache"

log = logging.getLogger(__name__)


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()  # in a key asked for: any stored value matches (at any depth of a JSON key)


def cache_file(run: artifacts.Run, name: str) -> Path:
    """Where the run's cache file ``name`` lives."""
    return run.path / CACHE_DIR / name


def array_sha256(x: np.ndarray) -> str:
    """The SHA-256 (hex) of an array's dtype, shape and bytes in C order: equal arrays hash
    equal, a different shape or type of the same bytes does not."""
    x = np.ascontiguousarray(x)
    digest = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    digest.update(x.data)
    return digest.hexdigest()


def _encode(value: object) -> np.ndarray:
    """A key's value as a 0-d array: a string or whole number as itself, anything else (a
    dict, a list, None, a float) as JSON text."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return np.array(value)
    return np.array(json.dumps(value))


def _decode(stored: np.ndarray, want: object) -> object:
    if isinstance(want, str):
        return str(stored)
    if isinstance(want, int) and not isinstance(want, bool):
        return int(stored)
    return json.loads(str(stored))


def _same(stored: object, want: object) -> bool:
    if want is ANY:
        return True
    if isinstance(want, dict):
        return (
            isinstance(stored, dict)
            and stored.keys() == want.keys()
            and all(_same(stored[k], w) for k, w in want.items())
        )
    return stored == want


def write(path: Path, key: Mapping[str, object], arrays: Mapping[str, np.ndarray]) -> bool:
    """Store ``arrays`` with ``key`` (one entry per name, see ``_encode``) in the cache file
    ``path``, atomically. False, and logged, where the folder cannot be written: the next read
    only computes again."""
    if set(key) & set(arrays):
        raise ValueError(f"key and arrays share names: {sorted(set(key) & set(arrays))}")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{name: _encode(value) for name, value in key.items()})
    try:
        if path.parent.is_symlink():
            raise OSError(errno.EPERM, "the cache folder is a symbolic link", str(path.parent))
        path.parent.mkdir(exist_ok=True)
        artifacts.write_atomic(path, buffer.getvalue())
    except OSError as exc:
        log.info("%s not cached: %s", path, exc)
        return False
    return True


def read(
    path: Path, key: Mapping[str, object], max_bytes: int | None = None
) -> dict[str, np.ndarray] | None:
    """The arrays of the cache file ``path`` (its key entries left out) if it is a whole file,
    no larger than ``max_bytes``, whose stored key equals ``key`` (``ANY`` matches anything);
    else None."""
    try:
        if path.parent.is_symlink() or path.is_symlink() or not path.is_file():
            return None
        if max_bytes is not None and path.stat().st_size > max_bytes:
            return None
        with np.load(path, allow_pickle=False) as npz:
            for name, want in key.items():
                if name not in npz.files:
                    return None
                if want is not ANY and not _same(_decode(npz[name], want), want):
                    return None
            return {name: npz[name] for name in npz.files if name not in key}
    except (
        OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile
    ):  # fmt: skip
        return None  # damaged, or from another version: computed again and replaced
