"""A run's derived cache, ``<run>/cache/``: what is computed from a run on first use and kept
beside it (the map's projections, the training images' features for nearest neighbours, and
the small results every page opens with: its metrics and curves, its comparison with another
run, its architecture), so opening the dashboard reads small files instead of recomputing.

Each cache file is an ``.npz`` of its arrays and of the key it was computed for (the model
file's SHA-256, the inputs' SHA-256 from ``array_sha256``, a format version, parameters): a
file whose key differs from the one asked for, or that cannot be read whole, answers None and
the caller computes again. Each file also holds the SHA-256 of its arrays, checked on every
read, so a damaged file is a miss like a foreign one. Writes are atomic
(``artifacts.write_atomic``); a run folder that cannot be written still gets its answers, only
not cached. The cache is git-ignored and never part of a run's checksums. No TensorFlow and no
Streamlit here; SciPy and scikit-learn are imported only when a result must be computed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core import artifacts

CACHE_DIR = "cache"
DIGEST = "content_sha256"  # an entry of every file written: the SHA-256 of its arrays

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


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(f"{name}:{array_sha256(np.asarray(arrays[name]))};".encode())
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
    if set(key) & set(arrays) or DIGEST in {*key, *arrays}:
        shared = sorted((set(key) & set(arrays)) | ({DIGEST} & {*key, *arrays}))
        raise ValueError(f"key and arrays share names, or use a reserved one: {shared}")
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **arrays,
        **{name: _encode(value) for name, value in key.items()},
        **{DIGEST: np.array(_digest(arrays))},
    )
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
            arrays = {name: npz[name] for name in npz.files if name not in key and name != DIGEST}
            # Files written before digests were kept are read as they are.
            if DIGEST in npz.files and str(npz[DIGEST]) != _digest(arrays):
                return None
            return arrays
    except (
        OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile
    ):  # fmt: skip
        return None  # damaged, or from another version: computed again and replaced


# --- Results kept with a run: small, computed once, read by every page that opens -------------

EVALUATION_FILE = "evaluation.npz"
RESULTS_FORMAT = 1  # bump when what is stored, or how it is computed, changes


def predictions_key(run: artifacts.Run | artifacts.RunInfo) -> dict[str, object]:
    """The key of what is computed from the run's test predictions alone: their SHA-256 as
    its manifest records it (checked whenever the run is listed or loaded)."""
    return {
        "predictions_sha256": run.manifest.files[artifacts.PREDICTIONS],
        "format": RESULTS_FORMAT,
    }


def _evaluation_arrays(ev) -> dict[str, np.ndarray]:
    from core.metrics import PER_CLASS_ROWS

    curves = ev.roc
    return {
        "scalars": np.array([ev.accuracy, ev.loss, ev.macro_auc], np.float64),
        "n": np.array(ev.n, np.int64),
        "y_pred": ev.y_pred.astype(np.uint8),  # (n,) classes 0..9
        "confusion": np.asarray(ev.confusion, np.int64),  # (10, 10)
        "per_class": np.asarray(ev.per_class_values, np.float64),  # (12, 4); support is whole
        "per_class_index": np.array(list(PER_CLASS_ROWS)),
        "roc_sizes": np.array([c.fpr.size for c in curves], np.int64),
        "roc_fpr": np.concatenate([c.fpr for c in curves]),
        "roc_tpr": np.concatenate([c.tpr for c in curves]),
        "roc_thresholds": np.concatenate([c.thresholds for c in curves]),
        "roc_auc": np.array([c.auc for c in curves], np.float64),
    }


def _evaluation_from(found: Mapping[str, np.ndarray]):
    from core.metrics import PER_CLASS_COLUMNS, PER_CLASS_ROWS, Evaluation
    from core.roc import RocCurve

    accuracy, loss, macro_auc = (float(v) for v in found["scalars"])
    if tuple(str(name) for name in found["per_class_index"]) != PER_CLASS_ROWS:
        raise ValueError("per-class rows of another layout")
    per_class = np.asarray(found["per_class"], np.float64)
    if per_class.shape != (len(PER_CLASS_ROWS), len(PER_CLASS_COLUMNS)):
        raise ValueError("per-class table of another shape")
    ends = np.cumsum(found["roc_sizes"])
    starts = ends - found["roc_sizes"]
    roc = tuple(
        RocCurve(
            fpr=found["roc_fpr"][a:b],
            tpr=found["roc_tpr"][a:b],
            thresholds=found["roc_thresholds"][a:b],
            auc=float(auc),
        )
        for a, b, auc in zip(starts, ends, found["roc_auc"], strict=True)
    )
    return Evaluation(
        n=int(found["n"]),
        accuracy=accuracy,
        loss=loss,
        y_pred=found["y_pred"].astype(np.int64),
        confusion=found["confusion"],
        per_class_values=per_class,
        roc=roc,
        macro_auc=macro_auc,
    )


def stored_evaluation(run: artifacts.Run | artifacts.RunInfo):
    """The run's kept ``metrics.Evaluation``, or None when none is kept for its predictions
    (never computes; a listed run's manifest is enough)."""
    found = read(cache_file(run, EVALUATION_FILE), predictions_key(run))
    if found is None:
        return None
    try:
        return _evaluation_from(found)
    except (KeyError, ValueError, TypeError, IndexError):
        return None  # a file of another layout under the same key: computed again


def evaluation(run: artifacts.Run):
    """``metrics.evaluate`` of the run's stored test predictions, computed once and kept in
    its cache (``EVALUATION_FILE``): metrics, confusion matrix, per-class table, ROC curves."""
    kept = stored_evaluation(run)
    if kept is not None:
        return kept
    from core import metrics

    ev = metrics.evaluate(run.y_true, run.y_prob)
    write(cache_file(run, EVALUATION_FILE), predictions_key(run), _evaluation_arrays(ev))
    return ev


def comparison(run_a: artifacts.Run, run_b: artifacts.Run, **options):
    """``metrics.compare`` of two runs (B against A) on the same test images, computed once
    per pair and kept in A's cache, one file per model compared with (the last pair asked)."""
    from dataclasses import asdict

    key = {
        "a": predictions_key(run_a),
        "b": predictions_key(run_b),
        "options": {name: options[name] for name in sorted(options)},
    }
    path = cache_file(run_a, f"comparison-{run_b.model}.npz")
    found = read(path, {"key": key})
    if found is not None:
        from core.metrics import Comparison

        try:
            return Comparison(**json.loads(str(found["comparison"])))
        except (KeyError, ValueError, TypeError):
            pass  # computed again below
    from core import metrics

    result = metrics.compare(run_a.y_true, run_a.y_prob, run_b.y_prob, **options)
    write(path, {"key": key}, {"comparison": np.array(json.dumps(asdict(result)))})
    return result


def results_file(root: Path | str, name: str) -> Path:
    """A cache file of results over several runs (``<root>/cache/<name>``, beside the models'
    folders), read and written like a run's: keyed on the runs' checksums."""
    return Path(root) / CACHE_DIR / name


ARCHITECTURE_FILE = "architecture.npz"
LAYER_COLUMNS = ("layer", "type", "output shape", "params")


class Architecture(NamedTuple):
    """What the Overview shows of a model: one row per layer (a dict of ``LAYER_COLUMNS``), the
    layer graph in Graphviz DOT, the number of parameters."""

    rows: tuple[dict, ...]
    dot: str
    params: int

    @property
    def table(self):
        """``rows`` as a pandas DataFrame (as ``layer_table()`` gives it)."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(LAYER_COLUMNS))


def architecture(run: artifacts.Run, load: Callable[[], object]) -> Architecture:
    """The run's layer table, layer graph (DOT) and parameter count, kept in its cache keyed on
    its model file's SHA-256; ``load()`` gives the loaded model (``core.predict``) on a miss."""
    key = {"model_sha256": run.manifest.model_sha256, "format": RESULTS_FORMAT}
    path = cache_file(run, ARCHITECTURE_FILE)
    found = read(path, key)
    if found is not None and {"table", "dot", "params"} <= set(found):
        try:
            rows = json.loads(str(found["table"]))
            if isinstance(rows, list) and all(
                isinstance(row, dict) and set(row) == set(LAYER_COLUMNS) for row in rows
            ):
                return Architecture(tuple(rows), str(found["dot"]), int(found["params"]))
        except (ValueError, TypeError, KeyError):
            pass  # computed again below
    model = load()
    rows = model.layer_table()[list(LAYER_COLUMNS)].to_dict("records")
    result = Architecture(tuple(rows), model.to_dot(), int(model.total_params))
    write(path, key, {"table": np.array(json.dumps(rows)), "dot": np.array(result.dot),
                      "params": np.array(result.params, np.int64)})  # fmt: skip
    return result
