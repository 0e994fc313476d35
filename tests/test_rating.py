"""Rating: a table of worked examples, each priced by hand in its comment, over one tariff that uses every
feature (issue 3, acceptance: "at least 60 worked examples ... band edges, DST changes, midnight, year end,
and the rounding rules").

The site is a New York hotel (access code 9, area code 212, 646 also local). Calendar facts used below:
2026-03-08 and 2026-11-01 are the Sundays when US daylight saving starts (02:00 EST -> 03:00 EDT) and
ends (02:00 EDT -> 01:00 EST); 2026-03-10 is a Tuesday, 03-13 a Friday, 03-14 a Saturday, 07-03 a Friday
(a one-off holiday here), 12-24 a Thursday, 12-25 a Friday, 12-31 a Thursday, 2027-01-01 a Friday.

Version v2026, main plan: amount = round_up_to_0.01(carrier x 1.10 + 0.25 + 0.02 x started minutes
[+ 1.00 for premium]), where carrier = connect + time held between the rate's minimum and maximum.
Band prices per minute: local 0.10 / evening 0.06 / weekend 0.05 / late 0.04; national 0.20 / 0.12 /
0.10 / 0.08. Bands in order: late (Sunday 00:00-02:30), weekend (sat, sun, hol), evening (mon-fri
19:00-07:00). Numbers: Ofcom drama numbers (020 7946 0xxx London, 0113 496 0xxx Leeds), the
Bundesnetzagentur drama range 030 23125 xxx, NANP 555-01xx, and libphonenumber's example numbers.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
import yaml

from appliance.config import parse_config
from appliance.numbering import Classifier, plan_for_site
from appliance.rating import RatingInput, TariffBook, explain, rate

CONFIG = """
site:
  name: Worked Example Hotel
  country: US
  timezone: America/New_York
  currency: USD
  access_code: "9"
  area_code: "212"
  local_prefixes: ["646"]
extensions:
  - {numbers: "101-199", category: guest}
  - {numbers: "500", category: lobby}
tariff:
  name: v2026
  effective_from: 2026-01-01
  markup_percent: 10
  surcharge_per_call: 0.25
  surcharge_per_minute: 0.02
  class_surcharges: {premium: 1.00}
  grace_seconds: 10
  rounding: 0.01
  rounding_mode: up
  free_numbers: ["+12125550199"]
  default: {per_minute: 0.40}
  classes:
    local: {per_minute: 0.10, band_per_minute: {evening: 0.06, weekend: 0.05, late: 0.04}}
    national: {per_minute: 0.20, first_block: 30, increment: 6,
               band_per_minute: {evening: 0.12, weekend: 0.10, late: 0.08}}
    international: {connect: 0.50, per_minute: 1.20, first_block: 60, increment: 6, minimum: 2.00,
                    maximum: 30.00}
    premium: {connect: 1.00, per_minute: 3.00, first_block: 1, increment: 1, maximum: 20.00}
    special: {pulse_seconds: 90, pulse_value: 0.12, band_pulse_seconds: {evening: 180, weekend: 240}}
  prefixes:
    "44": {name: United Kingdom, connect: 0.50, per_minute: 0.60, first_block: 60, increment: 6}
    "447": {name: UK mobile, connect: 0.50, per_minute: 0.90, first_block: 60, increment: 6}
    "4420": {name: London, connect: 0.50, per_minute: 0.50, first_block: 60, increment: 6}
    "49": {name: Germany, per_minute: 0.70, first_block: 1, increment: 1, band_per_minute: {weekend: 0.35}}
  bands:
    - {name: late, days: [sun], start: "00:00", end: "02:30"}
    - {name: weekend, days: [sat, sun, hol]}
    - {name: evening, days: [mon-fri], start: "19:00", end: "07:00"}
  holidays: ["12-25", "01-01", "2026-07-03"]
  versions:
    - name: v2027
      effective_from: 2027-01-01
      markup_percent: 20
      surcharge_per_call: 0.30
      grace_seconds: 5
      rounding: 0.05
      rounding_mode: nearest
      default: {per_minute: 0.40}
      classes:
        local: {per_minute: 0.12}
        international: {connect: 0.50, per_minute: 1.00, first_block: 60, increment: 6, minimum: 1.00}
  plans:
    lobby:
      name: lobby
      rounding: 0.10
      rounding_mode: down
      default: {per_minute: 0.35}
    pulses:
      name: pulses
      rounding: 0.05
      rounding_mode: half_even
      markup_percent: 50
      default: {pulse_seconds: 60, pulse_value: 0.15, minimum: 0.30, band_pulse_seconds: {night: 120}}
      bands: [{name: night, start: "22:00", end: "06:00"}]
  select:
    - {categories: [lobby], plan: lobby}
    - {trunks: ["7"], plan: pulses}
"""

LOCAL, LONDON = "912125550123", "9011442079460123"
NATIONAL = "919085550123"  # Trenton NJ, 908: not in the local area
ITALY = "9011390612345678"  # libphonenumber's example shape of a Rome number
SPECIAL = "9411"  # directory assistance: a short code of unknown cost

# (number, local start, seconds, extension, trunk) -> (class, amount); the comment prices it by hand.
EXAMPLES = [
    # --- never charged
    ("911", "2026-03-10T10:00", 300, "101", "1", "emergency", "0"),  # emergency, before the access code
    ("9911", "2026-03-10T10:00", 300, "101", "1", "emergency", "0"),  # 9 + 911
    ("918005550123", "2026-03-10T10:00", 300, "101", "1", "free", "0"),  # NANP toll-free
    ("912125550199", "2026-03-10T10:00", 300, "101", "1", "free", "0"),  # listed in free_numbers
    ("123", "2026-03-10T10:00", 300, "101", "1", "internal", "0"),  # no access code, short
    (LOCAL, "2026-03-10T10:00", 10, "101", "1", "local", "0"),  # 10 s <= grace 10 s
    (LOCAL, "2026-03-10T10:00", 0, "101", "1", "local", "0"),  # no talk time
    # --- local, Tuesday 10:00 (standard band), 0.10/min in started minutes
    (LOCAL, "2026-03-10T10:00", 11, "101", "1", "local", "0.38"),  # 60 s: 0.10 + 0.01 + 0.25 + 0.02 = 0.38
    (LOCAL, "2026-03-10T10:00", 60, "101", "1", "local", "0.38"),  # same block: 0.38
    (LOCAL, "2026-03-10T10:00", 61, "101", "1", "local", "0.51"),  # 120 s: 0.20 + 0.02 + 0.25 + 0.04 = 0.51
    (LOCAL, "2026-03-10T10:00", 125, "101", "1", "local", "0.64"),  # 180 s: 0.30 + 0.03 + 0.25 + 0.06 = 0.64
    ("95550123", "2026-03-10T10:00", 125, "101", "1", "local", "0.64"),  # 7 digits + area code 212: as above
    ("916465550123", "2026-03-10T10:00", 60, "101", "1", "local", "0.38"),  # 646 is listed local: 0.38
    # --- national: first 30 s, then per 6 s; 0.20/min in the standard band
    (NATIONAL, "2026-03-10T10:00", 20, "101", "1", "national", "0.38"),  # 30 s: 0.10 + 0.01 + 0.27 = 0.38
    (NATIONAL, "2026-03-10T10:00", 30, "101", "1", "national", "0.38"),  # 30 s: as above
    (NATIONAL, "2026-03-10T10:00", 31, "101", "1", "national", "0.41"),  # 36 s: 0.12 + 0.012 + 0.27 = 0.402
    (NATIONAL, "2026-03-10T10:00", 100, "101", "1", "national", "0.67"),  # 102 s: 0.34 + 0.034 + 0.29 = 0.664
    # --- band edges on a weekday
    # 18:59:30 +60 s: standard 30 s x 0.20/60 = 0.10; evening 30 s x 0.12/60 = 0.06;
    # 0.16 + 0.016 + 0.27 = 0.446 -> 0.45
    (NATIONAL, "2026-03-10T18:59:30", 60, "101", "1", "national", "0.45"),
    # 06:59 +120 s: evening 60 s = 0.12; standard 60 s = 0.20; 0.32 + 0.032 + 0.29 = 0.642 -> 0.65
    (NATIONAL, "2026-03-11T06:59", 120, "101", "1", "national", "0.65"),
    (NATIONAL, "2026-03-10T19:00", 60, "101", "1", "national", "0.41"),  # evening: 0.12 + 0.012 + 0.27
    # 18:59:59 +31 s, billed 36: standard 1 s -> 0.20/60 = 0.003333; evening 35 s -> running (0.20 + 4.20)/60
    # = 0.073333; 0.073333 + 0.0073333 + 0.27 = 0.3506663 -> 0.36
    (NATIONAL, "2026-03-10T18:59:59", 31, "101", "1", "national", "0.36"),
    # --- midnight
    # Fri 23:59 +120 s: evening 60 s 0.12, Saturday weekend 60 s 0.10; 0.22 + 0.022 + 0.29 = 0.532 -> 0.54
    (NATIONAL, "2026-03-13T23:59", 120, "101", "1", "national", "0.54"),
    # Thu 23:59:30 +60 s local: evening on both sides of midnight (Friday 00:00-07:00 too):
    # 0.06 + 0.006 + 0.27 = 0.336 -> 0.34
    (LOCAL, "2026-03-12T23:59:30", 60, "101", "1", "local", "0.34"),
    # Sun 23:59 +120 s local: weekend 60 s 0.05, Monday evening 60 s 0.06; 0.11 + 0.011 + 0.29 = 0.411 -> 0.42
    (LOCAL, "2026-03-15T23:59", 120, "101", "1", "local", "0.42"),
    # Sat 23:59 +120 s local: weekend 60 s 0.05, Sunday late 60 s 0.04; 0.09 + 0.009 + 0.29 = 0.389 -> 0.39
    (LOCAL, "2026-03-14T23:59", 120, "101", "1", "local", "0.39"),
    # Sun 02:29 +120 s national: late 60 s 0.08, weekend 60 s 0.10; 0.18 + 0.018 + 0.29 = 0.488 -> 0.49
    (NATIONAL, "2026-03-15T02:29", 120, "101", "1", "national", "0.49"),
    # --- weekend and holidays
    (LOCAL, "2026-03-14T11:00", 125, "101", "1", "local", "0.48"),  # weekend 180 s: 0.15 + 0.015 + 0.31
    (NATIONAL, "2026-07-03T10:00", 60, "101", "1", "national", "0.38"),  # holiday: weekend 0.10 + 0.01 + 0.27
    (NATIONAL, "2026-07-10T10:00", 60, "101", "1", "national", "0.49"),  # the next Friday: 0.20 + 0.02 + 0.27
    (NATIONAL, "2026-12-25T20:00", 60, "101", "1", "national", "0.38"),  # Christmas (Fri) 20:00: hol, not eve
    # Thu 12-24 23:59 +120 s: evening 60 s 0.12, Christmas weekend 60 s 0.10; 0.22 + 0.022 + 0.29 -> 0.54
    (NATIONAL, "2026-12-24T23:59", 120, "101", "1", "national", "0.54"),
    # --- daylight saving (real elapsed seconds, wall-clock bands)
    # Sun 03-08 01:59 EST +120 s: late 60 s (0.08); the clock jumps 02:00 -> 03:00 EDT, past the 02:30 edge:
    # weekend 60 s (0.10); 0.18 + 0.018 + 0.29 = 0.488 -> 0.49
    (NATIONAL, "2026-03-08T01:59", 120, "101", "1", "national", "0.49"),
    # Sun 03-08 01:00 EST +3660 s: late 3600 s = 4.80, then 03:00-03:01 EDT weekend 60 s = 0.10; billed
    # 30 + 3630; 4.90 + 0.49 + 0.25 + 0.02 x 61 = 6.86
    (NATIONAL, "2026-03-08T01:00", 3660, "101", "1", "national", "6.86"),
    # Sun 11-01 01:59 EDT +120 s: 01:59 EDT then 01:00 EST, both late: 0.16 + 0.016 + 0.29 = 0.466 -> 0.47
    (NATIONAL, "2026-11-01T01:59-04:00", 120, "101", "1", "national", "0.47"),
    # Sun 11-01 01:20 EDT +3600 s ends 01:20 EST (same wall time!): all late, 3600 s x 0.08/60 = 4.80;
    # 4.80 + 0.48 + 0.25 + 1.20 = 6.73
    (NATIONAL, "2026-11-01T01:20-04:00", 3600, "101", "1", "national", "6.73"),
    # Sun 11-01 02:29 EST +120 s: late 60 s + weekend 60 s = 0.18 -> 0.49 as on 03-15
    (NATIONAL, "2026-11-01T02:29", 120, "101", "1", "national", "0.49"),
    # Sun 03-08 01:59 EST +120 s local: late 60 s 0.04 + weekend 60 s 0.05 = 0.09 + 0.009 + 0.29 -> 0.39
    (LOCAL, "2026-03-08T01:59", 120, "101", "1", "local", "0.39"),
    # --- international: the longest prefix wins; connect 0.50; first 60 s then per 6 s
    (LONDON, "2026-03-10T10:00", 125, "101", "1", "international", "2.02"),  # 4420: 126 s x 0.50/60 = 1.05;
    # 1.55 + 0.155 + 0.31 = 2.015 -> 2.02
    ("9011447400123456", "2026-03-10T10:00", 125, "101", "1", "international", "2.94"),  # 447: 1.89 + 0.50
    # = 2.39; + 0.239 + 0.31 = 2.939 -> 2.94
    ("9011441134960123", "2026-03-10T10:00", 125, "101", "1", "international", "2.25"),  # 44: 1.26 + 0.50
    # = 1.76; + 0.176 + 0.31 = 2.246 -> 2.25
    # 49, per second: 125 s x 0.70/60 = 1.4583333 -> 1.458333; + 0.1458333 + 0.31 = 1.9141663 -> 1.92
    ("9011493023125123", "2026-03-10T10:00", 125, "101", "1", "international", "1.92"),
    # 49 on Saturday, 0.35: 43.75/60 = 0.7291666 -> 0.729167; + 0.0729167 + 0.31 = 1.1120837 -> 1.12
    ("9011493023125123", "2026-03-14T10:00", 125, "101", "1", "international", "1.12"),
    # Italy, class rate: 60 s -> 0.50 + 1.20 = 1.70, raised to the minimum 2.00; + 0.20 + 0.27 = 2.47
    (ITALY, "2026-03-10T10:00", 11, "101", "1", "international", "2.47"),
    (ITALY, "2026-03-10T10:00", 90, "101", "1", "international", "2.82"),  # 90 s: 2.30 + 0.23 + 0.29 = 2.82
    # 1800 s: 0.50 + 36.00 = 36.50, capped at 30.00; + 3.00 + 0.25 + 0.60 = 33.85
    (ITALY, "2026-03-10T10:00", 1800, "101", "1", "international", "33.85"),
    ("914165550123", "2026-03-10T10:00", 60, "101", "1", "international", "2.47"),  # Toronto: NANP but abroad
    # Jamaica (NANP mobile) 120 s: 0.50 + 2.40 = 2.90; + 0.29 + 0.29 = 3.48
    ("918765550123", "2026-03-10T10:00", 120, "101", "1", "international", "3.48"),
    # --- premium: per second, class surcharge 1.00, maximum 20.00
    ("919005550123", "2026-03-10T10:00", 30, "101", "1", "premium", "4.02"),  # 1.00 + 1.50 = 2.50; + 0.25
    # + 0.25 + 0.02 + 1.00 = 4.02
    # 600 s: 1.00 + 30.00 capped at 20.00; + 2.00 + 0.25 + 0.20 + 1.00 = 23.45
    ("919005550123", "2026-03-10T10:00", 600, "101", "1", "premium", "23.45"),
    # --- pulses (special): 90 s at 0.12; evening 180 s; weekend 240 s
    (SPECIAL, "2026-03-10T10:00", 100, "101", "1", "special", "0.56"),  # 2 pulses 0.24 + 0.024 + 0.29 = 0.554
    # 18:59 +200 s: a standard pulse at 18:59:00 (to 19:00:30), one evening pulse of 180 s covers the rest:
    # 2 x 0.12 = 0.24 + 0.024 + 0.25 + 0.08 = 0.594 -> 0.60
    (SPECIAL, "2026-03-10T18:59", 200, "101", "1", "special", "0.60"),
    (SPECIAL, "2026-03-14T10:00", 500, "101", "1", "special", "0.83"),  # 3 x 240 s: 0.36 + 0.036 + 0.43
    ("902125550123", "2026-03-10T10:00", 60, "101", "1", "special", "0.41"),  # 0+ operator: 0.12+0.012+0.27
    # --- the default rate catches a class without its own rate: 0.40/min, started minutes
    ("90119991234567", "2026-03-10T10:00", 60, "101", "1", "unknown", "0.71"),  # 0.40 + 0.04 + 0.27
    ("90119991234567", "2026-03-10T10:00", 61, "101", "1", "unknown", "1.17"),  # 0.80 + 0.08 + 0.29
    # --- versions by effective date
    # v2027 local 0.12, no bands: 180 s = 0.36 + 0.072 + 0.30 = 0.732 -> nearest 0.05: 0.75
    (LOCAL, "2027-01-05T10:00", 125, "101", "1", "local", "0.75"),
    (LOCAL, "2026-12-29T10:00", 125, "101", "1", "local", "0.64"),  # still v2026: as on 03-10
    # year end: Thu 12-31 23:59 +120 s is v2026 (its start decides): evening 0.06 + New Year (hol) weekend
    # 0.05 = 0.11 + 0.011 + 0.29 = 0.411 -> 0.42
    (LOCAL, "2026-12-31T23:59", 120, "101", "1", "local", "0.42"),
    (LOCAL, "2027-01-01T00:00", 120, "101", "1", "local", "0.60"),  # v2027: 0.24 + 0.048 + 0.30 = 0.588
    (LOCAL, "2027-01-05T10:00", 8, "101", "1", "local", "0.45"),  # v2027 grace 5 s: 0.12+0.024+0.30 = 0.444
    (LOCAL, "2025-12-30T10:00", 125, "101", "1", "local", "0.64"),  # older than v2026: rated with it
    (ITALY, "2027-01-05T10:00", 60, "101", "1", "international", "2.10"),  # 1.50 + 0.30 + 0.30 = 2.10
    # v2027 rounds to the nearest 0.05: 0.588 is 11.76 steps -> 12 -> 0.60; 0.444 is 8.88 -> 9 -> 0.45;
    # 0.732 is 14.64 -> 15 -> 0.75
    # --- plans chosen by extension category and by trunk
    (LOCAL, "2026-03-10T10:00", 60, "500", "1", "local", "0.30"),  # lobby: 0.35, rounded down to 0.10
    (LONDON, "2026-03-10T10:00", 125, "500", "1", "international", "1.00"),  # lobby: 180 s = 1.05 -> 1.00
    (LOCAL, "2026-03-10T10:00", 150, "101", "7", "local", "0.70"),  # trunk 7: 3 pulses 0.45 x 1.5 = 0.675
    # -> 13.5 steps, half to even -> 14 -> 0.70
    (LOCAL, "2026-03-10T10:00", 30, "101", "7", "local", "0.45"),  # 1 pulse 0.15, minimum 0.30 x 1.5 = 0.45
    (LOCAL, "2026-03-10T10:00", 290, "101", "7", "local", "1.10"),  # 5 pulses 0.75 x 1.5 = 1.125 -> 22.5
    # steps, half to even -> 22 -> 1.10
    # 21:59 +200 s on trunk 7: a 60 s pulse to 22:00, then night pulses of 120 s: 2 more; 3 pulses -> 0.70
    (LOCAL, "2026-03-10T21:59", 200, "101", "7", "local", "0.70"),
    (LOCAL, "2026-03-10T10:00", 60, "500", "7", "local", "0.30"),  # the first rule (lobby) wins over trunk 7
]


@pytest.fixture(scope="module")
def engine():
    config = parse_config(yaml.safe_load(CONFIG), "worked-examples")
    classify = Classifier(plan_for_site(config.site, free_numbers=config.tariff.free_numbers))
    return config, classify, TariffBook(config.tariff, config.site.tz)


def rate_example(engine, number: str, at: str, seconds: int, extension: str, trunk: str):
    config, classify, book = engine
    start = datetime.fromisoformat(at)
    if start.tzinfo is None:
        start = start.replace(tzinfo=config.site.tz)
    category = config.extension_map().get(extension, ("unknown", ""))[0]
    return rate(RatingInput(classification=classify(number), duration=seconds, start=start, trunk=trunk,
                            category=category), book)


def test_there_are_at_least_sixty_examples() -> None:
    assert len(EXAMPLES) >= 60


@pytest.mark.parametrize(("number", "at", "seconds", "extension", "trunk", "call_class", "amount"), EXAMPLES)
def test_worked_example(engine, number, at, seconds, extension, trunk, call_class, amount) -> None:
    rating = rate_example(engine, number, at, seconds, extension, trunk)
    assert rating.breakdown["class"] == call_class
    assert rating.amount == Decimal(amount), explain(rating, "USD")
    assert rating.chargeable == (Decimal(amount) > 0)
    if rating.chargeable:  # the breakdown adds up to the amount, to the last digit
        b = rating.breakdown
        assert sum(Decimal(p["cost"]) for p in b["pieces"]) == Decimal(b["time_cost"])
        parts = Decimal(b["carrier_cost"]) + Decimal(b["markup"]) + Decimal(b["surcharge"])
        assert parts == Decimal(b["unrounded"])
        assert Decimal(b["unrounded"]) + Decimal(b["rounding_adjustment"]) == rating.amount


def pieces(rating) -> list[tuple[str, int]]:
    return [(p["band"], p["seconds"]) for p in rating.breakdown["pieces"]]


def test_band_pieces_across_the_spring_forward_gap(engine) -> None:
    rating = rate_example(engine, NATIONAL, "2026-03-08T01:59", 120, "101", "1")
    assert pieces(rating) == [("late", 60), ("weekend", 60)]
    assert rating.breakdown["pieces"][1]["from"] == "2026-03-08T03:00:00-04:00"


def test_the_repeated_autumn_hour_is_billed_by_elapsed_time(engine) -> None:
    rating = rate_example(engine, NATIONAL, "2026-11-01T01:20-04:00", 3600, "101", "1")
    assert pieces(rating) == [("late", 3600)] and rating.breakdown["billed_seconds"] == 3600


def test_pulse_pieces_take_the_length_of_the_band_they_start_in(engine) -> None:
    rating = rate_example(engine, SPECIAL, "2026-03-10T18:59", 200, "101", "1")
    rows = [(p["band"], p["pulses"], p["pulse_seconds"]) for p in rating.breakdown["pieces"]]
    assert rows == [("standard", 1, 90), ("evening", 1, 180)]


def test_breakdown_names_prefix_version_plan_and_limits(engine) -> None:
    london = rate_example(engine, LONDON, "2026-03-10T10:00", 125, "101", "1").breakdown
    assert (london["matched_prefix"], london["rate_name"], london["version"]) == ("4420", "London", "v2026")
    assert london["version_from"] == "2026-01-01T00:00:00" and london["plan"] == "main"
    capped = rate_example(engine, ITALY, "2026-03-10T10:00", 1800, "101", "1").breakdown
    assert capped["carrier_note"] == "capped at the maximum charge 30.00"
    old = rate_example(engine, LOCAL, "2025-12-30T10:00", 125, "101", "1").breakdown
    assert old["version_note"].startswith("the call is older than the first version")
    trunk = rate_example(engine, LOCAL, "2026-03-10T10:00", 150, "101", "7").breakdown
    assert trunk["plan"] == "pulses" and trunk["plan_rule"].startswith("select[1]")


def test_explanation_reads_like_the_breakdown(engine) -> None:
    text = explain(rate_example(engine, NATIONAL, "2026-03-10T18:59:30", 60, "101", "1"), "USD")
    assert "standard from 2026-03-10T18:59:30-04:00: 30 s at 0.20/min = 0.100000" in text
    assert "evening from 2026-03-10T19:00:00-04:00: 30 s at 0.12/min = 0.060000" in text
    assert text.splitlines()[-1].endswith("rounded up to 0.01 (0.004000): USD 0.45")


def test_a_tariff_without_a_default_rate_holds_the_call_unrated() -> None:
    config = parse_config({"site": {"name": "x", "country": "US"},
                           "tariff": {"classes": {"local": {"per_minute": "0.10"}}}}, "t")
    classify = Classifier(plan_for_site(config.site))
    rating = rate(RatingInput(classification=classify("919085550123"), duration=60,
                              start=datetime.fromisoformat("2026-03-10T10:00+00:00")),
                  TariffBook(config.tariff, config.site.tz))
    assert not rating.chargeable and rating.amount == 0
    assert rating.reason.startswith("not rated: no rate for national calls")
    assert rating.problem and rating.breakdown["rule"] == "not rated"


def test_a_rating_failure_is_held_with_its_reason() -> None:
    from appliance.numbering import Classification
    from appliance.rating import unrated

    rating = unrated(Classification(call_class="local", number="2125550123"), 60, ZeroDivisionError("boom"))
    assert (rating.amount, rating.chargeable) == (Decimal("0"), False)
    assert rating.reason == "not rated: rating failed: ZeroDivisionError: boom"
    assert rating.breakdown["rule"] == "not rated" and rating.problem
