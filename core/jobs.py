"""Training jobs for the dashboard: start the trainer as its own process, follow it, stop it.

The dashboard never trains inside a Streamlit script. ``start_training`` launches
``python -m core.train`` detached (its own session, output to a log file under the artifacts
folder), so navigating away, reloading or closing the tab neither stops nor duplicates it.

Besides the trainer's own files (``.train.lock``, ``.training.json``, the live log), one small
file per model records the job that was launched for it::

    artifacts/<model>/.job.json          pid, models, settings, start time, output log, stop flag
    artifacts/<model>/.train-stdout.log  the trainer's output (one model)
    artifacts/.train-all-stdout.log      the trainer's output (all models, one process)
    artifacts/.jobs.lock                 held while a job is checked for and launched

The job file covers the seconds before the trainer takes its lock (importing TensorFlow takes
several), so a second start in that window is refused too, and it tells "queued" (the second
model of a ``--model all`` job) and "failed before it began" apart from an old status. No
Streamlit and no TensorFlow here.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from core import artifacts
from core.artifacts import TrainingBusy
from core.models import MODEL_NAMES
from core.text import literal
from core.train import TrainConfig, _check_writable

JOB_FILE = ".job.json"
JOBS_LOCK = ".jobs.lock"
STDOUT_LOG = ".train-stdout.log"
ALL = "all"
ENDED = ("done", "stopped", "failed", "died")

__all__ = [
    "ALL",
    "Cursor",
    "Curves",
    "LiveJob",
    "Progress",
    "TrainingBusy",
    "clock",
    "figure_inputs",
    "follow",
    "job_status",
    "progress",
    "progress_text",
    "replay",
    "run_label",
    "split_records",
    "start_training",
    "status_text",
    "stop_all",
    "stop_training",
]


# ----------------------------------------------------------------------------------------------
# Processes


def _cmdline(pid: int) -> list[str]:
    """The process's arguments; empty for a zombie, a stranger's process we cannot read, or none."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    except OSError:
        pass
    if Path("/proc").is_dir():  # Linux: the process is gone
        return []
    try:  # elsewhere (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "args=", "-p", str(int(pid))], capture_output=True, text=True, timeout=5
        )
        return out.stdout.split()
    except (OSError, subprocess.SubprocessError):
        return []


def is_trainer(pid: object) -> bool:
    """Whether ``pid`` is a live ``python -m core.train`` process (only those are ever signalled)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    args = _cmdline(pid)
    return any(a == "-m" and b == "core.train" for a, b in itertools.pairwise(args))


def _process_exists(pid: object) -> bool:
    """A live (not zombie) process with this pid."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _job_alive(job: dict) -> bool:
    """Whether the job's process is (about to be) training.

    Just after the start, ``/proc/<pid>/cmdline`` may not show ``core.train`` yet; a process
    that exists, has no exit code noted and started under a minute ago counts as alive.
    """
    pid = job.get("pid")
    if is_trainer(pid):
        return True
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(job["started"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return False
    return "returncode" not in job and age < 60 and _process_exists(pid)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _job_path(model: str, root) -> Path:
    return artifacts.model_dir(model, root) / JOB_FILE


def read_job(model: str, root: Path | str | None = None) -> dict | None:
    """The last job launched for ``model`` (None if there never was one)."""
    return _read_json(_job_path(model, root))


@contextlib.contextmanager
def _jobs_lock(root):
    base = artifacts.artifacts_root(root)
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / JOBS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for a fraction of a second by each starter
        yield
    finally:
        os.close(fd)


def _busy_pid(model: str, root) -> int | str | None:
    """The pid training (or about to train) ``model``; None when nothing does."""
    job = read_job(model, root)
    alive = job is not None and _job_alive(job)
    if artifacts.is_training(model, root):
        status = artifacts.read_training_status(model, root) or {}
        # A trainer that has just taken the lock may not have written its status yet.
        return status.get("pid") or (job["pid"] if alive else "?")
    return job["pid"] if alive else None


def _reap(proc: subprocess.Popen, models: Sequence[str], root) -> None:
    """Wait for the trainer (so it leaves no zombie) and note its exit code in its job files."""
    code = proc.wait()
    for model in models:
        job = read_job(model, root)
        if job and job.get("pid") == proc.pid:
            with contextlib.suppress(OSError):
                _write_json(_job_path(model, root), {**job, "returncode": code})


# ----------------------------------------------------------------------------------------------
# Start and stop


def start_training(
    models: Sequence[str] | str,
    epochs: int,
    batch_size: int,
    seed: int,
    train_limit: int | None = None,
    root: Path | str | None = None,
    log_every: int = 50,
) -> list[int]:
    """Launch the trainer for one model or all of them; returns the pid(s) launched.

    All models train one after another in ONE process (``--model all``): one pid to follow and
    to stop, one TensorFlow import, and the order is the trainer's. Raises ValueError for
    settings ``TrainConfig.validate`` rejects and TrainingBusy when a chosen model is already
    being trained (or about to be); in both cases nothing is started.
    """
    if models == ALL:
        names = list(MODEL_NAMES)
    else:
        names = [models] if isinstance(models, str) else list(models)
    if not names:
        raise ValueError("choose at least one model to train")
    for name in names:
        TrainConfig(name, epochs, batch_size, seed, train_limit, log_every).validate()
    if len(set(names)) != len(names):
        raise ValueError(f"each model once, please: {', '.join(names)}")
    if len(names) == 1:
        model_arg = names[0]
    elif set(names) == set(MODEL_NAMES):
        model_arg = ALL
    else:
        raise ValueError(f"train one model or all ({', '.join(MODEL_NAMES)}), not a subset")
    names = [n for n in MODEL_NAMES if n in names]  # the order the trainer follows
    base = artifacts.artifacts_root(root)
    problem = _check_writable(base)
    if problem:
        raise OSError(
            f"{problem}. Make it writable, or point {artifacts.ENV_VAR} at a folder that is, "
            "and restart the dashboard"
        )
    with _jobs_lock(base):
        for name in names:
            pid = _busy_pid(name, base)
            if pid is not None:
                raise TrainingBusy(
                    f"{name} is already being trained (pid {pid}); follow it below, or stop it"
                )
        folder = base if model_arg == ALL else artifacts.model_dir(model_arg, base)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / (f".train-{ALL}-stdout.log" if model_arg == ALL else STDOUT_LOG)
        argv = [sys.executable, "-m", "core.train", "--model", model_arg, "--epochs", str(epochs),
                "--batch-size", str(batch_size), "--seed", str(seed), "--out", str(base),
                "--log-every", str(log_every), "--quiet"]  # fmt: skip
        if train_limit is not None:
            argv += ["--train-limit", str(train_limit)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=artifacts.PROJECT_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: a closed tab or a server's Ctrl-C spares it
            )  # fmt: skip
        job = {"pid": proc.pid, "models": names, "argv": argv[1:], "log": str(log),
               "started": _now_iso(), "stop_requested": False}  # fmt: skip
        for name in names:
            artifacts.model_dir(name, base).mkdir(parents=True, exist_ok=True)
            _write_json(_job_path(name, base), job)
    threading.Thread(target=_reap, args=(proc, names, base), daemon=True).start()
    return [proc.pid]


def stop_training(model: str, root: Path | str | None = None) -> bool:
    """Ask the process training ``model`` (or about to) to stop: SIGTERM, after checking it is a
    live ``core.train`` process. The trainer ends cleanly and publishes nothing; with an ``all``
    job the models still queued are not started either. False when nothing was running."""
    status = job_status(model, root) or {}
    pid = status.get("pid")
    if not status.get("running") or not is_trainer(pid):
        return False
    job = read_job(model, root)
    if job and job.get("pid") == pid:  # mark every model of the job, so none reads "failed"
        for name in job.get("models", [model]):
            other = read_job(name, root)
            if other and other.get("pid") == pid:
                _write_json(_job_path(name, root), {**other, "stop_requested": True})
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def stop_all(root: Path | str | None = None) -> list[int]:
    """Stop every training in the artifacts folder, each process once; the pids signalled."""
    signalled: list[int] = []
    for model in MODEL_NAMES:
        pid = (job_status(model, root) or {}).get("pid")
        if pid not in signalled and stop_training(model, root):
            signalled.append(pid)
    return signalled


# ----------------------------------------------------------------------------------------------
# Following


def _log_tail(path: str | None, lines: int = 6) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def job_status(model: str, root: Path | str | None = None) -> dict | None:
    """What is happening to ``model``: the trainer's status, or the job's while the trainer has
    not written one yet. ``state`` is one of starting, queued, training, done, stopped, failed,
    died; ``running`` says whether a process is at it. None if it was never trained here."""
    status = artifacts.read_training_status(model, root)
    job = read_job(model, root)
    if job is None or (status is not None and status.get("updated", "") >= job.get("started", "")):
        return status
    # The job is newer than the trainer's last word on this model.
    alive = _job_alive(job)
    base = {"pid": job.get("pid"), "job": job, "running": alive}
    if alive:
        others = [m for m in job.get("models", []) if m != model]
        busy = any(artifacts.is_training(m, root) for m in others)
        return {**base, "state": "queued" if busy else "starting"}
    if job.get("stop_requested"):
        return {**base, "state": "stopped", "error": "stopped before this model began"}
    code = job.get("returncode")
    tail = _log_tail(job.get("log"))
    error = tail or f"the trainer exited with code {code}"
    return {**base, "state": "failed", "error": error}


class Cursor(NamedTuple):
    """Where reading of a model's live log got to: which run, how many bytes."""

    run_id: str | None = None
    offset: int = 0


def _live_path(model: str, run_id: str, root) -> Path:
    folder = artifacts.model_dir(model, root)
    tmp = folder / f"{artifacts.TMP_PREFIX}{artifacts.check_run_id(run_id)}" / artifacts.LIVE_LOG
    return tmp if tmp.is_file() else folder / run_id / artifacts.LIVE_LOG


def follow(
    model: str, root: Path | str | None = None, cursor: Cursor | None = None
) -> tuple[list[dict], Cursor, dict | None]:
    """Live-log records of ``model``'s current (or last) training written since ``cursor``.

    Returns (new records, the cursor to pass next time, ``job_status``). When a new run has
    begun since ``cursor``, reading starts again at its beginning (the cursor's run id changes).
    """
    cursor = cursor or Cursor()
    status = job_status(model, root)
    run_id = (status or {}).get("run_id")
    if not run_id:
        return [], Cursor(), status
    offset = cursor.offset if cursor.run_id == run_id else 0
    try:
        records, offset = artifacts.read_live_log(_live_path(model, run_id, root), offset)
    except artifacts.RunError:
        return [], Cursor(), status
    return records, Cursor(run_id, offset), status


@dataclass
class LiveJob:
    """One model's training as a page follows it: records so far, the cursor and last status.

    Kept in the page's session state; ``poll`` reads only the bytes written since the last call.
    """

    model: str
    cursor: Cursor = field(default_factory=Cursor)
    records: list[dict] = field(default_factory=list)
    status: dict | None = None

    def poll(self, root: Path | str | None = None) -> LiveJob:
        new, cursor, self.status = follow(self.model, root, self.cursor)
        if cursor.run_id != self.cursor.run_id:
            self.records = []
        self.records.extend(new)
        self.cursor = cursor
        return self

    @property
    def state(self) -> str | None:
        return (self.status or {}).get("state")

    @property
    def running(self) -> bool:
        return bool((self.status or {}).get("running"))


# ----------------------------------------------------------------------------------------------
# Progress and curves, from live-log records alone


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


def progress(records: Sequence[dict], now: float | None = None) -> Progress:
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
    steps: list[dict]
    steps_per_epoch: int | None


def split_records(records: Sequence[dict]) -> Curves:
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
    records, _ = artifacts.read_live_log(path / artifacts.LIVE_LOG)
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
        return "loading TensorFlow and the data"
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


def status_text(status: dict | None) -> str:
    """What a model's last training came to, in a sentence of Markdown (the error, which quotes
    the trainer's output, in a code span)."""
    if not status:
        return "never trained in this artifacts folder"
    state, pid, run_id = status.get("state"), status.get("pid"), status.get("run_id")
    error = status.get("error")
    return {
        "starting": f"starting (pid {pid})",
        "queued": f"queued: trains when the model before it is done (pid {pid})",
        "training": f"training run {run_id} (pid {pid})",
        "done": f"done: run {run_id} was saved",
        "stopped": "stopped: nothing was saved, earlier runs are untouched"
        + (f" ({literal(error, keep_end=True)})" if error and "StopRequested" not in error else ""),
        "failed": f"failed: {literal(error or 'no message', keep_end=True)}; nothing was saved, earlier runs "
        "are untouched",
        "died": f"died: the trainer (pid {pid}) ended without a word (killed?); nothing was saved",
    }.get(state, f"{state}")


def run_label(info: artifacts.RunInfo) -> str:
    """A run in a picker: time stamp, seed, test accuracy, quick-run settings, default."""
    if not info.ok:
        return f"{info.run_id} (damaged: {info.problem})"
    m, p = info.manifest, info.manifest["protocol"]
    parts = [info.run_id, f"acc {m['test_metrics']['accuracy']:.4f}"]
    if not p.get("follows_report"):
        parts.append(f"quick: {p['epochs']} ep, batch {p['batch_size']}, {p['train_images']:,} img")
    if info.is_default:
        parts.append("default")
    return " · ".join(parts)
