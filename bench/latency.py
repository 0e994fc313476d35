"""Posting latency: from a record received on the PBX port to its PS sent to the PMS (target p99 < 100 ms
at 20 calls/s). Real processes on loopback: daemon, PBX simulator, PMS simulator.

The two ends are the daemon's own timestamps: the journal's ``received_at`` and the posting's first
``sent_at`` (its history line "sent with P# ..."), so no clock is compared across processes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from appliance.db.models import Call, JournalEntry, Posting, PostingEvent  # noqa: E402
from appliance.db.session import make_engine, make_sessionmaker  # noqa: E402
from tests.integration.harness import Site, wait_for  # noqa: E402


def measure(rate: float, seconds: float, url: str | None) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        site = Site(root, url or f"sqlite:///{root / 'appliance.db'}")
        site.write_config()
        try:
            site.start_pms()
            site.start_daemon()
            time.sleep(2)
            count = int(rate * seconds)
            site.start_pbx(count, rate)
            wait_for(lambda: site.db()["calls"] >= count, seconds + 60, "calls stored", site)
            wait_for(lambda: not site.db()["states"].get("open"), 60, "postings answered", site)
            engine = make_engine(site.db_url)
            with make_sessionmaker(engine)() as session:
                first_sent = (select(PostingEvent.posting_id, func.min(PostingEvent.at).label("sent"))
                              .where(PostingEvent.cause.like("sent with P#%"))
                              .group_by(PostingEvent.posting_id).subquery())
                rows = session.execute(
                    select(JournalEntry.received_at, first_sent.c.sent)
                    .join(Call, Call.journal_id == JournalEntry.id)
                    .join(Posting, Posting.call_id == Call.id)
                    .join(first_sent, first_sent.c.posting_id == Posting.id)
                ).all()
            engine.dispose()
        finally:
            site.stop_all()
    return [(sent - received).total_seconds() * 1000 for received, sent in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    latencies = sorted(measure(args.rate, args.seconds, args.database_url))
    if not latencies:
        print("latency: no postings were sent")
        return
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"latency record->PS at {args.rate:g} calls/s: {len(latencies)} postings, "
          f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms "
          f"(target p99 < 100 ms)")


if __name__ == "__main__":
    main()
