"""The live log: the JSON lines a trainer appends to ``<run>/live.jsonl`` as it goes.

One record a line, flushed as written, each with the wall-clock ``time`` first::

    {"time": ..., "type": "start", "model", "run_id", "config", "train_images", ...}
    {"time": ..., "type": "step", "epoch", "step", "total_steps", "loss", "accuracy", ...}
    {"time": ..., "type": "epoch", "epoch", "loss", "accuracy", "test_loss", ...}
    {"time": ..., "type": "end", "state", "test" | "error"}

This module owns the format: the record types, the writer (``LiveLog``, used by
``core.train``), the reader (``read_log``, which waits for whole lines), the follower of a
training still going (``follow``) and what is made of records (``progress``, ``split_records``,
``replay``). Records stay plain dicts (``TypedDict``), exactly as ``json`` reads them. No
Streamlit and no TensorFlow here.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, NotRequired, TypedDict

from core import artifacts

__all__ = [
    "Cursor",
    "Curves",
    "EndRecord",
    "EpochRecord",
    "LiveLog",
    "Progress",
    "Record",
    "StartRecord",
    "StepRecord",
    "clock",
    "epoch_records",
    "figure_inputs",
    "follow",
    "progress",
    "progress_text",
    "read_log",
    "replay",
    "split_records",
]


# ----------------------------------------------------------------------------------------------
# Records


class StartRecord(TypedDict):
    """Written once the data is loaded, before the model is built."""

    time: float  # seconds since the epoch, 3 decimals
    type: Literal["start"]
    model: str
    run_id: str
    config: dict  # the TrainConfig's fields
    train_images: int
    test_images: int
    steps_per_epoch: int
    follows_report: bool


class StepRecord(TypedDict):
    """Every ``log_every`` batches, and at each epoch's last batch."""

    time: float
    type: Literal["step"]
    epoch: int  # 1-based
    step: int  # batches done over all epochs
    total_steps: int
    loss: float  # running mean over the epoch so far
    accuracy: float
    images_per_s: float  # over the batches since the last step record, 1 decimal


class EpochRecord(TypedDict):
    """At each epoch's end, after its held-out evaluation (monitoring only)."""

    time: float
    type: Literal["epoch"]
    epoch: int
    loss: float
    accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float  # the epoch's wall time, evaluation included, 3 decimals


class EndRecord(TypedDict):
    """The last record: done (with the test metrics), stopped or failed (with the error)."""

    time: float
    type: Literal["end"]
    state: str
    test: NotRequired[dict]
    error: NotRequired[str]


Record = StartRecord | StepRecord | EpochRecord | EndRecord


# ----------------------------------------------------------------------------------------------
# Writing and reading


class LiveLog:
    """The trainer's side: appends records to a file, flushed as written, and passes each to a
    listener (the command line's progress bar)."""

    def __init__(self, path: Path, listener: Callable[[Record], None] | None = None):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.listener = listener

    def _write(self, record: dict) -> None:
        record = {"time": round(time.time(), 3), **record}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.listener:
            self.listener(record)

    def start(
        self,
        *,
        model: str,
        run_id: str,
        config: dict,
        train_images: int,
        test_images: int,
        steps_per_epoch: int,
        follows_report: bool,
    ) -> None:
        self._write(
            {"type": "start", "model": model, "run_id": run_id, "config": config,
             "train_images": train_images, "test_images": test_images,
             "steps_per_epoch": steps_per_epoch, "follows_report": follows_report}
        )  # fmt: skip

    def step(
        self,
        *,
        epoch: int,
        step: int,
        total_steps: int,
        loss: float,
        accuracy: float,
        images_per_s: float,
    ) -> None:
        self._write(
            {"type": "step", "epoch": epoch, "step": step, "total_steps": total_steps,
             "loss": float(loss), "accuracy": float(accuracy),
             "images_per_s": round(images_per_s, 1)}
        )  # fmt: skip

    def epoch(
        self,
        *,
        epoch: int,
        loss: float,
        accuracy: float,
        test_loss: float,
        test_accuracy: float,
        seconds: float,
    ) -> None:
        self._write(
            {"type": "epoch", "epoch": epoch, "loss": float(loss), "accuracy": float(accuracy),
             "test_loss": float(test_loss), "test_accuracy": float(test_accuracy),
             "seconds": round(seconds, 3)}
        )  # fmt: skip

    def end(self, state: str, *, test: dict | None = None, error: str | None = None) -> None:
        record: dict = {"type": "end", "state": state}
        if test is not None:
            record["test"] = test
        if error is not None:
            record["error"] = error
        self._write(record)

    def close(self) -> None:
        self.file.close()


def read_log(path: Path, offset: int = 0) -> tuple[list[Record], int]:
    """Records appended since ``offset`` (bytes) and the new offset; a partial last line waits."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    records = []
    for line in chunk[:end].splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records, offset + end


def epoch_records(path: Path) -> list[EpochRecord]:
    """The epoch records of a whole log."""
    return split_records(read_log(path)[0]).history


# ----------------------------------------------------------------------------------------------
# Following a training


class Cursor(NamedTuple):
    """Where reading of a model's live log got to: which run, how many bytes."""

    run_id: str | None = None
    offset: int = 0


def _log_path(model: str, run_id: str, root) -> Path:
    """The run's live log: in its hidden folder while it is written, in place once published."""
    folder = artifacts.model_dir(model, root)
    tmp = folder / f"{artifacts.TMP_PREFIX}{artifacts.check_run_id(run_id)}" / artifacts.LIVE_LOG
    return tmp if tmp.is_file() else folder / run_id / artifacts.LIVE_LOG


def follow(
    model: str,
    run_id: str | None,
    root: Path | str | None = None,
    cursor: Cursor | None = None,
) -> tuple[list[Record], Cursor]:
    """Records of ``model``'s run ``run_id`` (being written or published) since ``cursor``.

    Returns (new records, the cursor to pass next time). When ``run_id`` is not the cursor's
    run (a new training has begun), reading starts again at its beginning.
    """
    cursor = cursor or Cursor()
    if not run_id:
        return [], Cursor()
    offset = cursor.offset if cursor.run_id == run_id else 0
    try:
        records, offset = read_log(_log_path(model, run_id, root), offset)
    except artifacts.RunError:
        return [], Cursor()
    return records, Cursor(run_id, offset)


# ----------------------------------------------------------------------------------------------
# Progress and curves, from records alone


@dataclass(frozen=True)
class Progress:
    """How far a training is, from its live-log records.

    ``phase``: waiting (no start record yet), starting (no step yet), training, evaluating (an
    epoch's batches are done, its held-out evaluation is not), finishing (every epoch done:
    final predictions and saving), ended (an end record arrived).
    """

    fraction: float  # steps done / total steps, 0..1
    elapsed_s: float
    eta_s: float | None  # None until a step has been timed
    images_per_s: float | None  # over the last logged window of batches
    epoch: int  # the current (or last) epoch, 1-based; 0 before the first step
    epochs: int
    step: int
    total_steps: int
    phase: str


def progress(records: Sequence[Record], now: float | None = None) -> Progress:
    """Progress of one training from its live-log records (``now``: the clock, for a run still
    going; elapsed time and ETA then keep moving between records)."""
    start = next((r for r in records if r.get("type") == "start"), None)
    if start is None:
        return Progress(0.0, 0.0, None, None, 0, 0, 0, 0, "waiting")
    steps = [r for r in records if r.get("type") == "step"]
    epochs = [r for r in records if r.get("type") == "epoch"]
    end = next((r for r in records if r.get("type") == "end"), None)
    n_epochs = int(start["config"]["epochs"])
    total = int(start["steps_per_epoch"]) * n_epochs
    step = int(steps[-1]["step"]) if steps else 0
    last_time = max(float(r["time"]) for r in records)
    clock = float(end["time"]) if end else max(now or last_time, last_time)
    elapsed = clock - float(start["time"])
    # Seconds per step: between the first and last step records (this leaves out building and
    # compiling the model, and averages in the held-out evaluation at each epoch's end).
    rate = None
    if len(steps) >= 2 and steps[-1]["step"] > steps[0]["step"]:
        rate = (steps[-1]["time"] - steps[0]["time"]) / (steps[-1]["step"] - steps[0]["step"])
    elif steps:
        rate = (steps[0]["time"] - start["time"]) / max(steps[0]["step"], 1)
    if end:
        eta, phase = 0.0, "ended"
    else:
        since = clock - float(steps[-1]["time"]) if steps else 0.0
        eta = None if rate is None else max(0.0, (total - step) * rate - since)
        evaluated = {int(r["epoch"]) for r in epochs}
        if not steps:
            phase = "starting"
        elif step % int(start["steps_per_epoch"]) == 0 and steps[-1]["epoch"] not in evaluated:
            phase = "evaluating"  # the epoch's last batch is done; the held-out test set is next
        else:
            phase = "finishing" if step >= total else "training"
    epoch = max([int(r["epoch"]) for r in steps + epochs], default=0)
    return Progress(
        fraction=min(step / total, 1.0) if total else 0.0,
        elapsed_s=max(elapsed, 0.0),
        eta_s=eta,
        images_per_s=float(steps[-1]["images_per_s"]) if steps else None,
        epoch=epoch,
        epochs=n_epochs,
        step=step,
        total_steps=total,
        phase=phase,
    )


class Curves(NamedTuple):
    """A training's curves: epoch records (train and held-out test), step records, and the
    steps per epoch that places step records on the epoch axis."""

    history: list[dict]
    steps: list[StepRecord]
    steps_per_epoch: int | None


def split_records(records: Sequence[Record]) -> Curves:
    """Live-log records sorted into what ``figures.training_curves_figure`` draws."""
    start = next((r for r in records if r.get("type") == "start"), None)
    return Curves(
        history=[r for r in records if r.get("type") == "epoch"],
        steps=[r for r in records if r.get("type") == "step"],
        steps_per_epoch=int(start["steps_per_epoch"]) if start else None,
    )


def figure_inputs(curves: dict[str, Curves]) -> dict:
    """``figures.training_curves_figure``'s histories, steps and steps_per_epoch, from the curves
    of several trainings (keys name the lines: a model, or a label for another run)."""
    return {
        "histories": {k: c.history for k, c in curves.items()},
        "steps": {k: c.steps for k, c in curves.items()},
        "steps_per_epoch": {k: c.steps_per_epoch for k, c in curves.items()},
    }


def replay(run: artifacts.Run | artifacts.RunInfo | Path) -> Curves:
    """The curves of a finished run, from its live log (and its stored history when given a Run).

    ``steps_per_epoch`` is part of the answer because a one-epoch run's step records alone
    cannot place themselves on the epoch axis.
    """
    path = run if isinstance(run, Path) else run.path
    records, _ = read_log(path / artifacts.LIVE_LOG)
    curves = split_records(records)
    history = getattr(run, "history", None)
    return curves._replace(history=list(history)) if history else curves


# ----------------------------------------------------------------------------------------------
# Words for the page


def clock(seconds: float | None) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``; None -> ``"–"``."""
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(p: Progress) -> str:
    """One line under a progress bar: epoch, step, elapsed, ETA, speed."""
    if p.phase == "waiting":
        return "loading Keras and the data"
    if p.phase == "starting":
        return f"building the model · {clock(p.elapsed_s)} elapsed"
    parts = [
        f"epoch {p.epoch}/{p.epochs}",
        f"step {p.step:,}/{p.total_steps:,}",
        f"{clock(p.elapsed_s)} elapsed",
    ]
    if p.phase == "evaluating":
        parts.append(f"scoring epoch {p.epoch} on the held-out test set")
    elif p.phase == "finishing":
        parts.append("final predictions and saving")
    elif p.phase == "training":
        parts.append(f"about {clock(p.eta_s)} left")
    if p.images_per_s is not None and p.phase != "ended":
        parts.append(f"{p.images_per_s:,.0f} images/s")
    return " · ".join(parts)
