"""Daemon memory: RSS while calls stream at 50/s (target under 80 MB steady, no growth over 30 minutes).

Real processes on loopback. Samples the daemon's VmRSS from /proc every 10 s; prints the first sample
after warm-up, the last, the peak and the growth per 10 minutes from a least-squares fit.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Site  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def slope_per_10_min(samples: list[tuple[float, float]]) -> float:
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples) or 1.0
    return sum((t - mean_t) * (m - mean_m) for t, m in samples) / var * 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before sampling counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        site = Site(root, f"sqlite:///{root / 'appliance.db'}")
        site.write_config()
        try:
            site.start_pms()
            daemon = site.start_daemon()
            time.sleep(2)
            site.start_pbx(0, args.rate)
            started = time.monotonic()
            samples: list[tuple[float, float]] = []
            while time.monotonic() - started < args.warmup + args.minutes * 60:
                time.sleep(10)
                elapsed = time.monotonic() - started
                if elapsed >= args.warmup:
                    samples.append((elapsed, rss_mb(daemon.pid)))
            calls = site.db()["calls"]
            memory = [m for _, m in samples]
            # Printed before stopping: the figures must survive a slow or failed stop.
            print(f"memory at {args.rate:g} calls/s over {args.minutes:g} min ({calls} calls): "
                  f"first {memory[0]:.1f} MB, last {memory[-1]:.1f} MB, peak {max(memory):.1f} MB, "
                  f"growth {slope_per_10_min(samples):+.2f} MB per 10 min (target < 80 MB, no growth)",
                  flush=True)
            site.kill("pbx", signal.SIGTERM)
            stopping = time.monotonic()
            try:
                site.kill("daemon", signal.SIGTERM)
                print(f"daemon stopped {time.monotonic() - stopping:.1f} s after SIGTERM", flush=True)
            except subprocess.TimeoutExpired:
                print("daemon still running 20 s after SIGTERM (see its log)", flush=True)
                print(site.logs()[-3000:], flush=True)
        finally:
            site.stop_all()


if __name__ == "__main__":
    main()
