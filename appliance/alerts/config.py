"""The ``alerts:`` section of the configuration: rules, business hours, delivery channels and retries.

Frozen keyword-only dataclasses built by ``appliance.schema.build`` like the rest of the configuration, so a
wrong key reads ``alerts.rules.burst.cals: unknown key (did you mean 'calls'?)``. Every key has a default:
an empty ``alerts:`` (or none at all) gives a sensible rule set and no channels, and alerts still show in
the web admin list. Rule names are the ``Alert.rule`` values the web admin explains (webadmin/alerts.py).

Times of day are ``"HH:MM"``; an unquoted 08:00 (YAML 1.1 reads it as the sexagesimal 480) is taken as
minutes after midnight, as in the tariff section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

from appliance.tariffs import expand_days, minutes_of_day, parse_holiday

Severity = Literal["info", "warning", "critical"]
SEVERITIES = ("info", "warning", "critical")
Category = Literal["guest", "lobby", "public", "admin", "service", "unknown"]
CallClass = Literal["emergency", "free", "internal", "local", "national", "mobile", "international",
                    "premium", "special", "unknown"]
Direction = Literal["outgoing", "incoming", "internal", "tandem"]
OUTSIDE_CLASSES: tuple[CallClass, ...] = ("local", "national", "mobile", "international", "premium",
                                          "special", "unknown")
# Destinations hotels never call on purpose and toll fraud loves (International Revenue Share Fraud):
# satellite and international networks (+881, +882, +883, +870) and the ITU's shared-cost and premium
# ranges (+808, +979).
FRAUD_PREFIXES = ("+870", "+881", "+882", "+883", "+808", "+979")
# RFC 5424 table 1: facility codes (12-15 are not named the same everywhere and are left out).
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
              "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18,
              "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}
Facility = Literal["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
                   "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
                   "local7"]
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


@dataclass(frozen=True, kw_only=True)
class RuleOptions:
    """What every rule has: on or off, a severity, a cool-down per rule and subject, and recipients.

    ``recipients`` names delivery channels; left out, an alert goes to every channel whose ``min_severity``
    it meets; an empty list keeps it in the web admin only.
    """

    enabled: bool = True
    severity: Severity = "warning"
    cooldown_minutes: int = 60
    recipients: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.cooldown_minutes < 0:
            raise ValueError("cooldown_minutes must be zero or more")


@dataclass(frozen=True, kw_only=True)
class LobbyRule(RuleOptions):
    categories: tuple[Category, ...] = ("lobby", "public")
    classes: tuple[CallClass, ...] = ("national", "international", "premium")
    cooldown_minutes: int = 30


@dataclass(frozen=True, kw_only=True)
class AfterHoursRule(RuleOptions):
    categories: tuple[Category, ...] = ("admin",)
    classes: tuple[CallClass, ...] = OUTSIDE_CLASSES
    severity: Severity = "info"


@dataclass(frozen=True, kw_only=True)
class LongCallRule(RuleOptions):
    minutes: int = 120
    directions: tuple[Direction, ...] = ("outgoing",)
    severity: Severity = "info"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.minutes < 1:
            raise ValueError("long_call.minutes must be at least 1")


@dataclass(frozen=True, kw_only=True)
class ExpensiveCallRule(RuleOptions):
    amount: Decimal = Decimal("50.00")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.amount.is_finite() or self.amount <= 0:
            raise ValueError("expensive_call.amount must be a positive amount")


@dataclass(frozen=True, kw_only=True)
class BurstRule(RuleOptions):
    calls: int = 10
    minutes: int = 5
    severity: Severity = "critical"
    cooldown_minutes: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calls < 2 or self.minutes < 1:
            raise ValueError("burst needs calls of 2 or more and minutes of 1 or more")


@dataclass(frozen=True, kw_only=True)
class FraudPrefixRule(RuleOptions):
    """``+`` prefixes match the number in international form; others the digits after the access code."""

    prefixes: tuple[str, ...] = FRAUD_PREFIXES
    severity: Severity = "critical"
    cooldown_minutes: int = 15

    def __post_init__(self) -> None:
        super().__post_init__()
        for prefix in self.prefixes:
            if not re.fullmatch(r"\+?\d{1,15}", prefix):
                raise ValueError(f"fraud_prefix.prefixes: {prefix!r} must be digits, optionally after '+'")


@dataclass(frozen=True, kw_only=True)
class BaselineRule(RuleOptions):
    """Today so far against the extension's own daily history (days without calls count as zero)."""

    window_days: int = 28
    deviations: float = 3.0
    min_history_days: int = 7
    metrics: tuple[Literal["calls", "minutes", "cost"], ...] = ("calls", "minutes", "cost")
    # Floors, so a quiet phone making its first two calls of the week is not "three deviations" away.
    min_calls: int = 10
    min_minutes: int = 60
    min_cost: Decimal = Decimal("20.00")
    cooldown_minutes: int = 720

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_days < 2 or not 1 <= self.min_history_days <= self.window_days:
            raise ValueError("baseline needs window_days >= 2 and 1 <= min_history_days <= window_days")
        if self.deviations <= 0:
            raise ValueError("baseline.deviations must be positive")


@dataclass(frozen=True, kw_only=True)
class PbxSilenceRule(RuleOptions):
    """The longest normal gap after a record, per hour of day: a link's ``silence_minutes`` wins, then
    ``hourly_minutes`` (24 values, 00h first), then ``minutes``; with none set, it is learned."""

    minutes: int = 0
    hourly_minutes: tuple[int, ...] = ()
    learn_days: int = 14
    min_history_days: int = 3
    margin: float = 1.5
    min_minutes: int = 30
    max_minutes: int = 1440
    fallback_minutes: int = 240
    severity: Severity = "critical"
    cooldown_minutes: int = 240

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hourly_minutes and (len(self.hourly_minutes) != 24 or min(self.hourly_minutes) < 1):
            raise ValueError("pbx_silence.hourly_minutes must list 24 positive values, one per hour from 00h")
        if not 1 <= self.min_minutes <= self.max_minutes or self.margin < 1 or self.learn_days < 1:
            raise ValueError("pbx_silence needs 1 <= min_minutes <= max_minutes, margin >= 1 and "
                             "learn_days >= 1")


@dataclass(frozen=True, kw_only=True)
class PmsSilenceRule(RuleOptions):
    minutes: int = 60
    severity: Severity = "critical"
    cooldown_minutes: int = 120


@dataclass(frozen=True, kw_only=True)
class FailedQueueRule(RuleOptions):
    threshold: int = 5
    cooldown_minutes: int = 720

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold < 1:
            raise ValueError("failed_queue.threshold must be at least 1")


@dataclass(frozen=True, kw_only=True)
class RulesConfig:
    lobby_long_distance: LobbyRule = field(default_factory=LobbyRule)
    after_hours: AfterHoursRule = field(default_factory=AfterHoursRule)
    long_call: LongCallRule = field(default_factory=LongCallRule)
    expensive_call: ExpensiveCallRule = field(default_factory=ExpensiveCallRule)
    burst: BurstRule = field(default_factory=BurstRule)
    fraud_prefix: FraudPrefixRule = field(default_factory=FraudPrefixRule)
    baseline: BaselineRule = field(default_factory=BaselineRule)
    pbx_silence: PbxSilenceRule = field(default_factory=PbxSilenceRule)
    pms_silence: PmsSilenceRule = field(default_factory=PmsSilenceRule)
    failed_queue: FailedQueueRule = field(default_factory=FailedQueueRule)

    def items(self) -> list[tuple[str, RuleOptions]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


@dataclass(frozen=True, kw_only=True)
class BusinessHours:
    """Office hours for the after-hours rule, in the site's time zone; a holiday has none."""

    days: tuple[str, ...] = ("mon-fri",)
    start: int | str = "08:00"
    end: int | str = "18:00"
    holidays: tuple[date | str, ...] = ()

    def __post_init__(self) -> None:
        expand_days(self.days)
        if self.window[0] >= self.window[1]:
            raise ValueError("business_hours: start must come before end")
        for holiday in self.holidays:
            parse_holiday(holiday)

    @property
    def window(self) -> tuple[int, int]:
        return (minutes_of_day(self.start, "business_hours.start"),
                minutes_of_day(self.end, "business_hours.end"))


@dataclass(frozen=True, kw_only=True)
class ChannelOptions:
    min_severity: Severity = "info"


@dataclass(frozen=True, kw_only=True)
class EmailChannel(ChannelOptions):
    """SMTP submission; ``starttls`` (port 587) or ``ssl`` (465) verify the server's certificate against
    the system's CAs or ``ca_file``; ``none`` is for a relay on the same host only."""

    host: str
    port: int = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: str = ""
    sender: str
    to: tuple[str, ...]
    ca_file: str = ""
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        readable(self.ca_file)
        if not 0 < self.port < 65536:
            raise ValueError("port must lie between 1 and 65535")
        if not self.to or any("@" not in address for address in (self.sender, *self.to)):
            raise ValueError("sender and every address in to must be e-mail addresses")


@dataclass(frozen=True, kw_only=True)
class WebhookChannel(ChannelOptions):
    """A JSON POST; the body is signed with HMAC-SHA256 and the secret, as ``sha256=<hex>`` in ``header``."""

    url: str
    secret: str
    header: str = "X-Appliance-Signature"
    ca_file: str = ""
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        readable(self.ca_file)
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.url):
            raise ValueError(f"url {self.url!r} must be an http:// or https:// address")
        if len(self.secret) < 16:
            raise ValueError("secret must be at least 16 characters (the receiver checks the signature)")
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", self.header):
            raise ValueError(f"header {self.header!r} is not an HTTP header name")


def readable(ca_file: str) -> None:
    if ca_file and not Path(ca_file).is_file():
        raise ValueError(f"ca_file {ca_file!r} is not a readable file (PEM certificates of the CA to trust)")


@dataclass(frozen=True, kw_only=True)
class SyslogChannel(ChannelOptions):
    """RFC 5424 messages over UDP to ``host`` or ``host:port`` (port 514 by default)."""

    address: str
    facility: Facility = "local0"

    def __post_init__(self) -> None:
        host_port(self.address)

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.address)


def host_port(address: str) -> tuple[str, int]:
    """``"10.0.0.5"`` -> ("10.0.0.5", 514); ``"log:1514"``, ``"[::1]:514"`` likewise."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\s\[\]]+)(?::(\d+))?", address.strip())
    if not match:
        raise ValueError(f"address {address!r} must be host or host:port")
    host = match[1] or match[3]
    port = int(match[2] or match[4] or 514)
    if not 0 < port < 65536:
        raise ValueError(f"address {address!r}: port must lie between 1 and 65535")
    return host, port


@dataclass(frozen=True, kw_only=True)
class ChannelsConfig:
    """Channels by type, each keyed by the name rules use as a recipient."""

    email: dict[str, EmailChannel] = field(default_factory=dict)
    webhook: dict[str, WebhookChannel] = field(default_factory=dict)
    syslog: dict[str, SyslogChannel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [*self.email, *self.webhook, *self.syslog]
        for name in names:
            if not _NAME.fullmatch(name):
                raise ValueError(f"channel name {name!r}: use 1-32 letters, digits, '_', '.' or '-'")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"channel names must be unique across types: {', '.join(repeated)}")

    def all(self) -> dict[str, ChannelOptions]:
        return {**self.email, **self.webhook, **self.syslog}


@dataclass(frozen=True, kw_only=True)
class DeliveryConfig:
    """Retries with exponential backoff: ``retry_seconds`` doubling up to ``retry_max_seconds``."""

    retry_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    max_attempts: int = 8
    interval_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds <= self.retry_max_seconds or self.max_attempts < 1:
            raise ValueError("delivery needs 0 < retry_seconds <= retry_max_seconds and max_attempts >= 1")
        if self.interval_seconds <= 0:
            raise ValueError("delivery.interval_seconds must be positive")


@dataclass(frozen=True, kw_only=True)
class AlertsConfig:
    enabled: bool = True
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    rules: RulesConfig = field(default_factory=RulesConfig)
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    def __post_init__(self) -> None:
        known = self.channels.all()
        for name, rule in self.rules.items():
            unknown = [r for r in rule.recipients or () if r not in known]
            if unknown:
                have = ", ".join(sorted(known)) or "none are configured"
                raise ValueError(f"rules.{name}.recipients: no channel named {', '.join(unknown)} ({have})")

    def channels_for(self, rule: str, severity: str) -> list[str]:
        """The channel names an alert of ``rule`` at ``severity`` goes to."""
        options = getattr(self.rules, rule, None)
        known = self.channels.all()
        names = list(known) if options is None or options.recipients is None else list(options.recipients)
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1
        return [n for n in names if n in known and SEVERITIES.index(known[n].min_severity) <= rank]
