"""Training steadiness: the trainer's fit in many fresh processes, per thread setting.

The same Keras fit (core.train's compile settings, baseline, batch 32, seed 0, real data) runs
in each fresh process either fast or slow; this part measures the steady ms per batch of every
process (bench/steadiness_worker.py), round-robin over the settings so that the machine's slow
spells hit all of them alike, and first waits for the machine to be quiet. The reference is the
default setting's median, measured in the same run.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

from bench.common import clean_env, median, percentile, run_json

# name: what it sets. ``env``: environment of the worker; ``intra``/``inter``: TensorFlow's thread
# pools (tf.config.threading); ``affinity``: "all" pins the process to its CPUs first thing;
# ``pin_threads``: see bench/steadiness_worker.py.
SETTINGS: dict[str, dict] = {
    "default": {"about": "core.train as it was: TensorFlow's own thread pools (one thread per "
                         "core each), oneDNN on"},
    "intra2_inter1": {"intra": 2, "inter": 1,
                      "about": "tf.config.threading: intra-op 2, inter-op 1"},
    "intra1_inter2": {"intra": 1, "inter": 2,
                      "about": "tf.config.threading: intra-op 1 (each kernel on one thread), "
                               "inter-op 2"},
    "caller_thread": {"env": {"TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD": "1"},
                      "about": "TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=1: the thread that runs "
                               "a oneDNN kernel takes a share of it instead of waiting"},
    "pinned": {"affinity": "all",
               "about": "os.sched_setaffinity(0, both cores) before TensorFlow starts"},
    "threads_pinned": {"pin_threads": True,
                       "about": "a diagnostic: after the warm-up, each intra-op pool thread "
                                "(oneDNN's kernels) pinned to a core of its own"},
}  # fmt: skip
# Not worth a slot: OMP_NUM_THREADS / KMP_* (this build's oneDNN runs on TensorFlow's own
# thread pool, not OpenMP: libtensorflow_cc imports no omp_* / GOMP_* / __kmpc_* symbol), and
# intra-op 2 / inter-op 2 (what TensorFlow's default already is on 2 cores).
# run by default: the diagnostic (threads_pinned) only when asked for, to keep the part near 10 min
DEFAULT_NAMES = [n for n in SETTINGS if n != "threads_pinned"]
REFERENCE = "default"
CALM_STEAL = 0.15  # cores the host took from this machine, below which a process counts as calm
BUSY = ("pytest", "core.train", "bench")  # what counts as another heavy process
QUIET_LOAD = 0.6


def _ancestors() -> set[int]:
    """This process and its parents (the shell that started ``python -m bench`` matches too)."""
    found, pid = set(), os.getpid()
    while pid > 1:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def others_busy() -> list[str]:
    """Command lines of heavy processes other than this one and its parents."""
    proc = subprocess.run(["pgrep", "-af", "|".join(BUSY)], capture_output=True, text=True)
    mine = _ancestors()
    return [line[:120] for line in proc.stdout.splitlines()
            if line.split(maxsplit=1)[0].isdigit() and int(line.split()[0]) not in mine]  # fmt: skip


def wait_quiet(max_wait_s: float, poll_s: float = 30, log=print) -> dict:
    """Wait until no other heavy process runs and the 1-minute load is below QUIET_LOAD."""
    start = time.monotonic()
    while True:
        others, load = others_busy(), os.getloadavg()[0]
        waited = time.monotonic() - start
        if not others and load < QUIET_LOAD:
            return {"quiet": True, "waited_s": round(waited), "others": []}
        if waited >= max_wait_s:
            return {"quiet": False, "waited_s": round(waited), "others": others, "load": load}
        log(f"  steadiness: waiting for a quiet machine (load {load:.2f}; {len(others)} other "
            f"heavy process(es){': ' + others[0] if others else ''})")  # fmt: skip
        time.sleep(poll_s)


def cpu_kind() -> dict:
    """CPU family / model (Zen 3 is family 25, Zen 5 family 26) and AVX-512: machines of this
    kind differ, and the modes may too."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    found = dict(re.findall(r"^(cpu family|model)\s*:\s*(\d+)$", text, re.M))
    flags = re.search(r"^flags\s*:(.*)$", text, re.M)
    return {"family_model": f"family {found.get('cpu family', '?')}, model {found.get('model', '?')}",
            "avx512": bool(flags) and "avx512f" in flags.group(1).split()}  # fmt: skip


def _worker(name: str, warmup: int, timed: int) -> dict:
    setting = SETTINGS[name]
    argv = ["-m", "bench.steadiness_worker", json.dumps(setting), str(warmup), str(timed)]
    result = run_json(argv, clean_env(**setting.get("env", {})), timeout=900)
    result["load_1min"] = round(os.getloadavg()[0], 2)
    return result


def loss_difference(losses: list[float], reference: list[float]) -> float:
    """Largest difference of two running-loss trajectories over their common executions."""
    return max((abs(a - b) for a, b in zip(losses, reference, strict=False)), default=0.0)


def summarise(runs: dict[str, list[dict]], reference: str = REFERENCE) -> dict:
    """Per setting: the distribution of steady ms per batch, cores busy, threads, and how far
    its loss trajectories stray from the reference setting's first process."""
    ref_losses = runs[reference][0]["losses"]
    ref_median = median([r["ms_per_batch"] for r in runs[reference]])
    out = {}
    for name, results in runs.items():
        ms = [r["ms_per_batch"] for r in results]
        out[name] = {
            "processes": len(ms),
            "ms_median": median(ms),
            "ms_min": min(ms),
            "ms_max": max(ms),
            "ms_p25": percentile(ms, 25),
            "ms_p75": percentile(ms, 75),
            "ratio": median(ms) / ref_median,
            "cores_busy_median": median([r["cores_busy"] for r in results]),
            "cores_busy_min": min(r["cores_busy"] for r in results),
            "cores_busy_max": max(r["cores_busy"] for r in results),
            "threads_median": median([r["threads"] for r in results]),
            "loss_diff_max": max(loss_difference(r["losses"], ref_losses) for r in results),
            "cpu_ms_per_batch": median([r["cores_busy"] * r["ms_per_batch"] for r in results]),
            "steal_median": median([r.get("steal_cores", 0.0) for r in results]),
            "steal_max": max(r.get("steal_cores", 0.0) for r in results),
            "calm_ms": [
                r["ms_per_batch"] for r in results if r.get("steal_cores", 0.0) < CALM_STEAL
            ],
        }
    return out


def analysis(runs: dict[str, list[dict]]) -> dict:
    """What all processes together say about the cause: how closely ms per batch follows the
    CPU time the host took from this machine (steal), what cores busy + steal come to, and
    whether slow spells follow the round (time) rather than the setting."""
    every = [r for results in runs.values() for r in results]
    ms = [r["ms_per_batch"] for r in every]
    steal = [r.get("steal_cores", 0.0) for r in every]
    total = [r["cores_busy"] + s for r, s in zip(every, steal, strict=True)]
    rounds = sorted({r["round"] for r in every})
    by_round = [[r for r in every if r["round"] == i] for i in rounds]
    try:
        correlation = statistics.correlation(steal, ms)
    except statistics.StatisticsError:  # fewer than two processes, or no steal at all
        correlation = None
    return {"processes": len(every), "steal_ms_correlation": correlation,
            "busy_plus_steal_median": median(total), "busy_plus_steal_min": min(total),
            "busy_plus_steal_max": max(total),
            "calm_processes": sum(s < CALM_STEAL for s in steal),
            "round_ms_median": [median([r["ms_per_batch"] for r in rs]) for rs in by_round],
            "round_steal_median": [median([r.get("steal_cores", 0.0) for r in rs])
                                   for rs in by_round]}  # fmt: skip


def run(processes: int, warmup: int, timed: int, wait_s: float, log=print,
        names: list[str] | None = None) -> dict:  # fmt: skip
    """``processes`` fresh workers per setting, interleaved round-robin (the order rotates)."""
    names = list(names or DEFAULT_NAMES)
    quiet = wait_quiet(wait_s, log=log)
    if not quiet["quiet"]:
        log("  steadiness: the machine never got quiet; measuring anyway")
    out = {"processes": processes, "warmup_batches": warmup, "timed_batches": timed,
           "reference": REFERENCE, "quiet": quiet, "cpu": cpu_kind(), "load_before": list(os.getloadavg()),
           "settings": {n: SETTINGS[n] for n in names}}  # fmt: skip
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for i in range(processes):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            result = _worker(name, warmup, timed)
            result["round"] = i
            runs[name].append(result)
            log(f"  steadiness {name}: {result['ms_per_batch']:.1f} ms/batch, "
                f"{result['cores_busy']:.2f} cores busy, {result['threads']} threads "
                f"(load {result['load_1min']:.2f})")  # fmt: skip
    out["load_after"] = list(os.getloadavg())
    out["others_after"] = others_busy()
    out["summary"] = summarise(runs)
    out["analysis"] = analysis(runs)
    out["runs"] = runs
    return out
