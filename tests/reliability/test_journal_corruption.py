"""Damage the tail of the journal after a SIGKILL, then restart (issue 8).

The journal is the ``journal`` table (``appliance/pipeline.py``: raw bytes are committed there before
they are parsed). On SQLite, the bytes on disk that end with the newest commits are the write-ahead
log, ``appliance.db-wal`` (WAL mode, ``appliance/db/session.py``); the newest pages that were
checkpointed are in ``appliance.db`` itself. Two cases, each after a SIGKILL mid-stream:

- the last 1,024 bytes of the WAL overwritten with random bytes: SQLite's frame checksums end the log
  at the first bad frame, so the last transactions are gone as if the kill had come earlier;
- the last page of the main database file overwritten (after a forced checkpoint, so the page is live).

The daemon must start (or refuse with a clear error naming the file), the PBX replay must fill what
was lost, and nothing may reach the PMS twice.
"""

from __future__ import annotations

import random
import sqlite3
import time

import pytest

from tests.integration.harness import Site, wait_for
from tests.reliability.checks import check_promises, distinct_calls, unfinished

pytestmark = pytest.mark.slow
CALLS = 1500
RATE = 100


def _damage_tail(path, length: int, rng: random.Random) -> int:
    size = path.stat().st_size
    length = min(length, size)
    with open(path, "r+b") as handle:
        handle.seek(size - length)
        handle.write(bytes(rng.getrandbits(8) for _ in range(length)))
    return size




@pytest.mark.parametrize("where", ["wal", "db-last-page"])
def test_a_damaged_journal_tail_loses_nothing_the_pbx_can_replay(tmp_path, where) -> None:
    rng = random.Random(8)
    db_path = tmp_path / "appliance.db"
    site = Site(tmp_path, f"sqlite:///{db_path}")
    site.write_config()
    try:
        site.start_pms()
        site.start_daemon()
        # The PBX replays everything on reconnect, so whatever the damage removed can come back.
        site.start_pbx(CALLS, RATE, "--replay", str(CALLS), "--buffer", str(CALLS), "--linger", "3600")
        wait_for(lambda: len(site.pms_received()) >= 100, 300, "the first postings", site)
        time.sleep(rng.uniform(0.5, 2.0))
        site.kill("daemon")
        if where == "wal":
            damaged = tmp_path / "appliance.db-wal"
            assert damaged.exists() and damaged.stat().st_size > 1024, "no write-ahead log after the kill"
        else:
            # Move the log into the file first, so the last page of appliance.db is the live one.
            connection = sqlite3.connect(db_path)
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page = connection.execute("PRAGMA page_size").fetchone()[0]
            connection.close()
            damaged = db_path
        size = _damage_tail(damaged, 1024 if where == "wal" else page, rng)
        if where != "wal":
            check = sqlite3.connect(db_path)
            try:
                verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
            except sqlite3.DatabaseError as exc:  # damage to the schema page: not even a verdict
                verdict = str(exc)
            check.close()
            if verdict != "ok":
                # A damaged database must stop the daemon at start with a message that names the file
                # and says what to do, instead of a stream of tracebacks while nothing posts.
                site.start_daemon()
                daemon = site.processes["daemon"]
                try:
                    daemon.wait(timeout=60)
                except Exception:
                    pass
                log = (tmp_path / "daemon.log").read_text().rsplit("=== start", 1)[-1]
                assert daemon.poll() is not None and daemon.returncode != 0, (
                    f"the daemon runs on a damaged database ({verdict[:200]}):\n{log[-3000:]}")
                assert str(db_path) in log or "appliance.db" in log, log[-3000:]
                return
        site.start_daemon()
        started = time.monotonic()
        # Either the daemon runs again, or it stopped with an error that names the file.
        while time.monotonic() - started < 60 and site.processes["daemon"].poll() is None:
            if "ready;" in (tmp_path / "daemon.log").read_text().rsplit("=== start", 1)[-1]:
                break
            time.sleep(0.5)
        daemon = site.processes["daemon"]
        if daemon.poll() is not None:
            log = (tmp_path / "daemon.log").read_text()[-3000:]
            assert daemon.returncode != 0 and "appliance.db" in log, f"the daemon stopped without saying why:\n{log}"
            pytest.fail(f"the daemon refused to start after damage to {damaged.name} ({size} bytes):\n{log}")
        wait_for(lambda: len(site.pbx_sent()) >= CALLS, 300, "every call produced", site)
        wait_for(lambda: site.db()["calls"] >= distinct_calls(site), 300, "all calls stored after the damage", site)
        site.kill("pbx")
        wait_for(lambda: not unfinished(site), 300, "every posting answered or failed", site)
        counts = check_promises(site, CALLS)
        print(f"\ndamaged the last {1024 if where == 'wal' else 'page'} bytes of {damaged.name} ({size} bytes): "
              f"{counts}")
    finally:
        site.stop_all()
