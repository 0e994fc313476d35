"""Rating throughput: load a 20,000-prefix rate card, look prefixes up, classify and rate calls.

Run: ``.venv/bin/python bench/rating.py [--calls N] [--repeat R]``. Prints the rate card load time, the
mean prefix lookup time, and calls rated per second on one core, classification included, two ways:

- *every number new*: every call a number never seen before (``classify`` runs libphonenumber's
  metadata on each one: appliance.numbering's one-pass lookup);
- *hotel mix*: numbers repeat as a hotel's do (a few hundred destinations), through the pipeline's
  ``Classifier`` cache.

Each rate is the best of ``--repeat`` runs (wall clock; the usual way to keep other processes' noise out of a
throughput figure), with the process CPU time beside it and the load average at the start, so a figure
taken on a busy machine says so.

Targets (issue 3): card load under 2 s, lookup under 50 us, 20,000 calls/s. peers.md S5/S7: CGRateS
loads of 12k-170k prefixes took 3 s to an hour; volumes at a 300-room hotel are < 1 call/s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.numbering import Classifier, classify, make_plan  # noqa: E402
from appliance.rating import RatingInput, TariffBook, rate  # noqa: E402
from appliance.schema import build  # noqa: E402
from appliance.tariffs import TariffConfig  # noqa: E402

TZ = ZoneInfo("America/New_York")
COUNTRIES = ["44", "49", "33", "39", "61", "34", "41", "31", "81", "86", "91", "52", "55"]


def rate_card(path: Path, rng: random.Random, size: int = 20_000) -> list[str]:
    prefixes: set[str] = set(COUNTRIES)
    while len(prefixes) < size:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 5)))
        prefixes.add(rng.choice(COUNTRIES) + digits)
    rows = sorted(prefixes)
    lines = [f"{p},Destination {p},0.{rng.randint(0, 50):02d},0.{rng.randint(10, 99)},60,6,"
             f"0.{rng.randint(5, 40):02d}\n" for p in rows]
    header = "prefix,name,connect,per_minute,first_block,increment,per_minute:evening\n"
    path.write_text(header + "".join(lines), encoding="utf-8")
    return rows


def tariff(card: Path) -> TariffConfig:
    problems: list[tuple[str, str]] = []
    config = build(TariffConfig, {
        "markup_percent": 30, "surcharge_per_call": "0.75", "grace_seconds": 10, "rounding": "0.05",
        "rate_card": str(card), "default": {"per_minute": "0.30"},
        "classes": {"local": {"per_minute": "0.10"}, "national": {"per_minute": "0.25"}},
        "bands": [{"name": "evening", "days": ["mon-fri"], "start": "19:00", "end": "07:00"}],
    }, "tariff", problems)
    if problems:
        raise SystemExit(f"bad tariff: {problems}")
    return config


def numbers(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.4:
            out.append(f"9011{rng.choice(['44207946', '4930231', '33199', '3906'])}{rng.randint(1000, 9999)}")
        elif kind < 0.7:
            out.append(f"91212555{rng.randint(1000, 9999)}")
        else:
            out.append(f"91908555{rng.randint(1000, 9999)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        card = Path(folder) / "rates.csv"
        prefixes = rate_card(card, rng)
        began = time.perf_counter()
        book = TariffBook(tariff(card), TZ)
        load = time.perf_counter() - began
    sheet, _ = book.sheet_for("main", datetime(2026, 3, 10))
    from appliance.numbering import Classification

    probes = [Classification(call_class="international", number="",
                             e164="+" + rng.choice(prefixes) + "123456") for _ in range(50_000)]
    began = time.perf_counter()
    for probe in probes:
        sheet.find_rate(probe)
    lookup = (time.perf_counter() - began) / len(probes)
    plan = make_plan(country="US", access_code="9", area_code="212")
    start = datetime(2026, 3, 10, 18, 55, tzinfo=TZ)
    calls = [(n, rng.randint(5, 900), start + timedelta(minutes=rng.randint(0, 600)))
             for n in numbers(rng, args.calls)]
    hotel = [(rng.choice(calls[:300])[0], seconds, at) for _, seconds, at in calls]
    load_average = os.getloadavg()[0]

    def every_number_new() -> None:
        # classify keeps nothing per number (only each region's compiled patterns): every call pays it all.
        for number, seconds, at in calls:
            rate(RatingInput(classification=classify(number, plan), duration=seconds, start=at), book)

    def hotel_mix() -> None:
        classifier = Classifier(plan)
        for number, seconds, at in hotel:
            rate(RatingInput(classification=classifier(number), duration=seconds, start=at), book)

    distinct, distinct_cpu = best_of(every_number_new, len(calls), args.repeat)
    mixed, mixed_cpu = best_of(hotel_mix, len(hotel), args.repeat)
    print(f"rate card: {len(prefixes)} prefixes loaded and compiled in {load:.2f} s (target < 2 s)")
    print(f"prefix lookup: {lookup * 1e6:.2f} us mean over {len(probes)} lookups (target < 50 us)")
    print(f"rating, every number new: {distinct:,.0f} calls/s ({distinct_cpu:,.0f}/s of CPU time; "
          f"classification from libphonenumber's metadata each time) (target 20,000)")
    print(f"rating, hotel mix (300 numbers, cached classification): {mixed:,.0f} calls/s "
          f"({mixed_cpu:,.0f}/s of CPU time) (target 20,000)")
    print(f"best of {args.repeat} runs of {len(calls):,} calls; load average at the start {load_average:.2f} "
          f"on {os.cpu_count()} cores")


def best_of(run, count: int, repeat: int) -> tuple[float, float]:
    """Calls per second of wall-clock time and of CPU time, each the best of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - began_cpu)
    return count / min(walls), count / min(cpus)

if __name__ == "__main__":
    main()
