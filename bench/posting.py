"""Posting throughput: 1,000 queued postings drain from a restored FIAS link over loopback TCP.

Run: ``.venv/bin/python bench/posting.py [--postings N] [--database-url URL]``. The daemon (``appliance
run``) starts while the PMS simulator is away, N postings wait in its outbox, then the simulator starts
(the link is restored) and the daemon drains the queue, one PS in flight at a time (FIAS 2.20.23 p.85).
Postings are claimed a window ahead (P# and ``sent_at`` committed before any PS leaves) and answers are
committed in batches, with at most ``appliance.outbox.PIPELINE_DEPTH`` sent postings awaiting their
commit. Prints postings/s from the first PS sent to the last PA received, the answer latency (PA received
minus PS written, both as the outbox stores them) p50 / p99, and the load average (the figure is only
comparable on an idle machine).

Target (issue 5): at least 300 postings/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from appliance.db.models import Posting  # noqa: E402
from appliance.db.session import make_engine, make_sessionmaker  # noqa: E402
from appliance.pipeline import add_posting  # noqa: E402
from tests.integration.harness import Site, wait_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=1000)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        url = args.database_url or f"sqlite:///{root / 'appliance.db'}"
        site = Site(root, url, answer_timeout=10.0)
        site.write_config()
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            site.start_daemon()
            wait_for(lambda: "PMS link pms" in (root / "daemon.log").read_text(), 30, "the daemon")
            now = datetime.now(timezone.utc)
            with sessions.begin() as session:
                for index in range(args.postings):
                    add_posting(session, call=None, link="pms", room=str(101 + index % 20), stay_id=None,
                                amount=Decimal("1.25"), currency="USD", now=now, cause="bench",
                                destination="44207")
            started = time.monotonic()
            # The simulator as a PMS, without its record file: the appliance is what is measured.
            site.start("pms", "simulate", "pms", "--listen", f"127.0.0.1:{site.pms_port}", "--answer", "ok")
            wait_for(lambda: site.db()["states"].get("ok", 0) == args.postings, 300, "the queue drained", site,
                     interval=0.2)
            wall = time.monotonic() - started
            with sessions() as session:
                rows = session.execute(select(Posting.sent_at, Posting.answered_at)).all()
        finally:
            site.stop_all()
            engine.dispose()
    first = min(sent for sent, _ in rows)
    last = max(answered for _, answered in rows)
    seconds = (last - first).total_seconds()
    latencies = sorted((answered - sent).total_seconds() * 1000 for sent, answered in rows)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"postings: {len(rows)} drained in {seconds:.2f} s after the link came back "
          f"({wall:.1f} s including the simulator's start)")
    print(f"throughput: {len(rows) / seconds:.0f} postings/s (target >= 300)")
    print(f"answer latency: p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms")
    print("load average: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
