"""Tariffs: the YAML shape and its checks, rate cards (CSV, XLSX, 20,000 prefixes), rounding modes, and
property tests of the engine (issue 3: the charge never decreases as duration grows, splitting across bands
equals the sum of the pieces, the breakdown adds up to the amount, no float on the money path)."""

from __future__ import annotations

import ast
import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import parse_config
from appliance.errors import ConfigError
from appliance.numbering import Classification
from appliance.ratecard import RateCardError, load_rate_card, parse_rows
from appliance.rating import RatingInput, TariffBook, rate
from appliance.schema import build
from appliance.tariffs import TariffConfig

TZ = ZoneInfo("Europe/Berlin")
ROOT = Path(__file__).resolve().parents[1]


def tariff(data: dict[str, Any]) -> TariffConfig:
    problems: list[tuple[str, str]] = []
    built = build(TariffConfig, data, "tariff", problems)
    if problems:
        raise ConfigError(problems)
    return built


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"site": {"name": "x"}, "tariff": data}, "t.yaml")
    return dict(caught.value.problems)


def call(call_class: str = "national", e164: str = "+4930123456", seconds: int = 60,
         start: str = "2026-03-10T10:00:00+01:00", **extra: Any) -> RatingInput:
    return RatingInput(classification=Classification(call_class=call_class, number=e164[1:], e164=e164,
                                                     country="DE"),
                       duration=seconds, start=datetime.fromisoformat(start), **extra)


# ------------------------------------------------------------------ the shape and its checks

@pytest.mark.parametrize(("data", "path", "words"), [
    ({"classes": {"free": {"per_minute": 1}}}, "tariff", "'free' is not a chargeable call class"),
    ({"prefixes": {"044": {"per_minute": 1}}}, "tariff", "write E.164 digits without '+'"),
    ({"default": {"per_minute": 1, "pulse_seconds": 60}}, "tariff.default", "either per minute or pulse"),
    ({"default": {"pulse_value": "0.1"}}, "tariff.default", "need pulse_seconds"),
    ({"default": {"minimum": 2, "maximum": 1}}, "tariff.default", "maximum 1 is below minimum 2"),
    ({"default": {"per_minute": "0.1234567"}}, "tariff.default", "more than 6 decimal places"),
    ({"default": {"per_minute": -1}}, "tariff.default", "must be zero or a positive amount"),
    ({"rounding": "0.00001"}, "tariff", "more than 4 decimal places"),
    ({"rounding": 0}, "tariff", "rounding must be a positive step"),
    ({"rounding_mode": "sideways"}, "tariff.rounding_mode", "must be one of"),
    ({"bands": [{"name": "eve", "start": "25:00"}]}, "tariff.bands[0]", "must lie between 00:00 and 24:00"),
    ({"bands": [{"name": "eve", "days": ["mon-funday"]}]}, "tariff.bands[0]", "is not one of mon"),
    ({"bands": [{"name": "standard"}]}, "tariff.bands[0]", "band name 'standard'"),
    ({"classes": {"local": {"band_per_minute": {"eve": 1}}}}, "tariff", "band 'eve' is not defined"),
    ({"holidays": ["13-45"]}, "tariff", "must be a date"),
    ({"versions": [{"name": "later"}]}, "tariff", "versions[0]: effective_from is required"),
    ({"effective_from": "soon"}, "tariff", "is not a date"),
    ({"select": [{"plan": "staff", "categories": ["admin"]}]}, "tariff", "plan 'staff' is not defined"),
    ({"select": [{"plan": "main"}]}, "tariff.select[0]", "needs trunks, categories or both"),
    ({"plans": {"main": {}}}, "tariff", "other than 'main'"),
    ({"rate_card": "/nonexistent/rates.csv"}, "tariff", "rate_card: /nonexistent/rates.csv: No such file"),
    ({"surcharge": 1}, "tariff.surcharge", "unknown key"),
])
def test_every_mistake_is_named_with_its_key_path(data, path, words) -> None:
    found = problems(data)
    assert path in found, found
    assert words in found[path]


def test_unquoted_yaml_times_and_dates_are_understood() -> None:
    import yaml

    data = yaml.safe_load("bands: [{name: eve, start: 19:00, end: 07:00}]\neffective_from: 2026-01-01\n"
                          "holidays: [2026-12-24, '12-25']\n"
                          "versions: [{effective_from: 2027-01-01 06:00:00}]")
    config = tariff(data)
    assert config.bands[0].window == (19 * 60, 7 * 60)  # YAML 1.1 read 19:00 as 1140
    book = TariffBook(config, TZ)
    sheet, _ = book.sheet_for("main", datetime(2027, 1, 1, 6, 0))
    assert sheet.effective == datetime(2027, 1, 1, 6, 0)


def test_old_first_cut_shape_still_loads() -> None:
    config = tariff({"markup_percent": 20, "surcharge_per_call": "0.25", "grace_seconds": 5,
                     "rounding": "0.01", "default": {"per_minute": "0.30"}})
    assert config.default.per_minute == Decimal("0.30") and config.versions == ()


# ------------------------------------------------------------------ rate cards

CARD = """prefix,name,connect,per_minute,first_block,increment,minimum,maximum,per_minute:offpeak
44,United Kingdom,0.50,0.60,60,6,,,0.40
447,United Kingdom mobile,0.50,0.90,60,6,1.00,20,
+49,Germany,,0.70,1,1,,,
"""


def test_csv_rate_card_and_yaml_prefixes_win(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(CARD, encoding="utf-8")
    config = tariff({"rate_card": str(path),
                     "prefixes": {"49": {"name": "Germany (YAML)", "per_minute": "0.50"}},
                     "bands": [{"name": "offpeak", "start": "20:00", "end": "08:00"}], "rounding": "0.01"})
    assert set(config.card) == {"44", "447", "49"}
    assert config.card["447"].maximum == Decimal("20") and config.card["44"].band_per_minute == {
        "offpeak": Decimal("0.40")}
    book = TariffBook(config, TZ)
    # 44 at 10:00: 126 s -> 0.50 + 1.26 = 1.76 (no markup, no surcharge)
    uk = rate(call("international", "+442079460123", 125), book)
    assert (uk.breakdown["matched_prefix"], uk.amount) == ("44", Decimal("1.76"))
    # 44 at 21:00 (offpeak 0.40): 0.50 + 0.84 = 1.34
    assert rate(call("international", "+442079460123", 125, "2026-03-10T21:00+01:00"), book).amount == \
        Decimal("1.34")
    # 49: the YAML row wins over the card's: 60 s of 0.50/min in started minutes = 0.50
    assert rate(call("international", "+493023125123", 60), book).breakdown["rate_name"] == "Germany (YAML)"


@pytest.mark.parametrize(("text", "words"), [
    ("name,per_minute\nUK,1\n", "must name the columns, including 'prefix'"),
    ("prefix,per_minute,colour\n44,1,red\n", "unknown column 'colour'"),
    ("prefix,per_minute\n44,1\n44,2\n", "line 3: prefix 44 is already on line 2"),
    ("prefix,per_minute\n44,cheap\n", "line 2, column per_minute: 'cheap' is not an amount"),
    ("prefix,per_minute\n0044,1\n", "line 2: prefix '0044'"),
    ("prefix,first_block\n44,1.5\n", "'1.5' is not a whole number of seconds"),
    ("prefix,per_minute,pulse_seconds\n44,1,60\n", "line 2: a rate is either per minute or pulse-based"),
    ("", "the file is empty"),
])
def test_rate_card_problems_name_the_line(text: str, words: str) -> None:
    import csv
    import io

    with pytest.raises(RateCardError) as caught:
        parse_rows(csv.reader(io.StringIO(text)), "rates.csv")
    assert words in str(caught.value)


def test_xlsx_rate_card_reads_spreadsheet_floats_exactly(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Prefix", "Name", "Per_Minute", "Increment", "Pulse_Seconds", "Pulse_Value"])
    sheet.append(["44", "United Kingdom", 0.1 + 0.2, 6, None, None])  # 0.30000000000000004 in Excel too
    sheet.append([49, "Germany", 0.7, 1, None, None])
    sheet.append(["33", "France (pulses)", None, None, 90, "0.12"])
    path = tmp_path / "rates.xlsx"
    book.save(path)
    card = load_rate_card(path)
    assert card["44"].per_minute == Decimal("0.3") and card["49"].per_minute == Decimal("0.7")
    assert (card["33"].pulse_seconds, card["33"].pulse_value) == (90, Decimal("0.12"))
    sheet.append([1.5, "bad", 1, 1, None, None])
    book.save(path)
    with pytest.raises(RateCardError, match="line 5: prefix 1.5 must be whole digits"):
        load_rate_card(path)


def test_twenty_thousand_prefixes_load_under_two_seconds_look_up_under_50_us(tmp_path: Path) -> None:
    rng = random.Random(3)
    digits = "0123456789"
    prefixes = sorted({str(rng.randint(1, 9)) + "".join(rng.choice(digits) for _ in range(rng.randint(1, 7)))
                       for _ in range(25_000)})[:20_000]
    path = tmp_path / "big.csv"
    path.write_text("prefix,name,per_minute,increment\n" + "".join(
        f"{p},Destination {p},0.{rng.randint(10, 99)},6\n" for p in prefixes), encoding="utf-8")
    began = time.perf_counter()
    config = tariff({"rate_card": str(path), "default": {"per_minute": 1}})
    book = TariffBook(config, TZ)
    assert time.perf_counter() - began < 2.0
    sheet, _ = book.sheet_for("main", datetime(2026, 3, 10))
    numbers = [Classification(call_class="international", number="",
                              e164="+" + rng.choice(prefixes) + "1234567") for _ in range(20_000)]
    began = time.perf_counter()
    for number in numbers:
        assert sheet.find_rate(number)[0] == "prefix"
    assert (time.perf_counter() - began) / len(numbers) < 50e-6


# ------------------------------------------------------------------ rounding modes, by hand

@pytest.mark.parametrize(("step", "mode", "carrier", "expected"), [
    ("0.05", "up", "0.61", "0.65"),  # 12.2 steps -> 13
    ("0.05", "down", "0.64", "0.60"),  # 12.8 steps -> 12
    ("0.05", "nearest", "0.625", "0.65"),  # 12.5 steps -> half up -> 13
    ("0.05", "half_even", "0.625", "0.60"),  # 12.5 steps -> half to even -> 12
    ("0.05", "half_even", "0.675", "0.70"),  # 13.5 steps -> 14
    ("0.01", "up", "0.610001", "0.62"),  # a millionth over still rounds up
    ("0.10", "nearest", "0.649999", "0.60"),  # 6.49999 steps -> 6
    ("1", "up", "0.01", "1"),  # whole currency units
])
def test_rounding_modes(step: str, mode: str, carrier: str, expected: str) -> None:
    # per second at `carrier` per minute for 60 s: the carrier cost is exactly `carrier`, nothing added
    book = TariffBook(tariff({"rounding": step, "rounding_mode": mode,
                              "default": {"per_minute": carrier, "first_block": 0, "increment": 1}}), TZ)
    rating = rate(call(seconds=60), book)
    assert rating.amount == Decimal(expected)
    assert Decimal(rating.breakdown["unrounded"]) == Decimal(carrier)


def test_grace_free_numbers_and_surcharges() -> None:
    config = tariff({"grace_seconds": 20, "free_numbers": ["+4930123456"], "surcharge_per_call": "0.40",
                     "surcharge_per_minute": "0.05", "class_surcharges": {"mobile": "0.30"},
                     "markup_percent": 25, "default": {"per_minute": "1.00"}})
    book = TariffBook(config, TZ)
    assert rate(call(e164="+4930999999", seconds=20), book).breakdown["rule"] == "grace time"
    assert rate(call(seconds=300), book).reason == "listed as free by the site"
    # mobile, 61 s: 2 minutes = 2.00; markup 25 % = 0.50; 0.40 + 2 x 0.05 + 0.30 = 0.80; total 3.30
    rating = rate(call("mobile", "+4915123456789", 61), book)
    assert rating.amount == Decimal("3.30")
    assert (rating.breakdown["surcharge_per_minute"], rating.breakdown["class_surcharge"]) == ("0.10", "0.30")


# ------------------------------------------------------------------ properties

money = st.decimals(min_value=0, max_value=3, places=3, allow_nan=False, allow_infinity=False).map(str)
seconds = st.integers(min_value=0, max_value=4 * 3600)
starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=timezone.utc))
BANDS = [{"name": "night", "days": ["mon-fri"], "start": "22:00", "end": "06:00"},
         {"name": "weekend", "days": ["sat", "sun", "hol"]}]


@st.composite
def rates(draw, banded: bool) -> dict[str, Any]:
    minimum = draw(money)
    maximum = draw(st.none() | money.filter(lambda m: Decimal(m) >= Decimal(minimum)))
    out: dict[str, Any] = {"connect": draw(money), "minimum": minimum}
    if maximum is not None:
        out["maximum"] = maximum
    if draw(st.booleans()):
        out.update(pulse_seconds=draw(st.sampled_from([30, 60, 90, 180])), pulse_value=draw(money))
        if banded:
            out["band_pulse_seconds"] = {"night": draw(st.sampled_from([60, 240])), "weekend": 300}
    else:
        out.update(per_minute=draw(money), first_block=draw(st.sampled_from([0, 1, 30, 60])),
                   increment=draw(st.sampled_from([1, 6, 30, 60])))
        if banded:
            out["band_per_minute"] = {"night": draw(money), "weekend": draw(money)}
    return out


@st.composite
def tariffs(draw, banded: bool = False) -> dict[str, Any]:
    data = {"markup_percent": draw(st.sampled_from(["0", "10", "12.5", "30"])),
            "surcharge_per_call": draw(money), "surcharge_per_minute": draw(money),
            "class_surcharges": {"national": draw(money)}, "grace_seconds": draw(st.sampled_from([0, 5, 30])),
            "rounding": draw(st.sampled_from(["0.01", "0.05", "0.10", "0.25", "1"])),
            "rounding_mode": draw(st.sampled_from(["up", "down", "nearest", "half_even"])),
            "default": draw(rates(banded))}
    if banded:
        data.update(bands=BANDS, holidays=["12-25", "01-01"])
    return data


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(data=tariffs(banded=True), start=starts, first=seconds, second=seconds)
def test_the_charge_never_decreases_as_duration_grows(data, start, first, second) -> None:
    book = TariffBook(tariff(data), TZ)
    short, long = sorted((first, second))
    assert rate(call(seconds=short, start=start.isoformat()), book).amount <= \
        rate(call(seconds=long, start=start.isoformat()), book).amount


@PROPERTY
@given(data=st.booleans().flatmap(lambda banded: tariffs(banded=banded)), start=starts, duration=seconds)
def test_amount_never_negative_a_multiple_of_the_step_breakdown_adds_up(data, start, duration) -> None:
    config = tariff(data)
    rating = rate(call(seconds=duration, start=start.isoformat()), TariffBook(config, TZ))
    assert rating.amount >= 0 and rating.amount % config.rounding == 0
    b = rating.breakdown
    _no_float(b)
    assert isinstance(rating.amount, Decimal)
    if b["rule"] != "rated":
        return
    assert sum(Decimal(p["cost"]) for p in b["pieces"]) == Decimal(b["time_cost"])
    assert sum(p["seconds"] for p in b["pieces"]) == b["billed_seconds"]
    carrier = Decimal(b["carrier_cost"])
    assert Decimal(b["minimum"]) <= carrier and (b["maximum"] == "" or carrier <= Decimal(b["maximum"]))
    assert carrier + Decimal(b["markup"]) + Decimal(b["surcharge"]) == Decimal(b["unrounded"])
    assert Decimal(b["unrounded"]) + Decimal(b["rounding_adjustment"]) == Decimal(b["amount"])


@PROPERTY
@given(data=tariffs(banded=False), start=starts, duration=seconds)
def test_splitting_across_bands_of_equal_price_equals_the_unsplit_call(data, start, duration) -> None:
    plain = TariffBook(tariff(data), TZ)
    rate_ = dict(data["default"])
    if "pulse_seconds" in rate_:
        rate_["band_pulse_seconds"] = {"night": rate_["pulse_seconds"], "weekend": rate_["pulse_seconds"]}
    else:
        rate_["band_per_minute"] = {"night": rate_["per_minute"], "weekend": rate_["per_minute"]}
    banded = TariffBook(tariff({**data, "default": rate_, "bands": BANDS, "holidays": ["12-25"]}), TZ)
    one = rate(call(seconds=duration, start=start.isoformat()), plain)
    many = rate(call(seconds=duration, start=start.isoformat()), banded)
    assert one.amount == many.amount
    if one.breakdown["rule"] == "rated":
        assert one.breakdown["time_cost"] == many.breakdown["time_cost"]
        assert sum(p["seconds"] for p in many.breakdown["pieces"]) == one.breakdown["billed_seconds"]


@settings(max_examples=60, deadline=None)
@given(start=starts, duration=st.integers(min_value=1, max_value=3 * 86400))
def test_band_pieces_are_contiguous_and_each_in_its_band(start, duration) -> None:
    from appliance.bands import Calendar
    from appliance.tariffs import Band

    calendar = Calendar([Band(**band) for band in BANDS], ["12-25"], ZoneInfo("America/New_York"))
    pieces = calendar.split(start, duration)
    moment = start
    for piece in pieces:
        assert piece.start == moment and piece.seconds > 0
        assert calendar.band_at(piece.start) == piece.band
        assert calendar.band_at(piece.start + timedelta(seconds=piece.seconds - 1)) == piece.band
        moment += timedelta(seconds=piece.seconds)
    assert moment == start + timedelta(seconds=duration)
    assert all(a.band != b.band for a, b in zip(pieces, pieces[1:]))


def _no_float(value: Any) -> None:
    assert not isinstance(value, float), value
    if isinstance(value, dict):
        for item in value.values():
            _no_float(item)
    elif isinstance(value, list):
        for item in value:
            _no_float(item)


@pytest.mark.parametrize("module", ["rating.py", "tariffs.py", "bands.py"])
def test_no_float_on_the_money_path(module: str) -> None:
    tree = ast.parse((ROOT / "appliance" / module).read_text())
    floats = [node.lineno for node in ast.walk(tree)
              if (isinstance(node, ast.Name) and node.id == "float")
              or (isinstance(node, ast.Constant) and isinstance(node.value, float))
              or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and module == "bands.py")]
    assert floats == [], f"{module}: float on lines {floats}"
