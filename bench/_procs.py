"""Processes: start them, measure them from /proc, stop them.

The server is pinned to core 0 (taskset) and the load generator to core 1 when the machine
has two cores or more, so that neither steals the other's CPU and each CPU% means one core.
Every process started here is in a ProcessSet, whose exit stops it (SIGTERM to its process
group, SIGKILL after a timeout) whatever the way out: normal end, error or Ctrl-C.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinning() -> bool:
    """Return True when server and load generator get a core each (>= 2 cores, taskset exists)."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pin_load_generator() -> None:
    """Pin this process to core 1 when pinning applies, and raise its file limit; returns None."""
    if pinning():
        os.sched_setaffinity(0, {1})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass(frozen=True)
class ProcSample:
    """CPU ticks (user+system) and RSS bytes of a process tree at one instant.

    ``main_ticks`` are those of the root process's main thread alone (for Zapline and Node:
    the event loop), so ``cpu_ticks - main_ticks`` is every other thread's and child's (for
    Zapline: the SQLite worker threads).
    """

    wall: float
    cpu_ticks: int
    rss_bytes: int
    main_ticks: int = 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return kids


def sample_tree(pid: int) -> ProcSample:
    """Return CPU ticks and RSS of ``pid`` and its descendants, read from /proc.

    A process that vanished meanwhile counts as zero; never raises for that.
    """
    ticks = rss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(p))
    return ProcSample(time.monotonic(), ticks, rss, _main_thread_ticks(pid))


def _main_thread_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(a: ProcSample, b: ProcSample) -> tuple[float, float]:
    """Return (CPU seconds of the whole tree, of the root's main thread) between two samples."""
    return (b.cpu_ticks - a.cpu_ticks) / _CLK_TCK, (b.main_ticks - a.main_ticks) / _CLK_TCK


def cpu_percent(a: ProcSample, b: ProcSample) -> float:
    """Return the CPU% (100 = one core) used between two samples of the same tree."""
    wall = b.wall - a.wall
    return 0.0 if wall <= 0 else round(100 * (b.cpu_ticks - a.cpu_ticks) / _CLK_TCK / wall, 1)


def self_cpu() -> tuple[float, float]:
    """Return (monotonic time, CPU seconds used so far) of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.monotonic(), ru.ru_utime + ru.ru_stime


class ProcessSet:
    """Processes this harness started; leaving the ``with`` block stops each of them."""

    def __init__(self, stop_timeout: float = 10.0) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stop_timeout = stop_timeout

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def start(
        self, argv: list[str], env: dict[str, str], log: Path, *, pin: bool
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own process group (pinned to core 0 if ``pin``); returns it."""
        if pin and pinning():
            argv = ["taskset", "-c", "0", *argv]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process: SIGTERM to its group, SIGKILL after the timeout; returns None."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        """Stop every process still in the set, newest first; returns None."""
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the group we created with start_new_session; its id is the pid
    except ProcessLookupError:
        pass


def wait_ready(
    api_url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0
) -> None:
    """Poll ``api_url``/healthz until it answers 200; returns None.

    Raises RuntimeError (with the tail of the server log) if the process exits or the
    deadline passes first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{api_url}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, n: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"
