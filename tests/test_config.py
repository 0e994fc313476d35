"""Configuration: the shipped example loads, and every kind of mistake is reported with its key path."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from appliance.config import load_config, parse_config
from appliance.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "appliance" / "example-config.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def problems_of(data: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "test.yaml")
    return dict(caught.value.problems)


def test_example_config_loads_with_exact_money_and_rooms() -> None:
    config = load_config(EXAMPLE)
    assert config.site.tz.key == "America/New_York"
    assert config.tariff.surcharge_per_call == Decimal("0.75")
    assert config.tariff.classes["international"].minimum == Decimal("1.00")
    extensions = config.extension_map()
    assert extensions["2101"] == ("guest", "0101")
    assert extensions["115"] == ("guest", "115")
    assert extensions["500"] == ("lobby", "")
    assert len(extensions) == 30 + 30 + 10 + 2 + 21 + 1
    assert config.driver_options["opera"].answer_timeout == 30


def test_unknown_key_names_its_path_and_suggests() -> None:
    data = example()
    data["pbx"][0]["prot"] = 1752
    assert problems_of(data)["pbx[0].prot"] == "unknown key (did you mean 'port'?)"


def test_every_problem_is_reported_at_once() -> None:
    data = example()
    data["site"]["timezone"] = "Mars/Olympus"
    data["pbx"][0]["port"] = "x"
    data["tariff"]["classes"]["local"]["per_minute"] = "cheap"
    data["web"]["port"] = True
    found = problems_of(data)
    assert "site" in found and "Mars/Olympus" in found["site"]
    assert found["pbx[0].port"] == "expected a whole number, got 'x'"
    assert found["tariff.classes.local.per_minute"] == "expected an amount, got 'cheap'"
    assert found["web.port"] == "expected a whole number, got True"


def test_unknown_driver_and_wrong_transport() -> None:
    data = example()
    data["pbx"][0]["driver"] = "mitel_mvib"
    data["pms"]["transport"] = "file"
    data["pms"]["path"] = "/tmp/x"
    found = problems_of(data)
    assert found["pbx[0].driver"].startswith("unknown pbx driver 'mitel_mvib'")
    assert "does not run over file" in found["pms.transport"]


def test_tls_on_a_serial_pms_link_is_a_config_problem() -> None:
    data = example()
    data["pms"].update({"transport": "serial", "device": "/dev/ttyUSB0"})
    data["pms"].pop("host", None)
    data["pms"].pop("port", None)
    data["pms"]["options"]["tls"] = {"verify": False}
    assert problems_of(data) == {"pms.options.tls": "TLS needs transport tcp-client, not serial"}


def test_driver_options_are_checked_by_the_driver() -> None:
    data = example()
    data["pms"]["options"]["answer_timout"] = 10
    assert "pms.options.answer_timout" in problems_of(data)


def test_overlapping_extensions_and_duplicate_link_names() -> None:
    data = example()
    data["extensions"].append({"numbers": "110-112", "category": "admin"})
    data["pbx"][1]["name"] = "main"
    found = problems_of(data)
    assert any("also in extensions[0]" in message for message in found.values())
    assert "used more than once" in found["pbx"]


def test_missing_site_and_bad_yaml(tmp_path: Path) -> None:
    assert problems_of({"database": {}}) == {"site": "required key is missing"}
    broken = tmp_path / "broken.yaml"
    broken.write_text("site:\n  name: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert "not valid YAML" in str(caught.value) and str(broken) in str(caught.value)


def test_check_config_command(tmp_path: Path) -> None:
    good = subprocess.run([sys.executable, "-m", "appliance", "check-config", str(EXAMPLE)],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "pms opera: fias connecting to 192.0.2.20:5010" in good.stdout
    data = example()
    data["pbx"][0]["transport"] = "carrier-pigeon"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = subprocess.run([sys.executable, "-m", "appliance", "check-config", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{bad}: pbx[0].transport: must be one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_driver_that_fails_to_load_is_named_with_its_error() -> None:
    from tests.helpers import registry

    broken = registry()
    broken.broken[("pbx", "mitel_mivb")] = "ImportError: no module named serial_magic"
    with pytest.raises(ConfigError) as caught:
        parse_config(example(), "test.yaml", registry=broken)
    assert dict(caught.value.problems)["pbx[0].driver"] == (
        "pbx driver 'mitel_mivb' is installed but failed to load: ImportError: no module named serial_magic")


def test_the_daemon_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    data = example()
    data["pms"]["port"] = 70000
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = subprocess.run([sys.executable, "-m", "appliance", "run", "--config", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{bad}: pms: transport tcp-client needs a port between 1 and 65535" in result.stderr


def test_the_daemon_refuses_an_old_schema(tmp_path: Path) -> None:
    data = example()
    data["database"]["url"] = f"sqlite:///{tmp_path / 'empty.db'}"
    data["pbx"] = data["pbx"][:1]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run([sys.executable, "-m", "appliance", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "database.url: the database schema is not current: run `appliance db upgrade`" in result.stderr


def test_scheduled_reports_run_only_with_smtp(tmp_path: Path) -> None:
    from twisted.internet.testing import MemoryReactorClock

    from appliance.app import make_daemon
    from appliance.db.session import upgrade
    from appliance.net.report_scheduler import ReportSchedulerService
    from appliance.registry import default_registry as registry

    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    data = example()
    data["database"]["url"] = url
    data["reports"]["schedule_file"] = str(tmp_path / "schedules.json")
    with_smtp = make_daemon(parse_config(data, "t", registry=registry()), MemoryReactorClock(), registry())
    del data["reports"]["smtp"]
    without = make_daemon(parse_config(data, "t", registry=registry()), MemoryReactorClock(), registry())
    assert [type(s) for s in with_smtp.service if isinstance(s, ReportSchedulerService)] == [ReportSchedulerService]
    assert not [s for s in without.service if isinstance(s, ReportSchedulerService)]
    with_smtp.engine.dispose()
    without.engine.dispose()
