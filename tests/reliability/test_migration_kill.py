"""SIGKILL ``appliance db upgrade`` in the middle of the migrations on a fresh database, then run it
again: the schema must end at head and match the models (the comparison of tests/db/test_migrations.py).

This is what happens when the power goes during a software update on site. The kill lands while the
upgrade is inside a database write (``faults.any_db_write``: it writes or syncs the SQLite file, or
talks to the PostgreSQL server), the k-th such write with k random within the count a first, whole run
showed, so the trials stop in different migrations.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from appliance.db.models import Base
from appliance.db.session import current_revision, head_revision, make_engine
from tests.reliability.faults import any_db_write, thread_syscalls

pytestmark = pytest.mark.slow
TRIALS = int(os.environ.get("RELIABILITY_MIGRATION_TRIALS", "4"))


def upgrade_command(url: str) -> list[str]:
    return [sys.executable, "-m", "appliance", "db", "upgrade", "--database-url", url]


def differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _fresh(url: str, trial: int) -> str:
    """A fresh database per trial: a new SQLite file, or every table of the PostgreSQL one dropped."""
    if url.startswith("sqlite"):
        return url.replace("appliance.db", f"migrate-{trial}.db")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    return url




def test_a_killed_upgrade_finishes_at_head_when_run_again(db_url, tmp_path) -> None:
    rng = random.Random(int(os.environ.get("RELIABILITY_SEED", "20261122")))
    sqlite = db_url.startswith("sqlite")
    # Calibration: a whole upgrade, to know how many writes a poller sees in it (SQLite) or how long
    # it lasts (PostgreSQL: libpq's round trips are too short to be caught; the migrations run as one
    # transaction at the end of the command, after the imports).
    url = _fresh(db_url, -1)
    began = time.monotonic()
    calibration = subprocess.Popen(upgrade_command(url), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    writes = _writes(calibration, stop_at=None) if sqlite else 0
    calibration.wait(timeout=300)
    lasted = time.monotonic() - began
    assert writes > 0 or not sqlite, "no database write of the upgrade was seen: the fault cannot be placed"
    hits = []
    for trial in range(TRIALS):
        url = _fresh(db_url, trial)
        upgrade = subprocess.Popen(upgrade_command(url), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if sqlite:
            # Under load a run shows fewer writes than the calibration did: aim in its first two thirds.
            target = rng.randint(0, max(0, (2 * writes) // 3 - 1))
            _writes(upgrade, stop_at=target)
            where = f"write {target} of ~{writes}"
        else:
            delay = rng.uniform(0.3 * lasted, 0.95 * lasted)
            time.sleep(delay)
            if upgrade.poll() is None:
                upgrade.send_signal(signal.SIGKILL)
            where = f"{delay:.2f} s of ~{lasted:.2f} s"
        upgrade.wait(timeout=30)
        hits.append(f"trial {trial}: killed at {where} (rc {upgrade.returncode}), revision then {revision(url)}")
        again = subprocess.run(upgrade_command(url), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, f"{hits[-1]}\nthe second upgrade failed:\n{again.stderr[-2000:]}"
        assert revision(url) == head_revision(), hits[-1]
        assert differences(url) == [], hits[-1]
    print("\n" + "\n".join(hits))
    killed = sum("rc -9" in hit for hit in hits)
    assert killed >= TRIALS // 2, "too few upgrades were killed before they finished:\n" + "\n".join(hits)


def _writes(process: subprocess.Popen, stop_at: int | None) -> int:
    """Count the database writes a poller sees (a thread entering ``faults.any_db_write`` counts once
    per stay); with ``stop_at``, SIGKILL the process while it is inside write number ``stop_at``."""
    seen = 0
    inside = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        now_inside = any(any_db_write(process.pid, tid, n, t) for tid, n, t in thread_syscalls(process.pid))
        if now_inside and not inside:
            if stop_at is not None and seen >= stop_at:
                process.send_signal(signal.SIGKILL)
                return seen
            seen += 1
        inside = now_inside
    return seen
