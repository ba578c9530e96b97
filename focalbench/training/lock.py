"""Claiming a run: one process at a time trains a run, whatever launched it.

Before training, a process creates ``runs/<run_id>/lock.json`` with ``O_CREAT | O_EXCL`` (exactly one
creator wins, also over NFS v3+), holding its pid, host, start time and a random token; it deletes the lock
once metrics.json or error.json is written (in a ``finally``). While it holds the lock, a heartbeat thread
refreshes the lock file's mtime every :func:`heartbeat_s` seconds.

A process that finds a run locked does not train it. The lock is **stale**, and taken over with a message,
when its holder is gone:

- the holder's pid is dead and the lock is from this host (checked at once), or
- the lock had no heartbeat for ``FOCALBENCH_LOCK_TIMEOUT`` seconds (default 600: ten minutes; the
  heartbeat comes every 30 s, or every quarter of the timeout if that is shorter). This covers holders on
  other hosts (SLURM nodes), a pid reused by an unrelated process, and a stopped process.

Taking over renames the stale lock aside, checks that what was renamed is the lock judged stale (and puts it
back otherwise), then claims the run with ``O_EXCL`` again, so two waiters never both take it over.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from focalbench.training.record import LOCK_FILE

DEFAULT_TIMEOUT_S = 600.0
HEARTBEAT_S = 30.0

Notify = Callable[[str], None]

# The tokens of the locks this process holds (a lock with our pid and host but another token is a
# leftover of an earlier process that had the same pid, e.g. before a container restart).
_held: set[str] = set()


def timeout_s() -> float:
    """Seconds without a heartbeat after which a lock is stale: ``FOCALBENCH_LOCK_TIMEOUT``, default 600."""
    raw = os.environ.get("FOCALBENCH_LOCK_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def heartbeat_s() -> float:
    return min(HEARTBEAT_S, timeout_s() / 4)


def stderr_notify(message: str) -> None:
    sys.stderr.write(f"focalbench: {message}\n")
    sys.stderr.flush()


@dataclass
class LockInfo:
    """A lock file as found on disk."""

    path: Path
    pid: int | None
    host: str
    started: float | None
    token: str
    age_s: float  # seconds since the last heartbeat (the file's mtime)
    stale_reason: str | None  # why it is stale, or None when its holder is alive

    @property
    def stale(self) -> bool:
        return self.stale_reason is not None

    def holder(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.started)) if self.started else "?"
        return f"pid {self.pid} on {self.host or '?'}, since {since}"


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_FILE


def inspect(run_dir: Path) -> LockInfo | None:
    """The run's lock, with whether it is stale; None when the run is not locked."""
    path = lock_path(run_dir)
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        # Being written right now (the creator writes just after creating), or garbage: judge by its age.
        data = {}
    pid = data.get("pid") if isinstance(data.get("pid"), int) else None
    host = str(data.get("host", ""))
    token = str(data.get("token", ""))
    age = max(0.0, time.time() - mtime)
    reason = None
    if host == socket.gethostname() and pid is not None:
        if pid == os.getpid() and token not in _held:
            reason = f"pid {pid} is this process, which does not hold it"
        elif not _pid_alive(pid):
            reason = f"pid {pid} on this host is dead"
    if reason is None and age > timeout_s():
        reason = f"no heartbeat for {age:.0f} s (FOCALBENCH_LOCK_TIMEOUT={timeout_s():g})"
    started = data.get("started")
    return LockInfo(
        path, pid, host, started if isinstance(started, (int, float)) else None, token, age, reason
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return True
    return True


class RunLock:
    """A held lock: refreshes its heartbeat until :meth:`release` (also a context manager)."""

    def __init__(self, path: Path, token: str, heartbeat: float):
        self.path, self.token = path, token
        self.lost = False  # set when another process took the lock over while we held it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True)
        _held.add(token)
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            if not self._still_ours():
                self.lost = True
                return
            try:
                os.utime(self.path)
            except OSError:
                self.lost = True
                return

    def _still_ours(self) -> bool:
        try:
            return json.loads(self.path.read_text()).get("token") == self.token
        except (OSError, ValueError, AttributeError):
            return False

    def release(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        _held.discard(self.token)
        if self._still_ours():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def try_acquire(run_dir: Path, notify: Notify | None = None) -> RunLock | LockInfo:
    """Claim the run: a :class:`RunLock` when this process now holds it, else the live lock of the process
    that does (a stale lock is taken over first, with a message through ``notify``)."""
    notify = notify or stderr_notify
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(20):  # each round either claims the lock, finds it live, or removes a stale one
        token = secrets.token_hex(8)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = inspect(run_dir)
            if info is None:
                continue  # released in between: try again
            if not info.stale:
                return info
            if _take_over(info):
                notify(
                    f"run {Path(run_dir).name}: the lock of {info.holder()} is stale ({info.stale_reason}); "
                    f"taking it over"
                )
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "token": token}, f
            )
        return RunLock(path, token, heartbeat_s())
    info = inspect(run_dir)
    if info is not None:
        return info
    raise RuntimeError(f"cannot claim the lock {path}")  # pragma: no cover - 20 lost races in a row


def _take_over(info: LockInfo) -> bool:
    """Remove the stale lock ``info``; False when another process changed it first."""
    aside = info.path.with_name(f"{info.path.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(info.path, aside)
    except FileNotFoundError:
        return False
    try:
        data = json.loads(aside.read_text())
        token = str(data.get("token", "")) if isinstance(data, dict) else ""
    except (OSError, ValueError):
        token = ""
    if token != info.token:  # not the lock we judged stale: a fresh one appeared; put it back
        with contextlib.suppress(OSError):
            os.link(aside, info.path)
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True
