"""SIGKILL the daemon at random moments during a stream of 2,000 calls (issue: core acceptance).

After the run: every call the PBX simulator produced is stored exactly once, every chargeable call has
exactly one posting, no charge reached the PMS twice, and every posting that is not ``ok`` says why.

Records the kernel had delivered to a daemon that was killed before it journaled them are gone from that
daemon; like a PBX that cannot know what its collector stored, the simulator replays its recent records
(``--replay``) on every reconnect, and the appliance must store each of them once.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from tests.integration.harness import Site, wait_for

pytestmark = pytest.mark.slow
CALLS = 2000


def test_sigkill_during_a_stream_loses_nothing_and_posts_nothing_twice(tmp_path, db_url) -> None:
    site = Site(tmp_path, db_url)
    site.write_config()
    try:
        site.start_pms()
        site.start_daemon()
        site.start_pbx(CALLS, 100, "--replay", str(CALLS), "--linger", "5")
        rng = random.Random(20261122)
        kills = 0
        while len(site.pbx_sent()) < CALLS or kills < 5:
            time.sleep(rng.uniform(0.5, 3.0))
            site.kill("daemon")
            kills += 1
            time.sleep(rng.uniform(0.0, 1.0))
            site.start_daemon()
            if kills >= 12:
                break
        wait_for(lambda: site.db()["calls"] >= CALLS, 120, "all calls stored", site)
        wait_for(lambda: not _unfinished(site), 180, "every posting answered or failed", site)

        sent = site.pbx_sent()
        db = site.db()
        assert len(sent) == CALLS, site.logs()
        assert db["calls"] == CALLS
        assert Counter(r.rstrip() for r in db["raws"]) == Counter(s["raw"].rstrip() for s in sent)

        call_ids = [p.call_id for p in db["postings"]]
        assert len(call_ids) == len(set(call_ids)) == db["chargeable"]

        received = site.pms_received()
        sequences = [int(r["sequence"]) for r in received]
        assert len(sequences) == len(set(sequences)), "a P# reached the PMS twice"
        charges = [(r["room"], r["amount"], r["date"], r["time"], r["dialled"]) for r in received]
        duplicates = [c for c, n in Counter(charges).items() if n > 1]
        assert duplicates == [], f"charges posted twice: {duplicates}"

        ok = {p.sequence for p in db["postings"] if p.state == "ok"}
        assert ok <= set(sequences)
        not_ok = [p for p in db["postings"] if p.state != "ok"]
        assert all(p.reason for p in not_ok)
        print(f"kills={kills} calls={db['calls']} postings={db['states']} pms_received={len(received)}")
    finally:
        site.stop_all()


def _unfinished(site: Site) -> bool:
    states = site.db()["states"]
    return bool(states.get("open") or states.get("retry"))
