"""The machine a run was measured on: CPU, cores, clock, peak FP32 rate, library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
from pathlib import Path

FLOP_PER_CYCLE = 32  # AVX2 + FMA: 2 FMA units x 8 FP32 lanes x 2 FLOP per FMA
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "streamlit", "plotly", "playwright")


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    match = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.M)
    return match.group(1).strip() if match else platform.processor() or "unknown CPU"


def clock_ghz() -> float | None:
    """The clock /proc/cpuinfo reports (a VM shows its nominal clock, not a boost clock)."""
    found = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _cpuinfo(), re.M)]
    return max(found) / 1000 if found else None


def has_avx2_fma() -> bool:
    flags = re.search(r"^flags\s*:(.*)$", _cpuinfo(), re.M)
    return bool(flags) and {"avx2", "fma"} <= set(flags.group(1).split())


def peak_gflops() -> float | None:
    """Peak FP32 rate: cores x 32 FLOP/cycle x clock (assumes AVX2 + FMA, no AVX-512)."""
    ghz = clock_ghz()
    return cores() * FLOP_PER_CYCLE * ghz if ghz else None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def describe() -> dict:
    ghz, peak = clock_ghz(), peak_gflops()
    return {
        "cpu": cpu_model(),
        "cores": cores(),
        "clock_ghz": ghz,
        "avx2_fma": has_avx2_fma(),
        "peak_gflops": peak,
        "peak_assumption": (
            f"{cores()} cores x {FLOP_PER_CYCLE} FP32 FLOP/cycle (AVX2 FMA: 2 units x 8 lanes x 2) "
            f"x {ghz:.3f} GHz (/proc/cpuinfo) = {peak:.0f} GFLOP/s"
            if peak
            else "clock unknown: no compute-limit ratio"
        ),
        "platform": platform.platform(),
        "memory_gib": _memory_gib(),
        "versions": versions(),
    }


def _memory_gib() -> float | None:
    match = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None
