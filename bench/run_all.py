"""``make bench``: run every bench script and write their figures as a table to docs/performance.md.

Each script prints its figures as lines; this puts them in one table row per script, beside the target,
with the machine, the date and the load average before each run. The explanations of the misses are
written by hand in docs/performance-notes.md and copied below the table, so a new run never loses them.
The soak (bench/memory.py) runs 30 minutes; ``BENCH_QUICK=1`` shortens it and the latency run;
``BENCH_WEB_DB`` points the report and export benches at databases they filled before.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = os.environ.get("BENCH_QUICK") == "1"
# Seeding 2,000,000 calls takes longer than the benches: BENCH_WEB_DB reuses a database already filled
# by bench/web.py (a SQLAlchemy URL; several separated by spaces, e.g. SQLite and PostgreSQL).
WEB_DBS = [arg for url in os.environ.get("BENCH_WEB_DB", "").split() for arg in ("--database-url", url)]
# (what, target, command)
SCRIPTS = [
    ("ingest end to end, 3 formats through a socket into the daemon (SQLite)", "10,000 records/s",
     ["bench/ingest.py", "--count", "20000" if QUICK else "100000"]),
    ("posting latency, record received to PS sent, at 20 calls/s", "p99 < 100 ms",
     ["bench/latency.py", "--seconds", "30" if QUICK else "60"]),
    ("backlog drain, 1,000 queued postings over loopback FIAS", ">= 300 postings/s", ["bench/posting.py"]),
    ("rating, classification included, one core", "20,000 calls/s; card load < 2 s, lookup < 50 µs",
     ["bench/rating.py"]),
    ("record to alert stored (real daemon)", "< 1 s", ["bench/alerts.py"]),
    ("report first page and exports over 2,000,000 calls", "p95 < 300 ms; export < 200 MB RSS",
     ["bench/web.py", "--runs", "10", "--no-export", *WEB_DBS]),
    ("CSV and Excel export of 1,000,000 rows from the web process", "streamed, < 200 MB RSS",
     ["bench/export_memory.py", "--format", "both", *WEB_DBS[:2]]),
    ("daemon memory at 50 calls/s", "< 80 MB, no growth over 30 min",
     ["bench/memory.py", "--minutes", "3" if QUICK else "30"]),
]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def cell(text: str) -> str:
    return "<br>".join(line.strip().replace("|", "\\|") for line in text.splitlines() if line.strip())


def main() -> int:
    rows = []
    for what, target, command in SCRIPTS:
        load = os.getloadavg()[0]
        print(f"== {what} ({' '.join(command)}), load {load:.2f}", flush=True)
        result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
        output = result.stdout.strip() or f"failed: {result.stderr.strip()[-600:]}" or "(no output)"
        print(output, flush=True)
        rows.append(f"| {what} | `{' '.join(command)}` | {target} | {cell(output)} | {load:.2f} |")
    notes = ROOT / "docs" / "performance-notes.md"
    lines = [
        "# Performance figures", "",
        f"Measured by `make bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}"
        f"{' (BENCH_QUICK=1: shortened runs)' if QUICK else ''}. Each row is what the script printed.", "",
        "| what | script | target | measured | load before |", "|---|---|---|---|---|", *rows, "",
        notes.read_text() if notes.exists() else "",
    ]
    (ROOT / "docs" / "performance.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
