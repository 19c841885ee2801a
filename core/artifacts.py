"""The artifact store: one verified directory per finished training run.

Layout::

    artifacts/<model>/<run-id>/      a finished run (manifest.json last, then renamed into place)
    artifacts/<model>/<run-id>/cache/ derived from the run on first use: ``core.runcache``'s
    artifacts/<model>/.tmp-<run-id>/ a run being written; never read as a run
    artifacts/<model>/DEFAULT        pointer file: the run id the dashboard opens
    artifacts/<model>/.train.lock    held (flock) by the one process training this model
    artifacts/<model>/.training.json what that process is doing, for pages that follow it

This module owns the run format, writing and reading: ``RunWriter`` writes every run file and
the manifest (a ``Manifest``), ``read_manifest``/``verify_run``/``load_run`` read them back.
Nothing here imports TensorFlow; only ``Run.load_keras_model`` does, when it is called (and
``RunWriter.save_model`` is handed a Keras model by the trainer).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.data import FILES, NUM_CLASSES, content_sha256, dataset_place

# The run format's file names and error are part of the store's API too (explicit re-exports).
from core.manifest import HISTORY_FILE as HISTORY_FILE
from core.manifest import LIVE_LOG as LIVE_LOG
from core.manifest import MANIFEST as MANIFEST
from core.manifest import MODEL_FILE as MODEL_FILE
from core.manifest import ONNX_FILE as ONNX_FILE
from core.manifest import OPTIONAL_RUN_FILES as OPTIONAL_RUN_FILES
from core.manifest import PREDICTIONS as PREDICTIONS
from core.manifest import RUN_FILES as RUN_FILES
from core.manifest import Manifest as Manifest
from core.manifest import OnnxExport as OnnxExport
from core.manifest import RunError as RunError
from core.models import get_spec

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENV_VAR = "FMNIST_ARTIFACTS"

DEFAULT_POINTER = "DEFAULT"
LOCK_FILE = ".train.lock"
STATUS_FILE = ".training.json"
TMP_PREFIX = ".tmp-"
HISTORY_NOTE = "test_* are held-out monitoring only; nothing is selected on them"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class TrainingBusy(RuntimeError):
    """Another process is already training this model."""


def artifacts_root(root: Path | str | None = None) -> Path:
    """The artifacts folder: ``root``, else ``$FMNIST_ARTIFACTS``, else ``<project>/artifacts``."""
    if root is None:
        root = os.environ.get(ENV_VAR) or PROJECT_DIR / "artifacts"
    return Path(root).resolve()


def model_dir(model: str, root: Path | str | None = None) -> Path:
    get_spec(model)  # rejects unknown names before they reach the file system
    return artifacts_root(root) / model


def check_run_id(run_id: str) -> str:
    """Reject anything that is not a plain run name (no separators, no leading dot)."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise RunError(f"invalid run id {run_id!r}: use letters, digits, '-', '_' and '.'")
    return run_id


def run_path(model: str, run_id: str, root: Path | str | None = None) -> Path:
    """The folder of a run, guaranteed to lie inside the artifacts folder."""
    base = model_dir(model, root)
    path = (base / check_run_id(run_id)).resolve()
    if path.parent != base:
        raise RunError(f"run {run_id!r} resolves outside {base}")
    return path


def new_run_id(seed: int, now: datetime | None = None) -> str:
    """A sortable, unique id: UTC time stamp, seed, and a short random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-seed{seed}-{secrets.token_hex(2)}"


# Every listing verifies every run; with a few seeds per model that is tens of MB hashed per
# page. A file whose identity and change times are unchanged has the same content, so its hash is
# remembered. The kernel sets ctime on every write (no user call can set it back), and a file
# changed within the last RACY_SECONDS is never remembered, so a write in the same clock tick as
# the hash cannot hide (git's "racy clean" rule).
RACY_SECONDS = 2.0
_HASHES: dict[tuple, str] = {}
_HASHES_MAX = 4096


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _remember(key: tuple, st: os.stat_result, value: str) -> bool:
    """Remember ``value`` as the hash of the file ``key`` names, unless it changed too recently."""
    if time.time() - st.st_ctime_ns / 1e9 <= RACY_SECONDS:
        return False
    if len(_HASHES) >= _HASHES_MAX:
        _HASHES.clear()
    _HASHES[key] = value
    return True


def sha256_file(path: Path) -> str:
    """The file's SHA-256 (hex), remembered while the file is unchanged."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        key = (os.path.realpath(path), *_identity(st))
        known = _HASHES.get(key)
        if known is not None:
            return known
        digest = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    _remember(key, st, value)
    return value


# The same memo, kept across processes in each run's cache folder: a cold start of the dashboard
# lists twenty runs (70 MB, 0.2 s of hashing) and would otherwise hash them all again. An entry is
# used only while the file's identity and change times are exactly those recorded (the rule
# above), so a file written since, or copied elsewhere, is hashed again; the memo is advisory
# (unreadable or unwritable: every file is hashed, nothing fails).
CHECKSUM_MEMO = "checksums.json"
_MEMO_FORMAT = 1


class _ChecksumMemo:
    """``sha256_file`` for the files of one run folder, with ``CHECKSUM_MEMO`` beside them; also
    the content hashes of the data set files the run was trained on (keyed by their real path),
    which a cold start would otherwise decompress and hash whole (30 MB, 0.3-0.9 s)."""

    def __init__(self, run_dir: Path):
        self.file = run_dir / "cache" / CHECKSUM_MEMO
        self.entries: dict[str, list] = {}  # run file name -> identity + SHA-256
        self.dataset: dict[str, list] = {}  # data set file's real path -> identity + content's
        self.changed = False
        with contextlib.suppress(OSError, UnicodeDecodeError, ValueError, TypeError):
            data = json.loads(self.file.read_text(encoding="utf-8"))
            if (isinstance(data, dict) and data.get("format") == _MEMO_FORMAT
                    and isinstance(data.get("files"), dict)):  # fmt: skip
                self.entries = data["files"]
                if isinstance(data.get("dataset"), dict):
                    self.dataset = data["dataset"]

    def matches(self, file: Path, want: str) -> bool:
        """Whether ``file``'s SHA-256 is ``want``. A remembered hash that disagrees is never
        trusted: the file is hashed again (a damaged memo cannot condemn a good run)."""
        return self._digest(self.entries, file.name, file, want, sha256_file, True) == want

    def content_sha256(self, file: Path, want: str) -> str | None:
        """``core.data.content_sha256(file)`` (None: unreadable), not computed again where the
        memo holds ``want`` for this very file; as in ``matches``, never trusted to disagree."""
        try:
            return self._digest(self.dataset, os.path.realpath(file), file, want, content_sha256)
        except OSError:
            return None  # gone since it was found

    def _digest(self, table: dict, name: str, file: Path, want: str, compute, in_process=False):
        st = file.stat()
        key = (os.path.realpath(file), *_identity(st))
        entry = table.get(name)
        if isinstance(entry, list) and len(entry) == 6 and entry[:5] == list(key[1:]):
            if entry[5] == want:
                if in_process:
                    _remember(key, st, want)  # this process need not read the memo again
                return want
            if in_process:
                _HASHES.pop(key, None)  # the memo disagrees: hash the file itself
        value = compute(file)
        if value is not None and time.time() - st.st_ctime_ns / 1e9 > RACY_SECONDS:
            table[name] = [*key[1:], value]
            self.changed = True
        return value

    def save(self) -> None:
        if not self.changed:
            return
        with contextlib.suppress(OSError):
            self.file.parent.mkdir(exist_ok=True)
            memo = {"format": _MEMO_FORMAT, "files": self.entries, "dataset": self.dataset}
            write_atomic(self.file, json.dumps(memo))


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) via a new temporary file in the same folder, fsync and
    rename: readers see the old file or the new one, whole. Raises OSError (nothing replaced)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # A new file (never one planted at the name); not mkstemp, whose 0600 mode would hide
        # the file from a dashboard run by another user.
        with open(tmp, "xb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # a failed clean-up must not hide the first error
            tmp.unlink(missing_ok=True)


def check_writable(root: Path) -> str | None:
    """Why runs cannot be written under the artifacts folder ``root`` (created if need be), in
    a sentence; None when they can."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return f"cannot write to the artifacts folder {root}: {exc.strerror or exc}"
    return None


# The free disk space a training needs before it starts. A run's files take about 4 MB
# (model.keras 2.3-3 MB, predictions.npz 0.4 MB, live log and history under 0.1 MB), all written
# at the end, so a disk that fills up during the training loses all of it. 200 MB is some fifty
# runs: a whole seed sweep (ten runs, ~35 MB) with a wide margin, because the space is checked
# once, at the start, and others write to the same disk meanwhile (the dashboard's caches, ~30 MB
# for each run it explores; the trainer's output log; other programs).
MIN_FREE_BYTES = 200 * 10**6


class NotEnoughSpace(OSError):
    """The artifacts folder's disk has too little free space to start a training."""


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10**7 else f"{size / 1e6:,.0f} MB"


def check_free_space(root: Path, needed: int = MIN_FREE_BYTES) -> str | None:
    """Why a training should not start for lack of disk space under the artifacts folder
    ``root``, in a sentence; None when there is room (or the space cannot be told).

    Creates nothing: a folder not made yet is measured on its nearest existing parent.
    """
    where = Path(root)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return None  # check_writable, or the save itself, says what is wrong
    if free >= needed:
        return None
    return (
        f"only {_megabytes(free)} free on the disk of the artifacts folder {root}; training "
        f"needs at least {_megabytes(needed)}. Free some space there"
    )


# ----------------------------------------------------------------------------------------------
# Reading runs


@dataclass(frozen=True)
class RunInfo:
    """One entry of a listing: a run folder and whether it verified."""

    model: str
    run_id: str
    path: Path
    manifest: Manifest | None
    problem: str | None = None
    is_default: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None

    def label(self, compact: bool = False) -> str:
        """The run in a picker: its id (``compact``: the start time to the second, and the
        seed), test accuracy, a quick run's settings, whether it is the default; a damaged run
        says why."""
        if not self.ok:
            return f"{self.run_id} (damaged: {self.problem})"
        p = self.manifest.protocol
        if compact:
            parts = [self.run_id[:15].replace("-", " ", 1), f"seed {p.seed}"]
        else:
            parts = [self.run_id]
        parts.append(f"acc {self.manifest.test_metrics.accuracy:.4f}")
        if not p.follows_report and compact:
            parts.append(f"quick: {p.epochs} ep, {p.train_images} img")
        elif not p.follows_report:
            parts.append(f"quick: {p.epochs} ep, batch {p.batch_size}, {p.train_images:,} img")
        if self.is_default:
            parts.append("default")
        return " · ".join(parts)


@dataclass(frozen=True)
class Run:
    """A verified run: its manifest, per-epoch history and test-set predictions."""

    model: str
    run_id: str
    path: Path
    manifest: Manifest
    history: list[dict]
    y_true: np.ndarray = field(repr=False)  # (n,) int
    y_prob: np.ndarray = field(repr=False)  # (n, 10) float32

    @property
    def follows_report(self) -> bool:
        return self.manifest.protocol.follows_report

    @property
    def mean_epoch_seconds(self) -> float:
        """Mean wall-clock seconds per epoch, as measured while the run trained."""
        seconds = self.manifest.seconds_per_epoch
        return sum(seconds) / len(seconds)

    def load_keras_model(self):
        """The trained Keras model, loaded in safe mode after its checksum is checked again."""
        import keras

        path = self.path / MODEL_FILE
        if sha256_file(path) != self.manifest.model_sha256:
            raise RunError(
                f"{self.model}/{self.run_id}: {MODEL_FILE} changed since it was verified"
            )
        return keras.saving.load_model(path, compile=False, safe_mode=True)


def read_manifest(path: Path) -> Manifest:
    """The manifest of the run folder ``path``, parsed (its files are not checked here)."""
    file = path / MANIFEST
    if not file.is_file():
        raise RunError(f"{MANIFEST} is missing")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{MANIFEST} is unreadable ({exc})") from exc
    return Manifest.from_dict(data)


def verify_run(path: Path, model: str | None = None, skip: tuple[str, ...] = ()) -> Manifest:
    """Check a run folder's manifest and every file's SHA-256 (but those in ``skip``); returns
    the manifest."""
    if path.is_symlink():  # a run is a real folder inside the artifacts folder, never a link
        raise RunError("the run folder is a symbolic link")
    manifest = read_manifest(path)
    if model is not None and manifest.model != model:
        raise RunError(f"manifest says model {manifest.model!r}, folder says {model!r}")
    if manifest.run_id != path.name:
        raise RunError(f"manifest says run {manifest.run_id!r}, folder is {path.name!r}")
    files = manifest.files
    missing = [name for name in RUN_FILES if name not in files]
    if missing:
        raise RunError(f"{MANIFEST} has no checksum for {', '.join(missing)}")
    if ONNX_FILE in files and manifest.onnx is None:
        raise RunError(f"{MANIFEST} lists {ONNX_FILE} without the record of its export")
    _check_files(path, files, skip)
    return manifest


def _check_files(path: Path, files: dict[str, str], skip: tuple[str, ...] = ()) -> None:
    memo = _ChecksumMemo(path)
    try:
        _check_each(path, files, skip, memo)
    finally:
        memo.save()


def _check_each(path: Path, files: dict[str, str], skip: tuple[str, ...], memo) -> None:
    for name, want in files.items():
        if name not in RUN_FILES + OPTIONAL_RUN_FILES:
            raise RunError(f"{MANIFEST} lists an unexpected file {name!r}")
        if name in skip:
            continue
        file = path / name
        if file.is_symlink():
            raise RunError(f"{name} is a symbolic link")
        if not file.is_file():
            raise RunError(f"{name} is missing")
        if not memo.matches(file, want):
            raise RunError(f"{name} does not match its checksum (altered or truncated)")


def _read_predictions(path: Path, expected: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path / PREDICTIONS, allow_pickle=False) as npz:
            y_true, y_prob = npz["y_true"], npz["y_prob"]
    except (OSError, ValueError, KeyError) as exc:
        raise RunError(f"{PREDICTIONS} is unreadable ({exc})") from exc
    if y_prob.shape != (expected, NUM_CLASSES) or y_true.shape != (expected,):
        raise RunError(
            f"{PREDICTIONS} has shapes {y_true.shape}, {y_prob.shape}; expected {expected}"
        )
    if not np.all(np.isfinite(y_prob)) or np.abs(y_prob.sum(axis=1) - 1).max() > 1e-3:
        raise RunError(f"{PREDICTIONS}: probabilities are not finite rows summing to 1")
    if y_true.min() < 0 or y_true.max() >= NUM_CLASSES:
        raise RunError(f"{PREDICTIONS}: labels outside 0..{NUM_CLASSES - 1}")
    return y_true.astype(np.int64), y_prob.astype(np.float32)


def load_run(model: str, run_id: str | None = None, root: Path | str | None = None) -> Run:
    """Load and verify one run (the model's default when ``run_id`` is None)."""
    if run_id is None:
        run_id = default_run_id(model, root)
        if run_id is None:
            raise RunError(f"no usable run of {model!r}: train one first")
    path = run_path(model, run_id, root)
    if not path.is_dir():
        raise RunError(f"{model}/{run_id}: no such run")
    try:
        manifest = verify_run(path, model)
        history = json.loads((path / HISTORY_FILE).read_text(encoding="utf-8"))["epochs"]
        y_true, y_prob = _read_predictions(path, manifest.test_metrics.n)
    except RunError as exc:
        raise RunError(f"{model}/{run_id}: {exc}") from exc
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise RunError(f"{model}/{run_id}: malformed content ({exc!r})") from exc
    return Run(model, run_id, path, manifest, history, y_true, y_prob)


def check_dataset(run: Run | RunInfo) -> list[str]:
    """How the data set on disk differs from the one ``run`` was trained on, one line per file
    whose content SHA-256 no longer matches the manifest's; empty when nothing changed.

    The first place holding all four files (``core.data.dataset_place``) is compared. Hashes are
    remembered in the run's checksum memo while the files are unchanged, so a repeated check,
    in this process or a later one, costs a few ``stat`` calls. Where no data set is found, or
    the manifest records none, there is nothing to compare and the answer is empty.
    """
    dataset = run.manifest.dataset if run.manifest is not None else None
    place = dataset_place() if dataset is not None else None
    if place is None:
        return []
    label, folder = place
    where = f"{label}: {folder}"
    memo = _ChecksumMemo(run.path)
    changes = []
    try:
        for name, want in sorted(dataset.sha256.items()):
            if name not in FILES:
                continue
            now = memo.content_sha256(folder / name, str(want))
            if now == want:
                continue
            changes.append(
                f"{name} in {where}: cannot be read any more"
                if now is None
                else f"{name} in {where}: SHA-256 {now[:12]}… now, {str(want)[:12]}… at training"
            )
    finally:
        memo.save()
    return changes


def list_runs(model: str, root: Path | str | None = None) -> list[RunInfo]:
    """Every finished run of ``model``, newest first, each verified (damaged ones say why)."""
    base = model_dir(model, root)
    if not base.is_dir():
        return []
    pointer = _read_pointer(base)
    infos = []
    for path in sorted(base.iterdir(), key=lambda p: p.name, reverse=True):
        if not path.is_dir() or path.name.startswith(".") or not _RUN_ID.match(path.name):
            continue
        try:
            manifest, problem = verify_run(path, model), None
        except RunError as exc:
            manifest, problem = None, str(exc)
        infos.append(RunInfo(model, path.name, path, manifest, problem, path.name == pointer))
    return infos


def _read_pointer(base: Path) -> str | None:
    try:
        text = (base / DEFAULT_POINTER).read_text(encoding="utf-8").strip()
        return check_run_id(text)
    except (OSError, UnicodeDecodeError, RunError):
        return None


def default_run_id(model: str, root: Path | str | None = None) -> str | None:
    """The run the dashboard opens: the pointer's run if it verifies, else the newest good run
    that follows the report's protocol, else the newest good run, else None."""
    return default_of(list_runs(model, root))


def default_of(infos: list[RunInfo]) -> str | None:
    """``default_run_id`` of a model whose runs ``list_runs`` has listed (``infos``): a caller
    that has the listing need not verify every run again."""
    runs = [r for r in infos if r.ok]
    for info in runs:
        if info.is_default:
            return info.run_id
    full = [r for r in runs if r.manifest.protocol.follows_report]
    return (full or runs)[0].run_id if runs else None


def set_default(model: str, run_id: str, root: Path | str | None = None) -> None:
    """Point the model's default at ``run_id`` (which must verify)."""
    path = run_path(model, run_id, root)
    verify_run(path, model)
    write_atomic(path.parent / DEFAULT_POINTER, run_id + "\n")


# ----------------------------------------------------------------------------------------------
# Writing runs


class RunWriter:
    """Collects a run's files in a hidden temporary folder and publishes it whole.

    Use as a context manager: on an exception (or a signal turned into one) the temporary folder
    is removed and nothing becomes visible; ``commit`` writes the manifest and renames the folder
    into place in one step.
    """

    def __init__(self, model: str, run_id: str, root: Path | str | None = None):
        self.model = model
        self.run_id = check_run_id(run_id)
        self.final = run_path(model, run_id, root)
        self.tmp = self.final.parent / f"{TMP_PREFIX}{run_id}"
        self.committed = False

    def __enter__(self) -> RunWriter:
        self.tmp.mkdir(parents=True)
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def file(self, name: str) -> Path:
        """Where run file ``name`` is written (the trainer streams the live log there)."""
        if name not in RUN_FILES + OPTIONAL_RUN_FILES:
            raise ValueError(f"{name!r} is not a run file")
        return self.tmp / name

    def save_model(self, model) -> None:
        """The trained Keras model, as ``model.keras``."""
        model.save(self.file(MODEL_FILE))

    def save_onnx(self, data: bytes) -> None:
        """The model exported for ONNX Runtime, as ``model.onnx`` (the manifest's ``onnx``
        field must then record its export)."""
        self.file(ONNX_FILE).write_bytes(data)

    def save_history(self, epochs: list[dict]) -> None:
        """Per epoch: train and held-out test loss and accuracy, seconds."""
        history = {"note": HISTORY_NOTE, "epochs": epochs}
        self.file(HISTORY_FILE).write_text(json.dumps(history, indent=1), encoding="utf-8")

    def save_predictions(self, y_true: np.ndarray, y_prob: np.ndarray) -> None:
        """The test set's labels (n,) and the model's probabilities (n, 10)."""
        np.savez_compressed(
            self.file(PREDICTIONS),
            y_true=np.asarray(y_true).astype(np.uint8),
            y_prob=np.asarray(y_prob).astype(np.float32),
        )

    def commit(self, manifest: Manifest) -> Path:
        """Checksum every file, write the manifest (its ``files`` filled in), fsync, and rename
        into place."""
        if (manifest.model, manifest.run_id) != (self.model, self.run_id):
            raise ValueError(
                f"a manifest of {manifest.model}/{manifest.run_id} for run "
                f"{self.model}/{self.run_id}"
            )
        files = {}
        optional = tuple(name for name in OPTIONAL_RUN_FILES if (self.tmp / name).is_file())
        for name in RUN_FILES + optional:
            path = self.tmp / name
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            files[name] = sha256_file(path)
        if ONNX_FILE not in files:  # the record of an export goes only with its file
            manifest = replace(manifest, onnx=None)
        manifest = replace(manifest, files=files)
        with open(self.tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest.to_dict(), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.rename(self.tmp, self.final)
        self.committed = True  # published whole: from here on, nothing may remove it
        _fsync_dir(self.final.parent)
        return self.final


def add_onnx(path: Path, data: bytes, record: OnnxExport, model_sha256: str) -> bool:
    """Add ``model.onnx`` (``data``, exported from the run's ``model.keras`` whose SHA-256 is
    ``model_sha256``) and the record of its export to the finished run folder ``path``.

    Two atomic steps, file first: no manifest lists the new file yet, so the run verifies as
    before; then the manifest, naming it (a stale ``model.onnx``, exported from another
    ``model.keras``, is unlisted in a step before). A crash between them leaves the run as it was plus an
    unlisted file that the next call replaces. Calls on one run folder are serialised by an
    flock on the folder. Every other file is verified first, so a damaged run is refused
    (RunError); False, and nothing written, when the run already has a ``model.onnx`` that
    verifies (another process added it meanwhile).
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed, or the process dies
        manifest = verify_run(path, skip=(ONNX_FILE,))
        if manifest.model_sha256 != model_sha256:
            raise RunError(f"{MODEL_FILE} changed since it was exported")
        if manifest.has_onnx:
            with contextlib.suppress(RunError):
                _check_files(path, {ONNX_FILE: manifest.files[ONNX_FILE]})
                return False
        if ONNX_FILE in manifest.files:  # stale or damaged: unlisted first, so the run verifies
            files = {k: v for k, v in manifest.files.items() if k != ONNX_FILE}
            manifest = replace(manifest, files=files, onnx=None)
            write_atomic(path / MANIFEST, json.dumps(manifest.to_dict(), indent=2))
        write_atomic(path / ONNX_FILE, data)
        files = {**manifest.files, ONNX_FILE: hashlib.sha256(data).hexdigest()}
        manifest = replace(manifest, files=files, onnx=record, onnx_missing=None)
        write_atomic(path / MANIFEST, json.dumps(manifest.to_dict(), indent=2))
        _fsync_dir(path)
        return True
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make renames inside ``path`` durable, where the system allows."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_stale_tmp(model: str, root: Path | str | None = None) -> list[str]:
    """Delete half-written runs left by killed trainers. Call only while holding the lock."""
    base = model_dir(model, root)
    removed = []
    if base.is_dir():
        for path in base.iterdir():
            if path.is_dir() and path.name.startswith(TMP_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return removed


# ----------------------------------------------------------------------------------------------
# One trainer per model


@contextlib.contextmanager
def training_lock(model: str, root: Path | str | None = None, timeout: float = 2.0):
    """Hold the model's training lock; raises TrainingBusy if another live process has it.

    The lock is an ``flock`` on a file: the kernel releases it when its process dies, so a
    killed trainer never holds it forever.
    """
    import time

    base = model_dir(model, root)
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:  # readers hold it only for an instant
                    status = read_training_status(model, root) or {}
                    raise TrainingBusy(
                        f"{model} is already being trained (pid {status.get('pid', '?')}, "
                        f"run {status.get('run_id', '?')}); wait for it or stop it"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_training(model: str, root: Path | str | None = None) -> bool:
    """Whether a live process holds the model's training lock (probed without blocking it)."""
    path = model_dir(model, root) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def write_training_status(model: str, status: dict, root: Path | str | None = None) -> None:
    status = {**status, "updated": datetime.now(UTC).isoformat(timespec="seconds")}
    write_atomic(model_dir(model, root) / STATUS_FILE, json.dumps(status))


def read_training_status(model: str, root: Path | str | None = None) -> dict | None:
    """The last status a trainer wrote, with ``running`` from the lock (not from the file)."""
    try:
        status = json.loads((model_dir(model, root) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    status["running"] = is_training(model, root)
    if not status["running"] and status.get("state") == "training":
        status["state"] = "died"  # the process ended without saying so (killed)
    return status
