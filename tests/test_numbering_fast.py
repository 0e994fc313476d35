"""The one-pass libphonenumber lookup (``appliance.numbering._identify``) equals the public API.

``_identify`` follows ``phonenumbers.parse`` for plain digits and tests each region's compiled patterns in
``_number_type_helper``'s order (the speed target of issue 3); ``_identify_reference`` is ``parse`` +
``national_significant_number`` + ``number_type`` + ``region_code_for_number``. Numbers are generated
from libphonenumber's own metadata: each region's example numbers of every type, cut at a random length
and completed with random digits to a possible length (or one off it), written in every way a PBX reports
them (+CC, the site's international prefix, the country code without '+', the trunk prefix, the national
number alone), plus random digit strings. The sites are the supported countries (US/CA, GB, DE, FR, AU,
IT) and a few whose metadata exercise parse's rarer steps (national prefix transform rules in AR, BR and
MX; carrier codes; the +7 and +44 shared codes). Destinations are every region and non-geographic code.
"""

from __future__ import annotations

from unittest import mock

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import numbering
from appliance.numbering import classify, make_plan

SUPPORTED_SITES = ("US", "CA", "GB", "DE", "FR", "AU", "IT")
OTHER_SITES = ("AR", "BR", "MX", "RU", "JP", "IN", "CN", "JM", "GG", "NZ")
SITES = SUPPORTED_SITES + OTHER_SITES
# Destinations weighted towards the sites and the shared +1 / +44 / +7 codes, then every region.
NEAR = SUPPORTED_SITES + ("JM", "BS", "PR", "GG", "JE", "IM", "KZ", "RU", "VA", "SM")
EVERY_REGION = tuple(sorted(phonenumbers.SUPPORTED_REGIONS))
NON_GEOGRAPHIC = tuple(sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS))
TYPES = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
         "voip", "pager", "uan", "voicemail")
IDD = {"AU": "0011", "US": "011", "CA": "011", "JM": "011", "JP": "010", "RU": "810", "AR": "00",
       "BR": "0021", "MX": "00", "IN": "00", "CN": "00", "NZ": "00", "GB": "00", "GG": "00", "DE": "00",
       "FR": "00", "IT": "00"}


def outcome(function, number: str, region: str) -> tuple:
    try:
        return ("number", function(number, region))
    except phonenumbers.NumberParseException as exc:
        return ("refused", exc.error_type, str(exc))


def metadata_of(destination: str | int):
    if isinstance(destination, int):
        return phonenumbers.PhoneMetadata.metadata_for_nongeo_region(destination)
    return phonenumbers.PhoneMetadata.metadata_for_region(destination)


def examples(destination: str | int) -> list[tuple[str, tuple[int, ...]]]:
    """(example number, possible lengths) of each type libphonenumber describes for the destination."""
    metadata = metadata_of(destination)
    found = []
    for name in TYPES:
        desc = getattr(metadata, name, None)
        if desc is not None and desc.example_number:
            lengths = tuple(n for n in (desc.possible_length or metadata.general_desc.possible_length) if n > 0)
            found.append((desc.example_number, lengths or (len(desc.example_number),)))
    return found or [("", (8,))]


@st.composite
def national_numbers(draw, destination: str | int) -> str:
    example, lengths = draw(st.sampled_from(examples(destination)))
    length = draw(st.sampled_from(lengths)) + draw(st.sampled_from((0, 0, 0, -1, 1)))
    keep = draw(st.integers(0, min(len(example), max(length, 0))))
    rest = draw(st.text("0123456789", min_size=max(length - keep, 0), max_size=max(length - keep, 0)))
    return example[:keep] + rest


@st.composite
def written_numbers(draw, site: str) -> str:
    """A number as the carrier receives it from a PBX at ``site`` (after the outside-line code)."""
    kind = draw(st.sampled_from(("near", "near", "any", "nongeo", "random")))
    if kind == "random":
        return draw(st.sampled_from(("", "+"))) + draw(st.text("0123456789", min_size=1, max_size=20))
    destination: str | int
    if kind == "nongeo":
        destination = draw(st.sampled_from(NON_GEOGRAPHIC))
        code = destination
    else:
        destination = draw(st.sampled_from(NEAR + (site,) if kind == "near" else EVERY_REGION))
        code = phonenumbers.country_code_for_region(destination)
    national = draw(national_numbers(destination))
    trunk = "" if isinstance(destination, int) else (metadata_of(destination).national_prefix or "")
    forms = ["+" + str(code) + national, IDD.get(site, "00") + str(code) + national, str(code) + national]
    if destination == site or code == phonenumbers.country_code_for_region(site):
        forms += [trunk + national, national]
    return draw(st.sampled_from(forms))


@given(site=st.sampled_from(SITES), data=st.data())
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_identify_equals_the_public_api_for_generated_numbers(site: str, data: st.DataObject) -> None:
    number = data.draw(written_numbers(site))
    assert outcome(numbering._identify, number, site) == outcome(numbering._identify_reference, number, site)


@pytest.mark.parametrize("site", SITES)
def test_identify_equals_the_public_api_for_every_example_number(site: str) -> None:
    """Every example number of every type of every region and non-geographic code, in every form."""
    compared = 0
    for destination in EVERY_REGION + NON_GEOGRAPHIC:
        code = destination if isinstance(destination, int) else phonenumbers.country_code_for_region(destination)
        for national, _ in examples(destination):
            if not national:
                continue
            forms = ["+" + str(code) + national, IDD.get(site, "00") + str(code) + national,
                     str(code) + national, national]
            if not isinstance(destination, int):
                forms.append((metadata_of(destination).national_prefix or "") + national)
            for number in forms:
                fast = outcome(numbering._identify, number, site)
                assert fast == outcome(numbering._identify_reference, number, site), (site, number)
                compared += 1
    assert compared > 5000  # every region's examples were reached, not silently skipped


def test_text_that_is_not_plain_digits_goes_through_parse() -> None:
    for number in ("+1 (212) 555-0123", "+44 20 7946 0123", "0049-30-23125123", "２１２５５５０１２３", "++442079460123",
                   "+12", "12", "+", "+999123456", "+0123456789", "1" * 260):
        assert outcome(numbering._identify, number, "US") == outcome(numbering._identify_reference, number, "US")


PLANS = {
    "US": make_plan(country="US", access_code="9", area_code="212", table={"212976": "national"}),
    "CA": make_plan(country="CA", access_code="9", area_code="416"),
    "GB": make_plan(country="GB", access_code="9", area_code="020"),
    "DE": make_plan(country="DE", access_code="0", area_code="030"),
    "FR": make_plan(country="FR", access_code="0"),
    "AU": make_plan(country="AU", access_code="0", area_code="02"),
    "IT": make_plan(country="IT", access_code="0"),
}


@given(site=st.sampled_from(tuple(PLANS)), data=st.data())
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_classification_is_the_same_with_the_public_api(site: str, data: st.DataObject) -> None:
    """The whole classification (completion without the area code included) with ``_identify`` swapped for
    the public API gives the same class, country, E.164 number and reason."""
    plan = PLANS[site]
    number = data.draw(written_numbers(site) | st.text("0123456789", min_size=6, max_size=9))
    dialled = plan.access_code + number
    fast = classify(dialled, plan)
    with mock.patch.object(numbering, "_identify", numbering._identify_reference):
        reference = classify(dialled, plan)
    assert fast == reference
