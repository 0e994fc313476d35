"""The ``alerts:`` section: defaults, a full example, and mistakes reported with their key paths."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from appliance.alerts import AlertEngine
from appliance.alerts.config import AlertsConfig, host_port
from appliance.errors import ConfigError
from tests.helpers import make_config

EXAMPLE = """
business_hours: {days: [mon-fri], start: 08:00, end: "18:30", holidays: ["12-25", 2026-01-01]}
rules:
  lobby_long_distance: {recipients: [night-manager, siem]}
  expensive_call: {amount: 75.50, severity: critical}
  burst: {calls: 8, minutes: 3}
  fraud_prefix: {prefixes: ["+881", "+882", "1900"]}
  baseline: {deviations: 2.5, metrics: [cost]}
  pbx_silence: {minutes: 120}
  failed_queue: {threshold: 10, recipients: []}
channels:
  email:
    night-manager: {host: smtp.example.com, port: 587, security: starttls, username: alerts,
                    password: secret, sender: appliance@hotel.example,
                    to: [nm@hotel.example, it@hotel.example], min_severity: warning}
  webhook:
    soc: {url: "https://soc.example/hooks/pbx", secret: "0123456789abcdef0123"}
  syslog:
    siem: {address: "10.0.0.5:1514", facility: local3}
delivery: {retry_seconds: 10, retry_max_seconds: 600, max_attempts: 5}
"""


def problems(alerts: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        make_config("sqlite://", alerts=alerts)
    return dict(caught.value.problems)


def test_defaults_give_every_rule_and_no_channels() -> None:
    config = make_config("sqlite://")
    assert config.alerts == AlertsConfig()
    engine = AlertEngine(config)
    assert [r.name for r in engine.call_rules] == ["lobby_long_distance", "after_hours", "long_call",
                                                   "expensive_call", "burst", "fraud_prefix", "baseline"]
    assert [r.name for r in engine.periodic_rules] == ["pbx_silence", "pms_silence", "failed_queue"]
    assert config.alerts.channels_for("burst", "critical") == []


def test_rules_in_words() -> None:
    described = AlertEngine(make_config("sqlite://")).describe()
    assert described["lobby_long_distance"] == ("A lobby or public phone dials a long-distance, "
                                                "international or premium-rate number.")
    assert described["after_hours"] == ("An admin phone makes an outside call outside business hours "
                                        "(mon-fri 08:00-18:00 site time).")
    assert described["burst"] == ("One extension makes 10 or more outgoing calls within 5 minutes "
                                  "(burst dialling).")
    assert described["pms_silence"] == ("The PMS answers no posting for more than 60 minutes while postings "
                                        "wait.")
    assert all(text.endswith(".") for text in described.values())


def test_a_full_example_loads() -> None:
    config = make_config("sqlite://", alerts=yaml.safe_load(EXAMPLE))
    alerts = config.alerts
    assert alerts.business_hours.window == (480, 1110)
    assert alerts.rules.expensive_call.amount == Decimal("75.50")
    assert alerts.channels.email["night-manager"].to == ("nm@hotel.example", "it@hotel.example")
    assert alerts.channels.syslog["siem"].host_port == ("10.0.0.5", 1514)
    # recipients: listed ones; left out: every channel whose min_severity the alert meets; []: none
    assert alerts.channels_for("lobby_long_distance", "warning") == ["night-manager", "siem"]
    assert alerts.channels_for("after_hours", "info") == ["soc", "siem"]
    assert alerts.channels_for("burst", "critical") == ["night-manager", "soc", "siem"]
    assert alerts.channels_for("failed_queue", "warning") == []
    engine = AlertEngine(config)
    assert engine.describe()["pbx_silence"] == ("A PBX link sends no call record for longer than 120 "
                                                "minutes; a link's silence_minutes overrides this.")


def test_mistakes_name_their_key() -> None:
    found = problems({"rules": {"burst": {"cals": 3}, "lobby": {}}, "channels": {"sms": {}}})
    assert found["alerts.rules.burst.cals"] == "unknown key (did you mean 'calls'?)"
    assert found["alerts.rules.lobby"].startswith("unknown key; known keys: after_hours, baseline, burst")
    assert found["alerts.channels.sms"].startswith("unknown key")
    found = problems({"rules": {"burst": {"severity": "urgent", "calls": "many"}}})
    assert found["alerts.rules.burst.severity"] == ("must be one of 'info', 'warning', 'critical', "
                                                    "got 'urgent'")
    assert found["alerts.rules.burst.calls"] == "expected a whole number, got 'many'"


def test_checks_across_the_section() -> None:
    assert problems({"rules": {"burst": {"recipients": ["pager"]}}})["alerts"] == \
        "rules.burst.recipients: no channel named pager (none are configured)"
    hook = {"url": "https://x.example/h", "secret": "short"}
    found = problems({"channels": {"webhook": {"soc": hook}}})
    assert "secret must be at least 16" in found["alerts.channels.webhook.soc"]
    twice = {"webhook": {"a": {"url": "http://h/", "secret": "x" * 16}}, "syslog": {"a": {"address": "h"}}}
    assert problems({"channels": twice})["alerts.channels"] == "channel names must be unique across types: a"
    assert "24 positive values" in problems({"rules": {"pbx_silence": {"hourly_minutes": [60] * 23}}})[
        "alerts.rules.pbx_silence"]
    assert "start must come before end" in problems({"business_hours": {"start": "18:00", "end": "08:00"}})[
        "alerts.business_hours"]
    email = {"host": "h", "sender": "not-an-address", "to": ["a@b"]}
    assert "e-mail addresses" in problems({"channels": {"email": {"m": email}}})["alerts.channels.email.m"]


@pytest.mark.parametrize(("address", "expected"), [
    ("10.0.0.5", ("10.0.0.5", 514)), ("logs.hotel.example:1514", ("logs.hotel.example", 1514)),
    ("[::1]:6514", ("::1", 6514)), ("[fe80::1]", ("fe80::1", 514)),
])
def test_syslog_addresses(address: str, expected: tuple[str, int]) -> None:
    assert host_port(address) == expected
