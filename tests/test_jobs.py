"""core.jobs: progress from hand-made records, and real detached trainings started, followed,
refused and stopped through it."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from core import artifacts, figures, jobs
from core.models import MODEL_NAMES

TINY_JOB = {"epochs": 1, "batch_size": 32, "seed": 0, "train_limit": 512, "log_every": 4}


# --- progress from hand-made records ----------------------------------------------------------


def start_record(t=100.0, epochs=2, steps_per_epoch=10):
    return {"time": t, "type": "start", "config": {"epochs": epochs},
            "steps_per_epoch": steps_per_epoch}  # fmt: skip


def step_record(t, step, epoch, ips=640.0):
    return {"time": t, "type": "step", "step": step, "epoch": epoch, "total_steps": 20,
            "loss": 1.0, "accuracy": 0.5, "images_per_s": ips}  # fmt: skip


def epoch_record(t, epoch):
    return {"time": t, "type": "epoch", "epoch": epoch, "loss": 1.0, "accuracy": 0.5,
            "test_loss": 1.1, "test_accuracy": 0.4, "seconds": 10.0}  # fmt: skip


RECORDS = [
    start_record(),
    step_record(110.0, 5, 1),
    step_record(115.0, 10, 1),
    epoch_record(120.0, 1),
    step_record(125.0, 15, 2, ips=500.0),
]


def test_progress_mid_run():
    p = jobs.progress(RECORDS)
    # 1.5 s a step between the first and last step records (the epoch's evaluation included).
    assert p.fraction == 0.75 and p.step == 15 and p.total_steps == 20
    assert p.elapsed_s == pytest.approx(25.0)
    assert p.eta_s == pytest.approx(5 * 1.5)
    assert p.images_per_s == 500.0  # the latest window, not an average
    assert (p.epoch, p.epochs, p.phase) == (2, 2, "training")
    # The clock moves on between records: elapsed grows, the ETA shrinks (never below 0).
    later = jobs.progress(RECORDS, now=127.0)
    assert later.elapsed_s == pytest.approx(27.0) and later.eta_s == pytest.approx(5.5)
    assert jobs.progress(RECORDS, now=1000.0).eta_s == 0.0
    assert jobs.progress(RECORDS, now=50.0).elapsed_s == pytest.approx(25.0)  # clock skew


def test_progress_phases():
    assert jobs.progress([]).phase == "waiting"
    assert jobs.progress([]).eta_s is None
    p = jobs.progress([start_record()], now=104.0)
    assert (p.phase, p.fraction, p.eta_s, p.elapsed_s) == ("starting", 0.0, None, 4.0)
    # One step record: seconds per step from the start record.
    p = jobs.progress([start_record(), step_record(108.0, 4, 1)])
    assert p.eta_s == pytest.approx(16 * 2.0) and p.fraction == pytest.approx(0.2)
    # An epoch's batches are done, its held-out evaluation is not (yet), then the last epoch's.
    assert jobs.progress(RECORDS[:3]).phase == "evaluating"
    assert jobs.progress([*RECORDS, step_record(130.0, 20, 2)]).phase == "evaluating"
    full = [*RECORDS, step_record(130.0, 20, 2), epoch_record(131.0, 2)]
    p = jobs.progress(full, now=140.0)
    assert (p.phase, p.fraction, p.eta_s) == ("finishing", 1.0, 0.0)
    p = jobs.progress([*full, {"time": 135.0, "type": "end", "state": "done"}], now=500.0)
    assert (p.phase, p.fraction, p.eta_s, p.elapsed_s) == ("ended", 1.0, 0.0, 35.0)
    # Stopped early: the fraction says how far it got.
    p = jobs.progress([*RECORDS, {"time": 126.0, "type": "end", "state": "stopped"}])
    assert (p.phase, p.fraction) == ("ended", 0.75)


def test_progress_text():
    assert jobs.clock(75) == "1:15" and jobs.clock(3725) == "1:02:05" and jobs.clock(None) == "–"
    text = jobs.progress_text(jobs.progress(RECORDS, now=127.0))
    assert text == "epoch 2/2 · step 15/20 · 0:27 elapsed · about 0:06 left · 500 images/s"
    assert "held-out test set" in jobs.progress_text(jobs.progress(RECORDS[:3]))
    assert jobs.progress_text(jobs.progress([])) == "loading TensorFlow and the data"


def test_split_records():
    curves = jobs.split_records(RECORDS)
    assert curves.steps_per_epoch == 10
    assert [r["step"] for r in curves.steps] == [5, 10, 15]
    assert [r["epoch"] for r in curves.history] == [1]
    assert jobs.split_records([]) == jobs.Curves([], [], None)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_replay_of_a_finished_run(tiny_root, model):
    run = artifacts.load_run(model, root=tiny_root)
    curves = jobs.replay(run)
    assert curves.history == run.history
    assert curves.steps and all(r["type"] == "step" for r in curves.steps)
    assert curves.steps_per_epoch == 512 // 32
    # From the listing too (no predictions loaded): the live log's epoch records.
    (info,) = artifacts.list_runs(model, tiny_root)
    listed = jobs.replay(info)
    assert [h["test_accuracy"] for h in listed.history] == [h["test_accuracy"] for h in run.history]
    # A one-epoch run draws only because steps_per_epoch comes along.
    fig = figures.training_curves_figure(
        {model: curves.history}, {model: curves.steps}, steps_per_epoch=curves.steps_per_epoch
    )
    assert any("per step" in t.name for t in fig.data)


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
        stored, _ = artifacts.read_live_log(info.path / artifacts.LIVE_LOG)
        assert stored == job.records  # read incrementally, the same as the whole log
        p = jobs.progress(job.records)
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


def test_status_text_quotes_the_trainers_words_verbatim():
    error = "Traceback ...\n  File /x/__init__.py\nOSError: [Errno 28] No space left on device"
    text = jobs.status_text({"state": "failed", "error": error})
    assert text.startswith("failed: `Traceback ...   File /x/__init__.py OSError: [Errno 28]")
    assert "__init__" in text  # inside a code span: no bold, no italics
    long = jobs.status_text({"state": "failed", "error": "x" * 1000 + " the last line"})
    assert "the last line`" in long  # a log's tail is kept, its start cut
