"""Ingest throughput: records/s from framed bytes to stored calls and postings (target 10,000/s).

Runs the real pipeline (journal commit, parse, dedup, classify, rate, route, posting) over a SQLite file
(and PostgreSQL with --pg) on realistic Mitel MiVoice Business records, in chunks as a TCP read delivers
them. Prints one line per database. Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.config import parse_config  # noqa: E402
from appliance.db.session import make_engine, make_sessionmaker, upgrade  # noqa: E402
from appliance.events import GuestCheckedIn  # noqa: E402
from appliance.occupancy import apply_guest_event  # noqa: E402
from appliance.pipeline import Pipeline  # noqa: E402
from pbx_drivers.callgen import generate_call  # noqa: E402
from pbx_drivers.mitel_mivb import SPEC as MITEL  # noqa: E402

TZ = ZoneInfo("America/New_York")


def records(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, 8, 0, tzinfo=TZ)
    extensions = [str(n) for n in range(101, 131)]
    out = []
    for i in range(count):
        call = generate_call(rng, start + timedelta(seconds=7 * i), extensions, ["1", "2", "3", "4"])
        out.append(MITEL.format_record(call, MITEL.options()).rstrip(b"\r\n"))
    return out


def config_for(url: str):
    return parse_config({
        "site": {"name": "Bench", "country": "US", "timezone": "America/New_York", "access_code": "9",
                 "local_exchange": "212"},
        "database": {"url": url},
        "pbx": [{"name": "pbx", "driver": "mitel_mivb", "transport": "tcp-server", "port": 1}],
        "pms": {"name": "pms", "driver": "fias", "transport": "tcp-client", "host": "127.0.0.1", "port": 1},
        "extensions": [{"numbers": "101-130", "category": "guest"}],
        "tariff": {"markup_percent": 20, "grace_seconds": 5, "default": {"per_minute": "0.30"}},
    }, "bench")


def run(url: str, count: int, chunk: int) -> dict:
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        for room in range(101, 121):
            apply_guest_event(session, GuestCheckedIn(room=str(room), guest_id=f"G{room}"),
                              datetime(2026, 11, 1, tzinfo=timezone.utc))
    pipeline = Pipeline(config_for(url), sessions, {"pbx": MITEL})
    lines = records(count)
    received = datetime(2026, 11, 21, tzinfo=timezone.utc)
    started = time.perf_counter()
    calls = postings = 0
    for i in range(0, len(lines), chunk):
        result = pipeline.ingest("pbx", lines[i:i + chunk], received)
        calls += result.calls
        postings += result.postings
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {"records": count, "chunk": chunk, "seconds": elapsed, "per_second": count / elapsed,
            "calls": calls, "postings": postings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--chunk", type=int, default=200, help="records per delivered chunk")
    parser.add_argument("--pg", default="", help="also run against this PostgreSQL URL (a scratch database)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls = [("sqlite", f"sqlite:///{folder}/bench.db")] + ([("postgresql", args.pg)] if args.pg else [])
        for name, url in urls:
            figures = run(url, args.count, args.chunk)
            print(f"ingest {name}: {figures['records']} records in {figures['seconds']:.2f} s = "
                  f"{figures['per_second']:.0f} records/s ({figures['calls']} calls, {figures['postings']} postings, "
                  f"chunks of {figures['chunk']})")


if __name__ == "__main__":
    main()
