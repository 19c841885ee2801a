"""core.jobs: real detached trainings started, followed, refused and stopped through it (the
live log's records and progress: tests/test_live.py)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from core import artifacts, jobs
from core.live import progress, read_log
from core.models import MODEL_NAMES

TINY_JOB = {"epochs": 1, "batch_size": 32, "seed": 0, "train_limit": 512, "log_every": 4}


# --- real detached trainings ------------------------------------------------------------------


def wait_until(predicate, timeout=240, every=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_refuses_bad_settings_and_starts_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"training images \(100\), not 128"):
        jobs.start_training("baseline", 1, 128, 0, train_limit=100, root=tmp_path)
    with pytest.raises(ValueError, match="epochs must be between 1 and 1000, not 0"):
        jobs.start_training("all", 0, 32, 0, root=tmp_path)
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        jobs.start_training(["vgg"], 1, 32, 0, root=tmp_path)
    with pytest.raises(ValueError, match="at least one model"):
        jobs.start_training([], 1, 32, 0, root=tmp_path)
    assert not list(tmp_path.rglob(jobs.JOB_FILE))
    assert all(jobs.job_status(m, tmp_path) is None for m in MODEL_NAMES)


def test_stop_refuses_when_nothing_runs(tmp_path):
    assert jobs.stop_training("baseline", tmp_path) is False
    assert jobs.stop_all(tmp_path) == []
    # A lock held and a status naming a process that is no trainer (this one): never signalled.
    with artifacts.training_lock("baseline", tmp_path):
        artifacts.write_training_status(
            "baseline", {"pid": os.getpid(), "run_id": "x", "state": "training"}, tmp_path
        )
        assert artifacts.read_training_status("baseline", tmp_path)["running"]
        assert jobs.stop_training("baseline", tmp_path) is False
        assert jobs.stop_all(tmp_path) == []
    assert not jobs.is_trainer(os.getpid()) and not jobs.is_trainer(None)


def test_all_models_trained_followed_live_and_published(tmp_path):
    (pid,) = jobs.start_training("all", root=tmp_path, **TINY_JOB)
    assert jobs.is_trainer(pid)
    # Before the trainer holds its lock (TensorFlow is still importing) a second start is
    # refused already, thanks to the job file; nothing else is launched.
    with pytest.raises(
        jobs.TrainingBusy, match=rf"baseline is already being trained \(pid {pid}\)"
    ):
        jobs.start_training("baseline", root=tmp_path, **TINY_JOB)
    assert jobs.job_status("residual", tmp_path)["state"] in ("starting", "queued")

    live = {m: jobs.LiveJob(m) for m in MODEL_NAMES}
    seen_running = {m: False for m in MODEL_NAMES}
    states = {m: set() for m in MODEL_NAMES}

    def all_ended():
        for model, job in live.items():
            before = len(job.records)
            job.poll(tmp_path)
            states[model].add(job.state)
            if job.running and job.state == "training" and len(job.records) > before:
                seen_running[model] = True
        return all(not j.running and j.state in jobs.ENDED for j in live.values())

    wait_until(all_ended, timeout=400, what="both trainings to end")
    stdout = (tmp_path / ".train-all-stdout.log").read_text()
    for model, job in live.items():
        assert job.state == "done", (job.status, stdout)
        assert seen_running[model], "records must arrive while the trainer is still training"
        kinds = [r["type"] for r in job.records]
        assert kinds[0] == "start" and kinds[-1] == "end" and "step" in kinds
        (info,) = artifacts.list_runs(model, tmp_path)
        assert info.ok and info.run_id == job.cursor.run_id
        stored, _ = read_log(info.path / artifacts.LIVE_LOG)
        assert stored == job.records  # read incrementally, the same as the whole log
        p = progress(job.records)
        assert (p.phase, p.fraction) == ("ended", 1.0)
    assert "queued" in states["residual"]  # while baseline trained
    assert jobs.stop_training("baseline", tmp_path) is False  # nothing runs any more
    assert "test accuracy" in stdout


def test_stop_ends_the_job_cleanly_and_publishes_nothing(tmp_path, tiny_root):
    shutil.copytree(tiny_root / "baseline", tmp_path / "baseline")
    before = [r.run_id for r in artifacts.list_runs("baseline", tmp_path)]
    (pid,) = jobs.start_training("baseline", 3, 32, 1, train_limit=6400, root=tmp_path, log_every=4)
    live = jobs.LiveJob("baseline")
    wait_until(
        lambda: any(r["type"] == "step" for r in live.poll(tmp_path).records),
        what="the first step record",
    )
    assert live.state == "training" and live.running and live.status["pid"] == pid
    assert jobs.stop_all(tmp_path) == [pid]  # what the page's Stop button calls
    wait_until(lambda: not live.poll(tmp_path).running, timeout=120, what="the trainer to end")
    assert live.state == "stopped" and not live.running
    # The half-written run, live log included, is gone; what was followed stays on the page.
    assert live.records[0]["type"] == "start"
    assert [r.run_id for r in artifacts.list_runs("baseline", tmp_path)] == before
    assert not [p for p in (tmp_path / "baseline").iterdir() if p.name.startswith(".tmp-")]
    assert jobs.stop_training("baseline", tmp_path) is False
    wait_until(lambda: not jobs.is_trainer(pid), timeout=30, what="the process to be reaped")


def test_job_that_never_reached_the_trainer(tmp_path):
    """A job whose process ended before writing a status reads as failed (with the end of its
    output) or, if it was stopped, stopped; an older trainer status does not hide it."""
    (tmp_path / "baseline").mkdir()
    log = tmp_path / "out.log"
    log.write_text("Traceback (most recent call last):\n  ...\nDatasetError: no Fashion-MNIST\n")
    artifacts.write_training_status(
        "baseline", {"pid": 1, "run_id": "19990101-000000-seed0-old", "state": "done"}, tmp_path
    )
    old = artifacts.read_training_status("baseline", tmp_path)["updated"]
    job = {"pid": 2**22 + 1, "models": ["baseline"], "log": str(log), "started": old + "Z"}
    (tmp_path / "baseline" / jobs.JOB_FILE).write_text(json.dumps(job))
    status = jobs.job_status("baseline", tmp_path)
    assert status["state"] == "failed" and not status["running"]
    assert status["error"].endswith("DatasetError: no Fashion-MNIST")
    assert "failed: " in jobs.status_text(status)
    (tmp_path / "baseline" / jobs.JOB_FILE).write_text(json.dumps({**job, "stop_requested": True}))
    assert jobs.job_status("baseline", tmp_path)["state"] == "stopped"
    # A trainer status written since the job started wins again.
    (tmp_path / "baseline" / jobs.JOB_FILE).write_text(json.dumps({**job, "started": old}))
    assert jobs.job_status("baseline", tmp_path)["state"] == "done"


def test_an_artifacts_folder_that_cannot_be_written_starts_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"cannot write to the artifacts folder .*FMNIST_ARTIFACTS"):
        jobs.start_training("baseline", 1, 32, 0, train_limit=512, root=blocker / "artifacts")
    assert not list(tmp_path.rglob(jobs.JOB_FILE))


def test_too_little_disk_space_starts_nothing(full_disk, tiny_root, monkeypatch):
    shutil.copytree(tiny_root / "baseline", full_disk / "baseline")
    before = {p: p.stat().st_mtime_ns for p in full_disk.rglob("*")}

    def no_process(*args, **kwargs):
        raise AssertionError("a trainer was started")

    monkeypatch.setattr(jobs.subprocess, "Popen", no_process)
    for models in ("baseline", jobs.ALL):
        with pytest.raises(artifacts.NotEnoughSpace) as info:
            jobs.start_training(models, 1, 32, 0, train_limit=512, root=full_disk)
        assert str(info.value) == (
            f"only 50 MB free on the disk of the artifacts folder {full_disk}; training needs at "
            "least 200 MB. Free some space there, or point FMNIST_ARTIFACTS at a folder on "
            "another disk and restart the dashboard"
        )
    assert isinstance(info.value, OSError)  # what the Training page reports
    assert {p: p.stat().st_mtime_ns for p in full_disk.rglob("*")} == before
    assert jobs.read_job("baseline", full_disk) is None
    run = artifacts.load_run("baseline", root=full_disk)  # verifies every file
    assert run.run_id == artifacts.default_run_id("baseline", tiny_root)


def test_status_text_quotes_the_trainers_words_verbatim():
    error = "Traceback ...\n  File /x/__init__.py\nOSError: [Errno 28] No space left on device"
    text = jobs.status_text({"state": "failed", "error": error})
    assert text.startswith("failed: `Traceback ...   File /x/__init__.py OSError: [Errno 28]")
    assert "__init__" in text  # inside a code span: no bold, no italics
    long = jobs.status_text({"state": "failed", "error": "x" * 1000 + " the last line"})
    assert "the last line`" in long  # a log's tail is kept, its start cut
