"""The Training page in AppTest: renders with runs and without, validates its settings, replays
finished runs, refuses a second trainer, and changes a model's default run."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import artifacts, jobs
from core.models import MODEL_NAMES

APP = str(Path(__file__).resolve().parent.parent / "dashboard.py")
PAGE = "pages/training.py"
COPY = "20000101-000000-seed0-copy"


def open_page(root) -> AppTest:
    """The Training page on ``root`` (the caller sets $FMNIST_ARTIFACTS)."""
    assert os.environ["FMNIST_ARTIFACTS"] == str(root)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def add_copy(root: Path, model: str, run_id: str) -> None:
    """A second verified run of ``model``: the default run's folder under another id."""
    source = artifacts.load_run(model, root=root)
    with artifacts.RunWriter(model, run_id, root) as writer:
        for name in artifacts.RUN_FILES:
            shutil.copyfile(source.path / name, writer.file(name))
        writer.commit(replace(source.manifest, run_id=run_id))


@pytest.fixture(scope="module")
def root(tiny_root, tmp_path_factory):
    """A copy of the tiny runs with a second baseline run and one damaged residual run."""
    root = tmp_path_factory.mktemp("training-page") / "artifacts"
    shutil.copytree(tiny_root, root)
    add_copy(root, "baseline", COPY)
    add_copy(root, "residual", "20000101-000000-seed0-bad")
    (root / "residual" / "20000101-000000-seed0-bad" / artifacts.HISTORY_FILE).write_text("{}")
    return root


@pytest.fixture(scope="module")
def at(root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_ARTIFACTS", str(root))
        yield open_page(root)


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def chart(at: AppTest, key: str) -> dict:
    (fig,) = [c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id]
    return json.loads(fig.proto.spec)


def test_renders_the_protocol_defaults_and_the_last_trainings(at):
    assert at.radio(key="train_model").value == "baseline"
    assert at.radio(key="train_model").options[-1] == "Both, one after the other"
    assert at.number_input(key="train_epochs").value == 10
    assert at.number_input(key="train_batch").value == 32
    assert at.number_input(key="train_seed").value == 0
    assert at.checkbox(key="train_quick").value is False
    assert at.number_input(key="train_limit").proto.disabled
    assert not at.error
    assert not any("protocol" in w for w in texts(at.warning))
    # The tiny runs' trainings are over: their final state, no progress bar, no Stop.
    done = [s for s in texts(at.success) if ": done: run " in s]
    assert len(done) == len(MODEL_NAMES)
    assert not at.get("progress")
    assert "train_stop" not in [b.key for b in at.button]


def test_replay_overlays_the_picked_runs_and_others(at):
    spec = chart(at, "train_replay_chart")
    groups = {t.get("legendgroup") for t in spec["data"]}
    assert set(MODEL_NAMES) <= groups
    assert any("per step" in t["name"] for t in spec["data"])
    # Another run overlaid on the same axes.
    overlay = at.multiselect(key="train_overlay")
    assert ("baseline", COPY) in overlay.options or any(COPY in str(o) for o in overlay.options)
    overlay.select(("baseline", COPY)).run()
    assert not at.exception
    spec = chart(at, "train_replay_chart")
    assert any(COPY in (t.get("legendgroup") or "") for t in spec["data"])
    at.radio(key="train_metric").set_value("loss").run()
    assert chart(at, "train_replay_chart")["layout"]["yaxis"]["title"]["text"] == "loss"


def test_validation_shows_the_message_and_starts_nothing(at, root):
    at.checkbox(key="train_quick").check().run()
    at.number_input(key="train_limit").set_value(16).run()
    errors = texts(at.error)
    assert any("the number of training images (16), not 32" in e for e in errors), errors
    assert at.button(key="train_start").proto.disabled  # a browser user cannot press it
    assert not list(root.rglob(jobs.JOB_FILE))
    # A valid quick setting is labelled as not the report's protocol.
    at.number_input(key="train_limit").set_value(640).run()
    assert not at.error
    assert any("Not the report's protocol" in w for w in texts(at.warning))
    at.checkbox(key="train_quick").uncheck().run()


def test_make_default_changes_the_default_run(at, root):
    original = artifacts.default_run_id("baseline", root)
    assert original != COPY
    assert at.selectbox(key="train_default_baseline").value == original
    assert at.button(key="train_make_default_baseline").proto.disabled
    at.selectbox(key="train_default_baseline").set_value(COPY).run()
    at.button(key="train_make_default_baseline").click().run()
    assert not at.exception
    assert artifacts.default_run_id("baseline", root) == COPY
    assert any(COPY in s and "default" in s for s in texts(at.success))
    # The damaged run is named with its reason, not offered.
    assert any("20000101-000000-seed0-bad" in w and "checksum" in w for w in texts(at.warning))
    assert "20000101-000000-seed0-bad" not in at.selectbox(key="train_default_residual").options


def test_empty_artifacts_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tmp_path))
    at = open_page(tmp_path)
    assert any("Nothing has been trained" in c for c in texts(at.caption))
    assert any("No finished run yet" in i for i in texts(at.info))
    assert not at.get("plotly_chart")
    assert at.button(key="train_start").proto.disabled is False


def test_busy_model_is_followed_not_trained_twice(tmp_path, monkeypatch):
    """Another process holds the lock: Train says so and starts nothing; Stop signals no
    process that is not a trainer."""
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tmp_path))
    with artifacts.training_lock("baseline", tmp_path):
        status = {"pid": os.getpid(), "run_id": "20000101-000000-seed0-live", "state": "training"}
        artifacts.write_training_status("baseline", status, tmp_path)
        live = tmp_path / "baseline" / ".tmp-20000101-000000-seed0-live"
        live.mkdir()
        records = [
            {"time": 1.0, "type": "start", "config": {"epochs": 2}, "steps_per_epoch": 4},
            {"time": 3.0, "type": "step", "epoch": 1, "step": 2, "total_steps": 8, "loss": 2.0,
             "accuracy": 0.3, "images_per_s": 64.0},
        ]  # fmt: skip
        (live / artifacts.LIVE_LOG).write_text("".join(json.dumps(r) + "\n" for r in records))
        at = open_page(tmp_path)
        (bar,) = at.get("progress")
        assert "epoch 1/2" in bar.proto.text and "64 images/s" in bar.proto.text
        at.button(key="train_start").click().run()
        assert any(f"baseline is already being trained (pid {os.getpid()})" in w
                   for w in texts(at.warning))  # fmt: skip
        assert not list(tmp_path.rglob(jobs.JOB_FILE))
        assert chart(at, "train_live_chart")["data"]
        at.button(key="train_stop").click().run()  # this pid is no core.train: not signalled
        assert any("Nothing to stop" in i for i in texts(at.info))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train_epochs", 100_000, "epochs must be between 1 and 1000, not 100000"),
        ("train_batch", 70_000, "the number of training images (60000), not 70000"),
    ],
)
def test_absurd_settings_are_named_and_cannot_be_started(at, root, key, value, message):
    default = at.number_input(key=key).value
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert any(e.startswith("Cannot train with these settings: ") and message in e
               for e in texts(at.error)), texts(at.error)  # fmt: skip
    assert at.button(key="train_start").proto.disabled
    assert not list(root.rglob(jobs.JOB_FILE))
    at.number_input(key=key).set_value(default).run()
    assert not at.error


def start_error(root: Path, monkeypatch) -> str:
    """Train pressed on the page over ``root``: the one "Could not start the trainer" error."""
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(root))
    at = open_page(root)
    at.button(key="train_start").click().run()
    assert not at.exception
    (error,) = [e for e in texts(at.error) if e.startswith("Could not start the trainer")]
    return error


def test_an_artifacts_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    root = blocker / "artifacts"  # cannot exist: its parent is a file
    error = start_error(root, monkeypatch)
    assert f"cannot write to the artifacts folder {root}" in error
    assert "FMNIST_ARTIFACTS" in error
    assert not jobs.is_trainer(jobs.read_job("baseline", root))


def test_too_little_disk_space_is_named_and_starts_nothing(full_disk, tiny_root, monkeypatch):
    root = full_disk / "artifacts"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns(artifacts.LOCK_FILE))
    error = start_error(root, monkeypatch)
    assert f"only 50 MB free on the disk of the artifacts folder {root}" in error
    assert "training needs at least 200 MB. Free some space there" in error
    assert "FMNIST_ARTIFACTS" in error and not error.endswith("…`")  # shown whole
    assert not list(root.rglob(jobs.JOB_FILE)) and not list(root.rglob(jobs.STDOUT_LOG))
    for model in MODEL_NAMES:
        assert artifacts.load_run(model, root=root).run_id == artifacts.default_run_id(
            model, tiny_root
        )


def wait_until(predicate, timeout=240, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_two_sessions_start_one_trainer_and_follow_the_same_curves(tmp_path, monkeypatch):
    """Two browser tabs press Train for the same model: one trainer starts, the other tab is
    told and follows its curves live; either tab can stop it."""
    monkeypatch.setenv("FMNIST_ARTIFACTS", str(tmp_path))
    sessions = [open_page(tmp_path), open_page(tmp_path)]
    for at in sessions:
        at.number_input(key="train_epochs").set_value(30)
        at.checkbox(key="train_quick").check().run()
        at.number_input(key="train_limit").set_value(640).run()
    first, second = sessions
    first.button(key="train_start").click().run()
    job = jobs.read_job("baseline", tmp_path)
    try:
        assert not first.exception and not first.error
        assert jobs.job_status("baseline", tmp_path)["running"]
        second.button(key="train_start").click().run()
        told = f"baseline is already being trained (pid {job['pid']})"
        assert any(told in w for w in texts(second.warning)), texts(second.warning)
        assert len(list(tmp_path.rglob(jobs.JOB_FILE))) == 1  # one job, one trainer

        def same_live_curves() -> bool:
            specs = []
            for at in sessions:
                at.run()
                assert not at.exception
                found = [c for c in at.get("plotly_chart") if "train_live_chart" in c.proto.id]
                if not found:
                    return False
                specs.append(json.loads(found[0].proto.spec)["data"])
            has_steps = any("per step" in (t.get("name") or "") for t in specs[0])
            return has_steps and specs[0] == specs[1]

        wait_until(same_live_curves, what="both sessions to show the same live curves")
        assert all(at.get("progress") for at in sessions)
        second.button(key="train_stop").click().run()  # the tab that did not start it
        assert any("Stop sent" in i for i in texts(second.info))
        wait_until(
            lambda: (jobs.job_status("baseline", tmp_path) or {}).get("state") == "stopped",
            timeout=120, what="the trainer to stop",
        )  # fmt: skip
    finally:
        if job and jobs.is_trainer(job["pid"]):
            os.kill(job["pid"], 9)
    for at in sessions:
        at.run()
        assert any("stopped: nothing was saved" in i for i in texts(at.info)), texts(at.info)
    assert artifacts.list_runs("baseline", tmp_path) == []
