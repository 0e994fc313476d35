"""``appliance parse``: every capture printed as the expected JSON lines, quarantine on stderr with line
numbers, exit status, options from the command line; in-process and through ``python -m appliance``."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import COMMANDS
from appliance.commands import parse
from appliance.errors import ConfigError
from tests.pbx_drivers import CAPTURE_NAMES, load_capture

ROOT = Path(__file__).resolve().parent.parent
KEYS = ["start", "duration", "ring", "extension", "trunk", "dialled", "caller", "direction", "answered",
        "account_code", "call_id", "transfer", "raw"]


def command_line(name: str, path: str | None = None) -> list[str]:
    """``parse`` arguments for a capture: driver, each option as KEY=<JSON, which is YAML>, zone, time."""
    settings = load_capture(name).settings
    args = ["parse", "--driver", settings["driver"], "--timezone", settings["timezone"],
            "--received-at", settings["received_at"]]
    for key, value in (settings["options"] or {}).items():
        args += ["--option", f"{key}={json.dumps(value)}"]
    return args + [path or str(load_capture(name).path)]


def run_in_process(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="appliance")
    parse.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def all_commands_exist() -> bool:
    return all(importlib.util.find_spec(f"appliance.commands.{name}") is not None for name in COMMANDS)


def expected_lines(name: str) -> list[dict]:
    """The expected calls with ``raw``: every non-blank line but hipath's column titles is a call."""
    capture = load_capture(name)
    texts = [line.decode() for line in capture.data.splitlines() if line.strip()]
    if name == "hipath_generic":
        texts = texts[1:]
    assert len(texts) == len(capture.expected)
    return [dict(expected, raw=text) for expected, text in zip(capture.expected, texts, strict=True)]


@pytest.mark.parametrize("name", CAPTURE_NAMES)
def test_every_capture_prints_the_expected_calls(name, capsys):
    assert run_in_process(command_line(name)) == 0
    out, err = capsys.readouterr()
    printed = [json.loads(line) for line in out.splitlines()]
    assert err == ""
    assert all(list(item) == KEYS for item in printed)
    assert printed == expected_lines(name)


def test_quarantined_lines_go_to_stderr_with_their_line_number(tmp_path, capsys):
    capture = load_capture("avaya_ipoffice")
    good = capture.data.splitlines()
    path = tmp_path / "mixed.txt"
    lines = [good[0], b"", b"garbage here", b"Call Start,Connected Time", good[2], b""]
    path.write_bytes(b"\r\n".join(lines))
    assert run_in_process(command_line("avaya_ipoffice", str(path))) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["call_id"] for line in out.splitlines()] == ["1058914", "1058931"]
    assert err == "line 3: 1 fields; IP Office SMDR has 30 to 37: b'garbage here'\n"


def test_framer_quarantine_and_a_last_line_without_newline(tmp_path, capsys):
    good = load_capture("mitel_mivb").data.splitlines()[0]
    path = tmp_path / "long.txt"
    path.write_bytes(b"x" * 600 + b"\n" + good)
    argv = ["parse", "--driver", "mitel_mivb", "--received-at", "2024-03-06T09:00", str(path)]
    assert run_in_process(argv) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["start"] == "2024-03-05T13:14:13+00:00"
    assert err.startswith("line 1: record longer than 512 bytes, skipped to the next delimiter: b'xxx")


def test_options_timezone_and_received_at_change_the_result(capsys):
    argv = ["parse", "--driver", "mitel_mivb", "--timezone", "Europe/Paris", "--received-at",
            "2025-01-10T00:00:00+01:00", "--option", "layout=reporting", str(load_capture("mitel_mivb").path)]
    assert run_in_process(argv) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["start"] == "2024-03-05T13:14:13+01:00"


def test_bad_options_raise_config_error_for_cli_main():
    with pytest.raises(ConfigError, match="option.layuot: unknown key"):
        run_in_process(["parse", "--driver", "mitel_mivb", "--option", "layuot=auto", "-"])
    with pytest.raises(ConfigError, match="no pbx driver named 'nortel'"):
        run_in_process(["parse", "--driver", "nortel", "-"])
    with pytest.raises(ConfigError, match="--timezone"):
        run_in_process(["parse", "--driver", "mitel_mivb", "--timezone", "Mars/Olympus", "-"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        run_in_process(["parse", "--driver", "mitel_mivb", "--option", "layout", "-"])


def test_option_values_are_yaml_and_dots_nest():
    assert parse.parse_options(["a=1", "b=true", "c=[1, 2]", "d.e=x", "d.f=2.5", "g="]) == {
        "a": 1, "b": True, "c": [1, 2], "d": {"e": "x", "f": 2.5}, "g": ""}


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert run_in_process(["parse", "--driver", "mitel_mivb", str(tmp_path / "nope.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_through_python_dash_m_appliance_with_stdin(capsys, monkeypatch):
    """The real entry point when every command module exists; the same run in-process until then."""
    capture = load_capture("avaya_ipoffice")
    argv = command_line("avaya_ipoffice", "-")
    data = capture.data + b"garbage\n"
    if all_commands_exist():
        result = subprocess.run([sys.executable, "-m", "appliance", *argv], input=data, capture_output=True,
                                cwd=ROOT, timeout=120, check=False)
        code, out, err = result.returncode, result.stdout.decode(), result.stderr.decode()
    else:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        code = run_in_process(argv)
        out, err = capsys.readouterr()
    assert code == 1
    assert [json.loads(line) for line in out.splitlines()] == expected_lines("avaya_ipoffice")
    assert err == "line 12: 1 fields; IP Office SMDR has 30 to 37: b'garbage'\n"


def test_cli_main_reports_config_errors_as_exit_2(capsys):
    if not all_commands_exist():
        with pytest.raises(ConfigError):
            run_in_process(["parse", "--driver", "generic", "--option", "format=fixed", "-"])
        return
    from appliance.cli import main

    assert main(["parse", "--driver", "generic", "--option", "format=fixed", "-"]) == 2
    assert "option: columns: map datetime" in capsys.readouterr().err
