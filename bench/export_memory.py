"""Time to first byte, total time and peak memory of the web process while it streams an export of about
N calls (issue 6: a CSV export of 1,000,000 rows streams with the web process under 200 MB RSS; the Excel
export is streamed the same way).

    .venv/bin/python bench/export_memory.py [--rows 1000000] [--format csv|xlsx|both] [--database-url URL]

The web admin runs in a child process of its own, served by the real Twisted server
(``appliance.net.web_server``), exactly as ``appliance web`` serves it; this process signs in over HTTP
and downloads the export, counting rows and bytes without keeping them. The child's resident memory is
read from ``/proc/PID/status``: ``VmRSS`` before the export (app loaded, idle) and ``VmHWM`` (the peak) after.
Not a test: it prints figures. Without ``--database-url`` a SQLite file in a temporary folder is filled
first (kept with ``--keep`` to reuse it: pass the printed URL next time). A database with more calls
than ``--rows`` is not filled further: the export then covers its most recent days holding at least
``--rows`` calls (``export_query``).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

USER, PASSWORD = "bench", "bench password 1"


def serve(url: str) -> None:
    """The child: the web admin on a free port; prints the port, serves until killed."""
    from twisted.internet import reactor

    from appliance.net.web_server import make_web_service
    from webadmin import create_app

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SITE_TIMEZONE": "UTC"})
    service = make_web_service(app, "127.0.0.1", 0, reactor)
    service.startService()
    # The pool's threads must stop with the reactor, or SIGTERM leaves the process running.
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    print(service.port.getHost().port, flush=True)
    reactor.run()


def ensure_user(url: str) -> None:
    from sqlalchemy import select

    from appliance.db.models import User
    from appliance.db.session import make_engine, make_sessionmaker
    from webadmin.auth import hash_password

    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        if session.scalar(select(User.id).where(User.username == USER)) is None:
            from datetime import datetime, timezone

            session.add(User(username=USER, password_hash=hash_password(PASSWORD), role="viewer",
                             must_change_password=False, failed_logins=0, active=True,
                             created_at=datetime.now(timezone.utc)))
            session.commit()
    engine.dispose()


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


def reset_peak(pid: int) -> None:
    """Linux 4.0+: writing 5 to clear_refs resets VmHWM to the current RSS (own children only)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


class WebProcess:
    """The web admin in a child process on a free port, and an HTTP client signed in to it."""

    def __init__(self, url: str) -> None:
        ensure_user(url)
        self.child = subprocess.Popen([sys.executable, __file__, "--serve", url], stdout=subprocess.PIPE,
                                      text=True)
        try:
            self.base = f"http://127.0.0.1:{int(self.child.stdout.readline())}"
            cookies = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            self.opener = urllib.request.build_opener(cookies)
            login = self.opener.open(self.base + "/auth/login", timeout=30).read().decode()
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
            data = urllib.parse.urlencode({"username": USER, "password": PASSWORD,
                                           "csrf_token": token}).encode()
            self.opener.open(self.base + "/auth/login", data=data, timeout=30).read()
        except BaseException:
            self.close()
            raise

    def get(self, path: str) -> tuple[int, bytes]:
        with self.opener.open(self.base + path, timeout=600) as response:
            return response.status, response.read()

    def close(self) -> None:
        self.child.terminate()
        self.child.wait(timeout=60)


def export_query(url: str, rows: int) -> str:
    """A date filter holding about ``rows`` calls: the most recent days of the data."""
    from sqlalchemy import func, select

    from appliance.db.models import Call
    from appliance.db.session import make_engine

    engine = make_engine(url)
    with engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(Call)) or 0
        if rows >= total:
            return "start=&end="
        boundary = connection.scalar(select(Call.start).order_by(Call.start.desc()).offset(rows).limit(1))
    engine.dispose()
    # From the day of the row ``rows`` back: at least ``rows`` calls (the rest of that day too).
    return f"start={boundary.date()}&end=" if boundary else "start=&end="


def measure(url: str, kinds: list[str], query: str = "start=&end=") -> list[dict[str, object]]:
    """Start the web process, then download each export; returns one result per format."""
    web = WebProcess(url)
    try:
        return [export(web, kind, query) for kind in kinds]
    finally:
        web.close()


def export(web: WebProcess, kind: str, query: str = "start=&end=") -> dict[str, object]:
    """Download one export, counting bytes and lines; the web process's memory before and at its peak."""
    pid = web.child.pid
    time.sleep(0.5)
    reset_peak(pid)
    before = memory(pid)
    started = time.perf_counter()
    size = lines = 0
    first_byte = None
    with web.opener.open(f"{web.base}/report/export.{kind}?{query}", timeout=3600) as response:
        # read1: whatever has arrived, so the first byte is timed when it comes, not after 64 KiB.
        while chunk := response.read1(1 << 16):
            first_byte = first_byte or time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    after = memory(pid)
    return {"format": kind, "bytes": size, "rows": lines - 1 if kind == "csv" else None, "seconds": elapsed,
            "first_byte": first_byte or elapsed, "rss_before": before["VmRSS"], "rss_peak": after["VmHWM"],
            "rss_after": after["VmRSS"]}


def report(results: list[dict[str, object]]) -> None:
    for r in results:
        rows = f"{r['rows']:,} rows, " if r["rows"] is not None else ""
        print(f"{r['format']}: {rows}{r['bytes'] / 2**20:.1f} MiB in {r['seconds']:.1f} s "
              f"(first byte after {r['first_byte']:.2f} s); web process RSS {r['rss_before']} MiB before, "
              f"peak {r['rss_peak']} MiB, {r['rss_after']} MiB after")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="calls in the database (default 1,000,000)")
    parser.add_argument("--format", choices=("csv", "xlsx", "both"), default="csv")
    parser.add_argument("--database-url", help="use this database (filled up to --rows calls)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite database")
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    from _seed import seed

    folder = tempfile.mkdtemp(prefix="bench-export-")
    url = args.database_url or f"sqlite:///{folder}/appliance.db"
    print(f"database: {url}")
    seed(url, args.rows)
    kinds = ["csv", "xlsx"] if args.format == "both" else [args.format]
    query = export_query(url, args.rows)
    print(f"export of the calls from {query}")
    report(measure(url, kinds, query))
    if not args.keep and not args.database_url:
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
