"""The PMS goes away for 30 s while calls keep coming; and the PMS loses an answer now and then.

Postings wait while the link is down and drain when it returns; nothing is lost or posted twice. A posting
whose answer never comes is ``failed`` (no answer) and the next posting still goes out.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests.integration.harness import Site, wait_for

pytestmark = pytest.mark.slow
CALLS = 240
LOSE_EVERY = "25:lose-pa"


def test_postings_wait_for_the_pms_and_a_lost_answer_fails_only_its_posting(tmp_path, db_url) -> None:
    site = Site(tmp_path, db_url, answer_timeout=3.0)
    site.write_config()
    try:
        site.start_pms("--fault-every", LOSE_EVERY)
        site.start_daemon()
        site.start_pbx(CALLS, 4)
        wait_for(lambda: site.db()["states"].get("ok", 0) >= 5, 60, "first postings ok", site)

        site.kill("pms", signal.SIGTERM)
        stopped_at = site.db()
        time.sleep(30)
        during = site.db()
        assert during["calls"] > stopped_at["calls"], "calls must keep arriving while the PMS is away"
        assert during["states"].get("open", 0) > stopped_at["states"].get("open", 0), site.logs()
        assert during["states"].get("ok", 0) == stopped_at["states"].get("ok", 0)

        site.start_pms("--fault-every", LOSE_EVERY)
        wait_for(lambda: len(site.pbx_sent()) == CALLS and site.db()["calls"] == CALLS, 120, "all calls", site)
        wait_for(lambda: not (site.db()["states"].get("open") or site.db()["states"].get("retry")), 120,
                 "the queue drained", site)

        db = site.db()
        received = site.pms_received()
        sequences = [r["sequence"] for r in received]
        assert len(sequences) == len(set(sequences))
        charges = Counter((r["room"], r["amount"], r["date"], r["time"], r["dialled"]) for r in received)
        assert [c for c, n in charges.items() if n > 1] == []
        assert len(db["postings"]) == db["chargeable"]

        ok = {p.sequence for p in db["postings"] if p.state == "ok"}
        answered_ok = {r["sequence"] for r in received if r["answer"] == "OK"}
        lost = {r["sequence"] for r in received if r["fault"] == "lose-pa"}
        failed = [p for p in db["postings"] if p.state == "failed"]
        assert ok <= answered_ok
        assert lost, "the simulator lost no answer; the fault was not exercised"
        assert all(p.reason.startswith("no answer: check the folio before re-posting") for p in failed)
        assert lost <= {p.sequence for p in failed}
        # The link does not stall on a lost answer: the next posting goes out and is answered.
        followed = [sequence for sequence in lost if sequence < max(sequences)]
        assert followed, "no lost answer was followed by another posting"
        assert all(min(s for s in sequences if s > sequence) in ok for sequence in followed)
        assert answered_ok - ok <= {p.sequence for p in failed}  # the PS in flight when the PMS stopped
        print(f"calls={db['calls']} postings={db['states']} received={len(received)} lost={len(lost)}")
    finally:
        site.stop_all()
