"""Your own test set: garments you drew or uploaded, each with the class you say is right.

Layout, under the artifacts folder (next to the model folders, never mistaken for one: the run
store lists only registered models' folders)::

    artifacts/testset/manifest.json       every item: id, label, source, SHA-256 of its file and
                                          of its pixels; written last, atomically
    artifacts/testset/items/<id>.png      one item: 28x28 8-bit greyscale, light garment on black
    artifacts/testset/.lock               held (flock) by the one process changing the set

The set is kept like a run. An item's file is written before the manifest that names it, and
the manifest is replaced atomically (``artifacts.write_atomic``), so a crash at any point leaves
the previous set whole and readable; files no manifest names (left by such a crash, or by a
removal) are deleted by the next change. Every load checks each item's SHA-256: a damaged item
is named in ``TestSet.problems`` and left out, never scored; an unreadable manifest refuses the
whole set (``TestSetError``) and every change to it, so nothing is overwritten.

Item ids are stable: ``<UTC time added>-<first 12 hex of the pixels' SHA-256>``, sortable by
time; the same pixels are never in the set twice. Export and import use a zip of these PNGs
with ``labels.csv`` (columns ``file,label,source``; on import ``source`` is optional and a label
is a class name in any case or an index 0-9); an export imported again keeps its ids. An import
merges (adds what the set lacks) or replaces. A zip is checked whole before anything is written:
a bad one raises ``ImportRefused`` naming what is wrong and changes nothing.

Scoring (``score_models``, ``compare_pair``, ``items_table``) takes each model's probabilities
for the items; running the models is the caller's job. No Streamlit, no TensorFlow here.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from scipy import stats

from core import metrics
from core.artifacts import artifacts_root, write_atomic
from core.data import CLASS_NAMES, IMAGE_SHAPE, NUM_CLASSES
from core.text import literal

FOLDER = "testset"
MANIFEST = "manifest.json"
ITEMS = "items"
LOCK = ".lock"
FORMAT = "fmnist-compare test set"
VERSION = 1
CSV_NAME = "labels.csv"
EXPORT_NAME = "my-fashion-mnist-test-set.zip"  # what a download is called
CSV_COLUMNS = ("file", "label", "source")  # source: optional on import

MAX_ITEMS = 5000  # a hand-made set; scoring and the gallery stay quick well beyond this
MAX_ZIP_BYTES = 10 << 20  # as the dashboard's upload limit (.streamlit/config.toml)
MAX_UNPACKED_BYTES = 64 << 20  # all members together, as their headers declare them
MAX_PNG_BYTES = 256 << 10  # a 28x28 PNG is under 1 KB; room for metadata chunks
MAX_CSV_BYTES = 2 << 20
MAX_MEMBERS = MAX_ITEMS + 100
MAX_LISTED = 5  # problems named in one message; the rest are counted
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed member times: the same set exports the same bytes

_ID = re.compile(r"^(\d{8}-\d{6}-\d{6})-([0-9a-f]{12})$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID_TIME = "%Y%m%d-%H%M%S-%f"
_IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db")  # what zipping on macOS / Windows adds
_FILE_COLUMNS = ("file", "filename", "image", "path")
_LABEL_COLUMNS = ("label", "class", "label_name")


class TestSetError(ValueError):
    """The set cannot be read or changed; the message says why and what to do."""

    __test__ = False  # not a test class, despite its name


class ImportRefused(TestSetError):
    """A zip that cannot be imported; nothing was changed."""


@dataclass(frozen=True)
class Item:
    """One labelled image of the set (its pixels are in ``TestSet.pixels``)."""

    __test__ = False

    id: str
    label: int  # 0..9, the class the user says is right
    sha256: str  # of the PNG file
    pixels_sha256: str  # of the 28x28 uint8 pixels, row by row
    source: str = ""  # where it came from: "Draw", "Upload a picture", "import: shirt.png"...

    @property
    def file(self) -> str:
        return f"{self.id}.png"

    @property
    def label_name(self) -> str:
        return CLASS_NAMES[self.label]

    @property
    def added(self) -> datetime:
        """When the item was added (UTC), read from its id."""
        stamp = _ID.match(self.id).group(1)
        return datetime.strptime(stamp, _ID_TIME).replace(tzinfo=UTC)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "label": self.label,
            "label_name": self.label_name,  # for people reading the file; the index is read
            "sha256": self.sha256,
            "pixels_sha256": self.pixels_sha256,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data) -> Item:
        if not isinstance(data, dict):
            raise TestSetError(f"an item is {type(data).__name__}, not an object")
        item_id, label = data.get("id"), data.get("label")
        if not isinstance(item_id, str) or not _ID.match(item_id):
            raise TestSetError(f"item id {literal(item_id)} is not an id this store writes")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < NUM_CLASSES:
            raise TestSetError(f"item {item_id}: label {literal(label)} is not a class index 0-9")
        for name in ("sha256", "pixels_sha256"):
            if not isinstance(data.get(name), str) or not _HEX64.match(data[name]):
                raise TestSetError(f"item {item_id}: {name} is not a SHA-256")
        source = data.get("source", "")
        return cls(item_id, label, data["sha256"], data["pixels_sha256"], str(source)[:200])


@dataclass(frozen=True)
class TestSet:
    """The verified items, in the order they were added, and the damaged ones left out."""

    __test__ = False

    items: tuple[Item, ...] = ()
    pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, *IMAGE_SHAPE), np.float32))
    problems: tuple[tuple[str, str], ...] = ()  # (item id, what is wrong), not scored

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        """The labels (n,) int64."""
        return np.array([item.label for item in self.items], dtype=np.int64)

    @property
    def digest(self) -> str:
        """Identifies the verified content: equal digests, equal sets (a cache key)."""
        text = "\n".join(f"{i.id} {i.label} {i.pixels_sha256}" for i in self.items)
        return hashlib.sha256(text.encode()).hexdigest()

    def index_of(self, item_id: str) -> int | None:
        return next((i for i, item in enumerate(self.items) if item.id == item_id), None)


@dataclass(frozen=True)
class Added:
    """What ``add`` did: the item added, or the one already holding these pixels."""

    item: Item
    duplicate: bool  # True: nothing was written, the set already had these pixels


@dataclass(frozen=True)
class ImportResult:
    """What ``import_zip`` did."""

    mode: str  # "merge" or "replace"
    added: int
    skipped: tuple[str, ...]  # files not added because their pixels were already in the set
    total: int  # items in the set afterwards
    removed: int = 0  # items a replace dropped

    def summary(self) -> str:
        """One sentence for the user."""
        text = f"Imported {self.added} item{'s' * (self.added != 1)}"
        if self.mode == "replace":
            text += f", replacing the {self.removed} there before"
        if self.skipped:
            shown = ", ".join(self.skipped[:MAX_LISTED])
            more = (
                f" and {len(self.skipped) - MAX_LISTED} more"
                if len(self.skipped) > MAX_LISTED
                else ""
            )
            text += f"; skipped {len(self.skipped)} already in the set ({shown}{more})"
        return f"{text}. The set now holds {self.total}."


# ----------------------------------------------------------------------------------------------
# Pixels and files


def store_dir(root: Path | str | None = None) -> Path:
    """The test set's folder under the artifacts folder (``artifacts.artifacts_root``)."""
    return artifacts_root(root) / FOLDER


def to_uint8(pixels) -> np.ndarray:
    """A prepared input (28, 28) float in [0, 1] as the 8-bit grey levels stored (rounded)."""
    pixels = np.asarray(pixels)
    if pixels.shape != IMAGE_SHAPE:
        raise TestSetError(f"an item must be one 28x28 image, got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        return pixels.copy()
    if pixels.dtype.kind != "f" or not np.isfinite(pixels).all():
        raise TestSetError("an item's pixels must be finite floats in [0, 1]")
    if pixels.min() < -1e-6 or pixels.max() > 1 + 1e-6:
        raise TestSetError("an item's pixels must lie in [0, 1]")
    return np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def pixels_sha256(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def encode_png(image: np.ndarray) -> bytes:
    """28x28 uint8 grey levels as a plain 8-bit greyscale PNG (no metadata)."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def decode_png(data: bytes, name: str) -> np.ndarray:
    """A 28x28 8-bit greyscale PNG's pixels (28, 28) uint8; TestSetError saying what is wrong."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise TestSetError(f"{name} is a {image.format} file, not a PNG")
            if image.size != IMAGE_SHAPE[::-1]:
                width, height = image.size
                raise TestSetError(
                    f"{name} is {width}x{height} pixels, not 28x28: resize it to 28x28 (or add "
                    "it through the Predict page, which prepares any picture)"
                )
            if image.mode != "L":
                raise TestSetError(
                    f"{name} is in mode {image.mode}, not 8-bit greyscale (mode L): save it as "
                    "a greyscale PNG, a light garment on black"
                )
            image.load()
            return np.asarray(image, dtype=np.uint8).copy()
    except UnidentifiedImageError as exc:
        raise TestSetError(f"{name} is not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, TestSetError):
            raise
        raise TestSetError(f"{name} is not a readable PNG ({literal(exc)})") from exc


def new_id(image: np.ndarray, now: datetime) -> str:
    return f"{now.astimezone(UTC):{_ID_TIME}}-{pixels_sha256(image)[:12]}"


def _as_float(images: Sequence[np.ndarray]) -> np.ndarray:
    if not images:
        return np.zeros((0, *IMAGE_SHAPE), np.float32)
    return (np.stack(images) / 255).astype(np.float32)  # (n, 28, 28), as the test images


# ----------------------------------------------------------------------------------------------
# Reading


def _read_items(folder: Path) -> list[Item]:
    """The manifest's items (empty without a manifest); TestSetError if it is unreadable."""
    path = folder / MANIFEST
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TestSetError(_refused(folder, f"{MANIFEST} is unreadable ({literal(exc)})")) from exc
    try:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TestSetError(f"{MANIFEST} is not a test set manifest")
        if data.get("version") != VERSION:
            raise TestSetError(
                f"{MANIFEST} has version {literal(data.get('version'))}, not {VERSION}"
            )
        if not isinstance(data.get("items"), list):
            raise TestSetError(f"{MANIFEST} has no list of items")
        items = [Item.from_dict(entry) for entry in data["items"]]
        seen = set()
        for item in items:
            if item.id in seen or item.pixels_sha256 in seen:
                raise TestSetError(f"{MANIFEST} lists item {item.id} twice")
            seen |= {item.id, item.pixels_sha256}
    except TestSetError as exc:
        raise TestSetError(_refused(folder, str(exc))) from exc
    return items


def _refused(folder: Path, why: str) -> str:
    return (
        f"The test set in {literal(folder)} cannot be read: {why}. Nothing in it was changed or "
        f"shown. Move that folder away (or restore {MANIFEST} from a backup) to start a new "
        f"set; its images stay in {ITEMS}/."
    )


def _verify(folder: Path, item: Item) -> np.ndarray:
    """The item's pixels (28, 28) uint8, after checking its file; TestSetError says why not."""
    path = folder / ITEMS / item.file
    if path.is_symlink():
        raise TestSetError("its file is a symbolic link")
    try:
        data = path.read_bytes()  # read once: the bytes checked are the bytes decoded
    except FileNotFoundError:
        raise TestSetError("its file is missing") from None
    except OSError as exc:
        raise TestSetError(f"its file cannot be read ({literal(exc.strerror or exc)})") from exc
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise TestSetError("its file does not match its checksum (altered or truncated)")
    image = decode_png(data, item.file)
    if pixels_sha256(image) != item.pixels_sha256:
        raise TestSetError("its pixels do not match the manifest")
    return image


def load(root: Path | str | None = None) -> TestSet:
    """The set, every item verified; damaged items are named in ``problems`` and left out.

    Raises TestSetError when the manifest itself cannot be read. Creates nothing.
    """
    folder = store_dir(root)
    items, images, problems = [], [], []
    for item in _read_items(folder):
        try:
            images.append(_verify(folder, item))
            items.append(item)
        except TestSetError as exc:
            problems.append((item.id, str(exc)))
    return TestSet(tuple(items), _as_float(images), tuple(problems))


# ----------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def _changing(root: Path | str | None):
    """Hold the set's lock (one writer at a time) and yield its folder and current items."""
    folder = store_dir(root)
    (folder / ITEMS).mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # changes take milliseconds: wait for the other one
        yield folder, _read_items(folder)
    finally:
        os.close(fd)  # closing releases the lock


def _write_manifest(folder: Path, items: Sequence[Item]) -> None:
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "note": "items/<id>.png: 28x28 8-bit greyscale; label: class index 0-9",
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "items": [item.to_dict() for item in items],
    }
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1))


def _write_item(folder: Path, item_id: str, png: bytes) -> None:
    path = folder / ITEMS / f"{item_id}.png"
    if path.is_file() and not path.is_symlink() and path.read_bytes() == png:
        return  # left by an earlier, interrupted change: already right
    write_atomic(path, png)


def _commit(folder: Path, items: Sequence[Item]) -> None:
    """Publish ``items`` (their files already written), then delete every file no item names."""
    _write_manifest(folder, items)
    keep = {item.file for item in items}
    for path in (folder / ITEMS).iterdir():
        if path.name not in keep:
            with contextlib.suppress(OSError):
                path.unlink()


def add(
    pixels,
    label: int,
    source: str = "",
    root: Path | str | None = None,
    now: datetime | None = None,
) -> Added:
    """Add one prepared input (28, 28) float in [0, 1] with the class ``label`` (0-9).

    The same pixels already in the set are not added again (``Added.duplicate``).
    """
    label = _check_label(label)
    image = to_uint8(pixels)
    digest = pixels_sha256(image)
    with _changing(root) as (folder, items):
        for item in items:
            if item.pixels_sha256 == digest:
                return Added(item, duplicate=True)
        if len(items) >= MAX_ITEMS:
            raise TestSetError(
                f"the test set already holds {MAX_ITEMS} items, its limit: remove some first"
            )
        png = encode_png(image)
        item = Item(new_id(image, now or datetime.now(UTC)), label,
                    hashlib.sha256(png).hexdigest(), digest, str(source)[:200])  # fmt: skip
        _write_item(folder, item.id, png)
        _commit(folder, [*items, item])
    return Added(item, duplicate=False)


def remove(item_ids: Iterable[str], root: Path | str | None = None) -> int:
    """Remove the items with these ids (damaged ones too); returns how many were removed."""
    gone = set(item_ids)
    if not store_dir(root).joinpath(MANIFEST).exists():
        return 0
    with _changing(root) as (folder, items):
        kept = [item for item in items if item.id not in gone]
        if len(kept) == len(items):
            return 0
        _commit(folder, kept)
    return len(items) - len(kept)


def _check_label(label) -> int:
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise TestSetError(f"label {literal(label)} is not a class index 0-9")
    if not 0 <= int(label) < NUM_CLASSES:
        raise TestSetError(f"label {label} is not a class index 0-9")
    return int(label)


# ----------------------------------------------------------------------------------------------
# Export and import


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.external_attr = 0o644 << 16  # a plain readable file once unzipped
    return info


def export_zip(testset: TestSet) -> bytes:
    """The verified items as a zip: ``labels.csv`` (file,label as class names) and one PNG each."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in testset.items:
        writer.writerow([item.file, item.label_name, item.source])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(_member(CSV_NAME), rows.getvalue(), zipfile.ZIP_DEFLATED)
        for item, pixels in zip(testset.items, testset.pixels, strict=True):
            image = np.rint(pixels * 255).astype(np.uint8)
            zf.writestr(_member(item.file), encode_png(image))  # PNGs are compressed already
    return buffer.getvalue()


@dataclass(frozen=True)
class Candidate:
    """One image of a zip being imported, checked."""

    name: str  # as the CSV names it
    image: np.ndarray = field(repr=False)  # (28, 28) uint8
    label: int
    kept_id: str | None  # the file's stem, when it is an id of these very pixels
    source: str = ""  # the CSV's source column, where it has one


def parse_label(text: str) -> int | None:
    """A class index from a CSV cell: a class name (any case) or an index 0-9; None if neither."""
    text = (text or "").strip()
    if re.fullmatch(r"\d", text):
        return int(text)
    lowered = {name.lower(): i for i, name in enumerate(CLASS_NAMES)}
    return lowered.get(text.lower())


def _unsafe(name: str) -> str | None:
    """Why a path inside a zip is refused (it could point outside), or None."""
    if not name:
        return "an empty name"
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        return "an absolute or Windows-style path"
    if any(part in ("", "..", ".") for part in name.rstrip("/").split("/")):
        return "a path with '..', '.' or an empty part"
    return None


def _refuse(problems: list[str], what_to_do: str) -> None:
    if problems:
        shown = "; ".join(problems[:MAX_LISTED])
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise ImportRefused(f"{shown}{more}. {what_to_do} Nothing was imported.")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, reading no more than ``limit`` (a header can lie about its size)."""
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
        raise TestSetError(
            f"{literal(info.filename)} in the zip is damaged ({literal(exc)})"
        ) from exc
    if len(data) > limit:
        raise TestSetError(
            f"{literal(info.filename)} unpacks to more than {limit >> 10} KB, where a test "
            "set's files are small (is it a zip bomb?)"
        )
    return data


def read_zip(data: bytes) -> list[Candidate]:
    """Check a zip of PNGs with a labels CSV whole; its images, labels and ids, in CSV order.

    Raises ImportRefused naming what is wrong (not a zip, too large, no CSV or several, bad
    columns or labels, unsafe or duplicate names, files missing or not listed, images not
    28x28 greyscale PNGs, the same image twice).
    """
    fix = "Fix the zip and import it again."
    if len(data) > MAX_ZIP_BYTES:
        raise ImportRefused(f"the file is {len(data) / 2**20:.1f} MB; a test set zip may be "
                            f"at most {MAX_ZIP_BYTES >> 20} MB. Nothing was imported.")  # fmt: skip
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ImportRefused(
            "the file is not a zip archive. Export a set from this page (or zip PNGs together "
            f"with a {CSV_NAME}) and import that. Nothing was imported."
        ) from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()
                 and not any(mark in i.filename for mark in _IGNORED)]  # fmt: skip
        problems = [
            f"{literal(i.filename)} is {why}" for i in infos if (why := _unsafe(i.filename))
        ]
        _refuse(problems, "Paths inside the zip must stay inside it (no '..', no leading '/').")
        names = [i.filename for i in infos]
        problems = [
            f"{literal(n)} is in the zip twice"
            for n in sorted({n for n in names if names.count(n) > 1})
        ]
        _refuse(problems, "Keep one file of each name.")
        if len(infos) > MAX_MEMBERS:
            raise ImportRefused(f"the zip holds {len(infos)} files; a test set may have at "
                                f"most {MAX_ITEMS} items. Nothing was imported.")  # fmt: skip
        unpacked = sum(i.file_size for i in infos)
        if unpacked > MAX_UNPACKED_BYTES:
            raise ImportRefused(
                f"the zip would unpack to {unpacked / 2**20:.0f} MB, more than the "
                f"{MAX_UNPACKED_BYTES >> 20} MB a test set may take (is it a zip bomb?). "
                "Nothing was imported."
            )
        problems = [f"{literal(i.filename)} is encrypted" for i in infos if i.flag_bits & 0x1]
        _refuse(problems, "Zip the files without a password.")
        by_name = {i.filename: i for i in infos}
        csvs = [n for n in names if n.lower().endswith(".csv")]
        if not csvs:
            raise ImportRefused(
                f"the zip has no labels CSV. Add a {CSV_NAME} with the columns file,label (one "
                "row per PNG; the label a class name such as Shirt, or its index 0-9). Nothing "
                "was imported."
            )
        if len(csvs) > 1:
            several = ", ".join(map(literal, csvs[:MAX_LISTED]))
            raise ImportRefused(
                f"the zip has several CSV files ({several}); keep only the labels CSV. Nothing "
                "was imported."
            )
        try:
            text = _read_member(zf, by_name[csvs[0]], MAX_CSV_BYTES)
        except TestSetError as exc:
            raise ImportRefused(f"{exc}. Nothing was imported.") from exc
        rows = _read_csv(csvs[0], text)
        base = PurePosixPath(csvs[0]).parent
        candidates, problems, listed = [], [], set()
        for line, file, label_text, source in rows:
            where = f"{literal(csvs[0])} line {line}"
            if why := _unsafe(file):
                problems.append(f"{where}: {literal(file)} is {why}")
                continue
            name = str(base / file) if str(base) != "." else file
            if name in listed:
                problems.append(f"{where}: {literal(file)} is listed twice")
                continue
            listed.add(name)
            label = parse_label(label_text)
            if label is None:
                problems.append(
                    f"{where}: unknown label {literal(label_text)} (use a class name: "
                    f"{', '.join(CLASS_NAMES)}; or its index 0-9)"
                )
            if name not in by_name:
                problems.append(f"{where}: {literal(file)} is not in the zip")
                continue
            try:
                image = decode_png(_read_member(zf, by_name[name], MAX_PNG_BYTES), literal(file))
            except TestSetError as exc:
                problems.append(str(exc))
                continue
            if label is not None:
                stem = PurePosixPath(name).stem
                match = _ID.match(stem)
                keep = match and match.group(2) == pixels_sha256(image)[:12]
                candidates.append(Candidate(file, image, label, stem if keep else None, source))
        _refuse(problems, fix)
        unlisted = [n for n in names if n.lower().endswith(".png") and n not in listed]
        problems = [f"{literal(n)} is in the zip but not in {literal(csvs[0])}" for n in unlisted]
        _refuse(problems, "Add a row for each PNG, or leave it out of the zip.")
    if not candidates:
        raise ImportRefused(f"{literal(csvs[0])} lists no images. Nothing was imported.")
    seen: dict[str, str] = {}
    problems = []
    for candidate in candidates:
        digest = pixels_sha256(candidate.image)
        if digest in seen:
            problems.append(
                f"{literal(seen[digest])} and {literal(candidate.name)} are the same image"
            )
        seen.setdefault(digest, candidate.name)
    _refuse(problems, "Keep one of each image.")
    return candidates


def _read_csv(name: str, data: bytes) -> list[tuple[int, str, str, str]]:
    """(line, file, label, source) of every row of the labels CSV (source: "" without one)."""
    name = literal(name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{name} is not UTF-8 text. Save it as UTF-8 CSV. Nothing was "
                            "imported.") from exc  # fmt: skip
    try:
        reader = csv.reader(io.StringIO(text))
        header = [cell.strip().lower() for cell in next(reader, [])]
        file_col = next((header.index(c) for c in _FILE_COLUMNS if c in header), None)
        label_col = next((header.index(c) for c in _LABEL_COLUMNS if c in header), None)
        source_col = header.index("source") if "source" in header else None
        if file_col is None or label_col is None:
            raise ImportRefused(
                f"{name} needs a header row with the columns file,label (it has "
                f"{literal(', '.join(header)) if header else 'none'}). Nothing was imported."
            )
        rows = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank lines
            line = reader.line_num
            if len(row) <= max(file_col, label_col):
                raise ImportRefused(f"{name} line {line} has {len(row)} column(s); each row "
                                    "needs a file and a label. Nothing was imported.")  # fmt: skip
            source = row[source_col] if source_col is not None and source_col < len(row) else ""
            rows.append((line, row[file_col].strip(), row[label_col], source.strip()))
    except csv.Error as exc:
        raise ImportRefused(
            f"{name} is not a valid CSV ({literal(exc)}). Nothing was imported."
        ) from exc
    if len(rows) > MAX_ITEMS:
        raise ImportRefused(f"{name} lists {len(rows)} images; a test set may have at most "
                            f"{MAX_ITEMS}. Nothing was imported.")  # fmt: skip
    return rows


IMPORT_MODES = ("merge", "replace")


def import_zip(
    data: bytes, mode: str = "merge", root: Path | str | None = None, now: datetime | None = None
) -> ImportResult:
    """Import a zip (``read_zip``'s checks first: a bad zip changes nothing).

    ``merge`` adds the zip's images to the set, skipping those whose pixels it already has;
    ``replace`` makes the set exactly the zip's images.
    """
    if mode not in IMPORT_MODES:
        raise ValueError(f"mode must be one of {IMPORT_MODES}, got {mode!r}")
    candidates = read_zip(data)
    now = now or datetime.now(UTC)
    with _changing(root) as (folder, items):
        kept = items if mode == "merge" else []
        known = {item.pixels_sha256: item for item in kept}
        taken = {item.id for item in kept}
        new, skipped = [], []
        for offset, candidate in enumerate(candidates):
            digest = pixels_sha256(candidate.image)
            if digest in known:
                skipped.append(candidate.name)
                continue
            item_id = candidate.kept_id
            if item_id is None or item_id in taken:
                item_id = new_id(candidate.image, now + timedelta(microseconds=offset))
            png = encode_png(candidate.image)
            item = Item(item_id, candidate.label, hashlib.sha256(png).hexdigest(), digest,
                        (candidate.source or f"import: {candidate.name}")[:200])  # fmt: skip
            taken.add(item_id)
            new.append((item, png))
        total = len(kept) + len(new)
        if total > MAX_ITEMS:
            raise ImportRefused(f"the set would hold {total} items, more than its limit of "
                                f"{MAX_ITEMS}. Nothing was imported.")  # fmt: skip
        for item, png in new:
            _write_item(folder, item.id, png)
        _commit(folder, [*kept, *(item for item, _ in new)])
    removed = len(items) if mode == "replace" else 0
    return ImportResult(mode, len(new), tuple(skipped), total, removed)


# ----------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class ModelScore:
    """One model on the set: accuracy with its interval, and the confusion matrix."""

    model: str
    n: int
    correct: int
    ci_low: float  # Wilson score interval of the accuracy
    ci_high: float
    confusion: np.ndarray = field(repr=False)  # (10, 10), rows true, columns predicted
    y_pred: np.ndarray = field(repr=False)  # (n,)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


def accuracy_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of ``correct`` out of ``n``.

    Wilson rather than the normal approximation: hand-made sets are small, where the normal
    interval leaves [0, 1] and undercovers; Clopper-Pearson's exact interval is wider than it
    needs to be. SciPy computes it.
    """
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def score_models(
    y_true, probs: Mapping[str, np.ndarray], confidence: float = 0.95
) -> dict[str, ModelScore]:
    """Each model's accuracy (with its interval) and confusion matrix on the set's items."""
    scores = {}
    for model, y_prob in probs.items():
        y_true_, y_prob_ = metrics.check_predictions(y_true, y_prob)
        y_pred = y_prob_.argmax(axis=1)  # (n,)
        confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        np.add.at(confusion, (y_true_, y_pred), 1)
        correct = int((y_pred == y_true_).sum())
        low, high = accuracy_interval(correct, y_true_.size, confidence)
        scores[model] = ModelScore(model, int(y_true_.size), correct, low, high, confusion, y_pred)
    return scores


def compare_pair(y_true, prob_a, prob_b) -> metrics.Comparison:
    """B against A on the set: McNemar's exact test and the paired bootstrap interval, as the
    Overview compares them on the test images (``metrics.compare``)."""
    return metrics.compare(y_true, prob_a, prob_b)


def items_table(testset: TestSet, probs: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per item: id, label, and each model's prediction, confidence and whether right."""
    table = pd.DataFrame(
        {
            "id": [item.id for item in testset.items],
            "label": [item.label_name for item in testset.items],
            "added": [item.added.strftime("%Y-%m-%d %H:%M") for item in testset.items],
            "source": [item.source for item in testset.items],
        }
    )
    for model, y_prob in probs.items():
        y_prob = np.asarray(y_prob)
        predicted = y_prob.argmax(axis=1)  # (n,)
        table[f"{model} predicted"] = [CLASS_NAMES[k] for k in predicted]
        table[f"{model} confidence"] = y_prob.max(axis=1).astype(float)
        table[f"{model} right"] = predicted == testset.labels
    return table
