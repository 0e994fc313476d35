"""The web admin's figures from issue 6: with 2,000,000 calls in the database, how long the first page
of a filtered call report takes (p50 / p95 over repeated requests, totals included), for every filter the
report offers, and the web process's memory while it streams a CSV export of 1,000,000 rows.

    .venv/bin/python bench/web.py [--calls 2000000] [--export-rows 1000000] [--runs 20]
                                  [--database-url URL ...] [--no-export] [--only TEXT]

Give ``--database-url`` once per database (a SQLite file, a PostgreSQL database: both are filled up to
``--calls`` first, once, and reused after) to get one column per database in the table. The web admin
runs in its own process behind the real Twisted server; times are measured from this process over HTTP
(request to last byte). Without ``--database-url`` a SQLite file in a temporary folder is filled first
(``--keep`` keeps it). The export covers the most recent calls up to ``--export-rows`` (a date filter
chosen from the data), so the two figures can share one database. A machine under load inflates every
figure: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _seed import END, seed
from export_memory import WebProcess, export, export_query, report

from webadmin.report_query import SORTS, STATES


def filters() -> list[tuple[str, str]]:
    """(what, query string) for the report's first page; the seeded data ends at ``_seed.END``. Every
    filter of the report over one month (the widest period a front desk usually asks about), the common
    ones over all time too, and every sort column."""
    day = END.date()
    month = f"start={day - timedelta(days=30)}&end={day}"
    rows = [
        ("one day", f"start={day}&end={day}"),
        ("last 7 days (the default)", f"start={day - timedelta(days=6)}&end={day}"),
        ("one month", month),
    ]
    rows += [(f"one month, {state} only", f"{month}&state={state}") for state in STATES]
    rows += [
        ("one month, charges only", f"{month}&record_type=charges"),
        ("one month, refunds only", f"{month}&record_type=refunds"),
        ("one month, room 112", f"{month}&room=112"),
        ("one month, extension 2112", f"{month}&extension=2112"),
        ("one month, caller contains 4420", f"{month}&caller=4420"),
        ("one month, called number contains 4420", f"{month}&called=4420"),
        ("one month, billing account ACME", f"{month}&account=ACME"),
        ("one month, failed, room 112", f"{month}&state=failed&room=112"),
    ]
    rows += [(f"one month, sorted by {sort}", f"{month}&sort={sort}&order=desc") for sort in SORTS
             if sort != "start"]
    rows += [
        ("call ID (ours)", "call_id=123456"),
        ("call ID (the PBX's)", "call_id=PBX-none"),
        ("one room, all time", "start=&end=&room=112"),
        ("one extension, all time", "start=&end=&extension=2112"),
        ("failed only, all time", "start=&end=&state=failed"),
        ("refunds only, all time", "start=&end=&record_type=refunds"),
        ("one extension, one year", f"start={day - timedelta(days=365)}&end={day}&extension=2112"),
        ("called number contains 4420, all time", "start=&end=&called=4420"),
        ("sorted by amount, all time", "start=&end=&sort=amount&order=desc"),
        ("ok only, all time", "start=&end=&state=ok"),
        ("everything, all time (worst case)", "start=&end="),
    ]
    return rows


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def time_pages(web: WebProcess, runs: int, only: str = "") -> dict[str, tuple[float, float]]:
    """(p50, p95) in ms of the first page for each filter: ``runs`` requests after 2 warm-up ones."""
    figures = {}
    for what, query in filters():
        if only and only not in what:
            continue
        samples = []
        for i in range(runs + 2):
            started = time.perf_counter()
            status, _ = web.get(f"/report/?{query}")
            assert status == 200, (what, status)
            if i >= 2:
                samples.append((time.perf_counter() - started) * 1000)
        figures[what] = (statistics.median(samples), percentile(samples, 0.95))
        print(f"  {what}: p50 {figures[what][0]:.0f} ms, p95 {figures[what][1]:.0f} ms", file=sys.stderr,
              flush=True)
    return figures


def print_table(columns: dict[str, dict[str, tuple[float, float]]], runs: int, target: float = 300) -> None:
    """One row per filter, p50 / p95 per database; ``!`` marks a p95 over the target."""
    print(f"first page of the call report with its totals, {runs} runs each (after 2 warm-up requests), "
          f"ms; load average {os.getloadavg()[0]:.2f}; '!' = p95 over {target:.0f} ms")
    names = list(columns)
    header = f"| {'filter':44} |" + "".join(f" {name[:20]:>20} |" for name in names)
    print(header)
    print("|" + "-" * 46 + "|" + "".join("-" * 22 + "|" for _ in names))
    for what, _ in filters():
        if not any(what in column for column in columns.values()):
            continue
        cells = ""
        for name in names:
            if what in columns[name]:
                p50, p95 = columns[name][what]
                cells += f" {f'{p50:.0f} / {p95:.0f}' + (' !' if p95 > target else '  '):>20} |"
            else:
                cells += f" {'-':>20} |"
        print(f"| {what:44} |{cells}")


def database_name(url: str) -> str:
    return "SQLite" if url.startswith("sqlite") else "PostgreSQL" if url.startswith("postgresql") else url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", action="append", default=[],
                        help="a database to measure (repeat for several); filled up to --calls first")
    parser.add_argument("--no-export", action="store_true", help="time the report pages only")
    parser.add_argument("--only", default="", help="only the filters whose description contains this")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    urls = args.database_url or [f"sqlite:///{tempfile.mkdtemp(prefix='bench-web-')}/appliance.db"]
    columns: dict[str, dict[str, tuple[float, float]]] = {}
    exports = []
    for url in urls:
        print(f"database: {url}", file=sys.stderr, flush=True)
        seed(url, args.calls, quiet=True)
        web = WebProcess(url)
        try:
            columns[database_name(url)] = time_pages(web, args.runs, args.only)
            if not args.no_export:
                query = export_query(url, args.export_rows)
                result = export(web, "csv", query)
                exports.append((database_name(url), query, result))
        finally:
            web.close()
    print_table(columns, args.runs)
    for name, query, result in exports:
        print(f"{name}, CSV export of the calls from {query}:")
        report([result])
    if not args.keep and not args.database_url:
        db_file = Path(urls[0].split(":///", 1)[1])
        for path in db_file.parent.iterdir():
            path.unlink()
        db_file.parent.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
