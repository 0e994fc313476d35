"""Number classification: which kind of call a dialled number is, from the site's numbering plan.

Sources: Google's libphonenumber metadata through ``phonenumbers`` (country, number type, validity, short
and emergency numbers, each country's international and trunk prefixes); the NANP convention that a call
is local or long distance by the NPA-NXX of both ends (rate centres), which no library knows, so the site
keeps a local calling table (``appliance.localcalling``); peers.md: stale exchange lists cause overbilling
(S54), toll-free numbers must never be charged (S55, S56), emergency numbers always free.

The PBX reports digits as dialled on the trunk, sometimes still with the outside-line access code. In
order: emergency (with or without the access code: 911 is not 9 + 11), internal (short, no access code),
site-listed free numbers, short codes (operator, directory, helplines: priced by libphonenumber's expected
cost), the NANP operator (0, 0+number), numbers dialled without the area code (completed with the site's
area code: they are local by definition), then the full number through ``phonenumbers``: toll-free,
premium, shared-cost and personal numbers, mobile, international (with the country), and for fixed lines
local or national by the longest matching prefix of the local calling table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo
from phonenumbers.shortnumberinfo import ShortNumberCost

CALL_CLASSES = (
    "emergency", "free", "internal", "local", "national", "mobile", "international", "premium",
    "special", "unknown",
)
# Countries sharing +1: a call between two of them is international, except toll-free (shared) numbers.
NANP = 1

_TYPE_CLASS = {
    PhoneNumberType.TOLL_FREE: "free",
    PhoneNumberType.PREMIUM_RATE: "premium",
    PhoneNumberType.SHARED_COST: "special",
    PhoneNumberType.UAN: "special",
    PhoneNumberType.VOICEMAIL: "special",
    PhoneNumberType.PERSONAL_NUMBER: "special",
    PhoneNumberType.PAGER: "special",
    PhoneNumberType.MOBILE: "mobile",
}
_SHORT_COST_CLASS = {
    ShortNumberCost.TOLL_FREE: "free",
    ShortNumberCost.PREMIUM_RATE: "premium",
    ShortNumberCost.STANDARD_RATE: "special",
    ShortNumberCost.UNKNOWN_COST: "special",
}
MAX_SHORT = 6  # libphonenumber's short numbers (112, 118 118, 116 123) are at most 6 digits


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class NumberingPlan:
    """What classification needs to know about the site (from ``site`` and ``tariff.free_numbers``).

    ``calling_area`` maps national-number prefixes (without the trunk prefix: ``212555``, ``20``) to
    ``local`` or ``national``; the longest matching prefix decides a fixed-line call.
    """

    country: str
    access_code: str = ""
    area_code: str = ""
    calling_area: Mapping[str, str] = field(default_factory=dict)
    free_numbers: frozenset[str] = frozenset()
    internal_max_length: int = 5


@dataclass(frozen=True, kw_only=True, slots=True)
class Classification:
    call_class: str
    number: str  # digits after the access code, as the carrier saw them
    e164: str = ""
    country: str = ""  # ISO region of the destination
    reason: str = ""


def make_plan(*, country: str, access_code: str = "", area_code: str = "", local_exchange: str = "",
              local_prefixes: tuple[str, ...] = (), table: Mapping[str, str] | None = None,
              free_numbers: tuple[str, ...] | frozenset[str] = ()) -> NumberingPlan:
    """Build a plan; every prefix is normalised by dropping the country's trunk prefix (``020`` -> ``20``)."""
    region = country.upper()
    area: dict[str, str] = {}
    for prefix, call_class in (table or {}).items():
        area[national_prefix_stripped(prefix, region)] = call_class
    for prefix in (area_code, local_exchange, *local_prefixes):
        if prefix:
            area[national_prefix_stripped(prefix, region)] = "local"
    free = frozenset(n.lstrip("+") for n in free_numbers)
    return NumberingPlan(country=region, access_code=access_code,
                         area_code=national_prefix_stripped(area_code, region) if area_code else "",
                         calling_area=area, free_numbers=free)


def national_prefix_stripped(prefix: str, region: str) -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = metadata.national_prefix if metadata else None
    # NANP area codes never start with 1, UK/DE/FR/AU area codes never with 0: stripping is unambiguous.
    if trunk and prefix.startswith(trunk) and len(prefix) > len(trunk):
        return prefix[len(trunk):]
    return prefix


class Classifier:
    """``classify`` with a bounded cache: a hotel's guests dial the same few hundred numbers again."""

    def __init__(self, plan: NumberingPlan, cache_size: int = 20_000) -> None:
        self.plan = plan
        self._cache: dict[str, Classification] = {}
        self._cache_size = cache_size

    def __call__(self, dialled: str) -> Classification:
        found = self._cache.get(dialled)
        if found is None:
            found = classify(dialled, self.plan)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # simple and bounded; refilling costs one parse per number
            self._cache[dialled] = found
        return found


def classify(dialled: str, plan: NumberingPlan) -> Classification:
    digits = "".join(ch for ch in dialled if ch.isdigit() or ch in "*#+")
    if not digits:
        return Classification(call_class="unknown", number="", reason="no digits dialled")
    if "*" in digits or "#" in digits:
        return Classification(call_class="special", number=digits, reason="a PBX or network feature code")
    if _is_emergency(digits, plan):  # before the access code is stripped: 911 is not 9 + 11
        return Classification(call_class="emergency", number=digits, reason="emergency number")
    if plan.access_code and digits.startswith(plan.access_code) and len(digits) > len(plan.access_code):
        digits = digits[len(plan.access_code):]
        if _is_emergency(digits, plan):
            return Classification(call_class="emergency", number=digits, reason="emergency number")
    elif len(digits) <= plan.internal_max_length:
        return Classification(call_class="internal", number=digits, reason="short number without access code")
    if digits.lstrip("+") in plan.free_numbers:
        return Classification(call_class="free", number=digits, reason="listed as free by the site")
    if len(digits) <= MAX_SHORT and not digits.startswith("+"):
        return _short(digits, plan)
    return _full(digits, plan)


def _short(digits: str, plan: NumberingPlan) -> Classification:
    if plan.country in _nanp_regions() and digits in ("0", "00"):
        return Classification(call_class="special", number=digits, reason="the carrier's operator")
    try:
        parsed = phonenumbers.parse(digits, plan.country)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None and shortnumberinfo.is_valid_short_number_for_region(parsed, plan.country):
        cost = shortnumberinfo.expected_cost_for_region(parsed, plan.country)
        call_class = _SHORT_COST_CLASS.get(cost, "special")
        return Classification(call_class=call_class, number=digits,
                              reason=f"short code ({_cost_words(cost)} per libphonenumber)")
    if plan.area_code:  # a local subscriber number dialled without the area code
        return _full(digits, plan)
    return Classification(call_class="unknown", number=digits,
                          reason="not a known short code for the country")


def _full(digits: str, plan: NumberingPlan) -> Classification:
    number = _with_plus(digits, plan)
    completed = False
    if not number.startswith("+"):
        if plan.country in _nanp_regions() and number.startswith("0"):
            # 0 + number: operator-assisted (collect, calling card); 01 + CC: the same, international.
            return Classification(call_class="special", number=digits, reason="operator-assisted call")
        number, completed = _complete_local(number, plan)
    try:
        parsed = phonenumbers.parse(number, plan.country)
    except phonenumbers.NumberParseException as exc:
        return Classification(call_class="unknown", number=digits, reason=f"not a phone number: {exc}")
    nsn = phonenumbers.national_significant_number(parsed)
    e164 = f"+{parsed.country_code}{nsn}"
    number_type = phonenumbers.number_type(parsed)
    region = phonenumbers.region_code_for_number(parsed) or ""
    if number_type == PhoneNumberType.UNKNOWN:
        return Classification(call_class="unknown", number=digits, e164=e164, country=region,
                              reason="not a valid number in the destination's numbering plan")
    if e164[1:] in plan.free_numbers:
        return Classification(call_class="free", number=digits, e164=e164, country=region,
                              reason="listed as free by the site")
    own_code = phonenumbers.country_code_for_region(plan.country)
    shared = (PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE)
    if parsed.country_code == NANP and number_type in shared:
        # 8XX and 900 are shared by every NANP country: free (or premium) from anywhere in it.
        call_class = _TYPE_CLASS[number_type] if own_code == NANP else "international"
        return Classification(call_class=call_class, number=digits, e164=e164, country=region,
                              reason=f"number type {PhoneNumberType.to_string(number_type)}")
    if region != plan.country and (parsed.country_code != own_code or own_code == NANP):
        # A foreign toll-free number is not free from abroad: it is charged as an international call.
        return Classification(call_class="international", number=digits, e164=e164, country=region,
                              reason=f"destination {region or 'non-geographic +' + str(parsed.country_code)}")
    if number_type in _TYPE_CLASS:
        return Classification(call_class=_TYPE_CLASS[number_type], number=digits, e164=e164, country=region,
                              reason=f"number type {PhoneNumberType.to_string(number_type)}")
    call_class, reason = _local_or_national(nsn, completed, plan)
    return Classification(call_class=call_class, number=digits, e164=e164, country=region, reason=reason)


def _local_or_national(nsn: str, completed: bool, plan: NumberingPlan) -> tuple[str, str]:
    area = plan.calling_area
    for length in range(min(len(nsn), 12), 0, -1):
        call_class = area.get(nsn[:length])
        if call_class is not None:
            return call_class, f"{nsn[:length]} is {call_class} in the site's calling table"
    if completed:
        return "local", f"dialled without the area code {plan.area_code}"
    if area:
        return "national", "not in the site's local calling table"
    return "national", "no local calling area configured: treated as national"


def _complete_local(number: str, plan: NumberingPlan) -> tuple[str, bool]:
    """A subscriber number dialled without the trunk prefix and area code gets the site's area code."""
    if not plan.area_code:
        return number, False
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(plan.country)
    trunk = (metadata.national_prefix if metadata else None) or ""
    if plan.country in _nanp_regions():
        return (plan.area_code + number, True) if len(number) == 7 else (number, False)
    if not trunk or number.startswith(trunk):
        return number, False  # Italy and others without a trunk prefix always dial the full number
    candidate = trunk + plan.area_code + number
    try:
        parsed = phonenumbers.parse(candidate, plan.country)
    except phonenumbers.NumberParseException:
        return number, False
    if phonenumbers.is_valid_number(parsed):
        return candidate, True
    return number, False


def _with_plus(digits: str, plan: NumberingPlan) -> str:
    """Rewrite the country's international prefix (011, 00, 0011) as '+' so phonenumbers sees it."""
    if digits.startswith("+"):
        return digits
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(plan.country)
    prefix = metadata.international_prefix if metadata else None
    if prefix:
        match = re.match(f"(?:{prefix})", digits)
        if match and match.end() > 0 and len(digits) > match.end() + 4:
            return "+" + digits[match.end():]
    return digits


def _is_emergency(digits: str, plan: NumberingPlan) -> bool:
    if len(digits) > MAX_SHORT or digits.startswith("+"):
        return False  # emergency numbers are short; skipping the lookup keeps long numbers fast
    return shortnumberinfo.is_emergency_number(digits, plan.country)


def _cost_words(cost: int) -> str:
    return {ShortNumberCost.TOLL_FREE: "free to call", ShortNumberCost.PREMIUM_RATE: "premium rate",
            ShortNumberCost.STANDARD_RATE: "standard rate"}.get(cost, "cost unknown")


_NANP_REGIONS: frozenset[str] = frozenset()


def _nanp_regions() -> frozenset[str]:
    global _NANP_REGIONS
    if not _NANP_REGIONS:
        _NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(NANP))
    return _NANP_REGIONS


def plan_for_site(site: object, free_numbers: tuple[str, ...] = ()) -> NumberingPlan:
    """The plan of a ``SiteConfig`` (duck-typed: numbering does not import the configuration)."""
    from appliance.localcalling import load_table

    table_path = getattr(site, "local_calling_table", "")
    return make_plan(
        country=getattr(site, "country"), access_code=getattr(site, "access_code", ""),
        area_code=getattr(site, "area_code", ""), local_exchange=getattr(site, "local_exchange", ""),
        local_prefixes=tuple(getattr(site, "local_prefixes", ())),
        table=load_table(table_path) if table_path else None, free_numbers=free_numbers,
    )
