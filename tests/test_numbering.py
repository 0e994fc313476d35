"""Number classification per country, with real-shaped numbers, and the site's local calling table.

Numbers: where a regulator reserves numbers for fiction we use them: NANP 555-0100..0199; Ofcom's drama
numbers (020 7946 0xxx London, 0113 496 0xxx Leeds, 0808 157 0xxx freephone, 0909 879 0xxx premium;
its drama mobile range 07700 900xxx is *not valid* in libphonenumber, which we test too); the
Bundesnetzagentur's (Amtsblatt 7/2021, Mitteilung 148/2021) 030 23125 xxx Berlin and the drama mobile
0152 28817386; ACMA's fictitious 02 5550 xxxx / 03 7010 xxxx landlines and 0491 570 156 mobile. Elsewhere
(France, Italy, toll-free and premium prefixes) the shapes are libphonenumber's documented example numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import CALL_CLASSES as CONFIG_CLASSES
from appliance.config import parse_config
from appliance.errors import ConfigError
from appliance.localcalling import TableError, load_table
from appliance.numbering import CALL_CLASSES, Classifier, classify, make_plan, plan_for_site

PLANS = {
    # A New York hotel: 9 for a line; 212 is its area code; 212-976 is listed as long distance.
    "US": make_plan(country="US", access_code="9", area_code="212",
                    table={"212976": "national", "646": "local"}, free_numbers=("+12125550199",)),
    "CA": make_plan(country="CA", access_code="9", area_code="416"),
    "GB": make_plan(country="GB", access_code="9", area_code="020"),  # London
    "DE": make_plan(country="DE", access_code="0", area_code="030"),  # Berlin
    "FR": make_plan(country="FR", access_code="0"),  # ten digits everywhere: no local dialling
    "AU": make_plan(country="AU", access_code="0", area_code="02"),  # Sydney
    "IT": make_plan(country="IT", access_code="0"),  # no trunk prefix: the 0 belongs to the number
}

CASES = [
    # --- United States (New York)
    ("US", "911", "emergency", ""),
    ("US", "9911", "emergency", ""),  # 9 + 911
    ("US", "9112", "emergency", ""),  # 112 also reaches 911 in the US
    ("US", "912125550123", "local", "US"),  # 1 + 212 555-0123: the area code is local
    ("US", "92125550123", "local", "US"),  # ten-digit dialling
    ("US", "95550123", "local", "US"),  # seven digits: completed with 212
    ("US", "916465550123", "local", "US"),  # 646 listed local
    ("US", "912129765555", "national", "US"),  # 212-976 listed long distance (longer prefix wins)
    ("US", "919085550123", "national", "US"),  # New Jersey: not in the table
    ("US", "918005550123", "free", "US"),  # toll-free 800
    ("US", "918885550123", "free", "US"),  # toll-free 888
    ("US", "912125550199", "free", ""),  # listed by the site
    ("US", "919005550123", "premium", "US"),  # 900
    ("US", "9011442079460123", "international", "GB"),
    ("US", "9+493023125123", "international", "DE"),  # a PBX that reports '+'
    ("US", "914165550123", "international", "CA"),  # NANP, but another country
    ("US", "918765550123", "international", "JM"),  # the "809 scam" region: Caribbean NANP
    ("US", "9411", "special", ""),  # directory assistance
    ("US", "9611", "free", ""),  # repair service: toll-free short code
    ("US", "90", "special", ""),  # the carrier's operator
    ("US", "902125550123", "special", ""),  # 0 + number: operator-assisted
    ("US", "9*67", "special", ""),  # a feature code
    ("US", "205", "internal", ""),  # no access code, short
    ("US", "90119991234567", "unknown", ""),  # +999 is no country
    # --- Canada (Toronto)
    ("CA", "94165550123", "local", "CA"),
    ("CA", "95550123", "local", "CA"),
    ("CA", "918005550123", "free", "US"),  # NANP toll-free is free from Canada too
    ("CA", "912125550123", "international", "US"),
    # --- United Kingdom (London)
    ("GB", "999", "emergency", ""),
    ("GB", "9112", "emergency", ""),
    ("GB", "902079460123", "local", "GB"),  # Ofcom drama, London
    ("GB", "979460123", "local", "GB"),  # dialled without 020
    ("GB", "901134960123", "national", "GB"),  # Ofcom drama, Leeds
    ("GB", "907400123456", "mobile", "GB"),
    ("GB", "907700900123", "unknown", ""),  # Ofcom drama mobile: libphonenumber knows it is unassigned
    ("GB", "908081570123", "free", "GB"),  # Ofcom drama freephone
    ("GB", "909098790123", "premium", "GB"),  # Ofcom drama premium rate
    ("GB", "908453334444", "premium", "GB"),  # 0845: a service charge, premium since 2015
    ("GB", "903069990123", "special", "GB"),  # 03: UAN
    ("GB", "907012345678", "special", "GB"),  # 070 personal numbers (often abused)
    ("GB", "9100", "special", ""),  # the operator
    ("GB", "9118118", "special", ""),  # directory enquiries
    ("GB", "9116123", "free", ""),  # Samaritans: free short code
    ("GB", "90012125550123", "international", "US"),
    ("GB", "90033123456789", "international", "FR"),
    # --- Germany (Berlin)
    ("DE", "112", "emergency", ""),
    ("DE", "0110", "emergency", ""),
    ("DE", "003023125123", "local", "DE"),  # BNetzA drama range, Berlin
    ("DE", "023125123", "local", "DE"),  # dialled without 030
    ("DE", "006990009123", "national", "DE"),  # BNetzA drama range, Frankfurt
    ("DE", "0015228817386", "mobile", "DE"),  # BNetzA drama mobile
    ("DE", "008001234567", "free", "DE"),
    ("DE", "009001234567", "premium", "DE"),
    ("DE", "00180512345678", "special", "DE"),  # 0180: shared cost
    ("DE", "011833", "special", ""),  # directory enquiries
    ("DE", "0116117", "free", ""),  # medical on-call service
    ("DE", "000442079460123", "international", "GB"),
    # --- France (no local dialling: every number has ten digits)
    ("FR", "15", "emergency", ""),
    ("FR", "017", "emergency", ""),
    ("FR", "0112", "emergency", ""),
    ("FR", "00123456789", "national", "FR"),
    ("FR", "00612345678", "mobile", "FR"),
    ("FR", "00800123456", "free", "FR"),
    ("FR", "00899123456", "premium", "FR"),
    ("FR", "00810123456", "special", "FR"),  # 081: shared cost
    ("FR", "03949", "premium", ""),  # a premium short number
    ("FR", "000447400123456", "international", "GB"),
    # --- Australia (Sydney)
    ("AU", "000", "emergency", ""),
    ("AU", "0112", "emergency", ""),
    ("AU", "00255501234", "local", "AU"),  # ACMA fictitious, Sydney
    ("AU", "055501234", "local", "AU"),  # dialled without 02
    ("AU", "00370101234", "national", "AU"),  # ACMA fictitious, Melbourne
    ("AU", "00491570156", "mobile", "AU"),  # ACMA fictitious mobile
    ("AU", "01800123456", "free", "AU"),
    ("AU", "01900123456", "premium", "AU"),
    ("AU", "01300123456", "special", "AU"),  # 13/1300: shared cost
    ("AU", "0001112125550123", "international", "US"),  # 0011 international prefix
    # --- Italy (the 0 of a fixed number stays in it; mobiles start with 3)
    ("IT", "112", "emergency", ""),
    ("IT", "0113", "emergency", ""),
    ("IT", "00612345678", "national", "IT"),  # Rome
    ("IT", "00212345678", "national", "IT"),  # Milan
    ("IT", "03123456789", "mobile", "IT"),
    ("IT", "0800123456", "free", "IT"),
    ("IT", "0899123456", "premium", "IT"),
    ("IT", "0848123456", "special", "IT"),  # 848: shared cost
    ("IT", "00012125550123", "international", "US"),
]


@pytest.mark.parametrize(("country", "dialled", "call_class", "destination"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_classification(country: str, dialled: str, call_class: str, destination: str) -> None:
    result = classify(dialled, PLANS[country])
    assert (result.call_class, result.country) == (call_class, destination), result.reason


def test_every_country_is_covered_with_every_kind_of_call() -> None:
    for country in ("US", "GB", "DE", "FR", "AU", "IT"):
        kinds = {case[2] for case in CASES if case[0] == country}
        assert {"emergency", "free", "premium", "international"} <= kinds, country
        assert kinds & {"local", "national"}, country


def test_e164_and_reasons_explain_the_class() -> None:
    london = classify("902079460123", PLANS["GB"])
    assert (london.e164, london.number) == ("+442079460123", "02079460123")
    assert london.reason == "20 is local in the site's calling table"
    assert classify("95550123", PLANS["US"]).e164 == "+12125550123"
    assert classify("00612345678", PLANS["IT"]).e164 == "+390612345678"  # the Italian leading zero is kept
    assert classify("918005550123", PLANS["CA"]).reason == "number type TOLL_FREE"


def test_without_a_calling_area_fixed_lines_are_national() -> None:
    plan = make_plan(country="US", access_code="9")
    result = classify("912125550123", plan)
    assert result.call_class == "national"
    assert result.reason == "no local calling area configured: treated as national"
    assert classify("95550123", plan).call_class == "unknown"  # seven digits cannot be completed


def test_the_classifier_caches_and_stays_bounded() -> None:
    classifier = Classifier(PLANS["US"], cache_size=2)
    first = classifier("912125550123")
    assert classifier("912125550123") is first
    classifier("919085550123")
    classifier("918005550123")  # the cache was full: cleared, then refilled
    assert classifier("912125550123") == first and classifier("912125550123") is not first


def test_the_call_classes_of_configuration_and_numbering_agree() -> None:
    assert CONFIG_CLASSES == CALL_CLASSES


# ------------------------------------------------------------------ the local calling table

def test_npa_nxx_table_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "local.csv"
    path.write_text("# exchanges local from 212-555 (localcallingguide.com export)\nNPA,NXX,class\n"
                    "212,555,local\n718,555,local\n212,976,national\n\n", encoding="utf-8")
    assert load_table(path) == {"212555": "local", "718555": "local", "212976": "national"}
    config = parse_config({"site": {"name": "x", "country": "US", "local_calling_table": str(path)}}, "t")
    plan = plan_for_site(config.site)
    assert classify("917185550123", plan).call_class == "local"
    assert classify("912129760123", plan).call_class == "national"
    assert classify("912125550123", plan).call_class == "local"
    assert classify("917185560123", plan).call_class == "national"


def test_prefix_table_and_trunk_prefix_normalised(tmp_path: Path) -> None:
    path = tmp_path / "local.csv"
    path.write_text("prefix\n020\n01483\n", encoding="utf-8")
    config = parse_config({"site": {"name": "x", "country": "GB", "local_calling_table": str(path)}}, "t")
    plan = plan_for_site(config.site)
    assert set(plan.calling_area) == {"20", "1483"}
    assert classify("901483123456", plan).call_class == "local"  # Guildford


@pytest.mark.parametrize(("text", "words"), [
    ("npa\n212\n", "the header must name 'npa' and 'nxx', or 'prefix'"),
    ("prefix\n21x\n", "line 2: '21x' is not a number prefix"),
    ("prefix,class\n212,tolls\n", "line 2: class 'tolls' must be local or national"),
    ("prefix,class\n212,local\n212,national\n", "line 3: prefix 212 is listed as both"),
    ("", "the file is empty"),
])
def test_table_problems_name_the_line(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "local.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TableError) as caught:
        load_table(path)
    assert words in str(caught.value)


def test_site_keys_are_checked_when_the_configuration_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"site": {"name": "x", "area_code": "2l2",
                               "local_calling_table": str(tmp_path / "missing.csv")}}, "t")
    assert "area_code '2l2' must be digits" in caught.value.render()
    with pytest.raises(ConfigError) as caught:
        parse_config({"site": {"name": "x", "local_calling_table": str(tmp_path / "missing.csv")}}, "t")
    assert "local_calling_table: local calling table" in caught.value.render()
    assert "No such file" in caught.value.render()
