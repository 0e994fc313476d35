"""What the daemon knows of each link's health, kept in ``link_status`` for the dashboard and alerts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from appliance.db.models import LinkStatus


def set_state(sessions: sessionmaker[Session], name: str, kind: str, state: str, detail: str,
              now: datetime) -> None:
    with sessions.begin() as session:
        status = session.get(LinkStatus, name)
        if status is None:
            session.add(LinkStatus(name=name, kind=kind, state=state, since=now, detail=detail[:300]))
            return
        if status.state != state:
            status.since = now
        status.state = state
        status.detail = detail[:300]


def touch_record(sessions: sessionmaker[Session], name: str, now: datetime) -> None:
    with sessions.begin() as session:
        status = session.get(LinkStatus, name)
        if status is not None:
            status.last_record_at = now
