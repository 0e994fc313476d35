"""Fault injection for the reliability runs: where a SIGKILL lands, and what the run saw.

The kill points the issue names (issue 8, "Proof under fire"):

- during ingest: at a random moment while the PBX stream flows;
- between a PS and its PA: the PMS simulator is told (control port, ``fault late-pa``) to hold its next
  answer, and the daemon is killed as soon as the PMS has recorded that PS (its record file is written
  before the PA would go out), so the posting is sent and never answered;
- during a database commit: the daemon's threads are sampled through ``/proc/PID/task/*/syscall``
  until one is inside ``pwrite64``/``fsync``/``fdatasync`` on x86_64 (SQLite writing or syncing its WAL),
  then killed. On PostgreSQL the commit happens in the server; the daemon is killed while a thread waits
  in ``recvfrom``/``poll`` on the server's socket, which is as close as a client gets.
"""

from __future__ import annotations

import os
import platform
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
WRITE_SYNC = {1: "write", 18: "pwrite64", 20: "writev", 74: "fsync", 75: "fdatasync"}
SOCKET_WAIT = {7: "poll", 44: "sendto", 45: "recvfrom", 271: "ppoll"}
SQLITE_FILES = (".db", ".db-wal", ".db-journal")


def sqlite_commit(pid: int, tid: int, number: int, target: str) -> str:
    """A thread writing or syncing the SQLite database or its write-ahead log."""
    return WRITE_SYNC[number] + " " + target.rsplit("/", 1)[-1] \
        if number in WRITE_SYNC and target.endswith(SQLITE_FILES) else ""


def postgres_round_trip(pid: int, tid: int, number: int, target: str) -> str:
    """A thread other than the reactor's waiting on a socket: the database thread talking to the
    server (the reactor thread waits in epoll_wait, not in these calls)."""
    if tid == pid or number not in SOCKET_WAIT:
        return ""
    # poll/ppoll take a pollfd array, not a descriptor: the thread is the only one that polls (the
    # reactor uses epoll_wait), so it is waiting for the server's answer.
    return SOCKET_WAIT[number] if number in (7, 271) or target.startswith("socket:") else ""


@dataclass
class KillLog:
    """What each fault hit; printed after a run and kept in docs/reliability.md's figures."""

    kinds: Counter = field(default_factory=Counter)
    hits: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def record(self, kind: str, hit: str) -> None:
        self.kinds[kind] += 1
        self.hits[f"{kind}:{hit}"] += 1

    def summary(self) -> str:
        return ", ".join(f"{k}={n}" for k, n in sorted(self.hits.items()))


def thread_syscalls(pid: int) -> list[tuple[int, int, str]]:
    """(thread id, system call number, what its first argument's descriptor points at) for each thread
    of ``pid`` inside a system call now (``/proc/PID/task/TID/syscall``, proc(5))."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall", encoding="ascii") as handle:
                fields = handle.read().split()
        except OSError:
            continue
        if len(fields) < 2 or not fields[0].isdigit():
            continue  # "running" or "-1 ..." (not in a system call)
        try:
            target = os.readlink(f"/proc/{pid}/fd/{int(fields[1], 16)}")
        except (OSError, ValueError):
            target = ""
        found.append((int(tid), int(fields[0]), target))
    return found


def kill_in_syscall(process: subprocess.Popen, matches: Callable[[int, int, int, str], str],
                    timeout: float) -> str:
    """SIGKILL ``process`` as soon as ``matches(pid, tid, number, target)`` names what a thread is doing.

    Returns that name, or ``"timeout"`` when nothing matched in ``timeout`` seconds (the process is
    killed anyway, so a run keeps its number of kills).
    """
    hit = "timeout"
    if platform.machine() == "x86_64":
        deadline = time.monotonic() + timeout
        while hit == "timeout" and time.monotonic() < deadline and process.poll() is None:
            for tid, number, target in thread_syscalls(process.pid):
                name = matches(process.pid, tid, number, target)
                if name:
                    # Kill before anything else: the thread is in the call now, not after a print.
                    if process.poll() is None:
                        process.send_signal(signal.SIGKILL)
                    hit = name
                    break
    else:
        time.sleep(random.uniform(0, timeout))
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=20)
    return hit


def any_db_write(pid: int, tid: int, number: int, target: str) -> str:
    """Any thread writing or syncing the SQLite database, or talking to a database server over a
    socket (``appliance db upgrade`` is single-threaded: its one thread runs the migration)."""
    if number in WRITE_SYNC and target.endswith(SQLITE_FILES):
        return WRITE_SYNC[number] + " " + target.rsplit("/", 1)[-1]
    if number in SOCKET_WAIT and target.startswith("socket:"):
        return SOCKET_WAIT[number]
    return ""
