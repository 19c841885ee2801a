"""One fresh process of the steadiness part: the trainer's fit, warmed up, then timed.

    python -m bench.steadiness_worker SETTING_JSON WARMUP_BATCHES TIMED_BATCHES

SETTING_JSON (bench/steadiness.py's SETTINGS; environment variables are set by the parent):
``intra`` / ``inter`` (TensorFlow's thread pools, None = TensorFlow's default), ``affinity``
(``"all"``: pin the process to every CPU it may use, before TensorFlow starts its threads),
``pin_threads`` (after the warm-up, pin the intra-op pool's threads one per core: a diagnostic).

The fit is core.train's: the baseline model, seed 0, Adam, ``steps_per_execution(50)`` batches
per graph call, oneDNN on (``configure_compute``), the full real training set, batch 32. Keras
calls back once per execution; the first WARMUP_BATCHES (tracing included) are not timed, the
next TIMED_BATCHES are, then the fit stops. Prints one JSON line: steady ms per batch, cores
busy (process CPU time / wall time), threads and their CPU time by name, the host's steal time,
and the running loss at every execution (to compare results between settings).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TICK = os.sysconf("SC_CLK_TCK")


def threads() -> dict[int, tuple[str, float, int]]:
    """{thread id: (name, CPU seconds so far, CPU it last ran on)} of this process."""
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                text = f.read()
        except OSError:  # ended meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / TICK, int(fields[36]))
    return found


def steal_seconds() -> float:
    """Time the hypervisor gave this machine's CPUs to others, all CPUs together."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / TICK if len(fields) > 8 else 0.0


def cpu_by_name(before: dict, after: dict) -> dict[str, dict]:
    """CPU seconds each kind of thread used between two snapshots, and how many there were."""
    out: dict[str, dict] = defaultdict(lambda: {"threads": 0, "cpu_s": 0.0, "busy_threads": 0})
    for tid, (name, cpu, _) in after.items():
        used = cpu - before.get(tid, (name, 0.0, 0))[1]
        entry = out[name]
        entry["threads"] += 1
        entry["cpu_s"] = round(entry["cpu_s"] + used, 2)
        entry["busy_threads"] += used >= 0.05
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["cpu_s"]))


def pin_pool_threads(main_tid: int) -> list[list]:
    """A diagnostic: pin each thread of TensorFlow's intra-op pool (the unnamed threads that have
    done the most work by now, oneDNN's kernels) to a core of its own. [name, tid, core] each."""
    cpus = sorted(os.sched_getaffinity(0))
    busy = sorted(((cpu, tid, name) for tid, (name, cpu, _) in threads().items()
                   if tid != main_tid and name == "python"), reverse=True)[: len(cpus)]  # fmt: skip
    for (_, tid, _), core in zip(busy, cpus, strict=False):
        os.sched_setaffinity(tid, {core})
    return [[name, tid, core] for (_, tid, name), core in zip(busy, cpus, strict=False)]


def main(argv: list[str]) -> None:
    setting, warmup, timed = json.loads(argv[0]), int(argv[1]), int(argv[2])
    if setting.get("affinity") == "all":
        os.sched_setaffinity(0, os.sched_getaffinity(0))  # every CPU, before any TF thread
    from core.compute import configure_compute, steps_per_execution
    from core.train import LR

    configure_compute()
    import keras
    import tensorflow as tf

    if setting.get("intra") is not None:
        tf.config.threading.set_intra_op_parallelism_threads(setting["intra"])
    if setting.get("inter") is not None:
        tf.config.threading.set_inter_op_parallelism_threads(setting["inter"])

    from core.data import load_dataset, normalise, one_hot
    from core.models import get_spec

    data = load_dataset(allow_download=False)
    x, y = normalise(data.x_train), one_hot(data.y_train)
    keras.utils.set_random_seed(0)
    model = get_spec("baseline").build()
    execution = steps_per_execution(50)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR),
                  loss="categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=execution)  # fmt: skip
    main_tid = threading.get_native_id()
    marks: list[tuple[int, float, float]] = []  # (batches done, wall, process CPU)
    losses: list[float] = []
    snaps: dict[str, tuple] = {}
    pinned: list[list] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            done = batch + 1
            losses.append(float(logs["loss"]))
            if done >= warmup and not marks:
                if setting.get("pin_threads"):
                    pinned.extend(pin_pool_threads(main_tid))
                snaps["start"] = (threads(), steal_seconds())
            if done >= warmup:
                marks.append((done, time.perf_counter(), time.process_time()))
            if done >= warmup + timed:
                snaps["end"] = (threads(), steal_seconds())
                self.model.stop_training = True

    model.fit(x, y, epochs=1, batch_size=32, shuffle=True, verbose=0, callbacks=[Clock()])
    (b0, w0, c0), (b1, w1, c1) = marks[0], marks[-1]
    per_execution = [(w - pw) * 1000 / (b - pb)
                     for (pb, pw, _), (b, w, _) in itertools.pairwise(marks)]  # fmt: skip
    (t0, s0), (t1, s1) = snaps["start"], snaps["end"]
    print(json.dumps({
        "ms_per_batch": (w1 - w0) * 1000 / (b1 - b0),
        "ms_per_execution": [round(v, 2) for v in per_execution],
        "batches": b1 - b0,
        "cores_busy": (c1 - c0) / (w1 - w0),
        "steal_cores": (s1 - s0) / (w1 - w0),
        "threads": len(os.listdir("/proc/self/task")),
        "thread_cpu": cpu_by_name(t0, t1),
        "busy_threads": sorted(([n, round(c - t0.get(tid, (n, 0.0, 0))[1], 2), tid == main_tid]
                                for tid, (n, c, _) in t1.items()
                                if c - t0.get(tid, (n, 0.0, 0))[1] >= 0.05),
                               key=lambda t: -t[1]),  # [name, CPU s, main thread]
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "pinned_threads": pinned,
        "steps_per_execution": execution,
        "losses": losses,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
