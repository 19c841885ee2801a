"""core.artifacts: complete runs, verification, damage, defaults, path safety and the lock."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace

import numpy as np
import pytest

from core import artifacts
from core.artifacts import RunError, TrainingBusy
from core.data import FILES
from core.manifest import Manifest, Protocol
from core.metrics import headline
from core.models import MODEL_NAMES


@pytest.fixture
def root(tmp_path, tiny_root):
    """A private copy of the tiny runs, free to damage."""
    dest = tmp_path / "artifacts"
    shutil.copytree(tiny_root, dest, ignore=shutil.ignore_patterns(".train.lock"))
    return dest


def only_run(root, model):
    (info,) = artifacts.list_runs(model, root)
    return info


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_complete_run(tiny_root, model):
    run = artifacts.load_run(model, root=tiny_root)
    # Besides the run's files, only its derived cache/ (pages fill it on first use; not a run file)
    names = sorted(p.name for p in run.path.iterdir() if p.name != "cache")
    assert names == sorted([*artifacts.RUN_FILES, artifacts.ONNX_FILE, artifacts.MANIFEST])
    assert not (run.path / "cache").exists() or (run.path / "cache").is_dir()
    assert "cache" not in run.manifest.files
    m = run.manifest
    for name, digest in m.files.items():
        assert artifacts.sha256_file(run.path / name) == digest
    assert m.model == model and m.run_id == run.run_id == run.path.name
    assert m.protocol.epochs == 1 and m.protocol.batch_size == 32
    assert m.protocol.seed == 0 and m.protocol.optimizer == "Adam"
    assert m.protocol.train_images == 512 and m.protocol.follows_report is False
    assert {"tensorflow", "keras", "numpy", "python"} <= set(m.versions)
    assert m.dataset.sha256 == FILES
    assert m.started <= m.finished and len(m.seconds_per_epoch) == 1
    assert asdict(m.test_metrics) == headline(run.y_true, run.y_prob)
    assert m.params == artifacts.get_spec(model).params
    assert run.history[0]["epoch"] == 1 and "test_accuracy" in run.history[0]
    assert run.y_prob.shape == (10_000, 10)


def test_checksums_are_remembered_across_processes_while_files_are_unchanged(root, monkeypatch):
    """A run verified once is verified again without reading its files (a fresh process: the
    in-process memo is empty), until a file changes; a damaged or lying memo changes nothing."""
    monkeypatch.setattr(artifacts, "RACY_SECONDS", -1.0)  # the files were just written
    info = only_run(root, "residual")
    memo = info.path / "cache" / artifacts.CHECKSUM_MEMO
    assert info.ok and memo.is_file()
    assert sorted(json.loads(memo.read_text())["files"]) == sorted(info.manifest.files)
    hashed = []
    real = artifacts.sha256_file

    def counting(path):
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(artifacts, "sha256_file", counting)
    artifacts._HASHES.clear()  # what a new process starts with
    assert only_run(root, "residual").ok and hashed == []
    artifacts._HASHES.clear()
    damage_predictions(info.path)  # same kind of file, new content: its ctime moved on
    listed = only_run(root, "residual")
    assert not listed.ok and "predictions.npz does not match its checksum" in listed.problem
    assert hashed == [artifacts.PREDICTIONS]
    # A memo that lies about an unchanged file is not believed: the file is hashed again.
    good = only_run(root, "baseline")
    memo = good.path / "cache" / artifacts.CHECKSUM_MEMO
    data = json.loads(memo.read_text())
    data["files"][artifacts.HISTORY_FILE][5] = "0" * 64
    memo.write_text(json.dumps(data))
    artifacts._HASHES.clear()
    hashed.clear()
    assert only_run(root, "baseline").ok and hashed == [artifacts.HISTORY_FILE]
    for garbage in ("not json", "[]", '{"format": 1, "files": {"history.json": 7}}'):
        memo.write_text(garbage)
        artifacts._HASHES.clear()
        assert only_run(root, "baseline").ok


def test_a_fresh_file_is_never_remembered(root):
    """Within RACY_SECONDS of a write, a hash is not kept: a second write in the same clock tick
    could otherwise hide behind it."""
    info = only_run(root, "residual")
    (info.path / "cache" / artifacts.CHECKSUM_MEMO).unlink(missing_ok=True)
    history = info.path / artifacts.HISTORY_FILE
    history.write_bytes(history.read_bytes())  # same content, ctime now
    artifacts._HASHES.clear()
    assert only_run(root, "residual").ok
    memo = info.path / "cache" / artifacts.CHECKSUM_MEMO
    kept = json.loads(memo.read_text())["files"] if memo.exists() else {}
    assert artifacts.HISTORY_FILE not in kept


def test_pointer_is_a_plain_file(tiny_root):
    for model in MODEL_NAMES:
        pointer = tiny_root / model / artifacts.DEFAULT_POINTER
        assert pointer.is_file() and not pointer.is_symlink()
        assert pointer.read_text().strip() == artifacts.default_run_id(model, tiny_root)


def damage_predictions(path):
    with np.load(path / artifacts.PREDICTIONS) as npz:
        y_true, y_prob = npz["y_true"], npz["y_prob"].copy()
    y_prob[0] = np.roll(y_prob[0], 1)  # still valid probabilities: only the checksum tells
    np.savez_compressed(path / artifacts.PREDICTIONS, y_true=y_true, y_prob=y_prob)


def truncate_model(path):
    data = (path / artifacts.MODEL_FILE).read_bytes()
    (path / artifacts.MODEL_FILE).write_bytes(data[: len(data) // 2])


def drop_manifest(path):
    (path / artifacts.MANIFEST).unlink()


def future_manifest(path):
    manifest = json.loads((path / artifacts.MANIFEST).read_text())
    manifest["format_version"] = 99
    (path / artifacts.MANIFEST).write_text(json.dumps(manifest))


def missing_history(path):
    (path / artifacts.HISTORY_FILE).unlink()


@pytest.mark.parametrize(
    "damage, reason",
    [
        (damage_predictions, "predictions.npz does not match its checksum"),
        (truncate_model, "model.keras does not match its checksum"),
        (drop_manifest, "manifest.json is missing"),
        (future_manifest, "format version 99"),
        (missing_history, "history.json is missing"),
    ],
)
def test_damaged_run_is_named_and_never_served(root, damage, reason):
    info = only_run(root, "residual")
    damage(info.path)
    listed = only_run(root, "residual")
    assert not listed.ok and reason in listed.problem
    with pytest.raises(RunError, match=reason):
        artifacts.load_run("residual", info.run_id, root)
    assert artifacts.default_run_id("residual", root) is None  # no good run left to open
    with pytest.raises(RunError, match="no usable run"):
        artifacts.load_run("residual", root=root)
    assert only_run(root, "baseline").ok  # the other model is unaffected
    artifacts.load_run("baseline", root=root)


def test_damaged_default_falls_back_to_the_last_good_run(root):
    good = only_run(root, "baseline")
    second = root / "baseline" / "20990101-000000-seed1-abcd"
    shutil.copytree(good.path, second)
    manifest = json.loads((second / artifacts.MANIFEST).read_text())
    manifest["run_id"] = second.name
    (second / artifacts.MANIFEST).write_text(json.dumps(manifest))
    artifacts.set_default("baseline", second.name, root)
    assert artifacts.default_run_id("baseline", root) == second.name
    damage_predictions(second)
    assert artifacts.default_run_id("baseline", root) == good.run_id
    with pytest.raises(RunError, match="does not match its checksum"):
        artifacts.set_default("baseline", second.name, root)


def test_manifest_copied_from_another_run_is_rejected(root):
    info = only_run(root, "baseline")
    renamed = info.path.with_name("20990101-000000-seed0-ffff")
    info.path.rename(renamed)
    assert "folder is '20990101-000000-seed0-ffff'" in only_run(root, "baseline").problem


def edit_manifest(path, change) -> None:
    """Rewrite the run's manifest.json as raw JSON, changed by ``change(dict)``."""
    manifest = json.loads((path / artifacts.MANIFEST).read_text())
    change(manifest)
    (path / artifacts.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda m: m.pop("protocol"), "manifest.json lacks 'protocol'"),
        (lambda m: m.pop("test_metrics"), "manifest.json lacks 'test_metrics'"),
        (lambda m: m.pop("files"), "manifest.json lacks 'files'"),
        (lambda m: m["protocol"].pop("seed"), "manifest.json lacks 'protocol.seed'"),
        (lambda m: m["protocol"].update(seed="0"), "'protocol.seed' should be int, not '0'"),
        (lambda m: m["protocol"].update(seed=True), "'protocol.seed' should be int, not True"),
        (lambda m: m.update(protocol=[1]), "'protocol' is not an object"),
        (lambda m: m["test_metrics"].update(accuracy=None), "'test_metrics.accuracy' should be"),
        (lambda m: m.update(files=["model.keras"]), "'files' should be dict[str, str]"),
        (lambda m: m["seconds_per_epoch"].append("x"), "'seconds_per_epoch[1]' should be float"),
        (lambda m: m.update(dataset={"source": "x"}), "manifest.json lacks 'dataset.sha256'"),
    ],
)
def test_a_missing_or_ill_typed_manifest_field_is_named(root, change, reason):
    info = only_run(root, "baseline")
    edit_manifest(info.path, change)
    listed = only_run(root, "baseline")
    assert not listed.ok and reason in listed.problem and listed.manifest is None
    with pytest.raises(RunError, match=re.escape(reason)):
        artifacts.load_run("baseline", info.run_id, root)


def test_fields_older_runs_lack_may_be_missing(root):
    """Runs trained before the compute settings (and before the data set was recorded) load."""
    info = only_run(root, "baseline")
    edit_manifest(info.path, lambda m: (m.pop("compute"), m.pop("dataset")))
    run = artifacts.load_run("baseline", info.run_id, root)
    assert run.manifest.compute is None and run.manifest.dataset is None
    assert "compute" not in run.manifest.to_dict() and artifacts.check_dataset(run) == []


def test_manifest_is_written_as_it_is_read(tiny_root):
    run = artifacts.load_run("residual", root=tiny_root)
    text = (run.path / artifacts.MANIFEST).read_text()
    assert json.dumps(run.manifest.to_dict(), indent=2) == text
    assert Manifest.from_dict(json.loads(text)) == run.manifest
    assert run.manifest.model_sha256 == run.manifest.files[artifacts.MODEL_FILE]
    assert isinstance(run.manifest.protocol, Protocol)
    assert run.manifest.compute.steps_per_execution >= 1


def test_a_manifest_of_another_run_is_not_committed(root):
    source = artifacts.load_run("baseline", root=root)
    with artifacts.RunWriter("baseline", "r-other", root) as writer:
        for name in artifacts.RUN_FILES:
            shutil.copy(source.path / name, writer.file(name))
        with pytest.raises(ValueError, match="a manifest of baseline/"):
            writer.commit(source.manifest)
    assert [info.run_id for info in artifacts.list_runs("baseline", root)] == [source.run_id]


def test_run_labels_compact_for_the_sidebar_detailed_for_training(root):
    info = only_run(root, "baseline")
    rid, acc = info.run_id, f"{info.manifest.test_metrics.accuracy:.4f}"
    assert info.label(compact=True) == (
        f"{rid[:8]} {rid[9:15]} · seed 0 · acc {acc} · quick: 1 ep, 512 img · default"
    )
    assert info.label() == f"{rid} · acc {acc} · quick: 1 ep, batch 32, 512 img · default"
    full = replace(
        info,
        is_default=False,
        manifest=replace(
            info.manifest,
            protocol=replace(info.manifest.protocol, follows_report=True, train_images=60_000),
        ),
    )
    assert full.label(compact=True) == f"{rid[:8]} {rid[9:15]} · seed 0 · acc {acc}"
    assert full.label() == f"{rid} · acc {acc}"
    quick = replace(full, manifest=replace(full.manifest, protocol=replace(
        full.manifest.protocol, follows_report=False, train_images=12_000
    )))  # fmt: skip
    assert quick.label().endswith("quick: 1 ep, batch 32, 12,000 img")
    assert quick.label(compact=True).endswith("quick: 1 ep, 12000 img")
    truncate_model(info.path)
    damaged = only_run(root, "baseline")
    assert damaged.label() == f"{rid} (damaged: {damaged.problem})"


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    path = tmp_path / "pointer"
    artifacts.write_atomic(path, "old\n")
    artifacts.write_atomic(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    monkeypatch.setattr(artifacts.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28)))
    with pytest.raises(OSError):
        artifacts.write_atomic(path, "lost")
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["pointer"]


def test_check_writable_names_the_folder(tmp_path):
    assert artifacts.check_writable(tmp_path / "new" / "artifacts") is None
    (tmp_path / "file").write_text("")
    problem = artifacts.check_writable(tmp_path / "file" / "artifacts")
    assert problem.startswith(f"cannot write to the artifacts folder {tmp_path / 'file'}")


def test_check_free_space_names_the_folder_what_is_free_and_what_is_needed(full_disk):
    folder = full_disk / "new" / "artifacts"
    problem = artifacts.check_free_space(folder)
    assert problem == (
        f"only 50 MB free on the disk of the artifacts folder {folder}; training needs at "
        "least 200 MB. Free some space there"
    )
    assert not (full_disk / "new").exists()  # measured on the nearest existing parent
    assert artifacts.check_free_space(folder, needed=50 * 10**6) is None


def test_check_free_space_passes_where_there_is_room(tmp_path):
    assert artifacts.check_free_space(tmp_path / "new", needed=1) is None
    problem = artifacts.check_free_space(tmp_path, needed=10**18)
    assert problem.endswith("training needs at least 1,000,000,000,000 MB. Free some space there")


@pytest.mark.parametrize(
    "run_id", ["..", "../residual", "/etc", ".tmp-x", "a/b", "", "x" * 200, "..hidden", "a\x00b"]
)
def test_run_ids_cannot_leave_the_artifacts_folder(root, run_id):
    with pytest.raises(RunError, match="invalid run id"):
        artifacts.load_run("baseline", run_id, root)


def test_unknown_model_is_rejected(root):
    with pytest.raises(ValueError, match="unknown model"):
        artifacts.list_runs("../etc", root)


def test_half_written_runs_are_invisible_and_cleaned(root):
    with pytest.raises(ZeroDivisionError), artifacts.RunWriter("baseline", "r1", root) as writer:
        writer.file(artifacts.LIVE_LOG).write_text("{}\n")
        assert writer.tmp.is_dir()
        raise ZeroDivisionError
    assert not (root / "baseline" / ".tmp-r1").exists()
    (root / "baseline" / ".tmp-r2").mkdir()  # as a SIGKILLed trainer leaves it
    assert [r.run_id for r in artifacts.list_runs("baseline", root)] == [
        only_run(root, "baseline").run_id
    ]
    assert artifacts.remove_stale_tmp("baseline", root) == [".tmp-r2"]


HOLD = """
import sys, time
from core import artifacts
with artifacts.training_lock("baseline", sys.argv[1]):
    artifacts.write_training_status("baseline", {"pid": 1, "run_id": "r", "state": "training"},
                                    sys.argv[1])
    print("held", flush=True)
    time.sleep(60)
"""


def test_lock_excludes_a_second_trainer_and_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert artifacts.is_training("baseline", tmp_path)
        assert artifacts.read_training_status("baseline", tmp_path)["state"] == "training"
        with (
            pytest.raises(TrainingBusy, match="already being trained"),
            artifacts.training_lock("baseline", tmp_path, timeout=0.2),
        ):
            pass
        assert not artifacts.is_training("residual", tmp_path)  # one lock per model
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs
        holder.wait()
    time.sleep(0.1)
    assert not artifacts.is_training("baseline", tmp_path)
    assert artifacts.read_training_status("baseline", tmp_path)["state"] == "died"
    with artifacts.training_lock("baseline", tmp_path, timeout=0.2):
        assert artifacts.is_training("baseline", tmp_path)


# ----------------------------------------------------------------------------------------------
# A trainer killed (SIGKILL: no clean-up runs) at any point of publishing a run


PUBLISH = """
import dataclasses, json, os, shutil, signal, sys
from pathlib import Path
from core import artifacts
from core.manifest import Manifest, Protocol

root, source, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
run_id = "20990101-000000-seed0-kill"


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def then_die(real):
    def call(*args, **kwargs):
        real(*args, **kwargs)
        die()
    return call


def half_then_die(obj, f, **kwargs):
    f.write(json.dumps(obj)[:200])
    f.flush()
    die()


manifest = dataclasses.replace(artifacts.read_manifest(source), run_id=run_id)
with artifacts.RunWriter("baseline", run_id, root) as writer:
    for i, name in enumerate(artifacts.RUN_FILES):
        if point == "files" and i == 2:
            (writer.file(name)).write_bytes((source / name).read_bytes()[:100])
            die()
        shutil.copy(source / name, writer.file(name))
    if point == "manifest":
        json.dump = half_then_die
    if point == "rename":
        os.rename = die
    if point == "renamed":
        os.rename = then_die(os.rename)
    writer.commit(manifest)
if point == "pointer":
    os.replace = die
if point == "pointer-replaced":
    os.replace = then_die(os.replace)
artifacts.set_default("baseline", run_id, root)
print("finished")
"""
KILL_POINTS = ["files", "manifest", "rename", "renamed", "pointer", "pointer-replaced"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_while_publishing_loses_nothing(root, point):
    before = artifacts.load_run("baseline", root=root)
    done = subprocess.run(
        [sys.executable, "-c", PUBLISH, str(root), str(before.path), point],
        cwd=artifacts.PROJECT_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr  # killed, not finished
    published = point in ("renamed", "pointer", "pointer-replaced")
    listed = artifacts.list_runs("baseline", root)
    assert all(info.ok for info in listed), [info.problem for info in listed]
    new = "20990101-000000-seed0-kill"
    assert sorted(info.run_id for info in listed) == sorted(
        [before.run_id, new] if published else [before.run_id]
    )
    # The default stays the last good run until the new pointer is in place, whole.
    default = new if point == "pointer-replaced" else before.run_id
    assert artifacts.default_run_id("baseline", root) == default
    again = artifacts.load_run("baseline", before.run_id, root)
    np.testing.assert_array_equal(again.y_prob, before.y_prob)
    if published:
        artifacts.load_run("baseline", new, root)
    # What a killed writer leaves is hidden, and the next trainer removes it.
    stale = artifacts.remove_stale_tmp("baseline", root)
    assert stale == ([] if published else [f".tmp-{new}"])


def test_a_run_renamed_into_place_counts_as_published(root, monkeypatch):
    """If making the rename durable fails afterwards, the run is whole: it is kept, not lost."""
    source = artifacts.load_run("baseline", root=root)
    monkeypatch.setattr(artifacts.os, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(5)))
    with artifacts.RunWriter("baseline", "r-fsync", root) as writer:
        for name in artifacts.RUN_FILES:
            shutil.copy(source.path / name, writer.file(name))
        path = writer.commit(replace(source.manifest, run_id="r-fsync"))
    monkeypatch.undo()
    assert path.is_dir() and artifacts.load_run("baseline", "r-fsync", root).run_id == "r-fsync"


# ----------------------------------------------------------------------------------------------
# The data set changed on disk since a run was trained


@pytest.fixture
def dataset_copy(tmp_path, monkeypatch):
    """A private copy of the real files, found first through $FASHION_MNIST_DIR."""
    from core import data

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in FILES:
        shutil.copy(data.DEBIAN_DIR / name, folder / name)
    monkeypatch.setenv(data.ENV_VAR, str(folder))
    return folder


def alter_labels(folder) -> None:
    import gzip

    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 10])))  # one label


def test_an_unchanged_data_set_is_not_reported(tiny_root, dataset_copy):
    run = artifacts.load_run("baseline", root=tiny_root)
    assert artifacts.check_dataset(run) == []
    (info,) = artifacts.list_runs("baseline", tiny_root)
    assert artifacts.check_dataset(info) == []  # a listing entry works too


def test_a_data_set_file_altered_since_training_is_named(tiny_root, dataset_copy):
    run = artifacts.load_run("baseline", root=tiny_root)
    alter_labels(dataset_copy)
    (change,) = artifacts.check_dataset(run)
    assert change.startswith(f"t10k-labels-idx1-ubyte.gz in $FASHION_MNIST_DIR: {dataset_copy}:")
    assert "SHA-256" in change and FILES["t10k-labels-idx1-ubyte.gz"][:12] in change
    # Damaged beyond reading: said so.
    (dataset_copy / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b truncated")
    changes = artifacts.check_dataset(run)
    assert any(
        c.startswith("train-images-idx3-ubyte.gz") and "cannot be read" in c for c in changes
    )


def test_data_set_check_without_a_record_or_without_files(tiny_root, monkeypatch, tmp_path):
    from core import data

    run = artifacts.load_run("baseline", root=tiny_root)
    old = replace(run, manifest=replace(run.manifest, dataset=None))
    assert artifacts.check_dataset(old) == []
    monkeypatch.setattr(data, "candidate_dirs", lambda: [("nowhere", tmp_path / "none")])
    assert artifacts.check_dataset(run) == []


def test_data_set_hashes_are_remembered_across_processes(tiny_root, dataset_copy, monkeypatch):
    """A later process checks the data set without decompressing it (the run's checksum memo
    holds the content hashes of these very files); a changed file is hashed again and named,
    and a memo that lies about an unchanged file is not believed."""
    from core import data

    monkeypatch.setattr(artifacts, "RACY_SECONDS", -1.0)  # the copies were just written
    run = artifacts.load_run("baseline", root=tiny_root)
    assert artifacts.check_dataset(run) == []
    memo = run.path / "cache" / artifacts.CHECKSUM_MEMO
    stored = json.loads(memo.read_text())
    assert {str((dataset_copy / n).resolve()) for n in FILES} <= set(stored["dataset"])
    assert sorted(stored["files"]) == sorted(run.manifest.files)  # the run's own entries stay
    data._DIGESTS.clear()  # what a new process starts with
    with monkeypatch.context() as m:
        m.setattr(data.gzip, "open", lambda *a, **k: pytest.fail("decompressed again"))
        assert artifacts.check_dataset(run) == []
    alter_labels(dataset_copy)  # new content, new ctime: the memo's entry no longer applies
    data._DIGESTS.clear()
    (change,) = artifacts.check_dataset(run)
    assert change.startswith("t10k-labels-idx1-ubyte.gz in $FASHION_MNIST_DIR:")
    # A lying memo (an unchanged file recorded with another hash) condemns nothing.
    shutil.copy(data.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz", dataset_copy)
    data._DIGESTS.clear()
    assert artifacts.check_dataset(run) == []
    stored = json.loads(memo.read_text())
    for entry in stored["dataset"].values():
        entry[5] = "0" * 64
    memo.write_text(json.dumps(stored))
    data._DIGESTS.clear()
    assert artifacts.check_dataset(run) == []
    for garbage in ("not json", '{"format": 1, "files": {}, "dataset": []}'):
        memo.write_text(garbage)
        assert artifacts.check_dataset(run) == []


def test_data_set_hashes_are_cached_by_size_and_time(dataset_copy, monkeypatch):
    from core import data

    path = dataset_copy / "t10k-labels-idx1-ubyte.gz"
    first = data.content_sha256(path)
    monkeypatch.setattr(data.gzip, "open", lambda *a, **k: pytest.fail("hashed again"))
    assert data.content_sha256(path) == first  # same size and time: from the cache
    monkeypatch.undo()
    alter_labels(dataset_copy)
    assert data.content_sha256(path) != first


def test_remembered_hash_never_hides_a_change(tmp_path, monkeypatch):
    """Hashes are remembered per file identity and change times: an edit that keeps the size and
    puts the modification time back is still seen (the kernel moves ctime on every write)."""
    monkeypatch.setattr(artifacts, "RACY_SECONDS", 0.0)  # remember even a file written just now
    file = tmp_path / "weights.bin"
    file.write_bytes(b"a" * 4096)
    before = file.stat()
    assert artifacts.sha256_file(file) == hashlib.sha256(b"a" * 4096).hexdigest()
    assert artifacts.sha256_file(file) == hashlib.sha256(b"a" * 4096).hexdigest()  # remembered
    time.sleep(0.01)
    file.write_bytes(b"b" * 4096)  # same size
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))  # same modification time
    assert artifacts.sha256_file(file) == hashlib.sha256(b"b" * 4096).hexdigest()


def test_recently_written_files_are_not_remembered(tmp_path):
    file = tmp_path / "fresh.bin"
    file.write_bytes(b"x")
    artifacts.sha256_file(file)
    assert not any(key[0] == str(file.resolve()) for key in artifacts._HASHES)
