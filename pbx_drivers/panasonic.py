"""Panasonic KX-TD / KX-TDA / KX-TDE / KX-NCP / KX-NS SMDR: the printer report, one call per line.

Sources: ``/work/shared/reference/smdr.md`` §1 and §2.6; the KX-TD308 Installation Manual SMDR example
printout in ``/work/shared/samples/panasonic.txt`` (its spaces collapsed by the page extraction); the
KX-TDA/NS telnet login and page header as emulated by ivnglkv/smdr_server; the KX-NS500 column offsets of
vicriveros/smdr-panasonic.

Transport. RS-232 (CR or CR LF per line), or LAN: the collector connects to TCP port 2300 (a telnet
server), types ``SMDR``, answers the ``Enter password:`` prompt with the SMDR password (factory default
``PCCSMDR``), and the records follow. A wrong password brings the prompt (or an error) back: the link then
reports "login refused" and drops the connection; the service retries with backoff.

Report (80-column patterns A/B; 0-based slices, KX-NS500)::

    [0:8] Date mm/dd/yy (day/month order per country)   [9:16] Time, the END of the call, hh:mmAM/PM
    [17:22] Ext ("Dxxx" doorphone, "Txxx" TIE, "*xxx" verified code, "C-xx" CO-to-CO via DISA)
    [23:25] CO   [26:51] Dial Number   [52:56] Ring m'ss   [57:65] Duration hh:mm'ss
    [66:76] Acc code   [77:79] CD (TR transfer, FW forward to CO, RM remote, NA not answered, RC ...)

Captures are often re-typed or have their spaces squeezed (the manual's own example does), so a record is
read by its shape, not its columns: date, optional ``*`` (KX-TA: transferred) and time, extension, CO,
the dial number up to the ring time or the ``hh:mm'ss`` duration, then account code and CD.

Dial Number: outgoing digits (``P`` pause, ``F`` flash, ``=`` host-PBX access and separators are not
dialled digits and are dropped; ``X`` privacy-masked and ``.`` secret digits are kept as printed);
``<I>`` + caller ID (number or name) = incoming; ``<D>`` + DDI = incoming on a DDI; ``EXT`` + number =
intercom. Page headers, the column titles, dash rules and the hotel events the report also prints (check
in/out, log in/out, timed reminder) are ignored without quarantine; ``**/**/** **:****`` (the clock was
changed during the call) is quarantined, as the call has no usable time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.errors import ProtocolError
from appliance.events import CallRecord, Direction, Event, Ignored, LinkDown, LinkUp
from appliance.framing import LineFramer
from pbx_drivers.common import (
    DateOrder,
    Encoding,
    TimeIs,
    decode,
    digits_of,
    header_like,
    moment_of,
    parse_clock,
    parse_date,
    parse_duration,
    resolve_start,
    start_of,
)
from pbx_drivers.links import LoginState, TelnetFilter, move

_RECORD = re.compile(
    r"\s*(?P<date>\d\d/\d\d/\d\d)\s+(?P<mark>\*)?(?P<time>\d{1,2}:\d\d(?::\d\d)?\s?(?:[AaPp][Mm])?)\s+"
    r"(?P<ext>\S+)\s+(?:(?P<co>\d{1,4})\s+)?(?P<dial>.*?)\s*(?:(?P<ring>\d{1,2}'\d\d)\s+)?"
    r"(?P<duration>\d{1,3}:\d\d'\d\d)(?:\s+(?P<acc>\d+))?(?:\s+(?P<cd>[A-Z]{2}))?\s*"
)
HEADER_WORDS = ("DATE", "TIME", "EXT", "DIAL NUMBER", "DURATION", "ACC CODE")
EVENTS = ("LOG IN", "LOG OUT", "CHECK IN", "CHECK OUT", "TIMED REMINDER", "IN THE OFFICE", "OUT OF OFFICE",
          "ROOM STATUS", "WAKE UP")
UNANSWERED_CODES = frozenset({"NA"})
TRANSFER_CODES = frozenset({"TR", "FW", "RC", "RM"})
_REFUSED = re.compile(rb"error|invalid|incorrect|denied|fail|wrong", re.IGNORECASE)
_PROMPT = re.compile(rb"password", re.IGNORECASE)
# A line that belongs to the report, not to the login dialogue: a record, a clock-changed record, the
# column titles or a dash rule.
_REPORT = re.compile(rb"\s*(\d\d/\d\d/\d\d|\*\*/\*\*|-{10}|Date\s+Time)", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class PanasonicOptions:
    """``login``: log in on connect (LAN); false on RS-232. ``date_order``: how the PBX prints dates.
    ``time_is``: end (KX-TD/TDA/NS) or start (older KX-TA). ``twelve_hour_clock``: ``format_record``
    writes ``10:03AM`` (true) or ``10:03`` (false); parsing reads both."""

    login: bool = True
    password: str = "PCCSMDR"
    date_order: DateOrder = "mdy"
    time_is: TimeIs = "end"
    twelve_hour_clock: bool = True
    login_timeout: float = 10.0
    encoding: Encoding = "ascii"
    max_length: int = 512

    def __post_init__(self) -> None:
        if self.date_order == "ymd":
            raise ValueError("date_order: the report prints mm/dd/yy or dd/mm/yy (mdy or dmy)")
        if not self.password.isascii() or any(char in self.password for char in "\r\n"):
            raise ValueError("password: ASCII without line breaks")
        if not 1.0 <= self.login_timeout <= 120.0 or not 80 <= self.max_length <= 4096:
            raise ValueError("login_timeout must be 1-120 s and max_length 80-4096")


class PanasonicLink(FramedLink):
    """The telnet SMDR login, then CR (LF) lines. States and moves: ``pbx_drivers.links.LoginState``."""

    def __init__(self, options: PanasonicOptions) -> None:
        super().__init__(LineFramer(max_length=options.max_length))
        self._options = options
        self._telnet = TelnetFilter()
        self._state = LoginState.PROMPT if options.login else LoginState.STREAMING
        self._dialogue = bytearray()
        self._since = 0.0
        self._failure = ""
        self.wants_close = False

    @property
    def state(self) -> LoginState:
        return self._state

    def connection_made(self, now: float) -> list[Event]:
        self._since = now
        if self._state is LoginState.PROMPT:
            self._outgoing += b"SMDR\r\n"
            return [LinkUp(detail="connected, logging in to SMDR")]
        return [LinkUp()]

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        data = self._telnet.feed(data)
        self._outgoing += self._telnet.replies
        self._telnet.replies.clear()
        if self._state is LoginState.STREAMING:
            return super().receive_data(data, now)
        if self._state is LoginState.REFUSED:
            return []
        self._dialogue += data
        del self._dialogue[:-1024]  # a login dialogue is short; keep the buffer bounded regardless
        return self._login_step(now)

    def _login_step(self, now: float) -> list[Event]:
        if self._state is LoginState.PROMPT and _PROMPT.search(self._dialogue):
            self._outgoing += self._options.password.encode("ascii") + b"\r\n"
            self._state = move(self._state, LoginState.VERDICT)
            self._dialogue.clear()
            self._since = now
            return []
        password = self._options.password.encode("ascii")
        said = bytes(self._dialogue).replace(password, b"") if password else bytes(self._dialogue)
        if self._state is LoginState.VERDICT and (_PROMPT.search(said) or _REFUSED.search(said)):
            self._state = move(self._state, LoginState.REFUSED)
            self._failure = "the PBX refused the SMDR password"
            self.wants_close = True
            return [LinkDown(reason=self._failure)]
        lines = re.split(rb"[\r\n]+", bytes(self._dialogue))[:-1]
        if any(_REPORT.match(line) for line in lines):
            return self._start_streaming(now)  # records or a page header: the report has started
        return []

    def _start_streaming(self, now: float) -> list[Event]:
        self._state = move(self._state, LoginState.STREAMING)
        pending = bytes(self._dialogue)
        self._dialogue.clear()
        return [LinkUp(detail="SMDR login accepted"), *super().receive_data(pending, now)]

    def deadline(self) -> float | None:
        if self._state in (LoginState.PROMPT, LoginState.VERDICT):
            return self._since + self._options.login_timeout
        return None

    def handle_timeout(self, now: float) -> list[Event]:
        if self._state is LoginState.VERDICT and now >= self._since + self._options.login_timeout:
            return self._start_streaming(now)  # no complaint about the password: it was accepted
        if self._state is LoginState.PROMPT and now >= self._since + self._options.login_timeout:
            self._failure = "no SMDR password prompt from the PBX"
            raise ProtocolError(f"{self._failure} within {self._options.login_timeout:g} s")
        return []

    def connection_lost(self, now: float) -> list[Event]:
        if self._state is LoginState.STREAMING:
            events = super().connection_lost(now)
            return events
        return [LinkDown(reason=self._failure or f"connection closed during the login ({self._state.value})")]


def parse_record(raw: bytes, options: PanasonicOptions, context: ParseContext) -> CallRecord | Ignored:
    """One report line -> a call, or Ignored with the reason. Never raises."""
    text = decode(raw, options.encoding)
    stripped = text.strip()
    if not stripped or set(stripped) <= set("-= "):
        return Ignored(reason="blank line or rule", raw=raw, quarantine=False)
    if header_like(stripped, HEADER_WORDS):
        return Ignored(reason="page header", raw=raw, quarantine=False)
    if stripped.startswith("**/**/**"):
        return Ignored(reason="date and time printed as ** (the PBX clock was changed during the call)",
                       raw=raw)
    match = _RECORD.fullmatch(text.rstrip())
    if match is None:
        event = next((name for name in EVENTS if name in stripped.upper()), None)
        if event and re.match(r"\d\d/\d\d/\d\d", stripped):
            return Ignored(reason=f"{event.lower()} event, not a call", raw=raw, quarantine=False)
        return Ignored(reason="not a Panasonic SMDR record: no date, time, extension and hh:mm'ss duration",
                       raw=raw)
    try:
        return _build(raw, match, options, context)
    except ValueError as exc:
        return Ignored(reason=str(exc), raw=raw)


def _build(raw: bytes, match: re.Match[str], options: PanasonicOptions, context: ParseContext) -> CallRecord:
    year, month, day = parse_date(match["date"], options.date_order)
    duration = parse_duration(match["duration"])
    moment = resolve_start(year, month, day, parse_clock(match["time"]), context)
    dial, extension, code = match["dial"].strip(), match["ext"], match["cd"] or ""
    caller, dialled = "", ""
    direction: Direction = "outgoing"
    if dial.startswith(("<I>", "<D>")):
        direction, rest = "incoming", dial[3:].strip()
        if dial.startswith("<D>"):
            dialled = digits_of(rest)
        else:
            caller = digits_of(rest, keep="+") if re.fullmatch(r"[\d\-+ ]*", rest) else rest
    elif dial.upper().startswith("EXT"):
        direction, dialled = "internal", digits_of(dial[3:])
    else:
        if not re.fullmatch(r"[0-9*#PF=X.\- ]*", dial):
            raise ValueError(f"dial number {dial!r} holds a character a PBX does not dial")
        dialled = digits_of(dial, keep="*#X.")
        if extension.startswith("C-"):
            direction = "tandem"  # CO-to-CO through DISA
    transfer = code if code in TRANSFER_CODES else "*" if match["mark"] else ""
    return CallRecord(
        start=start_of(moment, duration, options.time_is),
        duration=duration,
        ring=parse_duration(match["ring"]) if match["ring"] else None,
        extension=extension,
        trunk=match["co"] or "",
        dialled=dialled,
        caller=caller,
        direction=direction,
        answered=duration > 0 and code not in UNANSWERED_CODES,
        account_code=match["acc"] or "",
        transfer=transfer,
        raw=raw,
    )


def format_record(call: CallRecord, options: PanasonicOptions) -> bytes:
    """One 80-column line as the KX-TDA prints it. The printed time is the end (or start, per
    ``time_is``) to the minute. Raises ValueError for values wider than their columns and tandem calls."""
    moment = moment_of(call.start, call.duration, options.time_is)
    date_text = moment.strftime("%m/%d/%y" if options.date_order == "mdy" else "%d/%m/%y")
    clock = moment.strftime("%I:%M%p") if options.twelve_hour_clock else moment.strftime("%H:%M  ")
    if call.direction == "incoming":
        dial = ("<D>" + call.dialled) if call.dialled and not call.caller else "<I>" + call.caller
    elif call.direction == "internal":
        dial = "EXT" + call.dialled
    elif call.direction == "outgoing":
        dial = call.dialled
    else:
        raise ValueError("a tandem call is printed by the PBX as two records, not one")
    code = call.transfer if call.transfer in TRANSFER_CODES else ""
    if call.direction == "incoming" and not call.answered:
        code = "NA"
    ring = "" if call.ring is None else f"{call.ring // 60}'{call.ring % 60:02d}"
    hours, rest = divmod(call.duration, 3600)
    duration = f"{hours:02d}:{rest // 60:02d}'{rest % 60:02d}"
    trunk = "" if call.direction == "internal" else call.trunk
    for value, width in ((call.extension, 5), (trunk, 2), (dial, 25), (ring, 4), (duration, 8),
                         (call.account_code, 10)):
        if len(value) > width:
            raise ValueError(f"{value!r} is wider than its {width} columns")
    line = (f"{date_text} {clock:<7} {call.extension:<5} {trunk:>2} {dial:<25} {ring:>4} {duration:>8} "
            f"{call.account_code:<10} {code:<2}")
    return (line + "\r\n").encode(options.encoding, errors="replace")


SPEC = DriverSpec(
    name="panasonic",
    kind="pbx",
    options=PanasonicOptions,
    make_link=PanasonicLink,
    transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
    parse_record=parse_record,
    format_record=format_record,
    default_port=2300,
    description="Panasonic KX-TD/TDA/TDE/NCP/NS SMDR (printer report; TCP 2300 telnet login with SMDR "
                "and the password, or RS-232)",
)
