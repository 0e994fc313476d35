"""Ingest throughput end to end: records/s from a PBX socket to stored calls and postings (issue 4,
target 10,000 records/s on SQLite).

A real daemon (``python -m appliance run``) with three PBX links listening on loopback, one per format:
Mitel MiVoice Business fixed-width SMDR, Avaya IP Office CSV (with transferred calls in two legs joined by
Call ID and the continuation flag) and Asterisk ``Master.csv``. For each format in turn the bench connects
as the PBX, writes ``--count`` records as fast as the socket takes them, and waits until the daemon has
journaled and processed every one (journal commit, parse, dedup, classify, rate, route, posting, alert
rules). The clock runs from the first byte written to the poll that sees the last journal row processed
(polls every 0.1 s); the daemon's CPU time over the same span is printed too, as records per CPU
second, which a loaded machine disturbs much less than the wall clock. Then it checks that every record
was stored exactly once: one journal row and one ``calls`` row per record, no duplicate dedup key, nothing
quarantined, each chargeable call with exactly one posting and that posting with exactly one history line.

The PMS link points at a closed port, so postings stay queued: the drain is ``bench/posting.py``'s figure.
Guests are checked in to rooms 101-120 so most outgoing guest calls are charged. The daemon runs with its
default alert rules (judged per batch, in the calls' transaction); ``--no-call-alerts`` turns them off to
show what they cost. Each line says which. Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from appliance.db.models import Call, JournalEntry, Posting, PostingEvent, QuarantinedLine  # noqa: E402
from appliance.db.session import make_engine, make_sessionmaker, upgrade  # noqa: E402
from appliance.events import GuestCheckedIn  # noqa: E402
from appliance.legs import CONTINUED  # noqa: E402
from appliance.occupancy import apply_guest_event  # noqa: E402
from pbx_drivers.asterisk import SPEC as ASTERISK  # noqa: E402
from pbx_drivers.avaya_ipoffice import SPEC as IPOFFICE  # noqa: E402
from pbx_drivers.callgen import generate_call  # noqa: E402
from pbx_drivers.mitel_mivb import SPEC as MITEL  # noqa: E402

TZ = ZoneInfo("America/New_York")
EXTENSIONS = [str(n) for n in range(101, 131)] + ["150"]
TRUNKS = ["1", "2", "3", "4"]
SPACING = timedelta(seconds=5)  # between call starts: 100,000 calls span about six days
TRANSFERRED = 0.05  # IP Office: share of outgoing calls transferred to a second extension (two legs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mitel(rng: random.Random, starts: Any, count: int) -> list[bytes]:
    options = MITEL.options()
    return [MITEL.format_record(generate_call(rng, next(starts), EXTENSIONS, TRUNKS), options)
            for _ in range(count)]


def ipoffice(rng: random.Random, starts: Any, count: int) -> list[bytes]:
    """Every call has a Call ID; some outgoing calls are transferred: a continued leg, then the last leg
    from another extension with the same Call ID (the pipeline stores both and charges the call once)."""
    options = IPOFFICE.options()
    out: list[bytes] = []
    while len(out) < count:
        call = generate_call(rng, next(starts), EXTENSIONS, TRUNKS)
        call = dataclasses.replace(call, call_id=str(len(out) + 1))
        transferred = rng.random() < TRANSFERRED
        if call.direction == "outgoing" and call.answered and len(out) + 2 <= count and transferred:
            first = max(1, call.duration // 2)
            other = rng.choice([e for e in EXTENSIONS if e != call.extension])
            out.append(IPOFFICE.format_record(dataclasses.replace(call, duration=first, transfer=CONTINUED),
                                              options))
            call = dataclasses.replace(call, extension=other, duration=call.duration - first + 1)
        out.append(IPOFFICE.format_record(call, options))
    return out


def asterisk(rng: random.Random, starts: Any, count: int) -> list[bytes]:
    options = ASTERISK.options()
    out = []
    for i in range(count):
        call = generate_call(rng, next(starts), EXTENSIONS, TRUNKS)
        call = dataclasses.replace(call, call_id=f"{1763000000 + i}.{i}")  # Asterisk's uniqueid
        out.append(ASTERISK.format_record(call, options))
    return out


FORMATS: list[tuple[str, str, Callable[[random.Random, Any, int], list[bytes]]]] = [
    ("mitel", "mitel_mivb", mitel),
    ("ipoffice", "avaya_ipoffice", ipoffice),
    ("asterisk", "asterisk", asterisk),
]


def records(make: Callable[[random.Random, Any, int], list[bytes]], count: int, seed: int,
            first: datetime) -> bytes:
    """``count`` records, each ending in CR LF as a PBX prints them, starting at ``first``."""
    def starts() -> Any:
        moment = first
        while True:
            yield moment
            moment += SPACING
    lines = make(random.Random(seed), starts(), count)
    return b"".join(line.rstrip(b"\r\n") + b"\r\n" for line in lines)


def write_config(root: Path, url: str, ports: dict[str, int], call_alerts: bool) -> Path:
    config: dict[str, Any] = {
        "site": {"name": "Bench Hotel", "country": "US", "timezone": "America/New_York", "currency": "USD",
                 "access_code": "9", "local_exchange": "212"},
        "database": {"url": url},
        "pbx": [{"name": name, "driver": driver, "transport": "tcp-server", "host": "127.0.0.1",
                 "port": ports[name]} for name, driver, _ in FORMATS],
        # Nothing listens there: postings stay queued, the PMS link retries with backoff.
        "pms": {"name": "pms", "driver": "fias", "transport": "tcp-client", "host": "127.0.0.1",
                "port": _free_port()},
        "extensions": [{"numbers": "101-130", "category": "guest"}, {"numbers": "150", "category": "lobby"}],
        "tariff": {"markup_percent": 20, "surcharge_per_call": "0.25", "grace_seconds": 5, "rounding": "0.01",
                   "default": {"per_minute": "0.30"}},
        "log_level": "info",
    }
    if not call_alerts:
        config["alerts"] = {"enabled": False}
    path = root / "appliance.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for_port(port: int, daemon: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited with {daemon.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the daemon did not listen on {port} within {timeout} s:\n{log.read_text()[-3000:]}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_and_wait(sessions: Any, port: int, data: bytes, expected_journal: int, timeout: float) -> float:
    """Write ``data`` as a PBX would, then poll until the journal holds ``expected_journal`` rows, none
    unprocessed. Returns the seconds from the first byte to that poll."""
    pending = select(JournalEntry.id).where(JournalEntry.processed.is_(False)).limit(1)
    last = select(func.max(JournalEntry.id))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(data)  # blocks while the daemon pauses reading: that is part of the measure
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sessions() as session:
                if (session.scalar(last) or 0) >= expected_journal and session.scalar(pending) is None:
                    return time.perf_counter() - started
            time.sleep(0.1)
    raise SystemExit(f"not every record was processed within {timeout} s")


def verify(sessions: Any, link: str, count: int) -> str:
    """Every record stored exactly once, and each chargeable call with one posting and one history line."""
    with sessions() as session:
        journal = session.scalar(select(func.count()).select_from(JournalEntry)
                                 .where(JournalEntry.link == link))
        calls, journal_ids, keys = session.execute(
            select(func.count(), func.count(func.distinct(Call.journal_id)),
                   func.count(func.distinct(Call.dedup_key)))
            .where(Call.link == link)).one()
        legs = session.scalar(select(func.count()).select_from(Call)
                              .where(Call.link == link, Call.disposition.in_(("leg", "merged"))))
        quarantined = session.scalar(select(func.count()).select_from(QuarantinedLine)
                                     .where(QuarantinedLine.link == link))
        per_call = (select(Call.id, func.count(Posting.id).label("postings"))
                    .outerjoin(Posting, Posting.call_id == Call.id)
                    .where(Call.link == link, Call.disposition == "charge").group_by(Call.id).subquery())
        charged, bad_postings = session.execute(
            select(func.count(), func.count().filter(per_call.c.postings != 1)).select_from(per_call)).one()
        per_posting = (select(Posting.id, func.count(PostingEvent.id).label("lines"))
                       .join(Call, Call.id == Posting.call_id)
                       .outerjoin(PostingEvent, PostingEvent.posting_id == Posting.id)
                       .where(Call.link == link).group_by(Posting.id).subquery())
        postings, bad_history = session.execute(
            select(func.count(), func.count().filter(per_posting.c.lines != 1)).select_from(per_posting)).one()
    problems = []
    if not journal == calls == journal_ids == keys == count:
        problems.append(f"{count} records, {journal} journal rows, {calls} calls, {journal_ids} distinct "
                        f"journal ids, {keys} distinct dedup keys")
    if quarantined:
        problems.append(f"{quarantined} quarantined")
    if bad_postings or bad_history or postings != charged:
        problems.append(f"{bad_postings} charged calls without exactly one posting, {bad_history} postings "
                        f"without exactly one history line")
    verdict = "FAILED: " + "; ".join(problems) if problems else "ok, every record stored once"
    return (f"{calls} calls ({legs} transfer legs), {charged} charged with {postings} postings: {verdict}")


def run(url: str, count: int, call_alerts: bool, timeout: float) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        url = url or f"sqlite:///{root / 'appliance.db'}"
        ports = {name: _free_port() for name, _, _ in FORMATS}
        config = write_config(root, url, ports, call_alerts)
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        now = datetime.now(timezone.utc)
        with sessions.begin() as session:
            for room in range(101, 121):
                apply_guest_event(session, GuestCheckedIn(room=str(room), guest_id=f"G{room}", name="Bench"),
                                  now - timedelta(days=30))
        # Calls in the past week, as a PBX replaying its buffer would send them (formats without a year
        # take it from the arrival time, so none may lie in the future).
        first = (now - SPACING * count - timedelta(hours=1)).astimezone(TZ).replace(microsecond=0)
        payloads = [(name, records(make, count, seed, first))
                    for seed, (name, _, make) in enumerate(FORMATS, 1)]
        log = root / "daemon.log"
        with open(log, "w") as out:
            daemon = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(config)],
                                      cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            for name, _, _ in FORMATS:
                wait_for_port(ports[name], daemon, log)
            journaled = 0
            for name, data in payloads:
                journaled += count
                cpu_before = cpu_seconds(daemon.pid)
                seconds = send_and_wait(sessions, ports[name], data, journaled, timeout)
                cpu_after = cpu_seconds(daemon.pid)
                # Records per second of the daemon's own CPU time: what an idle machine would reach, near
                # enough, when other processes share the cores during the run.
                cpu = (f" (daemon CPU {cpu_after - cpu_before:.2f} s = {count / (cpu_after - cpu_before):.0f} "
                       "records per CPU second)" if cpu_before is not None and cpu_after and cpu_after > cpu_before
                       else "")
                lines.append(f"ingest {name} ({url.split(':')[0]}, alert rules {'on' if call_alerts else 'off'}): "
                             f"{count} records in {seconds:.2f} s = {count / seconds:.0f} records/s{cpu}; "
                             + verify(sessions, name, count))
                print(lines[-1], flush=True)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="records of each format")
    parser.add_argument("--database-url", default="",
                        help="a scratch PostgreSQL (or SQLite) database instead of a temporary SQLite file")
    parser.add_argument("--no-call-alerts", action="store_true", help="run the daemon with the alert rules off")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for each format")
    args = parser.parse_args()
    run(args.database_url, args.count, not args.no_call_alerts, args.timeout)


if __name__ == "__main__":
    main()
