"""The appliance configuration: one YAML file turned into frozen dataclasses.

``load_config(path)`` returns an ``ApplianceConfig`` or raises ``ConfigError`` listing every problem with
its key path (``pbx[0].port: expected a whole number, got 'x'``). Driver options are checked against the
driver's own options dataclass, found through the driver registry. See ``appliance/example-config.yaml``
for a commented example of every key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml

from appliance.alerts.config import AlertsConfig
from appliance.reports.config import ReportsConfig
from appliance.errors import ConfigError
from appliance.schema import Problems, build
from appliance.tariffs import ClassRate, TariffConfig  # noqa: F401  (the tariff section lives there)

DEFAULT_CONFIG_PATH = "/etc/appliance/appliance.yaml"
CATEGORIES = ("guest", "lobby", "public", "admin", "service", "unknown")
CALL_CLASSES = (
    "emergency", "free", "internal", "local", "national", "mobile", "international", "premium",
    "special", "unknown",
)
ENCODINGS = ("ascii", "cp850", "cp1252", "latin-1", "utf-8")


@dataclass(frozen=True, kw_only=True)
class SiteConfig:
    name: str
    country: str = "US"
    timezone: str = "UTC"
    currency: str = "USD"
    access_code: str = "9"
    local_exchange: str = ""
    # Numbering (appliance/numbering.py): the hotel's own area code completes numbers dialled without it;
    # local_prefixes and the CSV local_calling_table say which national prefixes are local calls.
    area_code: str = ""
    local_prefixes: tuple[str, ...] = ()
    local_calling_table: str = ""
    post_to_vacant_rooms: bool = False

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA zone (e.g. Europe/Berlin)") from None
        if self.country.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"country {self.country!r} is not an ISO 3166 two-letter code")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"currency {self.currency!r} must be an ISO 4217 code such as USD or EUR")
        if not re.fullmatch(r"\d{0,3}", self.access_code):
            raise ValueError(f"access_code {self.access_code!r} must be up to three digits (often 9 or 0)")
        for label, prefix in [("area_code", self.area_code), ("local_exchange", self.local_exchange),
                              *(("local_prefixes", p) for p in self.local_prefixes)]:
            if prefix and not prefix.isdigit():
                raise ValueError(f"{label} {prefix!r} must be digits of a national number (quote it in YAML)")
        if self.local_calling_table:
            from appliance.localcalling import TableError, load_table

            try:
                load_table(self.local_calling_table)
            except TableError as exc:
                raise ValueError(f"local_calling_table: {exc}") from None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    url: str = "sqlite:////var/lib/appliance/appliance.db"


@dataclass(frozen=True, kw_only=True)
class LinkConfig:
    """One link to a PBX or a PMS: which driver speaks, and which transport carries the bytes."""

    name: str
    driver: str
    transport: Literal["serial", "tcp-client", "tcp-server", "file"]
    host: str = ""
    port: int = 0
    device: str = ""
    baudrate: int = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    path: str = ""
    silence_minutes: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", self.name):
            raise ValueError(f"name {self.name!r}: use 1-32 letters, digits, '_', '.' or '-'")
        if self.transport in ("tcp-client", "tcp-server") and not 0 < self.port < 65536:
            raise ValueError(f"transport {self.transport} needs a port between 1 and 65535")
        if self.transport == "tcp-client" and not self.host:
            raise ValueError("transport tcp-client needs host (the address to connect to)")
        if self.transport == "tcp-server" and self.host:
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise ValueError(f"host {self.host!r}: a tcp-server binds to an IP address") from None
        if self.transport == "serial" and not self.device:
            raise ValueError("transport serial needs device (e.g. /dev/ttyUSB0 or /dev/serial/by-id/...)")
        if self.transport == "file" and not self.path:
            raise ValueError("transport file needs path (a log file or a folder to watch)")

    def describe(self) -> str:
        if self.transport == "serial":
            return f"serial {self.device} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"
        if self.transport == "file":
            return f"file {self.path}"
        if self.transport == "tcp-server":
            return f"listening on {self.host or '0.0.0.0'}:{self.port}"
        return f"connecting to {self.host}:{self.port}"


def expand_numbers(text: str) -> list[str]:
    """``"101-103,200"`` -> ``['101', '102', '103', '200']``; zero padding is kept (``0101-0103``)."""
    out: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "-" in part:
            low, high = part.split("-", 1)
            out += [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
        else:
            out.append(part)
    return out


@dataclass(frozen=True, kw_only=True)
class ExtensionRange:
    """Extensions by number or range (``"100-399"``), their category and how they map to room numbers.

    The room is the extension number with ``strip_prefix`` removed and ``add_prefix`` put in front, so
    extension 2101 can be room 0101 (strip ``2``, add ``0``). ``rooms`` maps irregular ones one by one.
    """

    numbers: tuple[str, ...]
    category: Literal["guest", "lobby", "public", "admin", "service", "unknown"] = "guest"
    strip_prefix: str = ""
    add_prefix: str = ""
    rooms: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item in self.numbers:
            if not re.fullmatch(r"\d+(-\d+)?", item):
                raise ValueError(f"numbers: {item!r} is not an extension or a range like 100-399")
            if "-" in item:
                low, high = item.split("-")
                if len(low) != len(high) or int(low) > int(high):
                    raise ValueError(f"numbers: range {item!r} must run low-high with equal digit counts")

    def expand(self) -> list[tuple[str, str]]:
        """All ``(extension, room)`` pairs; room is empty for non-guest categories."""
        return [(number, self.room_for(number)) for number in expand_numbers(",".join(self.numbers))]

    def room_for(self, number: str) -> str:
        if number in self.rooms:
            return self.rooms[number]
        if self.category != "guest":
            return ""
        room = number[len(self.strip_prefix):] if number.startswith(self.strip_prefix) else number
        return self.add_prefix + room


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str = ""
    session_minutes: int = 30


@dataclass(frozen=True, kw_only=True)
class ApplianceConfig:
    site: SiteConfig
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    pbx: tuple[LinkConfig, ...] = ()
    pms: LinkConfig | None = None
    extensions: tuple[ExtensionRange, ...] = ()
    tariff: TariffConfig = field(default_factory=TariffConfig)
    web: WebConfig = field(default_factory=WebConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    # The driver option dataclasses, by link name, once the registry has checked them.
    driver_options: dict[str, Any] = field(default_factory=dict)

    def extension_map(self) -> dict[str, tuple[str, str]]:
        """``extension -> (category, room)``; a later range overrides an earlier one."""
        out: dict[str, tuple[str, str]] = {}
        for entry in self.extensions:
            for number, room in entry.expand():
                out[number] = (entry.category, room)
        return out


def parse_config(data: Any, source: str = "", *, registry: Any = None) -> ApplianceConfig:
    """Check ``data`` (already read from YAML) and build the configuration, or raise ``ConfigError``."""
    problems: Problems = []
    if not isinstance(data, dict):
        raise ConfigError([("", "the file must hold a YAML mapping with at least a 'site' section")], source)
    data = {k: v for k, v in data.items() if k != "driver_options"}
    config = build(ApplianceConfig, data, "", problems)
    if config is not None:
        problems += _cross_checks(config)
    if config is not None and not problems:
        from appliance.registry import default_registry

        registry = registry or default_registry()
        options: dict[str, Any] = {}
        links = [(f"pbx[{i}]", link, "pbx") for i, link in enumerate(config.pbx)]
        if config.pms is not None:
            links.append(("pms", config.pms, "pms"))
        for path, link, kind in links:
            options[link.name] = registry.check_link(link, kind, path, problems)
        config = _replace(config, driver_options=options)
    if problems:
        raise ConfigError(problems, source)
    return config


def _cross_checks(config: ApplianceConfig) -> Problems:
    problems: Problems = []
    names = [link.name for link in config.pbx] + ([config.pms.name] if config.pms else [])
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(("pbx", f"link name {name!r} is used more than once; names key the journal"))
    ports = [(link.host, link.port) for link in config.pbx if link.transport == "tcp-server"]
    for host_port in {p for p in ports if ports.count(p) > 1}:
        problems.append(("pbx", f"two tcp-server links listen on port {host_port[1]}"))
    seen: dict[str, int] = {}
    for i, entry in enumerate(config.extensions):
        for number, _room in entry.expand():
            if number in seen and seen[number] != i:
                problems.append((f"extensions[{i}]", f"extension {number} is also in extensions[{seen[number]}]"))
                break
            seen[number] = i
    if not config.database.url.split(":", 1)[0].startswith(("sqlite", "postgresql")):
        problems.append(("database.url", "use sqlite:///PATH or postgresql://USER@HOST/DB"))
    return problems


def _replace(config: ApplianceConfig, **changes: Any) -> ApplianceConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


def load_config(path: str | Path, *, registry: Any = None) -> ApplianceConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read the file: {exc.strerror}")], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")], str(path)) from None
    return parse_config(data, str(path), registry=registry)
