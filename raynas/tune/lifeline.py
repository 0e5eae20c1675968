"""The processes of a local Ray instance die with the driver that started it.

When a driver that started a local Ray is killed (SIGKILL, the OOM killer), Ray's raylet dies
with it, but its children do not all follow: a trial busy in a training loop never asks the
raylet anything, and Ray's agents can outlive it. Two mechanisms, on Linux:

- :func:`reap_when_gone`: a small watchdog process, started by the driver, that remembers the
  driver's process tree and kills what is left of it once the driver is gone;
- :func:`exit_with_parent`: each trial process also exits as soon as it is re-parented, in
  case the watchdog itself was killed.

SIGTERM of the driver becomes a :class:`KeyboardInterrupt` (:func:`terminate_gracefully`), so
Tune and ``ray.shutdown`` clean up as after Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["exit_with_parent", "reap_when_gone", "terminate_gracefully"]

_watching = False


def exit_with_parent(interval_s: float = 1.0) -> None:
    """Starts (once per process) a daemon thread that ends the process when its parent dies."""
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(1)  # no cleanup: the experiment resumes from its last checkpoint

    threading.Thread(target=watch, name="raynas-lifeline", daemon=True).start()


def terminate_gracefully(cleanup: Callable[[], None]) -> None:
    """Turns SIGTERM into :class:`KeyboardInterrupt` and runs ``cleanup`` at exit.

    Python's default SIGTERM ends the driver without ``finally`` blocks; an interrupt unwinds
    through Tune, which saves its experiment state, and ``ray.shutdown``.
    """

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
    atexit.register(cleanup)


def reap_when_gone(driver: int | None = None) -> subprocess.Popen | None:
    """Starts the watchdog of ``driver`` (default: this process); None where /proc is absent."""
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "raynas.tune.lifeline", str(driver or os.getpid())],
        start_new_session=True,  # a Ctrl-C in the terminal must not reach it
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], fields[19]


def _descendants(root: int) -> dict[int, str]:
    """Every process below ``root``, with its start time (so a reused pid is not mistaken)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[0], []).append((int(entry.name), stat[2]))
    found, todo = {}, [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found[pid] = start
            todo.append(pid)
    return found


def _watch(driver: int, interval_s: float = 0.5, grace_s: float = 2.0) -> None:
    known: dict[int, str] = {}
    while (stat := _stat(driver)) is not None and stat[1] != "Z":
        known.update(_descendants(driver))
        known.pop(os.getpid(), None)
        time.sleep(interval_s)
    time.sleep(grace_s)  # what shuts down by itself may do so
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start in known.items():
            stat = _stat(pid)
            if stat is not None and stat[2] == start:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
        time.sleep(grace_s)


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
