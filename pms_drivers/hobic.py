"""HOBIC-style call record output: one text line per charged call, for PMSs that do not speak FIAS.

Sources (fias.md §7): the HOBIC record (US "Hotel Billing Information Center", also the name of a generic
call-record layout): sequence, hotel id, date MM/DD, extension, time, duration, ``$ddd.cc``, number,
type, as in ``0001 HTL 03/01 7110 10:54 0002 $003.47 805-688-1000 L``
(support.resortdata.com KB-Interfaces KIN0035); TEL Electronics "PMS/HB" frames a record as LF … CR LF
(or LF/CR/FF), with an optional ACK/NAK (or ``y``/``n``) from the PMS.

The layout is ``pms_drivers.layout`` fields in the YAML; the acknowledged sending (one record in flight,
NAK -> resend up to ``attempts``, no ACK -> delivery unknown, never resent) is
``pms_drivers.serial_posting``.

```yaml
pms:
  name: pms
  driver: hobic
  transport: serial
  device: /dev/ttyUSB1
  baudrate: 1200
  options:
    acknowledgement: ack-nak      # none | ack-nak | y-n
    fields:
      - {name: sequence, width: 4, align: right, pad: "0"}
      - {name: literal, value: HTL}
      - ...
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Literal

from appliance.drivers import DriverSpec
from appliance.events import PostCharge
from pms_drivers.common import LinkHealthOptions
from pms_drivers.fias.records import check_encoding
from pms_drivers.layout import FieldSpec, render
from pms_drivers.serial_posting import ACK, NAK, AckedPostingLink, Handshake

DEFAULT_FIELDS = (
    FieldSpec(name="sequence", width=4, align="right", pad="0"),
    FieldSpec(name="literal", value="HTL"),
    FieldSpec(name="date", format="%m/%d"),
    FieldSpec(name="room"),
    FieldSpec(name="time", format="%H:%M"),
    FieldSpec(name="duration", width=4, align="right", pad="0", format="minutes"),
    FieldSpec(name="amount", width=7, align="right", pad="0", prefix="$", decimals=2),
    FieldSpec(name="dialled"),
    FieldSpec(name="type"),
)
ANSWER_BYTES = {"ack-nak": (ACK, NAK), "y-n": (b"y", b"n")}


@dataclass(frozen=True, kw_only=True)
class HobicOptions(LinkHealthOptions):
    fields: tuple[FieldSpec, ...] = DEFAULT_FIELDS
    """The record layout, field by field (``pms_drivers.layout.FieldSpec``)."""
    separator: str = " "
    """Between fields; empty for a fixed-width record."""
    start: str = "\n"
    """Sent before each record (PMS/HB: LF)."""
    end: str = "\r\n"
    """Sent after each record (PMS/HB: CR LF; some PMSs want CR FF)."""
    acknowledgement: Literal["none", "ack-nak", "y-n"] = "ack-nak"
    """none: a printer-style output, a written record counts as posted (the line cannot tell more);
    ack-nak: the PMS answers ACK (0x06) or NAK (0x15); y-n: it answers ``y`` or ``n``."""
    ack_timeout: float = 5.0
    """Seconds to wait for the ACK. Without one, delivery is unknown and the record is never resent."""
    attempts: int = 3
    """Copies of a record the PMS may NAK before the posting fails (not booked)."""
    resume_after: float = 120.0
    """After an unacknowledged record, wait this long (or for any byte from the PMS) before the next."""
    encoding: str = "ascii"
    ta_exponent: int = 2
    """Decimals of the amounts the appliance hands the link (its outbox scales to this): 3 for a
    three-decimal currency, so the ``amount`` field's ``decimals`` lose nothing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_encoding(self.encoding)
        if not self.fields:
            raise ValueError("fields: the layout needs at least one field")
        if not self.end:
            raise ValueError("end: a HOBIC record needs an end of line (CR LF)")
        for name in ("ack_timeout", "resume_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        if not 1 <= self.attempts <= 10:
            raise ValueError("attempts must be between 1 and 10")
        if not 0 <= self.ta_exponent <= 6:
            raise ValueError("ta_exponent must be between 0 and 6")

    def handshake(self) -> Handshake:
        ack, nak = ANSWER_BYTES.get(self.acknowledgement, (ACK, NAK))
        return Handshake(ack=self.acknowledgement != "none", ack_bytes=ack, nak_bytes=nak,
                         ack_timeout=self.ack_timeout, attempts=self.attempts, resume_after=self.resume_after)


def encode_record(options: HobicOptions, charge: PostCharge, tz: tzinfo | None = None) -> bytes:
    """``start`` + the rendered line + ``end``; no value may carry a line end or a separator."""
    line = render(options.fields, charge, separator=options.separator, amount_exponent=options.ta_exponent,
                  tz=tz, forbidden="\r\n\x0c")
    return (options.start + line + options.end).encode(options.encoding, errors="replace")


def make_link(options: HobicOptions | None = None, *, tz: tzinfo | None = None) -> AckedPostingLink:
    options = options or HobicOptions()
    return AckedPostingLink(lambda charge: encode_record(options, charge, tz), options.handshake(), "HOBIC")


SPEC = DriverSpec(
    name="hobic",
    kind="pms",
    options=HobicOptions,
    make_link=make_link,
    transports=frozenset({"serial", "tcp-client"}),
    description="HOBIC-style call record line per charged call (TEL PMS/HB framing LF … CR LF), "
    "optional ACK/NAK or y/n, layout from the YAML",
)
