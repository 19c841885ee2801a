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
model of a ``--model all`` job) and "failed before it began" apart from an old status. The
live log's records, and the progress made of them, are ``core.live``'s. No Streamlit and no
TensorFlow here.
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

from core import artifacts, live
from core.artifacts import TrainingBusy
from core.models import MODEL_NAMES
from core.text import literal
from core.train import TrainConfig

JOB_FILE = ".job.json"
JOBS_LOCK = ".jobs.lock"
STDOUT_LOG = ".train-stdout.log"
ALL = "all"
ENDED = ("done", "stopped", "failed", "died")

__all__ = [
    "ALL",
    "LiveJob",
    "TrainingBusy",
    "job_status",
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
    artifacts.write_atomic(path, json.dumps(data))


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
    settings ``TrainConfig.validate`` rejects, TrainingBusy when a chosen model is already
    being trained (or about to be), and OSError (``artifacts.NotEnoughSpace`` for a disk with
    too little room) when runs cannot be saved; in each case nothing is started.
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
    problem = artifacts.check_free_space(base)  # before check_writable, which makes the folder
    if problem:
        raise artifacts.NotEnoughSpace(
            f"{problem}, or point {artifacts.ENV_VAR} at a folder on another disk and restart "
            "the dashboard"
        )
    problem = artifacts.check_writable(base)
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


@dataclass
class LiveJob:
    """One model's training as a page follows it: its job status, and its live-log records so
    far with the ``live.Cursor`` where reading got to.

    Kept in the page's session state; ``poll`` reads only the bytes written since the last call.
    """

    model: str
    cursor: live.Cursor = field(default_factory=live.Cursor)
    records: list[live.Record] = field(default_factory=list)
    status: dict | None = None

    def poll(self, root: Path | str | None = None) -> LiveJob:
        self.status = job_status(self.model, root)
        run_id = (self.status or {}).get("run_id")
        new, cursor = live.follow(self.model, run_id, root, self.cursor)
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
# Words for the page


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
