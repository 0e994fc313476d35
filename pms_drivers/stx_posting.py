"""A configurable STX/ETX/BCC posting protocol with ENQ/ACK/NAK, for PMSs that do not speak FIAS.

Sources (fias.md §7): TEL Electronics "PMS/HX" (Holidex): the call-accounting system sends ENQ, the PMS
ACKs, then ``STX record ETX`` + BCC; Avaya/Lucent DEFINITY PMS interface (555-231-601 p.29-31):
``STX message ETX BCC`` with the BCC over everything after STX including ETX, ACK/NAK/ENQ, a resend
with the same message count up to a limit; NEC NEAX PMS: fixed-width fields padded with spaces.

The exchange for one posting (``pms_drivers.serial_posting`` holds the state machine)::

    appliance: ENQ                       PMS: ACK   (ready; NAK = busy, ENQ repeated)
    appliance: STX fields ETX BCC        PMS: ACK   (booked; NAK = bad BCC or refused: resent)
    appliance: EOT                                  (optional: ends the exchange)

The record body is ``pms_drivers.layout`` fields described in the YAML; the message count is the
``sequence`` field (the outbox's P#, cut to the field's width).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Literal

from appliance.drivers import DriverSpec
from appliance.events import PostCharge
from pms_drivers.common import LinkHealthOptions
from pms_drivers.fias.records import check_encoding
from pms_drivers.layout import FieldSpec, fixed_width, render
from pms_drivers.serial_posting import EOT, AckedPostingLink, Handshake

STX, ETX = b"\x02", b"\x03"
BCC_MODES = ("xor", "xor-stx", "sum", "none")
DEFAULT_FIELDS = (
    FieldSpec(name="literal", value="PS"),
    FieldSpec(name="sequence", width=4, align="right", pad="0"),
    FieldSpec(name="room", width=6),
    FieldSpec(name="date", format="%y%m%d"),
    FieldSpec(name="time", format="%H%M%S"),
    FieldSpec(name="duration", width=6, format="hhmmss"),
    FieldSpec(name="amount", width=8, align="right", pad="0", format="implied", decimals=2),
    FieldSpec(name="dialled", width=20),
    FieldSpec(name="type", width=1),
)


def bcc(body: bytes, mode: str) -> bytes:
    """The block check of ``body`` (the bytes after STX, ETX included): ``xor`` (DEFINITY, FIAS LRC),
    ``xor-stx`` (STX included too), ``sum`` (modulo 256) or ``none``."""
    if mode == "none":
        return b""
    if mode == "sum":
        return bytes([sum(body) & 0xFF])
    value = 0x02 if mode == "xor-stx" else 0
    for byte in body:
        value ^= byte
    return bytes([value])


@dataclass(frozen=True, kw_only=True)
class StxPostingOptions(LinkHealthOptions):
    fields: tuple[FieldSpec, ...] = DEFAULT_FIELDS
    """The record layout between STX and ETX (``pms_drivers.layout.FieldSpec``)."""
    separator: str = ""
    """Between fields; empty for fixed width."""
    bcc: Literal["xor", "xor-stx", "sum", "none"] = "xor"
    enq: bool = True
    """Ask with ENQ before each record and wait for the PMS's ACK (PMS/HX)."""
    release: bool = True
    """Send EOT after an acknowledged record."""
    ack_timeout: float = 5.0
    enq_timeout: float = 3.0
    attempts: int = 3
    """Copies of a record the PMS may NAK before the posting fails (not booked)."""
    enq_attempts: int = 3
    """ENQs without an ACK before the posting waits (not sent, retried later with backoff)."""
    resume_after: float = 120.0
    """After the PMS stopped answering, wait this long (or for any byte from it) before trying again."""
    encoding: str = "ascii"
    ta_exponent: int = 2
    """Decimals of the amounts the appliance hands the link (its outbox scales to this)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_encoding(self.encoding)
        if not self.fields:
            raise ValueError("fields: the layout needs at least one field")
        if not self.separator and not all(fixed_width(spec) for spec in self.fields):
            loose = ", ".join(spec.name for spec in self.fields if not fixed_width(spec))
            raise ValueError(f"fields: without a separator every field needs a width ({loose} has none)")
        for name in ("ack_timeout", "enq_timeout", "resume_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        for name in ("attempts", "enq_attempts"):
            if not 1 <= getattr(self, name) <= 10:
                raise ValueError(f"{name} must be between 1 and 10")
        if not 0 <= self.ta_exponent <= 6:
            raise ValueError("ta_exponent must be between 0 and 6")

    def handshake(self) -> Handshake:
        return Handshake(enq=self.enq, ack_timeout=self.ack_timeout, enq_timeout=self.enq_timeout,
                         attempts=self.attempts, enq_attempts=self.enq_attempts,
                         resume_after=self.resume_after, release=EOT if self.release else b"")


def encode_record(options: StxPostingOptions, charge: PostCharge, tz: tzinfo | None = None) -> bytes:
    """``STX body ETX BCC``; control characters never reach the body."""
    text = render(options.fields, charge, separator=options.separator, amount_exponent=options.ta_exponent,
                  tz=tz)
    body = text.encode(options.encoding, errors="replace") + ETX
    return STX + body + bcc(body, options.bcc)


def make_link(options: StxPostingOptions | None = None, *, tz: tzinfo | None = None) -> AckedPostingLink:
    options = options or StxPostingOptions()
    return AckedPostingLink(lambda charge: encode_record(options, charge, tz), options.handshake(), "STX")


SPEC = DriverSpec(
    name="stx_posting",
    kind="pms",
    options=StxPostingOptions,
    make_link=make_link,
    transports=frozenset({"serial", "tcp-client"}),
    description="STX/ETX/BCC framed postings with ENQ/ACK/NAK (PMS/HX, DEFINITY-style), layout from the YAML",
)
