"""Rating: the charge for one call, in ``Decimal``, with the breakdown that explains it.

Pure: no database, no clock. ``rate`` takes the classification, the talk time and the tariff and returns
a ``Rating`` whose ``breakdown`` is stored with the call, so "why did this call cost 7.40" is answered
from the record alone, years later. The tariff model here is per call class (connect fee, a first block,
then increments, a minimum), hotel markup, a per-call surcharge, a grace time and a rounding step; the
full engine (prefixes, bands, versions) grows behind the same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from appliance.config import ClassRate, TariffConfig
from appliance.numbering import Classification

NEVER_CHARGED = frozenset({"emergency", "free", "internal"})
ZERO = Decimal("0")


@dataclass(frozen=True, kw_only=True, slots=True)
class Rating:
    amount: Decimal
    chargeable: bool
    reason: str
    breakdown: dict[str, Any] = field(default_factory=dict)


def rate(classification: Classification, duration: int, tariff: TariffConfig) -> Rating:
    call_class = classification.call_class
    base = {"class": call_class, "number": classification.number, "country": classification.country,
            "duration": duration}
    if call_class in NEVER_CHARGED:
        return Rating(amount=ZERO, chargeable=False, reason=f"{call_class} calls are not charged",
                      breakdown={**base, "rule": "never charged"})
    if duration <= tariff.grace_seconds:
        return Rating(amount=ZERO, chargeable=False,
                      reason=f"{duration} s is within the grace time of {tariff.grace_seconds} s",
                      breakdown={**base, "rule": "grace time"})
    rate_for_class = tariff.classes.get(call_class)
    rate_name = call_class if rate_for_class is not None else "default"
    class_rate = rate_for_class or tariff.default
    carrier, units = _carrier_cost(duration, class_rate)
    markup = carrier * tariff.markup_percent / 100
    surcharge = tariff.surcharge_per_call
    unrounded = carrier + markup + surcharge
    amount = _round_up(unrounded, tariff.rounding)
    breakdown = {
        **base,
        "rate": rate_name,
        "connect": str(class_rate.connect),
        "per_minute": str(class_rate.per_minute),
        "first_block": class_rate.first_block,
        "increment": class_rate.increment,
        "billed_seconds": units,
        "carrier_cost": str(carrier),
        "markup_percent": str(tariff.markup_percent),
        "markup": str(markup),
        "surcharge": str(surcharge),
        "unrounded": str(unrounded),
        "rounding": str(tariff.rounding),
        "amount": str(amount),
    }
    if amount <= ZERO:
        return Rating(amount=ZERO, chargeable=False, reason="the tariff gives a zero amount", breakdown=breakdown)
    return Rating(amount=amount, chargeable=True, reason="", breakdown=breakdown)


def _carrier_cost(duration: int, class_rate: ClassRate) -> tuple[Decimal, int]:
    """Connect fee, the first block in full, then each started increment; never under the minimum."""
    first = max(class_rate.first_block, 0)
    step = max(class_rate.increment, 1)
    billed = first if duration <= first else first + -(-(duration - first) // step) * step
    cost = class_rate.connect + class_rate.per_minute * Decimal(billed) / 60
    return max(cost, class_rate.minimum), billed


def _round_up(amount: Decimal, step: Decimal) -> Decimal:
    return (amount / step).to_integral_value(rounding=ROUND_CEILING) * step


def explain(rating: Rating, currency: str) -> str:
    """A few lines a front-desk agent can read aloud."""
    b = rating.breakdown
    if not rating.chargeable:
        return f"{b.get('class', '?')} call, {b.get('duration', 0)} s: {currency} 0.00 ({rating.reason})"
    return (
        f"{b['class']} call to {b['number']} ({b['country'] or 'domestic'}), {b['duration']} s billed as "
        f"{b['billed_seconds']} s at {b['per_minute']}/min + connect {b['connect']} = carrier {b['carrier_cost']}; "
        f"markup {b['markup_percent']}% = {b['markup']}; surcharge {b['surcharge']}; "
        f"rounded up to {b['rounding']}: {currency} {b['amount']}"
    )
