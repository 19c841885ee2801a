"""A Streamlit server and Chromium settings shared by the benchmarks and the browser tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import PROJECT, clean_env

# Debian's Chromium, headless, as root, on a machine with no network beyond loopback.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 1000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


class Server:
    """``streamlit run SCRIPT`` on a free port, in a process group of its own."""

    def __init__(
        self,
        script: str,
        root: Path,
        log_dir: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = ("--server.address", "127.0.0.1"),
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{Path(script).stem}-{self.port}.log"
        argv = [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(self.port),
                *args, "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
        env = {**(env or clean_env()), "FMNIST_ARTIFACTS": str(root)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=PROJECT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not healthy(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The server and every process below it."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def peak_rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        return total / 1024

    def loaded_tensorflow(self) -> bool:
        for pid in self.pids():
            with contextlib.suppress(OSError):
                if "libtensorflow" in Path(f"/proc/{pid}/maps").read_text():
                    return True
        return False

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
                return
            except subprocess.TimeoutExpired:
                continue
