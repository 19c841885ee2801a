"""Fashion-MNIST: find the four original IDX files, verify them, parse them with numpy.

Places are tried in order: ``$FASHION_MNIST_DIR``, Debian's ``dataset-fashion-mnist`` package,
the Keras cache, and finally a download into the Keras cache. Every file is checked by SHA-256
before it is used; nothing here imports TensorFlow.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (28, 28)

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DOWNLOAD_MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)

# SHA-256 of the *decompressed* IDX bytes of the original 2017 release (zalandoresearch).
# We hash the content rather than the .gz bytes because repackagers rewrite gzip headers
# (Debian's strip-nondeterminism drops the file name and resets the time stamp), which changes
# the .gz checksum while the images and labels stay identical.
FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8}  # the only element type Fashion-MNIST uses


class DatasetError(RuntimeError):
    """The data set could not be found, read or verified; the message says how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (n, 28, 28), labels as uint8 (n,), and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: dict[str, str]


def keras_cache_dir() -> Path:
    """Where Keras keeps Fashion-MNIST (``$KERAS_HOME`` or ``~/.keras``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "fashion-mnist"


def candidate_dirs() -> list[tuple[str, Path]]:
    """The places searched, in order, as (label, folder)."""
    places = []
    if os.environ.get(ENV_VAR):
        places.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR])))
    places.append((f"Debian package {DEBIAN_PACKAGE}", DEBIAN_DIR))
    places.append(("Keras cache", keras_cache_dir()))
    return places


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse uncompressed IDX bytes into an array, checking the magic number and dimensions."""
    if len(raw) < 4:
        raise DatasetError(f"{name}: too short to be an IDX file ({len(raw)} bytes).")
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise DatasetError(
            f"{name}: bad magic number 0x{raw[:4].hex()} (expected 0x00000801 for labels "
            "or 0x00000803 for images)."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{name}: truncated header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != IMAGE_SHAPE:
        raise DatasetError(f"{name}: images are {dims[1]}x{dims[2]}, expected 28x28.")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DatasetError(
            f"{name}: {len(raw)} bytes but the header announces {dims} ({expected} bytes); "
            "the file is truncated or corrupted."
        )
    return np.frombuffer(raw, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(dims)


def read_verified(path: Path, name: str | None = None) -> tuple[bytes, str]:
    """Decompress one file and check its content SHA-256 against the original release's value
    for ``name`` (default: the file's own name); returns (IDX bytes, sha256)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # truncated or not gzip at all
        raise DatasetError(f"{path}: cannot be decompressed ({exc}).") from exc
    digest = hashlib.sha256(raw).hexdigest()
    want = FILES[name or path.name]
    if digest != want:
        raise DatasetError(f"{path}: SHA-256 {digest[:16]}… does not match {want[:16]}….")
    return raw, digest


def _try_dir(folder: Path, names=FILES) -> tuple[dict[str, bytes], dict[str, str]]:
    raws, digests = {}, {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{path}: not found.")
        raws[name], digests[name] = read_verified(path)
    return raws, digests


_DIGESTS: dict[tuple[str, int, int], str | None] = {}  # (path, size, mtime_ns) -> digest


def content_sha256(path: Path) -> str | None:
    """SHA-256 of a .gz file's decompressed content (as in ``FILES``), None if it cannot be
    read. Cached by path, size and modification time: asking again costs one ``stat``."""
    try:
        info = path.stat()
    except OSError:
        return None
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        try:
            with gzip.open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            value = digest.hexdigest()
        except (OSError, EOFError, zlib.error):
            value = None
        if len(_DIGESTS) > 64:  # files that keep changing: forget old versions
            _DIGESTS.clear()
        _DIGESTS[key] = value
    return _DIGESTS[key]


def dataset_place() -> tuple[str, Path] | None:
    """(label, folder) of the first searched place holding all four files, whether or not they
    verify; None if no place holds them. For telling whether a run's data set has changed since
    (``core.artifacts.check_dataset``)."""
    for label, folder in candidate_dirs():
        if all((folder / name).is_file() for name in FILES):
            return label, folder
    return None


def download(folder: Path, mirrors: tuple[str, ...] | None = None) -> None:
    """Fetch missing or damaged files into ``folder`` with a progress bar, verifying each one
    before it replaces anything."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        try:
            read_verified(folder / name)
            continue
        except DatasetError:
            pass  # missing or damaged: fetch it
        errors = []
        for base in mirrors or DOWNLOAD_MIRRORS:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            try:
                with (
                    os.fdopen(fd, "wb") as out,
                    urllib.request.urlopen(base + name, timeout=30) as resp,
                ):
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=name) as bar:
                        while chunk := resp.read(1 << 16):
                            out.write(chunk)
                            bar.update(len(chunk))
                read_verified(Path(tmp), name)
                os.replace(tmp, folder / name)
                break
            except (OSError, DatasetError) as exc:
                errors.append(f"{base + name}: {exc}")
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            raise DatasetError("download failed: " + "; ".join(errors))


def load_dataset(allow_download: bool = True, test_only: bool = False) -> Dataset:
    """Load the real Fashion-MNIST from the first place that holds all four verified files.

    ``test_only`` reads and verifies just the two test files (the dashboard's galleries need no
    training images); the training arrays are then empty.
    """
    tried = []
    names = SPLITS["test"] if test_only else tuple(FILES)
    for label, folder in candidate_dirs():
        try:
            raws, digests = _try_dir(folder, names)
            return _build(raws, digests, source=f"{label}: {folder}")
        except DatasetError as exc:
            tried.append(f"  - {label} ({folder}): {exc}")
    if allow_download:
        cache = keras_cache_dir()
        try:
            download(cache)
            raws, digests = _try_dir(cache)
            return _build(raws, digests, source=f"download into {cache}")
        except DatasetError as exc:
            tried.append(f"  - download into {cache}: {exc}")
    raise DatasetError(
        "Fashion-MNIST was not found or did not verify. Tried, in order:\n"
        + "\n".join(tried)
        + "\nTo fix it, do one of:\n"
        f"  - install Debian's package: sudo apt-get install -y {DEBIAN_PACKAGE}\n"
        f"  - put the four original .gz files in a folder and set {ENV_VAR} to it\n"
        "  - connect to the internet so the files can be downloaded into the Keras cache\n"
        "A file that is present but fails its check is damaged: delete it and fetch it again."
    )


def _build(raws: dict[str, bytes], digests: dict[str, str], source: str) -> Dataset:
    arrays = {name: parse_idx(raw, name) for name, raw in raws.items()}
    empty = (np.zeros((0, *IMAGE_SHAPE), np.uint8), np.zeros(0, np.uint8))
    out = {}
    for split, (images, labels) in SPLITS.items():
        if images not in arrays:
            out[split] = empty
            continue
        x, y = arrays[images], arrays[labels]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(
                f"{split}: {images} and {labels} do not match ({x.shape}, {y.shape})."
            )
        out[split] = (x, y)
    return Dataset(*out["train"], *out["test"], source=source, sha256=digests)


def normalise(x: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) → float32 (n, 28, 28, 1) in [0, 1], the report's pixels / 255."""
    return (x.astype("float32") / 255.0)[..., None]


def one_hot(y: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Integer labels (n,) → float32 one-hot (n, num_classes)."""
    return np.eye(num_classes, dtype="float32")[np.asarray(y, dtype=int)]


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of every class, class by class."""
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)])
