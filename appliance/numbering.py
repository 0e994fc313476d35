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

Speed (issue 3: 20,000 calls/s, classification included, every number new): ``phonenumbers.parse``
followed by ``number_type`` and ``region_code_for_number`` costs about 40 us, because parse normalises
every character through Unicode tables and number_type re-runs the region walk (for +1, up to 25 NANP
regions, each a full type check). ``_identify`` gives the same four answers (country code, national
significant number, number type, region) in one pass: for input that is already plain ASCII digits (with
an optional leading '+') it follows parse's steps with libphonenumber's own helpers (international prefix,
country code extraction, national prefix and carrier code stripping, length test), then tests each
region's patterns, compiled once, in ``_number_type_helper``'s order. Anything else (other characters,
anything that would raise) goes through ``phonenumbers.parse`` itself. The metadata stays the authority:
no number plan is written here, and tests/test_numbering_fast.py proves ``_identify`` equal to
``_identify_reference`` (the public API) over generated numbers of every supported country.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo
from phonenumbers import phonenumberutil as _pnu
from phonenumbers.shortnumberinfo import ShortNumberCost

# phonenumbers otherwise recompiles (through re's bounded cache) every metadata pattern on every call.
if hasattr(phonenumbers, "enable_pattern_cache"):
    phonenumbers.enable_pattern_cache()

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
    """``classify`` with a bounded cache: a hotel's guests dial the same few hundred numbers again.
    4,096 entries hold about 1.3 MB; 20,000 held 6 MB of the daemon's memory budget for little gain."""

    def __init__(self, plan: NumberingPlan, cache_size: int = 4_096) -> None:
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
    if dialled.isdigit():  # the usual case: a PBX reports digits only
        digits = dialled
    else:
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
        country_code, nsn, number_type, region = _identify(number, plan.country)
    except phonenumbers.NumberParseException as exc:
        return Classification(call_class="unknown", number=digits, reason=f"not a phone number: {exc}")
    e164 = f"+{country_code}{nsn}"
    if number_type == PhoneNumberType.UNKNOWN:
        return Classification(call_class="unknown", number=digits, e164=e164, country=region,
                              reason="not a valid number in the destination's numbering plan")
    if e164[1:] in plan.free_numbers:
        return Classification(call_class="free", number=digits, e164=e164, country=region,
                              reason="listed as free by the site")
    own_code = _site(plan.country).country_code
    shared = (PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE)
    if country_code == NANP and number_type in shared:
        # 8XX and 900 are shared by every NANP country: free (or premium) from anywhere in it.
        call_class = _TYPE_CLASS[number_type] if own_code == NANP else "international"
        return Classification(call_class=call_class, number=digits, e164=e164, country=region,
                              reason=f"number type {PhoneNumberType.to_string(number_type)}")
    if region != plan.country and (country_code != own_code or own_code == NANP):
        # A foreign toll-free number is not free from abroad: it is charged as an international call.
        return Classification(call_class="international", number=digits, e164=e164, country=region,
                              reason=f"destination {region or 'non-geographic +' + str(country_code)}")
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
    site = _site(plan.country)
    if site.nanp:
        return (plan.area_code + number, True) if len(number) == 7 else (number, False)
    trunk = site.trunk_prefix
    if not trunk or number.startswith(trunk):
        return number, False  # Italy and others without a trunk prefix always dial the full number
    candidate = trunk + plan.area_code + number
    try:
        _, _, number_type, region = _identify(candidate, plan.country)
    except phonenumbers.NumberParseException:
        return number, False
    # is_valid_number is exactly this: a region for the number, and a type other than UNKNOWN there.
    if region and number_type != PhoneNumberType.UNKNOWN:
        return candidate, True
    return number, False


def _with_plus(digits: str, plan: NumberingPlan) -> str:
    """Rewrite the country's international prefix (011, 00, 0011) as '+' so phonenumbers sees it."""
    if digits.startswith("+"):
        return digits
    international = _site(plan.country).international_prefix
    if international is not None:
        match = international(digits)
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


# ------------------------------------------------------------------ libphonenumber, in one pass

@dataclass(frozen=True, slots=True)
class _Site:
    """What numbering reads from the site country's metadata on every call, looked up once."""

    country_code: int
    trunk_prefix: str
    international_prefix: Any  # the compiled IDD pattern's ``match``, or None
    nanp: bool


_SITES: dict[str, _Site] = {}


def _site(region: str) -> _Site:
    found = _SITES.get(region)
    if found is None:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        idd = metadata.international_prefix if metadata else None
        found = _Site(country_code=phonenumbers.country_code_for_region(region),
                      trunk_prefix=(metadata.national_prefix if metadata else None) or "",
                      international_prefix=re.compile(f"(?:{idd})").match if idd else None,
                      nanp=region in _nanp_regions())
        _SITES[region] = found
    return found


def _identify_reference(number: str, region: str) -> tuple[int, str, int, str]:
    """Country code, national significant number, number type and region through the public API."""
    parsed = phonenumbers.parse(number, region)
    return (parsed.country_code, phonenumbers.national_significant_number(parsed),
            phonenumbers.number_type(parsed), phonenumbers.region_code_for_number(parsed) or "")


def _identify(number: str, region: str) -> tuple[int, str, int, str]:
    """What ``_identify_reference`` returns, in one pass (module docstring); raises as parse does."""
    found = _parse_digits(number, region)
    if found is None:  # not plain digits, or parse would refuse it: let parse answer (or raise)
        parsed = phonenumbers.parse(number, region)
        found = parsed.country_code, phonenumbers.national_significant_number(parsed)
    country_code, nsn = found
    number_region, number_type = _type_and_region(country_code, nsn)
    return country_code, nsn, number_type, number_region


_TOO_SHORT_RESULTS = (_pnu.ValidationResult.TOO_SHORT, _pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                      _pnu.ValidationResult.INVALID_LENGTH)
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumberutil's _MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN


def _parse_digits(number: str, region: str) -> tuple[int, str] | None:
    """``phonenumbers.parse``'s steps for ``+digits`` or ``digits`` (ASCII): ``(country code, national
    significant number)``, or None where parse would do something else (raise, retry after the '+').

    parse first extracts the number from text, checks it is viable, strips an extension and normalises
    each character; for three or more plain digits these change nothing. The national significant number
    is the normalised national number itself: parse keeps its leading zeros (the Italian leading zero)
    and ``national_significant_number`` puts them back.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    plus = number.startswith("+")
    full = number[1:] if plus else number
    if len(full) < 3 or not full.isascii() or not full.isdigit():
        return None
    international = plus
    if not plus:
        idd = _site(region).international_prefix
        match = idd(full) if idd is not None else None
        # After an IDD a 0 cannot start a country code, so parse takes the digits as national.
        if match is not None and full[match.end():match.end() + 1] != "0":
            full, international = full[match.end():], True
    if international:
        if len(full) <= _MIN_NSN:
            return None
        country_code, national = _pnu._extract_country_code(full)
        if country_code == 0:
            return None
    else:
        country_code, national = 0, full
        own = str(metadata.country_code)
        if full.startswith(own):  # the country code dialled without '+' (1 212 ... in the NANP)
            general = metadata.general_desc
            _, potential, _ = _pnu._maybe_strip_national_prefix_carrier_code(full[len(own):], metadata)
            if ((not _pnu._match_national_number(full, general, False)
                 and _pnu._match_national_number(potential, general, False))
                    or _pnu._test_number_length(full, metadata) == _pnu.ValidationResult.TOO_LONG):
                country_code, national = metadata.country_code, potential
    if country_code == 0:
        country_code = metadata.country_code
    else:
        number_region = _pnu.region_code_for_country_code(country_code)
        if number_region != region:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
                country_code, number_region)
            if metadata is None:
                return None
    if len(national) < _MIN_NSN:
        return None
    _, potential, _ = _pnu._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _pnu._test_number_length(potential, metadata) not in _TOO_SHORT_RESULTS:
        national = potential
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    return country_code, national


# A number description, compiled: (possible lengths, or None for any length; the pattern's fullmatch).
_Desc = tuple[frozenset[int] | None, Any]


def _desc(desc: Any) -> _Desc | None:
    """As ``_is_number_matching_desc``: no description or no pattern never matches; no lengths: any."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = frozenset(desc.possible_length) if desc.possible_length else None
    return lengths, re.compile(desc.national_number_pattern).fullmatch


def _matches(desc: _Desc | None, nsn: str) -> bool:
    if desc is None:
        return False
    lengths, fullmatch = desc
    return (lengths is None or len(nsn) in lengths) and fullmatch(nsn) is not None


class _Types:
    """One region's number types, compiled once, tested in ``_number_type_helper``'s order."""

    __slots__ = ("general", "ordered", "fixed", "mobile", "same")

    def __init__(self, metadata: Any) -> None:
        self.general = _desc(metadata.general_desc)
        kinds = ((PhoneNumberType.PREMIUM_RATE, metadata.premium_rate),
                 (PhoneNumberType.TOLL_FREE, metadata.toll_free),
                 (PhoneNumberType.SHARED_COST, metadata.shared_cost), (PhoneNumberType.VOIP, metadata.voip),
                 (PhoneNumberType.PERSONAL_NUMBER, metadata.personal_number),
                 (PhoneNumberType.PAGER, metadata.pager), (PhoneNumberType.UAN, metadata.uan),
                 (PhoneNumberType.VOICEMAIL, metadata.voicemail))
        self.ordered = tuple((kind, compiled) for kind, desc in kinds if (compiled := _desc(desc)) is not None)
        self.fixed = _desc(metadata.fixed_line)
        self.mobile = _desc(metadata.mobile)
        self.same = metadata.same_mobile_and_fixed_line_pattern

    def type_of(self, nsn: str) -> int:
        if not _matches(self.general, nsn):
            return PhoneNumberType.UNKNOWN
        length = len(nsn)
        for kind, (lengths, fullmatch) in self.ordered:
            if (lengths is None or length in lengths) and fullmatch(nsn) is not None:
                return kind
        if _matches(self.fixed, nsn):
            if self.same or _matches(self.mobile, nsn):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if not self.same and _matches(self.mobile, nsn):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN


# A country code's regions in libphonenumber's order: (region, leading digits' match or None, types).
_Region = tuple[str, Any, "_Types | None"]
_REGIONS: dict[int, tuple[bool, tuple[_Region, ...]]] = {}


def _regions_of(country_code: int) -> tuple[bool, tuple[_Region, ...]]:
    """``(shared, regions)``; ``shared`` when several regions use the code (+1, +7, +44, ...)."""
    found = _REGIONS.get(country_code)
    if found is None:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
        entries: list[_Region] = []
        if len(regions) == 1:  # region_code_for_number answers without looking at the number
            metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0])
            entries.append((regions[0], None, _Types(metadata) if metadata is not None else None))
        else:
            for region in regions:
                metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
                if metadata is None:
                    continue
                leading = metadata.leading_digits
                entries.append((region, re.compile(leading).match if leading is not None else None,
                                _Types(metadata)))
        found = _REGIONS[country_code] = (len(regions) > 1, tuple(entries))
    return found


def _type_and_region(country_code: int, nsn: str) -> tuple[str, int]:
    """``region_code_for_number`` and ``number_type`` together: the region walk of a shared country code
    (``_region_code_for_number_from_list``) already computes the type of the region it settles on."""
    shared, entries = _regions_of(country_code)
    if not shared:
        if not entries:
            return "", PhoneNumberType.UNKNOWN
        region, _, types = entries[0]
        return region, types.type_of(nsn) if types is not None else PhoneNumberType.UNKNOWN
    for region, leading, types in entries:
        assert types is not None
        if leading is not None:
            if leading(nsn):
                return region, types.type_of(nsn)
            continue
        number_type = types.type_of(nsn)
        if number_type != PhoneNumberType.UNKNOWN:
            return region, number_type
    return "", PhoneNumberType.UNKNOWN


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
