"""``make bench``: run every bench script and write their figures to docs/performance.md.

Each script prints its figures as lines; this collects them with the machine and the date. The soak
(bench/memory.py) runs 30 minutes by default; ``BENCH_QUICK=1`` shortens the long ones.
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
SCRIPTS = [
    ("Ingest (records/s, target 10,000/s)", ["bench/ingest.py", "--count", "20000"]),
    ("Posting latency (target p99 < 100 ms at 20 calls/s)", ["bench/latency.py", "--seconds", "30" if QUICK else "60"]),
    ("Backlog drain (postings/s, target >= 300)", ["bench/posting.py"]),
    ("Rating (calls/s)", ["bench/rating.py"]),
    ("Alerts (record to alert, target < 1 s)", ["bench/alerts.py"]),
    ("Export memory", ["bench/export_memory.py"]),
    ("Web report latency", ["bench/web.py"]),
    ("Daemon memory (target < 80 MB, no growth)", ["bench/memory.py", "--minutes", "3" if QUICK else "30"]),
]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    lines = [
        "# Performance figures", "",
        f"Measured by `make bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}.",
        "Each section is what the script printed; the target is in its title.", "",
    ]
    for title, command in SCRIPTS:
        if not (ROOT / command[0]).exists():
            continue
        print(f"== {title}", flush=True)
        result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
        output = (result.stdout.strip() or result.stderr.strip()[-2000:]) or "(no output)"
        print(output, flush=True)
        lines += [f"## {title}", "", "```", output, "```", ""]
    (ROOT / "docs" / "performance.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
