"""core.train: the command line, a real run followed live, kills, stops, reproducibility."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import artifacts, live
from core.train import TrainConfig, main, train
from tests.conftest import TINY

PROJECT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["--epochs", "-3"], "argument --epochs: must be at least 1, got -3"),
        (["--epochs", "ten"], "argument --epochs: expected a whole number, got 'ten'"),
        (["--epochs", "100000"], "epochs must be between 1 and 1000, not 100000"),
        (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["--batch-size", "70000"], r"batch size must be between 1 and the number of training"),
        (["--train-limit", "100", "--batch-size", "128"], r"training images \(100\), not 128"),
        (["--train-limit", "0"], "argument --train-limit: must be at least 1"),
        (["--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
        (["--seed", "-1"], "argument --seed: must be between 0 and 2\\*\\*31 - 1, got -1"),
        (["--make-default", "--no-default"], "not allowed with argument"),
    ],
)
def test_command_line_rejects_nonsense(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_unwritable_output_folder_is_named(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        main(["--out", str(blocker / "artifacts")])
    err = capsys.readouterr().err
    assert f"cannot write to the artifacts folder {blocker / 'artifacts'}" in err


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_too_little_disk_space_is_refused_before_anything_starts(full_disk, tiny_root, capsys):
    shutil.copytree(tiny_root / "baseline", full_disk / "baseline")
    before = files_under(full_disk)
    with pytest.raises(SystemExit) as info:
        main(["--model", "all", "--out", str(full_disk)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (
        f"only 50 MB free on the disk of the artifacts folder {full_disk}; training needs at "
        "least 200 MB. Free some space there, or train into a folder on another disk with --out"
    ) in err
    assert files_under(full_disk) == before  # no lock, status, run folder: earlier runs untouched
    with pytest.raises(SystemExit):
        main(["--out", str(full_disk / "new")])
    assert not (full_disk / "new").exists()


def test_config_validation_and_protocol_flag():
    assert TrainConfig("baseline").follows_report
    assert not TrainConfig("baseline", train_limit=100).follows_report
    assert not TrainConfig("baseline", epochs=9).follows_report
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig("vgg").validate()


def start_training(root: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "core.train", "--model", "baseline", "--out", str(root)]
    argv += ["--train-limit", "1024", "--log-every", "4", "--quiet", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_records(
    proc: subprocess.Popen, root: Path, kind: str, count: int = 1, timeout: float = 120
) -> list[dict]:
    """Tail the live log of the trainer ``proc``, as the Training page does."""
    deadline, cursor, seen = time.monotonic() + timeout, live.Cursor(), []
    while time.monotonic() < deadline:
        status = artifacts.read_training_status("baseline", root) or {}
        if status.get("pid") == proc.pid:
            records, cursor = live.follow("baseline", status.get("run_id"), root, cursor)
            seen += records
            if sum(r["type"] == kind for r in seen) >= count:
                return seen
        time.sleep(0.05)
    raise AssertionError(f"no {kind!r} record within {timeout} s; saw {seen[-3:]}")


def test_real_run_is_followed_live_and_published_whole(tmp_path):
    proc = start_training(tmp_path, "--epochs", "2")
    seen = wait_for_records(proc, tmp_path, "step", count=3)
    assert proc.poll() is None, "the log must be readable while training is still going"
    assert artifacts.is_training("baseline", tmp_path)
    assert artifacts.list_runs("baseline", tmp_path) == []  # nothing visible before the end
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    run = artifacts.load_run("baseline", root=tmp_path)
    records, _ = live.read_log(run.path / artifacts.LIVE_LOG)
    kinds = [r["type"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 2
    steps = [r for r in records if r["type"] == "step"]
    assert [r["step"] for r in steps] == sorted(r["step"] for r in steps)
    assert {"loss", "accuracy", "images_per_s", "epoch", "total_steps"} <= set(steps[0])
    assert seen[: len(seen)] == records[: len(seen)]  # what was followed live is what was kept
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [e["test_accuracy"] for e in epochs] == [h["test_accuracy"] for h in run.history]
    assert "test accuracy" in out and str(run.path) in out
    status = artifacts.read_training_status("baseline", tmp_path)
    assert status["state"] == "done" and not status["running"]
    # A quick run on a subset becomes the default only because there was none.
    assert artifacts.default_run_id("baseline", tmp_path) == run.run_id


def test_sigkill_mid_run_leaves_earlier_runs_intact(tmp_path, tiny_root):
    shutil.copytree(tiny_root / "baseline", tmp_path / "baseline")
    before = artifacts.load_run("baseline", root=tmp_path)
    proc = start_training(tmp_path, "--epochs", "3")
    wait_for_records(proc, tmp_path, "step", count=2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [r.run_id for r in artifacts.list_runs("baseline", tmp_path)] == [before.run_id]
    assert artifacts.default_run_id("baseline", tmp_path) == before.run_id
    after = artifacts.load_run("baseline", root=tmp_path)
    np.testing.assert_array_equal(after.y_prob, before.y_prob)
    assert artifacts.read_training_status("baseline", tmp_path)["state"] == "died"
    leftovers = [p.name for p in (tmp_path / "baseline").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1  # hidden from readers, removed by the next trainer
    with artifacts.training_lock("baseline", tmp_path):
        assert artifacts.remove_stale_tmp("baseline", tmp_path) == leftovers


def test_stop_signal_ends_cleanly_without_publishing(tmp_path, tiny_root):
    shutil.copytree(tiny_root / "baseline", tmp_path / "baseline")
    before = artifacts.default_run_id("baseline", tmp_path)
    proc = start_training(tmp_path, "--epochs", "3")
    wait_for_records(proc, tmp_path, "step", count=2)
    proc.send_signal(signal.SIGTERM)  # what the Stop button sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "stopped; nothing was saved" in err
    assert [r.run_id for r in artifacts.list_runs("baseline", tmp_path)] == [before]
    assert not [p for p in (tmp_path / "baseline").iterdir() if p.name.startswith(".tmp-")]
    status = artifacts.read_training_status("baseline", tmp_path)
    assert status["state"] == "stopped" and not status["running"]


def refuse(code: int):
    """A stand-in for a file operation on a full or read-only disk."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[0]) if args else None)

    return fail


@pytest.mark.parametrize(
    "where, code",
    [("predictions", errno.ENOSPC), ("publish", errno.EROFS)],
    ids=["disk-full-writing-predictions", "read-only-when-publishing"],
)
def test_disk_full_or_read_only_while_saving_publishes_nothing(
    where, code, tmp_path, tiny_root, monkeypatch, capsys
):
    shutil.copytree(tiny_root / "baseline", tmp_path / "baseline")
    before = artifacts.load_run("baseline", root=tmp_path)
    if where == "predictions":  # inside the run's folder, while its files are written
        monkeypatch.setattr(np, "savez_compressed", refuse(code))
    else:  # every file written; the rename into place fails
        monkeypatch.setattr(artifacts.os, "rename", refuse(code))
    argv = ["--model", "baseline", "--epochs", "1", "--train-limit", "512", "--log-every", "4"]
    status_code = main([*argv, "--quiet", "--out", str(tmp_path)])
    monkeypatch.undo()
    reason = os.strerror(code)
    err = capsys.readouterr().err
    assert status_code == 4
    assert f"error: could not save the baseline run ([Errno {code}] {reason}" in err
    assert "earlier runs and the default are untouched" in err
    # Nothing published, nothing half-written left, the last good run still the default.
    assert [r.run_id for r in artifacts.list_runs("baseline", tmp_path)] == [before.run_id]
    assert not [p for p in (tmp_path / "baseline").iterdir() if p.name.startswith(".tmp-")]
    assert artifacts.default_run_id("baseline", tmp_path) == before.run_id
    after = artifacts.load_run("baseline", root=tmp_path)
    np.testing.assert_array_equal(after.y_prob, before.y_prob)
    # The status says why; the Training page shows it.
    status = artifacts.read_training_status("baseline", tmp_path)
    assert status["state"] == "failed" and not status["running"]
    assert status["error"].startswith(f"OSError: [Errno {code}] {reason}")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tmp_path))
    at = AppTest.from_file(str(PROJECT / "dashboard.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/training.py").run()
    assert not at.exception
    (shown,) = [e.value for e in at.error if "failed:" in e.value]
    assert shown.startswith("**Baseline CNN**: failed: `OSError: [Errno")
    assert reason in shown and "nothing was saved, earlier runs are untouched" in shown


def test_second_trainer_is_refused_while_one_runs(tmp_path, dataset):
    proc = start_training(tmp_path, "--epochs", "3")
    try:
        wait_for_records(proc, tmp_path, "start")
        with pytest.raises(artifacts.TrainingBusy, match=r"pid \d+"):
            train(TrainConfig("baseline", **TINY), dataset, tmp_path)
    finally:
        proc.kill()
        proc.wait()


def test_same_seed_same_result(tmp_path, tiny_root, dataset):
    path = train(TrainConfig("baseline", seed=0, **TINY), dataset, tmp_path)
    again = artifacts.load_run("baseline", path.name, tmp_path)
    first = artifacts.load_run("baseline", root=tiny_root)
    np.testing.assert_allclose(again.y_prob, first.y_prob, atol=1e-6)


def test_stored_model_reproduces_stored_probabilities(tiny_root, dataset):
    from core.data import normalise

    run = artifacts.load_run("residual", root=tiny_root)
    model = run.load_keras_model()
    y_prob = model.predict(normalise(dataset.x_test), batch_size=1000, verbose=0)
    np.testing.assert_allclose(y_prob, run.y_prob, atol=1e-5)
    np.testing.assert_array_equal(run.y_true, dataset.y_test)
    assert (y_prob.argmax(1) == run.y_true).mean() == run.manifest.test_metrics.accuracy


def test_disk_full_after_publishing_keeps_the_run_and_the_old_default(
    tmp_path, tiny_root, dataset, monkeypatch, capsys
):
    shutil.copytree(tiny_root / "baseline", tmp_path / "baseline")
    before = artifacts.default_run_id("baseline", tmp_path)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts, "set_default", full)
    path = train(TrainConfig("baseline", **TINY), dataset, tmp_path, make_default=True)
    assert artifacts.load_run("baseline", path.name, tmp_path).run_id == path.name
    assert artifacts.default_run_id("baseline", tmp_path) == before
    assert "could not be made the default" in capsys.readouterr().err
