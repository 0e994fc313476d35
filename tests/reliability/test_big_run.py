"""The big run (issue 8, "Proof under fire"): 20,000 calls, the daemon SIGKILLed 20 times, the PMS
killed and restarted, the PBX link dropped, then the four promises of ``checks.py``.

The daemon, the PBX simulator and the PMS simulator are real processes on loopback (``harness.Site``);
the PBX connects through a ``LinkCutter`` so its link can be dropped. Kill points (``faults.py``):
at random moments of the stream (ingest), between a PS and its PA, and inside a database commit.
Like a PBX that cannot know what its collector stored, the simulator replays its last records on every
reconnect, and buffers everything while no collector listens (``--buffer`` as large as the run, so the
simulator itself never drops a call the test counts as sent).

Sizes come from the environment: ``make test-reliability`` runs the full size (``RELIABILITY_CALLS=20000
RELIABILITY_KILLS=20`` on SQLite, ``RELIABILITY_PG_CALLS=5000 RELIABILITY_PG_KILLS=10`` on PostgreSQL);
without them (``make test``) the run is 4,000 calls and 8 kills on SQLite, 2,000 and 6 on PostgreSQL.
Also ``RELIABILITY_RATE`` (calls/s, default 200) and ``RELIABILITY_SEED``.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from sqlalchemy import func, select

from appliance.db.models import Call
from appliance.db.session import make_engine
from tests.integration.harness import LinkCutter, Site, wait_for
from tests.reliability.checks import check_promises, distinct_calls, unfinished
from tests.reliability.faults import KillLog, kill_in_syscall, postgres_round_trip, sqlite_commit

pytestmark = pytest.mark.slow

RATE = float(os.environ.get("RELIABILITY_RATE", "200"))
SEED = int(os.environ.get("RELIABILITY_SEED", "20261122"))
# A late answer holds the posting in flight long enough to kill the daemon between the PS and its PA,
# and stays under the daemon's answer timeout when nobody is killed.
LATE_PA = 4
ANSWER_TIMEOUT = 8.0
REPLAY = int(RATE * 10)


class CallCounter:
    """``SELECT count(*) FROM calls`` on one engine for the whole run (polled often)."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)

    def calls(self) -> int:
        with self._engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Call))

    def close(self) -> None:
        self._engine.dispose()


def _lines(path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def sizes(db_url: str) -> tuple[int, int]:
    """(calls, daemon kills). ``make test-reliability`` sets the full sizes (20,000 and 20 on SQLite,
    5,000 and 10 on PostgreSQL); the defaults are the smaller run ``make test`` can afford."""
    if db_url.startswith("sqlite"):
        return int(os.environ.get("RELIABILITY_CALLS", "4000")), int(os.environ.get("RELIABILITY_KILLS", "8"))
    return (int(os.environ.get("RELIABILITY_PG_CALLS", "2000")), int(os.environ.get("RELIABILITY_PG_KILLS", "6")))


def schedule(rng: random.Random, kills: int) -> list[str]:
    """``kills`` daemon kills split over the three points, the PMS restarted twice and the PBX link
    dropped three times, in a seeded random order."""
    thirds = [kills - 2 * (kills // 3), kills // 3, kills // 3]
    events = ["ingest"] * thirds[0] + ["ps-pa"] * thirds[1] + ["commit"] * thirds[2]
    rng.shuffle(events)
    for position, extra in ((kills // 4, "pms-restart"), ((3 * kills) // 4, "pms-restart"),
                            (kills // 6, "link-cut"), (kills // 2, "link-cut"), ((5 * kills) // 6, "link-cut")):
        events.insert(min(position, len(events)), extra)
    return events


def test_big_run_loses_nothing_and_posts_nothing_twice(tmp_path, db_url) -> None:
    calls, kills = sizes(db_url)
    rng = random.Random(SEED)
    site = Site(tmp_path, db_url, answer_timeout=ANSWER_TIMEOUT)
    site.write_config()
    cutter = LinkCutter(site.pbx_port)
    site.pbx_connect_port = cutter.port
    log = KillLog()
    counter = CallCounter(db_url)
    commit = sqlite_commit if db_url.startswith("sqlite") else postgres_round_trip
    started = time.monotonic()
    try:
        site.start_pms()
        site.start_daemon()
        # Replay (10 s of the stream) covers what a killed daemon had received but not journaled: its
        # queued jobs and the socket buffers (each fault waits until less than half of it is in flight).
        # The PBX stays connected (``--linger``) until the last fault is over: a PBX that had left could
        # not replay what the last killed daemon lost. It is stopped once every call is stored.
        site.start_pbx(calls, RATE, "--replay", str(REPLAY), "--buffer", str(calls), "--linger", "3600")
        # Each fault comes a random while after the daemon serves again (the relay has reached it), so
        # no kill lands in the interpreter's start-up, which would test nothing but a slow import.
        gap = max(1.0, min(4.0, calls / RATE / (kills + 5)))
        serving = 0  # relay connections to the daemon before the last restart or cut
        for event in schedule(rng, kills):
            wait_for(lambda: cutter.connections > serving or site.processes["pbx"].poll() is not None, 120,
                     "the daemon serving the PBX link again", site, interval=0.1)
            time.sleep(rng.uniform(0.5 * gap, 1.5 * gap))
            # The PBX replays its last REPLAY records; a kill with more than that in flight (written to
            # the socket, not yet journaled) would lose records by the PBX's own limit, as a real PBX
            # with that buffer would. So a fault waits until the daemon has caught up with the stream.
            wait_for(lambda: _lines(site.pbx_record) - counter.calls() <= REPLAY // 2, 600,
                     "the daemon catching up with the stream", site, interval=0.5)
            if event == "link-cut":
                serving = cutter.connections
                log.record(event, f"{cutter.cut()} connection(s)")
                continue
            if event == "pms-restart":
                site.kill("pms")
                time.sleep(rng.uniform(0.5, 3.0))
                site.start_pms()
                log.record(event, "killed and restarted")
                continue
            daemon = site.processes["daemon"]
            serving = cutter.connections
            if event == "ingest":
                daemon.send_signal(signal.SIGKILL)
                daemon.wait(timeout=20)
                log.record(event, "random moment")
            elif event == "commit":
                log.record(event, kill_in_syscall(daemon, commit, timeout=5.0))
            else:
                log.record(event, _kill_between_ps_and_pa(site, daemon))
            time.sleep(rng.uniform(0.0, 1.0))
            site.start_daemon()
        stream_done = time.monotonic() - started
        wait_for(lambda: _lines(site.pbx_record) >= calls, 300, "the PBX has produced every call", site)
        distinct = distinct_calls(site)
        wait_for(lambda: counter.calls() >= distinct, 300, "all calls stored", site, interval=2.0)
        site.kill("pbx", signal.SIGTERM)
        wait_for(lambda: not unfinished(site), 600, "every posting answered or failed", site, interval=2.0)
        counts = check_promises(site, calls)
        daemon_log = (tmp_path / "daemon.log").read_text()
        daemon_kills = log.kinds["ingest"] + log.kinds["ps-pa"] + log.kinds["commit"]
        print(f"\nbig run ({db_url.split(':')[0]}): calls={calls} rate={RATE}/s daemon kills={daemon_kills}"
              f" [{log.summary()}] link connections={cutter.connections}"
              f" stream+faults={stream_done:.0f}s total={time.monotonic() - started:.0f}s"
              f" daemon starts={daemon_log.count('=== start')}\n{counts}")
        assert daemon_kills == kills
        assert log.kinds["pms-restart"] == 2 and log.kinds["link-cut"] == 3
    finally:
        site.stop_all()
        cutter.close()
        counter.close()


def _kill_between_ps_and_pa(site: Site, daemon) -> str:
    """Hold the PMS's next answer, wait until it has recorded the PS, SIGKILL the daemon."""
    before = len(site.pms_received())
    try:
        site.control(f"fault late-pa {LATE_PA}")
    except OSError:
        pass  # the PMS is restarting; the kill below still lands somewhere in the posting loop
    deadline = time.monotonic() + 15
    hit = "timeout"
    while time.monotonic() < deadline:
        fresh = site.pms_received()[before:]
        if any(str(r.get("fault") or "").startswith("late-pa") for r in fresh):
            hit = "PS recorded, PA held"
            break
        time.sleep(0.02)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=20)
    if hit == "timeout":
        try:
            site.control("fault clear")
        except OSError:
            pass
    return hit
