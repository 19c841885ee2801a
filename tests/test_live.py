"""core.live: the live log's writer and reader byte for byte (against the shipped runs), the
follower of a run being written, and progress and curves from hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import artifacts, figures, live
from core.models import MODEL_NAMES

SHIPPED = artifacts.PROJECT_DIR / "artifacts"
SHIPPED_LOGS = sorted(SHIPPED.glob(f"*/[0-9]*/{artifacts.LIVE_LOG}"))  # published runs only


# --- the format: written and read back byte for byte ------------------------------------------


def test_live_log_reader_waits_for_whole_lines(tmp_path):
    log = tmp_path / "live.jsonl"
    log.write_text('{"a": 1}\n{"b": 2}\n{"c": ')
    records, offset = live.read_log(log)
    assert records == [{"a": 1}, {"b": 2}]
    with open(log, "a") as f:
        f.write("3}\n")
    records, offset = live.read_log(log, offset)
    assert records == [{"c": 3}] and offset == log.stat().st_size


def rewrite(records: list[dict], path: Path, monkeypatch) -> list[dict]:
    """Write ``records`` again through ``LiveLog``, each at its own time; what the listener got."""
    heard = []
    log = live.LiveLog(path, heard.append)
    for record in records:
        monkeypatch.setattr(live.time, "time", lambda t=record["time"]: t)
        fields = {k: v for k, v in record.items() if k not in ("time", "type")}
        if record["type"] == "end":
            log.end(fields.pop("state"), **fields)
        else:
            getattr(log, record["type"])(**fields)
    log.close()
    return heard


def test_shipped_logs_exist():
    assert {p.parent.parent.name for p in SHIPPED_LOGS} == set(MODEL_NAMES)


@pytest.mark.parametrize(
    "path", SHIPPED_LOGS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}"
)
def test_shipped_logs_read_back_and_rewrite_identically(path, tmp_path, monkeypatch):
    raw = path.read_bytes()
    records, offset = live.read_log(path)
    assert offset == len(raw)
    assert b"".join(json.dumps(r).encode() + b"\n" for r in records) == raw
    kinds = [r["type"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "end" and {"step", "epoch"} <= set(kinds)
    # The writer, given the same values, writes the same bytes (the trainer's output format).
    heard = rewrite(records, tmp_path / artifacts.LIVE_LOG, monkeypatch)
    assert (tmp_path / artifacts.LIVE_LOG).read_bytes() == raw
    assert heard == records  # the listener (the progress bar) gets each record as written


def test_writer_rounds_and_orders_as_the_format_says(tmp_path, monkeypatch):
    monkeypatch.setattr(live.time, "time", lambda: 12.34567)
    log = live.LiveLog(tmp_path / artifacts.LIVE_LOG)
    log.step(epoch=1, step=4, total_steps=8, loss=2, accuracy=0.25, images_per_s=63.96)
    log.epoch(epoch=1, loss=1.5, accuracy=0.5, test_loss=1.6, test_accuracy=0.4, seconds=9.87654)
    log.end("failed", error="OSError: disk full")
    log.close()
    assert (tmp_path / artifacts.LIVE_LOG).read_text().splitlines() == [
        '{"time": 12.346, "type": "step", "epoch": 1, "step": 4, "total_steps": 8, "loss": 2.0, '
        '"accuracy": 0.25, "images_per_s": 64.0}',
        '{"time": 12.346, "type": "epoch", "epoch": 1, "loss": 1.5, "accuracy": 0.5, '
        '"test_loss": 1.6, "test_accuracy": 0.4, "seconds": 9.877}',
        '{"time": 12.346, "type": "end", "state": "failed", "error": "OSError: disk full"}',
    ]
    assert [r["seconds"] for r in live.epoch_records(tmp_path / artifacts.LIVE_LOG)] == [9.877]


# --- following a run being written --------------------------------------------------------------


def test_follow_reads_a_run_while_it_is_written_and_once_published(tmp_path):
    run_id = "20000101-000000-seed0-live"
    folder = artifacts.model_dir("baseline", tmp_path) / f"{artifacts.TMP_PREFIX}{run_id}"
    folder.mkdir(parents=True)
    assert live.follow("baseline", None, tmp_path) == ([], live.Cursor())
    assert live.follow("baseline", run_id, tmp_path) == ([], live.Cursor(run_id, 0))  # no log yet
    log = live.LiveLog(folder / artifacts.LIVE_LOG)
    log.start(model="baseline", run_id=run_id, config={"epochs": 1}, train_images=64,
              test_images=10, steps_per_epoch=2, follows_report=False)  # fmt: skip
    log.step(epoch=1, step=2, total_steps=2, loss=2.0, accuracy=0.3, images_per_s=64.0)
    first, cursor = live.follow("baseline", run_id, tmp_path)
    assert [r["type"] for r in first] == ["start", "step"] and cursor.run_id == run_id
    log.epoch(epoch=1, loss=2.0, accuracy=0.3, test_loss=2.1, test_accuracy=0.2, seconds=1.0)
    log.end("done", test={"accuracy": 0.2})
    log.close()
    folder.rename(folder.parent / run_id)  # published: the same log, in place
    rest, cursor = live.follow("baseline", run_id, tmp_path, cursor)
    assert [r["type"] for r in rest] == ["epoch", "end"]
    assert live.follow("baseline", run_id, tmp_path, cursor) == ([], cursor)
    assert live.read_log(folder.parent / run_id / artifacts.LIVE_LOG)[0] == first + rest
    assert live.progress(first + rest).phase == "ended"
    # Another run starts from its own beginning; a run id that names no run folder, nothing.
    other = "20000102-000000-seed0-next"
    assert live.follow("baseline", other, tmp_path, cursor) == ([], live.Cursor(other, 0))
    assert live.follow("baseline", "../../etc", tmp_path, cursor) == ([], live.Cursor())


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
    p = live.progress(RECORDS)
    # 1.5 s a step between the first and last step records (the epoch's evaluation included).
    assert p.fraction == 0.75 and p.step == 15 and p.total_steps == 20
    assert p.elapsed_s == pytest.approx(25.0)
    assert p.eta_s == pytest.approx(5 * 1.5)
    assert p.images_per_s == 500.0  # the latest window, not an average
    assert (p.epoch, p.epochs, p.phase) == (2, 2, "training")
    # The clock moves on between records: elapsed grows, the ETA shrinks (never below 0).
    later = live.progress(RECORDS, now=127.0)
    assert later.elapsed_s == pytest.approx(27.0) and later.eta_s == pytest.approx(5.5)
    assert live.progress(RECORDS, now=1000.0).eta_s == 0.0
    assert live.progress(RECORDS, now=50.0).elapsed_s == pytest.approx(25.0)  # clock skew


def test_progress_phases():
    assert live.progress([]).phase == "waiting"
    assert live.progress([]).eta_s is None
    p = live.progress([start_record()], now=104.0)
    assert (p.phase, p.fraction, p.eta_s, p.elapsed_s) == ("starting", 0.0, None, 4.0)
    # One step record: seconds per step from the start record.
    p = live.progress([start_record(), step_record(108.0, 4, 1)])
    assert p.eta_s == pytest.approx(16 * 2.0) and p.fraction == pytest.approx(0.2)
    # An epoch's batches are done, its held-out evaluation is not (yet), then the last epoch's.
    assert live.progress(RECORDS[:3]).phase == "evaluating"
    assert live.progress([*RECORDS, step_record(130.0, 20, 2)]).phase == "evaluating"
    full = [*RECORDS, step_record(130.0, 20, 2), epoch_record(131.0, 2)]
    p = live.progress(full, now=140.0)
    assert (p.phase, p.fraction, p.eta_s) == ("finishing", 1.0, 0.0)
    p = live.progress([*full, {"time": 135.0, "type": "end", "state": "done"}], now=500.0)
    assert (p.phase, p.fraction, p.eta_s, p.elapsed_s) == ("ended", 1.0, 0.0, 35.0)
    # Stopped early: the fraction says how far it got.
    p = live.progress([*RECORDS, {"time": 126.0, "type": "end", "state": "stopped"}])
    assert (p.phase, p.fraction) == ("ended", 0.75)


def test_progress_text():
    assert live.clock(75) == "1:15" and live.clock(3725) == "1:02:05" and live.clock(None) == "–"
    text = live.progress_text(live.progress(RECORDS, now=127.0))
    assert text == "epoch 2/2 · step 15/20 · 0:27 elapsed · about 0:06 left · 500 images/s"
    assert "held-out test set" in live.progress_text(live.progress(RECORDS[:3]))
    assert live.progress_text(live.progress([])) == "loading Keras and the data"


def test_split_records():
    curves = live.split_records(RECORDS)
    assert curves.steps_per_epoch == 10
    assert [r["step"] for r in curves.steps] == [5, 10, 15]
    assert [r["epoch"] for r in curves.history] == [1]
    assert live.split_records([]) == live.Curves([], [], None)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_replay_of_a_finished_run(tiny_root, model):
    run = artifacts.load_run(model, root=tiny_root)
    curves = live.replay(run)
    assert curves.history == run.history
    assert curves.steps and all(r["type"] == "step" for r in curves.steps)
    assert curves.steps_per_epoch == 512 // 32
    # From the listing too (no predictions loaded): the live log's epoch records.
    (info,) = artifacts.list_runs(model, tiny_root)
    listed = live.replay(info)
    assert [h["test_accuracy"] for h in listed.history] == [h["test_accuracy"] for h in run.history]
    # A one-epoch run draws only because steps_per_epoch comes along.
    fig = figures.training_curves_figure(
        {model: curves.history}, {model: curves.steps}, steps_per_epoch=curves.steps_per_epoch
    )
    assert any("per step" in t.name for t in fig.data)
