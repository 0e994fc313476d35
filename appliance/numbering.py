"""Number classification: which kind of call a dialled number is, from the site's numbering plan.

The PBX reports digits as dialled on the trunk, sometimes still with the outside-line access code.
We strip the access code, work out whether the number is international (the country's international
prefix), national (the trunk prefix) or subscriber-local, and ask ``phonenumbers`` (Google's
libphonenumber metadata) for the country and the number type: toll-free, premium, mobile, and so on.
Emergency numbers (of the site's country, from libphonenumber's short-number data) are checked first,
with or without the access code, because they must never be charged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

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


@dataclass(frozen=True, kw_only=True, slots=True)
class NumberingPlan:
    """What classification needs to know about the site (from ``site`` in the configuration)."""

    country: str
    access_code: str = ""
    local_exchange: str = ""
    free_numbers: frozenset[str] = frozenset()
    internal_max_length: int = 5


@dataclass(frozen=True, kw_only=True, slots=True)
class Classification:
    call_class: str
    number: str  # digits after the access code, as the carrier saw them
    e164: str = ""
    country: str = ""  # ISO region of the destination
    reason: str = ""


def classify(dialled: str, plan: NumberingPlan) -> Classification:
    digits = "".join(ch for ch in dialled if ch.isdigit() or ch in "*#+")
    if not digits:
        return Classification(call_class="unknown", number="", reason="no digits dialled")
    if _is_emergency(digits, plan):  # before the access code is stripped: 911 is not 9 + 11
        return Classification(call_class="emergency", number=digits, reason="emergency number")
    if plan.access_code and digits.startswith(plan.access_code) and len(digits) > len(plan.access_code) + 1:
        digits = digits[len(plan.access_code):]
    elif len(digits) <= plan.internal_max_length and not _is_emergency(digits, plan):
        return Classification(call_class="internal", number=digits, reason="short number without access code")
    if _is_emergency(digits, plan):
        return Classification(call_class="emergency", number=digits, reason="emergency number")
    if digits in plan.free_numbers:
        return Classification(call_class="free", number=digits, reason="listed as free by the site")
    if _is_short_code(digits, plan):
        return Classification(call_class="special", number=digits, reason="operator or service short code")
    try:
        parsed = phonenumbers.parse(_with_plus(digits, plan), plan.country)
    except phonenumbers.NumberParseException as exc:
        return Classification(call_class="unknown", number=digits, reason=f"not a phone number: {exc}")
    region = phonenumbers.region_code_for_number(parsed) or ""
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(parsed):
        return Classification(call_class="unknown", number=digits, e164=e164, country=region,
                              reason="not a valid number in the destination's numbering plan")
    if e164.lstrip("+") in plan.free_numbers:
        return Classification(call_class="free", number=digits, e164=e164, country=region,
                              reason="listed as free by the site")
    number_type = phonenumbers.number_type(parsed)
    if region != plan.country.upper() and not _same_country_code(parsed, plan):
        call_class = "free" if number_type == PhoneNumberType.TOLL_FREE else "international"
        return Classification(call_class=call_class, number=digits, e164=e164, country=region,
                              reason=f"destination {region or parsed.country_code}")
    if number_type in _TYPE_CLASS:
        return Classification(call_class=_TYPE_CLASS[number_type], number=digits, e164=e164, country=region,
                              reason=f"number type {PhoneNumberType.to_string(number_type)}")
    national = str(parsed.national_number)
    if plan.local_exchange and national.startswith(plan.local_exchange):
        return Classification(call_class="local", number=digits, e164=e164, country=region,
                              reason=f"within the local exchange {plan.local_exchange}")
    if plan.local_exchange:
        return Classification(call_class="national", number=digits, e164=e164, country=region,
                              reason=f"outside the local exchange {plan.local_exchange}")
    return Classification(call_class="national", number=digits, e164=e164, country=region,
                          reason="no local exchange configured: treated as national")


def _with_plus(digits: str, plan: NumberingPlan) -> str:
    """Rewrite the country's international prefix (011, 00, 0011) as '+' so phonenumbers sees it."""
    if digits.startswith("+"):
        return digits
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(plan.country.upper())
    prefix = metadata.international_prefix if metadata else None
    if prefix:
        match = re.match(f"(?:{prefix})", digits)
        if match and match.end() > 0 and len(digits) > match.end() + 4:
            return "+" + digits[match.end():]
    return digits


def _same_country_code(parsed: phonenumbers.PhoneNumber, plan: NumberingPlan) -> bool:
    """NANP countries share +1 but calls between them are international; elsewhere a code is a country."""
    own = phonenumbers.country_code_for_region(plan.country.upper())
    return parsed.country_code == own and own != 1


def _is_emergency(digits: str, plan: NumberingPlan) -> bool:
    return shortnumberinfo.is_emergency_number(digits, plan.country.upper())


def _is_short_code(digits: str, plan: NumberingPlan) -> bool:
    if len(digits) > 6:
        return False
    if not digits.isdigit():
        return False
    region = plan.country.upper()
    return shortnumberinfo.is_valid_short_number_for_region(phonenumbers.parse(digits, region), region)
