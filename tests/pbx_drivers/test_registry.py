"""Every PBX driver declared in pyproject.toml loads and validates: nothing of kind "pbx" is broken."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from appliance.registry import default_registry, validate_spec
from pbx_drivers.callgen import generate_call

PBX_DRIVERS = ("generic", "mitel_mivb", "avaya_ipoffice", "avaya_cm", "mitel_5000", "nec_sv8100",
               "nec_sv9500",
               "panasonic", "cisco_cucm", "asterisk", "freeswitch", "threecx", "hipath", "samsung_officeserv",
               "nortel_cs1000", "lg_ipecs")


def test_no_pbx_driver_failed_to_load():
    registry = default_registry()
    assert {key: why for key, why in registry.broken.items() if key[0] == "pbx"} == {}
    assert set(PBX_DRIVERS) <= set(registry.names("pbx"))


@pytest.mark.parametrize("name", PBX_DRIVERS)
def test_each_driver_parses_formats_and_names_its_transports(name):
    spec = default_registry().get("pbx", name)
    assert validate_spec(spec) == [] and spec.parse_record and spec.format_record
    assert spec.description and spec.transports
    options = spec.options()
    link = spec.make_link(options)
    link.connection_made(0.0)  # a fresh link starts without a peer's help
    # the simulator's calls never make a formatter fail with the default options
    rng = random.Random(name)
    start = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    for _ in range(200):
        assert isinstance(spec.format_record(generate_call(rng, start, ["101", "102"], ["1", "2"]),
                                             options), bytes)
