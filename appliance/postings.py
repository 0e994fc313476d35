"""The posting state machine and the outbox rules (domain.md, "Posting states"; FIAS 2.20.23 p.85, p.111).

Pure: callers pass ``now`` and persist what these functions decide. The rules that keep money safe:

- ``open`` means queued, or sent and awaiting the answer (``sent_at`` tells which);
- only FIAS ``AS=OK`` makes a posting ``ok``;
- ``RY``/``NA``/``BY`` and "link down before sending" are safe to repeat: ``retry`` with backoff;
- a sent posting without an answer is ``failed`` with a reason telling IT to check the folio first; it is
  never re-sent automatically, because the PMS may have booked it (fias.md §8.1);
- every other answer code is ``failed`` and keeps the PMS's text;
- an answer that comes after its timeout (``on_late_answer``) still counts, matched by its P# alone: it
  may only change a posting that failed for want of an answer and still carries that P# (so not one an
  admin re-posted, marked posted or wrote off since); a late OK makes it ``ok``, a late refusal keeps it
  ``failed`` with the PMS's reason. Any other posting only gets a history line.
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


@dataclass(frozen=True, kw_only=True, slots=True)
class LateDecision:
    """What a late answer does: ``state`` is None when the posting must not change (history line only)."""

    state: State | None
    reason: str


def on_late_answer(current: str, current_reason: str, code: str, text: str, seconds: float,
                   sequence: int) -> LateDecision:
    """An answer for P# ``sequence`` that arrived ``seconds`` after the PS, when the posting was no longer
    awaiting it (fias.md §8.1: the PMS may well have booked it; P# is the only correlation key)."""
    code = code.upper()
    meaning = ANSWER_TEXT.get(code, f"answer code {code}")
    detail = f"{code}: {meaning}" + (f" ({text})" if text else "")
    after = f"after {seconds:.0f} s"
    if current == State.FAILED and current_reason.startswith(NO_ANSWER_REASON):
        if code == "OK":
            return LateDecision(state=State.OK, reason=f"late answer from the PMS: OK ({after})")
        if code in RETRY_CODES:
            return LateDecision(state=State.FAILED, reason=f"late answer from the PMS: {detail} ({after}); "
                                                           "the PMS did not book it: safe to re-post")
        return LateDecision(state=State.FAILED, reason=f"late answer from the PMS: PMS refused it, {detail} "
                                                       f"({after})")
    why = {
        State.OPEN: "it was re-posted since",
        State.RETRY: "it is queued to be sent again",
        State.OK: "it is already posted",
        State.REFUNDED: "it is already posted (and refunded)",
        State.EXCLUDED: "it was written off",
        State.FAILED: "it failed for another reason",
    }[State(current)]
    warn = ""
    if code == "OK" and current in (State.OPEN, State.RETRY, State.EXCLUDED):
        warn = ": the PMS booked it, check the folio"
    elif code != "OK" and current in (State.OK, State.REFUNDED):
        warn = ": the PMS says it is not booked, check the folio"
    return LateDecision(state=None, reason=f"answer from the PMS for P# {sequence} after it was no longer "
                                           f"awaited: {detail} ({after}); not applied, {why}{warn}")


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
