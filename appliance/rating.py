"""Rating: the charge for one call, in ``Decimal``, with the breakdown that explains it.

Pure: no database, no clock. ``rate(RatingInput, TariffBook)`` returns a ``Rating`` whose ``breakdown`` is
stored with the call (``Call.rating``, JSON, Decimals as strings), so "why did this call cost 7.40" is
answered from the record alone, years later: class, plan and version, matched prefix, band pieces,
carrier cost, markup, surcharges and rounding, adding up exactly to the amount.

Order (sources: domain.md "Tariffs"; CDRTool doc/RATING.txt; CGRateS ratinglogic, peers.md S1, S15):

1. emergency, free (toll-free or listed) and internal calls are never charged; no talk time is free;
2. the plan is chosen by the first ``select`` rule matching the trunk and extension category, else
   ``main``; the version is the last one whose ``effective_from`` is at or before the call's local start;
3. talk time up to ``grace_seconds`` is free;
4. the rate is the longest matching destination prefix (for the classes in ``prefix_classes``), else the
   class rate, else ``default``; with none of them the call is *not rated*: never silently free and never
   blocked, it is held as excluded with the reason and ``Rating.problem`` set, and ``rerate`` prices it
   once the tariff is fixed;
5. time-based: billed time is the first block, then started increments, for the whole call; laid on the
   clock from the start, it is cut at band edges and each piece priced at its band's price per minute.
   Pulse-based: every started pulse costs the pulse value, its length taken from the band it starts in;
6. carrier cost = connect + time, held between the rate's minimum and maximum;
7. markup = carrier cost x percent / 100; surcharges per call, per started minute of talk time, per class;
8. the total is rounded to the tariff's step in its mode (up, down, nearest, half_even).

Piece costs are kept to 6 decimal places by cumulative rounding (each piece is the rounded running total
minus the previous one), so the pieces add up exactly to the time cost, and a call split into pieces of
equal price costs exactly what it costs unsplit.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from appliance.bands import Calendar, Piece, single
from appliance.numbering import Classification
from appliance.tariffs import MAIN, NEVER_CHARGED, Rate, TariffConfig, TariffVersion, parse_moment

ZERO = Decimal("0")
QUANTUM = Decimal("0.000001")
_MODES = {"up": ROUND_CEILING, "down": ROUND_FLOOR, "nearest": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}


@dataclass(frozen=True, kw_only=True, slots=True)
class RatingInput:
    classification: Classification
    duration: int  # talk time, seconds
    start: datetime  # aware; converted to the site's zone for bands and versions
    trunk: str = ""
    category: str = "guest"


@dataclass(frozen=True, kw_only=True, slots=True)
class Rating:
    amount: Decimal
    chargeable: bool
    reason: str
    breakdown: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # the call could not be rated (no rate, broken tariff): a person must look


class Sheet:
    """One tariff version, compiled: prefixes merged (YAML over rate card), band calendar built."""

    def __init__(self, plan: str, version: TariffVersion, tz: tzinfo) -> None:
        self.plan = plan
        self.version = version
        self.label = version.label()
        self.effective = parse_moment(version.effective_from, "") if version.effective_from != "" else None
        self.prefixes: dict[str, Rate] = {**version.card, **version.prefixes}
        self.max_prefix = max(map(len, self.prefixes), default=0)
        self.prefix_classes = frozenset(version.prefix_classes)
        self.calendar = Calendar(version.bands, version.holidays, tz) if version.bands else None
        # Breakdown entries that depend only on the version or the rate: written once, not per call.
        self.version_from = self.effective.isoformat() if self.effective else ""
        self.version_texts = {"markup_percent": format(version.markup_percent, "f"),
                              "surcharge_per_call": _s(version.surcharge_per_call),
                              "rounding": _s(version.rounding), "rounding_mode": version.rounding_mode}
        self._rate_texts: dict[int, dict[str, str]] = {}  # by id(): every Rate is held by this sheet

    def rate_texts(self, chosen: Rate) -> dict[str, str]:
        found = self._rate_texts.get(id(chosen))
        if found is None:
            found = self._rate_texts[id(chosen)] = {
                "rate_name": chosen.name, "connect": _s(chosen.connect), "billing": chosen.billing_words(),
                "minimum": _s(chosen.minimum),
                "maximum": _s(chosen.maximum) if chosen.maximum is not None else ""}
        return found

    def find_rate(self, classification: Classification) -> tuple[str, str, Rate] | None:
        """``(how, key, rate)``: ("prefix", "44", ...), ("class", "local", ...) or ("default", "", ...)."""
        digits = classification.e164[1:]
        if digits and self.max_prefix and classification.call_class in self.prefix_classes:
            for length in range(min(len(digits), self.max_prefix), 0, -1):
                found = self.prefixes.get(digits[:length])
                if found is not None:
                    return "prefix", digits[:length], found
        found = self.version.classes.get(classification.call_class)
        if found is not None:
            return "class", classification.call_class, found
        if self.version.default is not None:
            return "default", "", self.version.default
        return None


class TariffBook:
    """Every plan and version of a ``TariffConfig``, ready to rate calls in the site's zone ``tz``."""

    def __init__(self, config: TariffConfig, tz: tzinfo) -> None:
        self.config = config
        self.tz = tz
        self.free_numbers = frozenset(n.lstrip("+") for n in config.free_numbers)
        self._sheets: dict[str, list[Sheet]] = {}
        self._starts: dict[str, list[datetime]] = {}
        for name in (MAIN, *config.plans):
            plan = config.plan(name)
            sheets = [Sheet(name, version, tz) for version in (plan, *plan.versions)]
            sheets.sort(key=lambda s: s.effective or datetime.min)
            self._sheets[name] = sheets
            self._starts[name] = [s.effective or datetime.min for s in sheets]

    def plan_for(self, trunk: str, category: str) -> tuple[str, str]:
        for i, rule in enumerate(self.config.select):
            if rule.matches(trunk, category):
                return rule.plan, f"select[{i}] (trunk {trunk or '-'}, category {category})"
        return MAIN, "no select rule matched"

    def sheet_for(self, plan: str, local_start: datetime) -> tuple[Sheet, str]:
        starts = self._starts[plan]
        index = bisect.bisect_right(starts, local_start.replace(tzinfo=None)) - 1
        if index < 0:
            first = self._sheets[plan][0]
            return first, f"the call is older than the first version ({first.label}): rated with it"
        return self._sheets[plan][index], ""


def rate(call: RatingInput, book: TariffBook) -> Rating:
    cls = call.classification
    start = call.start if call.start.tzinfo is not None else call.start.replace(tzinfo=book.tz)
    local_start = start.astimezone(book.tz).replace(microsecond=0)  # whole seconds, as PBXs report them
    out: dict[str, Any] = {
        "class": cls.call_class, "number": cls.number, "e164": cls.e164, "country": cls.country,
        "classified_as": cls.reason, "duration": call.duration, "start": local_start.isoformat(),
        "trunk": call.trunk, "category": call.category,
    }
    if cls.call_class in NEVER_CHARGED:
        return _free(out, f"{cls.call_class} calls are not charged", "never charged")
    if cls.number.lstrip("+") in book.free_numbers or cls.e164[1:] in book.free_numbers:
        return _free(out, "listed as free by the site", "free number")
    plan, why = book.plan_for(call.trunk, call.category)
    sheet, note = book.sheet_for(plan, local_start)
    version = sheet.version
    out.update(plan=plan, plan_rule=why, version=sheet.label, version_from=sheet.version_from,
               version_note=note)
    if call.duration <= 0:
        return _free(out, "no talk time", "no talk time")
    if call.duration <= version.grace_seconds:
        within = f"{call.duration} s is within the grace time of {version.grace_seconds} s"
        return _free(out, within, "grace time")
    found = sheet.find_rate(cls)
    if found is None:
        problem = (f"no rate for {cls.call_class} calls and plan {plan} version {sheet.label} "
                   "has no default rate")
        out["rule"] = "not rated"
        out["amount"] = "0.00"
        return Rating(amount=ZERO, chargeable=False, reason=f"not rated: {problem}", breakdown=out,
                      problem=problem)
    how, key, chosen = found
    out["rate"] = f"{how} {key}" if key else how
    out["matched_prefix"] = key if how == "prefix" else ""
    out.update(sheet.rate_texts(chosen))
    time_cost, billed = _time_cost(chosen, local_start, call.duration, sheet, book.tz, out)
    carrier, note = _held(chosen.connect + time_cost, chosen)
    out.update(billed_seconds=billed, time_cost=_s(time_cost), carrier_cost=_s(carrier), carrier_note=note)
    markup = carrier * version.markup_percent / 100
    per_minute = version.surcharge_per_minute * (-(-call.duration // 60))
    by_class = version.class_surcharges.get(cls.call_class, ZERO)
    surcharge = version.surcharge_per_call + per_minute + by_class
    unrounded = carrier + markup + surcharge
    amount = (unrounded / version.rounding).to_integral_value(rounding=_MODES[version.rounding_mode])
    amount = amount * version.rounding
    out.update(sheet.version_texts)
    out.update(markup=_s(markup), surcharge_per_minute=_s(per_minute), class_surcharge=_s(by_class),
               surcharge=_s(surcharge), unrounded=_s(unrounded), rounding_adjustment=_s(amount - unrounded),
               amount=_s(amount), rule="rated")
    if amount <= ZERO:
        return Rating(amount=ZERO, chargeable=False, reason="the tariff gives a zero amount", breakdown=out)
    return Rating(amount=amount, chargeable=True, reason="", breakdown=out)


def _time_cost(chosen: Rate, start: datetime, duration: int, sheet: Sheet, tz: tzinfo,
               out: dict[str, Any]) -> tuple[Decimal, int]:
    calendar = sheet.calendar
    if chosen.pulsed:
        if calendar is None:
            count = -(-duration // chosen.pulse_seconds)
            pieces = [Piece("standard", start, count * chosen.pulse_seconds, count, chosen.pulse_seconds)]
        else:
            pieces = calendar.pulses(start, duration, chosen.pulse_in)
        rows = [{"band": p.band, "from": p.start.isoformat(), "seconds": p.seconds, "pulses": p.pulses,
                 "pulse_seconds": p.pulse, "pulse_value": _s(chosen.pulse_value),
                 "cost": _s(chosen.pulse_value * p.pulses)} for p in pieces]
        out["pieces"] = rows
        return chosen.pulse_value * sum(p.pulses for p in pieces), sum(p.seconds for p in pieces)
    first, step = chosen.first_block, chosen.increment
    billed = first if duration <= first else first + -(-(duration - first) // step) * step
    pieces = calendar.split(start, billed) if calendar is not None else single(start, billed, tz)
    running = ZERO  # exact sum of price-per-minute x seconds
    rounded = ZERO
    rows = []
    for piece in pieces:
        price = chosen.price_in(piece.band)
        running += price * piece.seconds
        total = (running / 60).quantize(QUANTUM, rounding=ROUND_HALF_UP)
        rows.append({"band": piece.band, "from": piece.start.isoformat(), "seconds": piece.seconds,
                     "per_minute": _s(price), "cost": _s(total - rounded)})
        rounded = total
    out["pieces"] = rows
    return rounded, billed


def _held(cost: Decimal, chosen: Rate) -> tuple[Decimal, str]:
    if cost < chosen.minimum:
        return chosen.minimum, f"raised to the minimum charge {_s(chosen.minimum)}"
    if chosen.maximum is not None and cost > chosen.maximum:
        return chosen.maximum, f"capped at the maximum charge {_s(chosen.maximum)}"
    return cost, ""


def _free(out: dict[str, Any], reason: str, rule: str) -> Rating:
    out.update(rule=rule, amount="0.00")
    return Rating(amount=ZERO, chargeable=False, reason=reason, breakdown=out)


def _s(amount: Decimal) -> str:
    """Money as exact plain text for JSON: never exponent notation (``0E-6``), at least two decimals (YAML
    reads 0.20 as the float 0.2, whose text we keep exactly but show as 0.20)."""
    text = str(amount)  # plain for money-sized values, and cheaper than format()
    if "E" in text:
        text = format(amount, "f")
    point = text.find(".")
    if point < 0:
        return text + ".00"
    return text + "0" if point == len(text) - 2 else text


def unrated(classification: Classification, duration: int, error: Exception) -> Rating:
    """What the pipeline stores when rating itself failed: held, with the reason; never free, never lost."""
    problem = f"rating failed: {type(error).__name__}: {error}"
    return Rating(amount=ZERO, chargeable=False, reason=f"not rated: {problem}"[:200], problem=problem,
                  breakdown={"class": classification.call_class, "number": classification.number,
                             "duration": duration, "rule": "not rated", "amount": "0.00", "problem": problem})


_RATE_WORDS = {"prefix": "destination prefix {key} (the longest match)", "class": "the {key} class rate",
               "default": "the default rate (nothing more specific matched)"}


def explain(rating: Rating, currency: str) -> str:
    """The breakdown in words, a few lines a front-desk agent can read aloud."""
    b = rating.breakdown
    if "rule" not in b:
        raise KeyError("rule: not a breakdown written by appliance.rating")
    head = f"{b.get('class', '?')} call to {b.get('e164') or b.get('number') or '?'}"
    head += f" ({b['country']})" if b.get("country") else ""
    head += f", {b.get('duration', 0)} s" + (f" from {b['start']}" if b.get("start") else "")
    lines = [head]
    if b.get("classified_as"):
        lines.append(f"  classified: {b['classified_as']}")
    if "plan" in b:
        since = f" (in force from {b['version_from']})" if b["version_from"] else ""
        version = f"version {b['version']}{since}"
        lines.append(f"  tariff: plan {b['plan']} ({b['plan_rule']}), {version}")
        if b.get("version_note"):
            lines.append(f"  note: {b['version_note']}")
    if b.get("rule") != "rated":
        lines.append(f"  amount: {currency} 0.00 ({rating.reason})")
        return "\n".join(lines)
    how, _, key = b["rate"].partition(" ")
    name = f" \"{b['rate_name']}\"" if b.get("rate_name") else ""
    lines.append(f"  rate: {_RATE_WORDS[how].format(key=key)}{name}: connect {b['connect']}, {b['billing']}")
    lines.append(f"  billed {b['billed_seconds']} s:")
    for piece in b["pieces"]:
        if "pulses" in piece:
            lines.append(f"    {piece['band']} from {piece['from']}: {piece['pulses']} pulse(s) of "
                         f"{piece['pulse_seconds']} s at {piece['pulse_value']} = {piece['cost']}")
        else:
            lines.append(f"    {piece['band']} from {piece['from']}: {piece['seconds']} s at "
                         f"{piece['per_minute']}/min = {piece['cost']}")
    held = f", {b['carrier_note']}" if b["carrier_note"] else ""
    lines.append(f"  carrier cost: connect {b['connect']} + time {b['time_cost']}{held} "
                 f"= {b['carrier_cost']}")
    lines.append(f"  hotel markup {b['markup_percent']} % = {b['markup']}")
    lines.append(f"  surcharges: per call {b['surcharge_per_call']} + per minute {b['surcharge_per_minute']}"
                 f" + {b['class']} calls {b['class_surcharge']} = {b['surcharge']}")
    lines.append(f"  total {b['unrounded']}, rounded {b['rounding_mode']} to {b['rounding']} "
                 f"({b['rounding_adjustment']}): {currency} {b['amount']}")
    return "\n".join(lines)
