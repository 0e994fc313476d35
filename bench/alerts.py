"""Alert latency: from a call record arriving at a running daemon's PBX port to its alert row existing.

Run: ``.venv/bin/python bench/alerts.py [--calls 50] [--history 100000] [--db-url URL]``. Starts a real
``appliance run`` process (Mitel SMDR over a TCP server port, the default alert rules), optionally fills
the database with ``--history`` calls over the last 60 days first (so the burst and baseline rules query a
realistic table), then, as a PBX would:

- *one by one*: sends ``--calls`` lobby-phone international calls, one record at a time, each from its own
  lobby extension (so no cool-down holds one back), and times each record from the write on the socket
  until the ``lobby_long_distance`` alert for it is in the database (polled every 2 ms);
- *replay*: sends ``--calls`` more such records in one write, as a PBX emptying its buffer after a link
  outage, and times the write until the last of their alerts exists;
- *buffer*: ``--buffer`` guest calls of today from ``--busy`` guest extensions (many calls each, so every
  one is judged by burst dialling and the baseline against a full day and a long history), then one lobby
  international call, in one write; times the write until that last call's alert exists and prints
  records/s. Before issue 7's fix the burst and baseline rules read all of an extension's calls per call,
  so this rate fell as the table grew; now each rule reads a few index entries per call.

Target (issue 7): under 1 s from a record arriving to its alert being stored. This is not a test.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from appliance.db.models import Alert  # noqa: E402
from appliance.db.session import make_engine, make_sessionmaker, upgrade  # noqa: E402
from appliance.events import CallRecord  # noqa: E402
from pbx_drivers.mitel_mivb import MitelOptions, format_record  # noqa: E402

TZ = ZoneInfo("America/New_York")
INTERNATIONAL = "9011442071234567"
LOCAL = "92125551234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, db_url: str, port: int, lobby_phones: int) -> Path:
    config = {
        "site": {"name": "Bench Hotel", "country": "US", "timezone": "America/New_York", "currency": "USD",
                 "access_code": "9", "local_exchange": "212"},
        "database": {"url": db_url},
        "pbx": [{"name": "pbx", "driver": "mitel_mivb", "transport": "tcp-server", "host": "127.0.0.1",
                 "port": port}],
        "extensions": [{"numbers": "2100-2999", "category": "guest", "strip_prefix": "2"},
                       {"numbers": f"5000-{5000 + lobby_phones - 1}", "category": "lobby"}],
        "tariff": {"markup_percent": 20, "surcharge_per_call": "0.25", "grace_seconds": 5, "rounding": "0.01",
                   "default": {"per_minute": "0.30"}},
        "log_level": "warn",
    }
    path = folder / "appliance.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def record(extension: str, start: datetime, dialled: str = INTERNATIONAL) -> bytes:
    call = CallRecord(start=start, duration=95, ring=None, extension=extension, trunk="1",
                      dialled=dialled, caller="", direction="outgoing", answered=True)
    return format_record(call, MitelOptions()) + b"\r\n"


def busy_buffer(count: int, busy: int, end: datetime) -> list[bytes]:
    """``count`` local guest calls from ``busy`` extensions (those bench/_seed.py gives history), spread
    evenly over the time before ``end`` and within today, each extension's calls minutes apart."""
    from bench._seed import ROOMS

    extensions = [f"2{room}" for room in ROOMS[:busy]]
    day_start = end.replace(hour=0, minute=0, second=0)
    step = max(1.0, min(60.0, (end - day_start).total_seconds() / max(1, count)))
    return [record(extensions[i % busy], end - timedelta(seconds=step * (count - i)), LOCAL)
            for i in range(count)]


def wait_for_port(port: int, daemon: subprocess.Popen, timeout: float = 60) -> socket.socket:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited with {daemon.returncode}")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the daemon did not open its PBX port")


def alerts_for(sessions, extensions: list[str]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Alert).where(
            Alert.rule == "lobby_long_distance", Alert.subject.in_(extensions))) or 0


def wait_alerts(sessions, extensions: list[str], timeout: float = 30) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if alerts_for(sessions, extensions) >= len(extensions):
            return time.perf_counter()
        time.sleep(0.002)
    raise SystemExit(f"alerts for {extensions[:3]}... never appeared")


def resync_sequences(db_url: str) -> None:
    """bench/_seed.py writes explicit ids; PostgreSQL's sequences must be moved past them."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    with engine.begin() as connection:
        for table in ("calls", "postings"):
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
    engine.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--history", type=int, default=0, help="calls to put in the database first")
    parser.add_argument("--buffer", type=int, default=0,
                        help="guest calls of today to send in one write after the latency runs")
    parser.add_argument("--busy", type=int, default=20, help="guest extensions the buffer's calls come from")
    parser.add_argument("--db-url", default="",
                        help="an empty database to use (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        folder = Path(tmp)
        db_url = args.db_url or f"sqlite:///{folder / 'appliance.db'}"
        upgrade(db_url)
        if args.history:
            from bench._seed import seed

            started = time.perf_counter()
            seed(db_url, args.history, days=60, end=datetime.now(timezone.utc), quiet=True)
            print(f"history: {args.history} calls over 60 days in {time.perf_counter() - started:.1f} s")
            if db_url.startswith("postgresql"):
                resync_sequences(db_url)
        port = free_port()
        config = write_config(folder, db_url, port, lobby_phones=2 * args.calls + 1)
        log = open(folder / "daemon.log", "w", encoding="utf-8")
        daemon = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(config)],
                                  stdout=log, stderr=subprocess.STDOUT)
        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)
        try:
            pbx = wait_for_port(port, daemon)
            one_by_one: list[float] = []
            for n in range(args.calls):
                extension = str(5000 + n)
                start = datetime.now(TZ).replace(microsecond=0) - timedelta(seconds=95)
                sent = time.perf_counter()
                pbx.sendall(record(extension, start))
                one_by_one.append(wait_alerts(sessions, [extension]) - sent)
            extensions = [str(5000 + args.calls + n) for n in range(args.calls)]
            start = datetime.now(TZ).replace(microsecond=0) - timedelta(minutes=30)
            burst = b"".join(record(ext, start + timedelta(seconds=20 * i))
                             for i, ext in enumerate(extensions))
            sent = time.perf_counter()
            pbx.sendall(burst)
            replay = wait_alerts(sessions, extensions) - sent
            buffered = None
            if args.buffer:
                last = str(5000 + 2 * args.calls)
                end = datetime.now(TZ).replace(microsecond=0) - timedelta(minutes=2)
                data = b"".join(busy_buffer(args.buffer, args.busy, end)) + record(last, end)
                sent = time.perf_counter()
                pbx.sendall(data)
                buffered = wait_alerts(sessions, [last], timeout=3600) - sent
            pbx.close()
        except SystemExit:
            log.flush()
            print((folder / "daemon.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            daemon.terminate()
            daemon.wait(timeout=20)
            engine.dispose()
            log.close()
        backend = db_url.split(":", 1)[0]
        ms = [v * 1000 for v in one_by_one]
        print(f"database: {backend}; {args.calls} lobby international calls, one record at a time")
        print(f"  record -> alert stored: p50 {statistics.median(ms):.1f} ms, "
              f"p90 {percentile(ms, 0.9):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
              f"max {max(ms):.1f} ms (target < 1000 ms)")
        print(f"replay of {args.calls} records in one write: last alert stored after {replay * 1000:.1f} ms "
              f"({replay * 1000 / args.calls:.1f} ms per record)")
        if buffered is not None:
            print(f"buffer of {args.buffer + 1} records from {args.busy} busy guest extensions and one lobby "
                  f"call in one write: its alert stored after {buffered:.2f} s "
                  f"= {(args.buffer + 1) / buffered:.0f} records/s")
        return 0 if max(ms) < 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
