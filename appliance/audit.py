"""The audit trail: who changed what, when, with the values before and after.

Every web admin screen, money action (``appliance.actions``) and ``appliance user`` command that changes something calls ``record`` in the same
transaction as the change, so a change is never committed without its audit entry, nor the reverse.
Never put a password, hash or a guest's name in ``detail``; ``before``/``after`` hold only what an
auditor needs (ids, rooms, amounts, states, roles).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from appliance.db.models import AuditEntry


def record(
    session: Session,
    username: str,
    action: str,
    target: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str = "",
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an audit entry to ``session`` (the caller commits it with the change it describes).

    ``action`` is a short dotted verb such as ``login``, ``password.change`` or ``posting.refund``;
    ``target`` names the object (``user:alice``, ``posting:42``).
    """
    entry = AuditEntry(
        at=at or datetime.now(timezone.utc),
        username=username[:64],
        action=action[:64],
        target=target[:128],
        before=before,
        after=after,
        detail=detail,
    )
    session.add(entry)
    return entry
