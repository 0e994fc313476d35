"""The posting state machine and the outbox rules (domain.md, "Posting states"; FIAS 2.20.23 p.85, p.111).

Pure: callers pass ``now`` and persist what these functions decide. The rules that keep money safe:

- ``open`` means queued, or sent and awaiting the answer (``sent_at`` tells which);
- only FIAS ``AS=OK`` makes a posting ``ok``;
- ``RY``/``NA``/``BY`` and "link down before sending" are safe to repeat: ``retry`` with backoff;
- a sent posting without an answer is ``failed`` with a reason telling IT to check the folio first; it is
  never re-sent automatically, because the PMS may have booked it (fias.md §8.1);
- every other answer code is ``failed`` and keeps the PMS's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum


class State(StrEnum):
    OPEN = "open"
    RETRY = "retry"
    OK = "ok"
    FAILED = "failed"
    EXCLUDED = "excluded"
    REFUNDED = "refunded"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.OK, State.RETRY, State.FAILED}),
    State.RETRY: frozenset({State.OPEN, State.FAILED}),
    # property IT: re-post, mark posted by hand, write off
    State.FAILED: frozenset({State.OPEN, State.OK, State.EXCLUDED}),
    # an admin may re-rate an excluded call after a tariff fix
    State.EXCLUDED: frozenset({State.OPEN}),
    # the front desk refunds a posted charge
    State.OK: frozenset({State.REFUNDED}),
    State.REFUNDED: frozenset(),
}

NO_ANSWER_REASON = "no answer: check the folio before re-posting"
RETRY_CODES = frozenset({"RY", "NA", "BY"})
ANSWER_TEXT = {
    "OK": "posted",
    "NG": "guest not found",
    "NP": "no-post flag set for this guest",
    "CO": "credit limit override not allowed",
    "RY": "PMS asked to retry",
    "UR": "PMS could not process it (do not retry)",
    "NA": "night audit in progress",
    "DM": "subtotals do not match the total",
    "IA": "invalid account",
    "FX": "feature not allowed for this guest",
    "DN": "request denied",
    "BY": "PMS busy",
}
MAX_RETRIES = 12
RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 1800


class IllegalTransition(ValueError):
    pass


def check_transition(current: str, new: str) -> None:
    if State(new) not in TRANSITIONS[State(current)]:
        raise IllegalTransition(f"a posting cannot go from {current} to {new}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    state: State
    reason: str
    next_attempt_at: datetime | None = None


def on_answer(code: str, text: str, attempts: int, now: datetime) -> Decision:
    """What an answer from the PMS does to a posting that was sent ``attempts`` times."""
    code = code.upper()
    meaning = ANSWER_TEXT.get(code, f"answer code {code}")
    detail = f"{code}: {meaning}" + (f" ({text})" if text else "")
    if code == "OK":
        return Decision(state=State.OK, reason=detail)
    if code in RETRY_CODES:
        return retry_later(detail, attempts, now)
    return Decision(state=State.FAILED, reason=f"PMS refused it, {detail}")


def on_no_answer(detail: str) -> Decision:
    return Decision(state=State.FAILED, reason=f"{NO_ANSWER_REASON} ({detail})")


def retry_later(reason: str, attempts: int, now: datetime) -> Decision:
    if attempts >= MAX_RETRIES:
        return Decision(state=State.FAILED, reason=f"{reason}; gave up after {attempts} attempts")
    delay = min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_CAP_SECONDS)
    return Decision(state=State.RETRY, reason=reason, next_attempt_at=now + timedelta(seconds=delay))


def to_minor_units(amount: Decimal, exponent: int = 2) -> int:
    """FIAS TA: an integer with ``exponent`` implied decimals (FIAS 2.20.23 p.21, FAQ p.110)."""
    scaled = (Decimal(amount) * (Decimal(10) ** exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)
