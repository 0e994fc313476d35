"""Tariffs: what a guest pays, as the frozen dataclasses of the ``tariff:`` section of the configuration.

Sources: domain.md "Tariffs"; peers.md: CDRTool doc/RATING.txt (S15: longest-prefix destinations, weekday /
weekend / holiday profiles with rate periods, minimum duration, maximum price), CGRateS Rates, Timings and
DestinationRates (S2, S3: connect fee, increments, rounding method, maximum cost, activation times),
A2Billing's initblock / billingblock and grace (S10), ASTPP #273 (the longest prefix wins, never the
cheapest) and NethHotel #7867 (a missing rate must neither block a call nor make it free).

The top-level keys of ``tariff:`` are the first version of the main plan; ``versions`` adds later versions
(each complete, with its ``effective_from``), ``plans`` adds other named plans chosen by ``select`` rules
(trunk and/or extension category). docs/tariffs.md describes every key; ``appliance.rating`` prices calls.
Money is ``Decimal`` (YAML numbers are read through their text); times of day are ``"HH:MM"``, and an
unquoted 07:00 (which YAML 1.1 reads as the sexagesimal integer 420) is taken as minutes after midnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Literal

from appliance.numbering import CALL_CLASSES

ZERO = Decimal("0")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "hol")
WEEK = DAYS[:7]
STANDARD = "standard"  # the band of every moment no configured band covers
MAIN = "main"  # the plan made of the top-level keys
NEVER_CHARGED = frozenset({"emergency", "free", "internal"})
CATEGORIES = ("guest", "lobby", "public", "admin", "service", "unknown")
RATE_PLACES = 6  # carrier rates such as 0.0125 per minute need more than cents
PREFIX_CLASSES = ("national", "mobile", "international", "premium", "special", "unknown")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,23}")


def _check_money(label: str, amount: Decimal | None, places: int = RATE_PLACES) -> None:
    if amount is None:
        return
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{label} must be zero or a positive amount, got {amount}")
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValueError(f"{label} {amount} has more than {places} decimal places")


def expand_days(days: tuple[str, ...]) -> tuple[str, ...]:
    """``("mon-fri", "hol")`` -> ``("mon", "tue", "wed", "thu", "fri", "hol")``; unknown names raise."""
    out: list[str] = []
    for item in days:
        low, _, high = str(item).lower().partition("-")
        if low not in DAYS or (high and high not in WEEK) or (high and low == "hol"):
            raise ValueError(f"days: {item!r} is not one of {', '.join(DAYS)} or a range such as mon-fri")
        if not high:
            out.append(low)
            continue
        first, last = WEEK.index(low), WEEK.index(high)
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        out += [WEEK[i] for i in span]
    return tuple(dict.fromkeys(out))


def minutes_of_day(value: int | str, label: str) -> int:
    """``"07:30"`` or YAML's sexagesimal 450 -> 450; ``"24:00"`` -> 1440."""
    if isinstance(value, int):
        minutes = value
    else:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not match or int(match[2]) > 59:
            raise ValueError(f"{label} {value!r} must be a time of day such as \"07:00\"")
        minutes = int(match[1]) * 60 + int(match[2])
    if not 0 <= minutes <= 1440:
        raise ValueError(f"{label} {value!r} must lie between 00:00 and 24:00")
    return minutes


def parse_moment(value: date | str, label: str) -> datetime:
    """An effective date: a YAML date, a datetime, or ISO text; naive, in the site's wall-clock time."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime.combine(value, time())
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        problem = f"{label} {value!r} is not a date such as 2027-01-01 (or 2027-01-01T06:00)"
        raise ValueError(problem) from None
    return moment.replace(tzinfo=None)


def parse_holiday(value: date | str) -> tuple[int, int, int]:
    """``2026-12-25`` -> (2026, 12, 25); ``"12-25"`` (every year) -> (0, 12, 25)."""
    if isinstance(value, date):
        return value.year, value.month, value.day
    match = re.fullmatch(r"(?:(\d{4})-)?(\d{2})-(\d{2})", str(value).strip())
    if match:
        year, month, day = int(match[1] or 0), int(match[2]), int(match[3])
        try:
            date(year or 2000, month, day)  # 2000 is a leap year, so 02-29 is a valid yearly holiday
            return year, month, day
        except ValueError:
            pass
    raise ValueError(f"holidays: {value!r} must be a date (2026-12-25) or a yearly date (\"12-25\")")


@dataclass(frozen=True, kw_only=True)
class Rate:
    """The price of a class or a prefix: connect fee, then time (first block, increments) or pulses.

    Time-based: the talk time is billed as ``first_block`` seconds, then per started ``increment``
    seconds, at ``per_minute`` (or its ``band_per_minute`` price in a band). Pulse-based: every started
    pulse of ``pulse_seconds`` (or ``band_pulse_seconds`` in a band) costs ``pulse_value``. The carrier
    cost (connect + time) is then held between ``minimum`` and ``maximum``.
    """

    name: str = ""
    connect: Decimal = ZERO
    per_minute: Decimal = ZERO
    first_block: int = 60
    increment: int = 60
    pulse_seconds: int = 0
    pulse_value: Decimal = ZERO
    minimum: Decimal = ZERO
    maximum: Decimal | None = None
    band_per_minute: dict[str, Decimal] = field(default_factory=dict)
    band_pulse_seconds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label in ("connect", "per_minute", "pulse_value", "minimum", "maximum"):
            _check_money(label, getattr(self, label))
        for band, price in self.band_per_minute.items():
            _check_money(f"band_per_minute.{band}", price)
        if self.first_block < 0 or self.increment < 1:
            raise ValueError("first_block must be 0 or more seconds and increment at least 1 second")
        if self.pulse_seconds < 0 or any(s < 1 for s in self.band_pulse_seconds.values()):
            raise ValueError("pulse lengths must be at least 1 second")
        if self.pulse_seconds and (self.per_minute or self.band_per_minute):
            raise ValueError("a rate is either per minute or pulse-based (pulse_seconds, pulse_value), "
                             "not both")
        if not self.pulse_seconds and (self.pulse_value or self.band_pulse_seconds):
            raise ValueError("pulse_value and band_pulse_seconds need pulse_seconds (the length of a pulse)")
        if self.maximum is not None and self.maximum < self.minimum:
            raise ValueError(f"maximum {self.maximum} is below minimum {self.minimum}")

    @property
    def pulsed(self) -> bool:
        return self.pulse_seconds > 0

    def price_in(self, band: str) -> Decimal:
        return self.band_per_minute.get(band, self.per_minute)

    def pulse_in(self, band: str) -> int:
        return self.band_pulse_seconds.get(band, self.pulse_seconds)

    def bands_named(self) -> set[str]:
        return set(self.band_per_minute) | set(self.band_pulse_seconds)

    def billing_words(self) -> str:
        if self.pulsed:
            return f"{self.pulse_value} per started pulse of {self.pulse_seconds} s"
        if self.first_block == self.increment or self.first_block == 0:
            return f"per started {self.increment} s" if self.increment > 1 else "per second"
        return f"first {self.first_block} s, then per started {self.increment} s"


ClassRate = Rate  # the name the first cut used


@dataclass(frozen=True, kw_only=True)
class Band:
    """A named time band: the listed days (``mon``..``sun``, ``hol``, ranges like ``mon-fri``) between
    ``start`` and ``end`` wall-clock time. ``end`` at or before ``start`` wraps past midnight, on the same
    listed days: ``mon-fri 19:00-07:00`` is Monday 00:00-07:00 ... Friday 19:00-24:00."""

    name: str
    days: tuple[str, ...] = WEEK + ("hol",)
    start: int | str = "00:00"
    end: int | str = "24:00"

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or self.name == STANDARD:
            raise ValueError(f"band name {self.name!r}: use lower-case letters, digits, '_' or '-' "
                             f"(and not {STANDARD!r}, the name of time outside every band)")
        if not self.days:
            raise ValueError(f"band {self.name}: days must list at least one day")
        expand_days(self.days)
        if minutes_of_day(self.start, "start") == 1440:
            raise ValueError(f"band {self.name}: start 24:00 is the end of the day; use 00:00")
        minutes_of_day(self.end, "end")

    @property
    def window(self) -> tuple[int, int]:
        return minutes_of_day(self.start, "start"), minutes_of_day(self.end, "end")


@dataclass(frozen=True, kw_only=True)
class TariffVersion:
    """One complete version of a plan, in force from ``effective_from`` (site-local) until the next."""

    name: str = ""
    effective_from: date | str = ""
    markup_percent: Decimal = ZERO
    surcharge_per_call: Decimal = ZERO
    surcharge_per_minute: Decimal = ZERO
    class_surcharges: dict[str, Decimal] = field(default_factory=dict)
    grace_seconds: int = 0
    rounding: Decimal = Decimal("0.01")
    rounding_mode: Literal["up", "down", "nearest", "half_even"] = "up"
    default: Rate | None = None
    classes: dict[str, Rate] = field(default_factory=dict)
    prefixes: dict[str, Rate] = field(default_factory=dict)
    prefix_classes: tuple[str, ...] = PREFIX_CLASSES
    rate_card: str = ""
    bands: tuple[Band, ...] = ()
    holidays: tuple[date | str, ...] = ()
    # The rows of ``rate_card``, read once when the configuration is checked (not a YAML key).
    card: dict[str, Rate] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.effective_from != "":
            parse_moment(self.effective_from, "effective_from")
        for name in self.classes:
            if name not in CALL_CLASSES or name in NEVER_CHARGED:
                chargeable = [c for c in CALL_CLASSES if c not in NEVER_CHARGED]
                raise ValueError(f"classes: {name!r} is not a chargeable call class; "
                                 f"use {', '.join(chargeable)}")
        for name in (*self.class_surcharges, *self.prefix_classes):
            if name not in CALL_CLASSES:
                raise ValueError(f"{name!r} is not a call class; use one of {', '.join(CALL_CLASSES)}")
        for label in ("markup_percent", "surcharge_per_call", "surcharge_per_minute"):
            _check_money(label, getattr(self, label))
        for name, amount in self.class_surcharges.items():
            _check_money(f"class_surcharges.{name}", amount)
        _check_money("rounding", self.rounding, places=4)  # the database keeps 4 places
        if self.rounding <= 0:
            raise ValueError("rounding must be a positive step such as 0.01 or 0.05")
        if self.grace_seconds < 0:
            raise ValueError("grace_seconds must be 0 or more")
        for prefix in self.prefixes:
            check_prefix(prefix)
        for holiday in self.holidays:
            parse_holiday(holiday)
        names = [band.name for band in self.bands]
        if len(set(names)) != len(names):
            raise ValueError(f"bands: a band name is used twice in {names}")
        if self.rate_card:
            from appliance.ratecard import RateCardError, load_rate_card

            try:
                object.__setattr__(self, "card", load_rate_card(self.rate_card))
            except RateCardError as exc:
                raise ValueError(f"rate_card: {exc}") from None
        for label, rate in self.all_rates():
            unknown = rate.bands_named() - set(names)
            if unknown:
                raise ValueError(f"{label}: band {sorted(unknown)[0]!r} is not defined under bands")

    def all_rates(self) -> list[tuple[str, Rate]]:
        rates = [("default", self.default)] if self.default else []
        rates += [(f"classes.{k}", v) for k, v in self.classes.items()]
        rates += [(f"prefixes.{k}", v) for k, v in self.prefixes.items()]
        return rates + [(f"rate_card prefix {k}", v) for k, v in self.card.items()]

    def label(self) -> str:
        if self.name:
            return self.name
        return f"from {self.effective_from}" if self.effective_from != "" else "base"


def check_prefix(prefix: str) -> None:
    if not prefix.isdigit() or prefix.startswith("0"):
        raise ValueError(f"prefix {prefix!r}: write E.164 digits without '+' or 00 (44 for the UK), quoted")


@dataclass(frozen=True, kw_only=True)
class TariffPlan(TariffVersion):
    """A plan: its own keys are its first version; ``versions`` are the later ones, each complete."""

    versions: tuple[TariffVersion, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        seen: set[datetime] = set()
        if self.effective_from != "":
            seen.add(parse_moment(self.effective_from, "effective_from"))
        for i, version in enumerate(self.versions):
            if version.effective_from == "":
                raise ValueError(f"versions[{i}]: effective_from is required (the first day it applies)")
            moment = parse_moment(version.effective_from, f"versions[{i}].effective_from")
            if moment in seen:
                raise ValueError(f"versions[{i}]: two versions take effect at {moment.isoformat()}")
            seen.add(moment)


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Use ``plan`` for calls on one of ``trunks`` and/or from one of the extension ``categories``."""

    plan: str
    trunks: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for category in self.categories:
            if category not in CATEGORIES:
                raise ValueError(f"categories: {category!r} is not one of {', '.join(CATEGORIES)}")
        if not self.trunks and not self.categories:
            raise ValueError(f"select rule for plan {self.plan!r} needs trunks, categories or both")

    def matches(self, trunk: str, category: str) -> bool:
        by_trunk = not self.trunks or trunk in self.trunks
        return by_trunk and (not self.categories or category in self.categories)


@dataclass(frozen=True, kw_only=True)
class TariffConfig(TariffPlan):
    """The ``tariff:`` section: the main plan, other plans, the rules choosing between them, free numbers."""

    free_numbers: tuple[str, ...] = ()
    plans: dict[str, TariffPlan] = field(default_factory=dict)
    select: tuple[Selection, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in self.plans:
            if not _NAME.fullmatch(name) or name == MAIN:
                raise ValueError(f"plans: {name!r} must be a lower-case name other than {MAIN!r}")
        for rule in self.select:
            if rule.plan != MAIN and rule.plan not in self.plans:
                raise ValueError(f"select: plan {rule.plan!r} is not defined under plans")
        for number in self.free_numbers:
            if not number.lstrip("+").isdigit():
                raise ValueError(f"free_numbers: {number!r} must be digits (quote numbers with a leading 0)")

    def plan(self, name: str) -> TariffPlan:
        return self if name == MAIN else self.plans[name]
