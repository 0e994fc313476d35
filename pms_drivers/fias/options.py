"""FIAS link options and the records the vendor side composes: LS, LD, LR, LA, DR and PS.

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md``: §2 link description (LD/LR/LA, p.25-29), §3 posting simple (PS,
p.78-85), §4 resync request (DR, p.36-38), §5 formats.

The LR field lists follow the options, so the PMS is told exactly the fields the PS records carry, and
``P#`` is always in the PA list: without it IFC8 does not echo the posting sequence and answers cannot
be matched to postings (fias.md §3, §8 item 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from appliance.events import PostCharge
from pms_drivers.common import LinkHealthOptions, TlsOptions, transport_problems
from pms_drivers.fias.records import (
    FiasRecord,
    check_encoding,
    format_amount,
    format_date,
    format_duration,
    format_time,
    record,
)

MAX_SEQUENCE = 99_999_999  # Spec p.81: P# is N 8, 1..99 999 999, never 0

# PC, posting call type: one character. The Spec's examples use I, N and L and give no table (p.81).
CALL_TYPE_CODES = {
    "international": "I",
    "national": "N",
    "local": "L",
    "mobile": "M",
    "premium": "P",
    "special": "S",
    "emergency": "E",
    "free": "F",
    "internal": "X",
    "unknown": "U",
}

# Guest records the vendor asks for (fias.md §2 example LR set, §4 field lists).
GUEST_FIELDS = {
    "GI": ("RN", "G#", "GS", "GN", "GF", "GL", "GA", "SF", "DA", "TI"),
    "GO": ("RN", "G#", "GS", "SF", "DA", "TI"),
    "GC": ("RN", "G#", "GS", "GN", "GF", "GL", "RO", "DA", "TI"),
}
PA_FIELDS = ("RN", "AS", "CT", "P#", "DA", "TI")
NIGHT_AUDIT_FIELDS = ("DA", "TI")


@dataclass(frozen=True, kw_only=True)
class FiasOptions(LinkHealthOptions):
    """Per-link settings, from the ``options:`` mapping of a FIAS PMS link in the YAML configuration.

    Serial line settings (baud rate, parity, data and stop bits) are the link's own keys (``baudrate``,
    ``parity``, ``bytesize``, ``stopbits``), not options: the transport applies them (Spec p.91-92).
    """

    encoding: str = "cp850"
    """Code page of names and text: cp850 (Nethesis default), cp1252, latin-1 or utf-8 (fias.md §1)."""
    answer_timeout: float = 30.0
    """Seconds to wait for a PA (Spec p.24: at least 30), for the PMS's LA, and for an opening answer."""
    keepalive_interval: float = 300.0
    """Send LS after this many seconds without hearing from the PMS; LA is the expected reply (§2)."""
    listen_before_open: float = 3.0
    """After connecting, wait this long for the PMS's LS before opening with LS ourselves (§2)."""
    resync_timeout: float = 900.0
    """A resync (DS ... DE) that has not ended after this many seconds breaks the link."""
    posting_mode: Literal["C", "T"] = "C"
    """PS posting type: C = pre-costed (TA), T = telephone costed by the PMS (MP or DU + DD)."""
    t_method: Literal["pulses", "duration"] = "duration"
    """With posting_mode T: send meter pulses (MP) or let the PMS cost duration + digits (DU + DD)."""
    ta_exponent: int = 2
    """Implied decimals in TA. Two by default, even for zero-decimal currencies; three-decimal currencies
    are sent as they are (FAQ p.110). The appliance's outbox scales amounts to this exponent."""
    currency_exponent: int | None = None
    """Decimals of ``PostCharge.amount_minor`` when it is not already in TA units (0 for JPY, 3 for KWD).
    Leave unset with the appliance's outbox, which hands the link amounts scaled to ``ta_exponent``."""
    interface_family: str = "PB"
    """LD IF: PB = TMS/PBX gateway, CA = call accounting (Spec p.111)."""
    vendor_version: str = "0.1.0"
    """LD V#, at most 10 characters."""
    lrc: bool | None = None
    """Append an LRC byte after ETX (Spec p.93). Unset: on for ``transport: serial``, off for TCP, as on
    a plain Oracle link ("only applies to asynchronous serial connections", p.22); some PMSs switch it
    on for TCP too (fias.md §1, "Caveat")."""
    ack_nak: bool | None = None
    """Acknowledged transmission, ACK/NAK/ENQ (Spec p.93-96). Unset: on for serial, off for TCP."""
    ack_timeout: float = 3.0
    """ACK/NAK mode: seconds to wait for an ACK before sending ENQ (Spec p.95)."""
    sales_outlet: str = ""
    """SO: needed when one interface sends several posting types (N 5). Empty = not sent."""
    send_px: bool = True
    """Send the trunk as PX (OPERA's unit-charge tables key on it)."""
    send_pc: bool = True
    """Send the call type as PC (one character: I, N, L, M ...)."""
    send_ct: bool = True
    """Send the charge text as CT (20 characters at most)."""
    send_du_dd: bool = True
    """Send duration (DU) and dialled digits (DD) with PT C and PT T + MP too (PT T by duration always
    sends them: the PMS costs the call from them, p.81)."""
    send_da_ti: bool = True
    """Send DA/TI, the call's start: the PMS keeps the time and stamps its business date (p.38)."""
    tls: TlsOptions | None = None
    """TLS with certificates on ``tcp-client`` (FIAS 2.20.24); see ``pms_drivers.common.TlsOptions``."""
    night_audit_records: bool = True
    """Ask for NS/NE (night audit start/end) in the LR set."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_encoding(self.encoding)
        for name in ("answer_timeout", "keepalive_interval", "resync_timeout", "ack_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        if self.listen_before_open < 0:
            raise ValueError("listen_before_open must be 0 seconds or more")
        if self.posting_mode not in ("C", "T"):
            raise ValueError(f"posting_mode must be 'C' or 'T', got {self.posting_mode!r}")
        if self.t_method not in ("pulses", "duration"):
            raise ValueError(f"t_method must be 'pulses' or 'duration', got {self.t_method!r}")
        for name in ("ta_exponent", "currency_exponent"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 6:
                raise ValueError(f"{name} must be between 0 and 6")
        if not re.fullmatch(r"[A-Z]{2}", self.interface_family):
            raise ValueError(
                f"interface_family {self.interface_family!r} must be two capitals such as PB or CA"
            )
        if not re.fullmatch(r"[\x21-\x7b\x7d\x7e]{1,10}", self.vendor_version):
            raise ValueError(f"vendor_version {self.vendor_version!r} must be 1-10 printable characters")
        if not re.fullmatch(r"\d{0,5}", self.sales_outlet):
            raise ValueError(f"sales_outlet {self.sales_outlet!r} must be up to five digits")

    def transport_problems(self, transport: str) -> list[tuple[str, str]]:
        """Options this link cannot honour over ``transport`` (option key, message), for the config check:
        TLS only on ``tcp-client`` (``pms_drivers.common.transport_problems``)."""
        return transport_problems(self, transport)

    def for_transport(self, transport: str) -> FiasOptions:
        """The options with LRC and ACK/NAK decided for the link's transport: what the Spec prescribes
        (serial: both on, p.93-96; TCP: both off, p.97-98) unless the YAML set them."""
        serial = transport == "serial"
        return replace(
            self,
            lrc=serial if self.lrc is None else self.lrc,
            ack_nak=serial if self.ack_nak is None else self.ack_nak,
        )

    def posting_fields(self) -> tuple[str, ...]:
        """The PS fields this link sends, in the order it sends them (also the PS LR field list)."""
        by_duration = self.posting_mode == "T" and self.t_method == "duration"
        if self.posting_mode == "C":
            amount: tuple[str, ...] = ("TA",)
        elif self.t_method == "pulses":
            amount = ("MP",)
        else:
            amount = ()
        fields = ("RN", "PT") + amount + ("DU", "DD") * (self.send_du_dd or by_duration)
        fields += ("PX",) * self.send_px + ("PC",) * self.send_pc + ("CT",) * self.send_ct
        fields += ("P#",) + ("DA", "TI") * self.send_da_ti + ("SO",) * bool(self.sales_outlet)
        return fields

    def record_fields(self) -> dict[str, tuple[str, ...]]:
        """Record type -> field list, one LR record each (§2). DR/DS/DE and link records need none."""
        fields = dict(GUEST_FIELDS)
        fields["PS"] = self.posting_fields()
        fields["PA"] = PA_FIELDS
        if self.night_audit_records:
            fields["NS"] = NIGHT_AUDIT_FIELDS
            fields["NE"] = NIGHT_AUDIT_FIELDS
        return fields


# ---------------------------------------------------------------- composed records


def link_start(stamp: datetime) -> FiasRecord:
    return record("LS", ("DA", format_date(stamp)), ("TI", format_time(stamp)))


def link_alive(stamp: datetime) -> FiasRecord:
    return record("LA", ("DA", format_date(stamp)), ("TI", format_time(stamp)))


def link_end(stamp: datetime) -> FiasRecord:
    return record("LE", ("DA", format_date(stamp)), ("TI", format_time(stamp)))


def resync_request(stamp: datetime) -> FiasRecord:
    return record("DR", ("DA", format_date(stamp)), ("TI", format_time(stamp)))


def link_description(options: FiasOptions, stamp: datetime) -> list[FiasRecord]:
    """The answer to LS: LD, one LR per record type, then LA (Spec p.25-29)."""
    records = [
        record(
            "LD",
            ("DA", format_date(stamp)),
            ("TI", format_time(stamp)),
            ("V#", options.vendor_version),
            ("IF", options.interface_family),
        )
    ]
    for kind, fields in options.record_fields().items():
        # Field order inside LR is fixed: RI then FL; FL is the ids concatenated (p.27).
        records.append(record("LR", ("RI", kind), ("FL", "".join(fields))))
    records.append(link_alive(stamp))
    return records


def call_type_code(call_type: str) -> str:
    if len(call_type) == 1:
        return call_type.upper()
    return CALL_TYPE_CODES.get(call_type.lower(), call_type[:1].upper())


def posting_simple(options: FiasOptions, charge: PostCharge) -> FiasRecord:
    """PS for one charge (Spec p.80-84). ``DA``/``TI`` are the call start; the PMS puts its own business
    date on the folio line (p.38), so the date here is kept for audit and never "fixed"."""
    if not 1 <= charge.sequence <= MAX_SEQUENCE:
        raise ValueError(f"posting sequence {charge.sequence} is outside 1..{MAX_SEQUENCE} (FIAS P#)")
    if not charge.room:
        raise ValueError("a posting needs a room number")
    if charge.duration < 0:
        raise ValueError(f"duration {charge.duration} s is negative")
    trunk = "".join(char for char in charge.trunk if char.isascii() and char.isdigit())[:6]  # PX is N 6
    dialled = "".join(char for char in charge.dialled if char.isascii() and char.isdigit())  # DD digits only
    values = {
        "RN": charge.room,
        "PT": options.posting_mode,
        "TA": format_amount(
            charge.amount_minor,
            currency_exponent=options.ta_exponent if options.currency_exponent is None
            else options.currency_exponent,
            ta_exponent=options.ta_exponent,
        ),
        "MP": str(charge.pulses),
        "DU": format_duration(charge.duration),
        "DD": dialled or None,
        "PX": trunk or None,
        "PC": call_type_code(charge.call_type) if charge.call_type else None,
        "CT": charge.text or None,
        "P#": str(charge.sequence),
        "DA": format_date(charge.start),
        "TI": format_time(charge.start),
        "SO": options.sales_outlet,
    }
    return record("PS", *((name, values[name]) for name in options.posting_fields()))
