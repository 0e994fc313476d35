"""The forms of the refund and failed-posting screens (Flask-WTF: every POST carries a CSRF token).

The forms check what a form can (present, a number, not too long); the money rules themselves live in
``appliance.actions``, which the views call and whose ``ActionError`` they show next to the form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DecimalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from appliance.actions import MAX_TEXT, REFUND_DESTINATION

try:
    from wtforms.fields.choices import SelectChoice
except ImportError:  # WTForms before 3.3 takes (value, label) pairs
    SelectChoice = None


def choices(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    """Select options from ``(value, label)`` pairs, in the form the installed WTForms wants."""
    if SelectChoice is None:
        return list(pairs)
    return [SelectChoice(value, label) for value, label in pairs]


def _reason(label: str = "Reason") -> StringField:
    return StringField(label, validators=[DataRequired(message="Please give a reason."),
                                          Length(max=MAX_TEXT)])


def _amount() -> DecimalField:
    return DecimalField("Amount", places=None, validators=[
        InputRequired(message="Please give the amount."), ])


def _destination() -> StringField:
    return StringField("Shown on the folio as", default=REFUND_DESTINATION,
                       validators=[Optional(), Length(max=20)])


class WholeRefundForm(FlaskForm):  # type: ignore[misc]
    """Refund a call's whole charge (prefix ``whole``)."""

    reason = _reason()


class PartRefundForm(FlaskForm):  # type: ignore[misc]
    """Refund part of a call's charge (prefix ``part``)."""

    amount = _amount()
    reason = _reason()
    destination = _destination()


class RoomRefundForm(FlaskForm):  # type: ignore[misc]
    """A custom refund of an amount to a room."""

    room = StringField("Room", validators=[DataRequired(message="Please give the room."), Length(max=16)])
    amount = _amount()
    reason = _reason()
    destination = _destination()


class FailedActionForm(FlaskForm):  # type: ignore[misc]
    """What to do with the selected failed postings (their ids come as ``posting`` checkboxes)."""

    action = SelectField("Action", choices=choices([
        ("repost", "Re-post (send again)"),
        ("mark_posted", "Mark as posted by hand"),
        ("write_off", "Write off"),
    ]))
    note = TextAreaField("Note", validators=[DataRequired(message="Please write a note: why, and what was "
                                                                     "checked."), Length(max=MAX_TEXT)])


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button that only needs the CSRF token (acknowledge an alert, unlock a user...)."""
