"""Options every PMS driver shares: when the daemon raises a link-health alert.

Source: the domain notes (``/work/shared/reference/domain.md``, "Alerts that hotels ask for": *silence*, no
posting answer from the PMS for longer than expected, with a cool-down so one bad night does not flood
anyone) and fias.md §8 item 2 (lost link: queue, reconnect, and make the outage visible).

The rule itself is ``appliance.linkhealth``; the PMS service reads these options from whichever driver's
options the link has (``FiasOptions``, ``HobicOptions``, ``StxPostingOptions`` all inherit them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class LinkHealthOptions:
    down_alert_minutes: float = 10.0
    """Raise one alert when the PMS link has been down this long (0: never)."""
    unanswered_alert_minutes: float = 15.0
    """Raise one alert when the PMS has answered nothing we sent for this long (0: never)."""
    alert_cooldown_minutes: float = 60.0
    """At most one alert per rule in this many minutes, however often the link flaps."""

    def __post_init__(self) -> None:
        for name in ("down_alert_minutes", "unanswered_alert_minutes", "alert_cooldown_minutes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")


@dataclass(frozen=True, kw_only=True)
class TlsOptions:
    """TLS for a ``tcp-client`` PMS link (FIAS 2.20.24 "TCP/IP SSL stream", IFC 8.14.5.0 and later: mutual
    certificate check, self-signed certificates allowed; the framing inside is unchanged; fias.md §0, §1).

    The files are PEM. ``appliance.net.transports`` does the wrapping; the driver never sees TLS.
    """

    ca: str = ""
    """The PMS's certificate or the CA that signed it. Empty: the system's trusted CAs."""
    cert: str = ""
    """Our client certificate, for a PMS that checks it (mutual TLS). Needs ``key``."""
    key: str = ""
    """The private key of ``cert``."""
    verify: bool = True
    """Check the PMS's certificate and name. Turn off only to rehearse with a throw-away certificate."""
    hostname: str = ""
    """The name the PMS's certificate must carry; empty: the link's ``host``."""

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise ValueError("tls: cert and key go together (both or neither)")
        for name in ("ca", "cert", "key"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ValueError(f"tls.{name}: no file at {path}")


TLS_TRANSPORTS = frozenset({"tcp-client"})


def transport_problems(options: object, transport: str) -> list[tuple[str, str]]:
    """What a PMS link's ``options`` cannot do over ``transport``, as (option key, message) pairs: TLS
    wraps a TCP connection we open (FIAS 2.20.24 "TCP/IP SSL stream"), so only ``tcp-client`` takes it.
    ``appliance check-config`` reports these with the link's key path; the PMS service refuses them too."""
    if getattr(options, "tls", None) is not None and transport not in TLS_TRANSPORTS:
        return [("tls", f"TLS needs transport tcp-client, not {transport}")]
    return []
