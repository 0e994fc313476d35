"""Settings (blueprint ``settings``; admins only): extensions and rooms, the tariff, the links, the audit log.

The extension table is the source of truth (``appliance.extensions``): the configuration file only seeds an
empty table, and the daemon re-reads the table within seconds of an edit here, so the next call from an
extension is routed as saved. Adding, editing, deleting and exporting extensions are audited. The tariff
and the links are shown from the configuration the web admin was started with.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from appliance.config import CATEGORIES
from appliance.db.models import AuditEntry, Extension, LinkStatus, Stay
from appliance.extensions import rows_to_csv
from appliance.tariffs import MAIN, Rate
from appliance import audit
from webadmin import get_db, now
from webadmin.auth import role_required
from webadmin.forms import choices

bp = Blueprint("settings", __name__, url_prefix="/settings")
EXTENSIONS_SHOWN = 1000
AUDIT_PAGE = 100


class ExtensionForm(FlaskForm):  # type: ignore[misc]
    category = SelectField("Category", choices=choices((c, c) for c in CATEGORIES))
    room = StringField("Room", validators=[Optional(), Length(max=16), Regexp(
        r"^[A-Za-z0-9._-]*$", message="Letters, digits, '.', '_' or '-', as the PMS spells the room.")])
    description = StringField("Description", validators=[Optional(), Length(max=100)])


@bp.route("/")
@bp.route("/extensions")
@role_required("admin")
def extensions() -> ResponseReturnValue:
    db = get_db()
    search = request.args.get("q", "").strip()[:32]
    statement = select(Extension).order_by(func.length(Extension.number), Extension.number)
    if search:
        statement = statement.where((Extension.number == search) | (Extension.room == search))
    rows = db.scalars(statement.limit(EXTENSIONS_SHOWN)).all()
    total = db.scalar(select(func.count()).select_from(Extension)) or 0
    return render_template("settings/extensions.html", extensions=rows, total=total, search=search,
                           shown=EXTENSIONS_SHOWN)


class NewExtensionForm(ExtensionForm):
    number = StringField("Extension", validators=[DataRequired(), Length(max=32), Regexp(
        r"^[0-9]+$", message="Digits only, as the PBX prints it.")])


class DeleteForm(FlaskForm):  # type: ignore[misc]
    """CSRF only."""


@bp.route("/extensions/new", methods=["GET", "POST"])
@role_required("admin")
def add_extension() -> ResponseReturnValue:
    db = get_db()
    form = NewExtensionForm()
    if form.validate_on_submit() and _room_given(form):
        number = form.number.data.strip()
        if db.get(Extension, number) is not None:
            form.number.errors.append(f"Extension {number} exists already: edit it instead.")
        else:
            extension = Extension(number=number, category=form.category.data,
                                  room=(form.room.data or "").strip(), description=(form.description.data or "").strip())
            db.add(extension)
            audit.record(db, current_user.username, "extension.add", f"extension:{number}",
                         after=_extension_values(extension), at=now())
            db.commit()
            flash(f"Extension {number} added; calls from it are routed this way within seconds.", "info")
            return redirect(url_for("settings.extensions", q=number))
    status = 400 if form.is_submitted() else 200
    return render_template("settings/extension_edit.html", form=form, extension=None), status


@bp.route("/extensions/<number>", methods=["GET", "POST"])
@role_required("admin")
def edit_extension(number: str) -> ResponseReturnValue:
    db = get_db()
    extension = db.get(Extension, number)
    if extension is None:
        abort(404)
    form = ExtensionForm(obj=extension)
    if form.validate_on_submit() and _room_given(form):
        before = _extension_values(extension)
        extension.category = form.category.data
        extension.room = (form.room.data or "").strip()
        extension.description = (form.description.data or "").strip()
        after = _extension_values(extension)
        if after != before:
            audit.record(db, current_user.username, "extension.edit", f"extension:{number}",
                         before=before, after=after, at=now())
            db.commit()
            flash(f"Extension {number} saved; calls from it are routed this way within seconds.", "info")
        return redirect(url_for("settings.extensions"))
    status = 400 if form.is_submitted() else 200
    return render_template("settings/extension_edit.html", form=form, extension=extension,
                           delete_form=DeleteForm()), status


@bp.route("/extensions/<number>/delete", methods=["POST"])
@role_required("admin")
def delete_extension(number: str) -> ResponseReturnValue:
    db = get_db()
    extension = db.get(Extension, number)
    if extension is None:
        abort(404)
    if not DeleteForm().validate_on_submit():
        abort(400)
    audit.record(db, current_user.username, "extension.delete", f"extension:{number}",
                 before=_extension_values(extension), at=now())
    db.delete(extension)
    db.commit()
    flash(f"Extension {number} deleted; its calls are now rated as an unknown extension and not charged.", "info")
    return redirect(url_for("settings.extensions"))


@bp.route("/extensions.csv")
@role_required("admin")
def export_extensions() -> ResponseReturnValue:
    db = get_db()
    rows = db.scalars(select(Extension).order_by(func.length(Extension.number), Extension.number)).all()
    audit.record(db, current_user.username, "extension.export", "extensions", after={"rows": len(rows)}, at=now())
    db.commit()
    return Response(rows_to_csv(rows), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=extensions.csv"})


def _room_given(form: ExtensionForm) -> bool:
    if form.category.data == "guest" and not (form.room.data or "").strip():
        form.room.errors.append("A guest extension needs its room.")
        return False
    return True


def _extension_values(extension: Extension) -> dict[str, Any]:
    return {"category": extension.category, "room": extension.room, "description": extension.description}


@bp.route("/rooms")
@role_required("admin")
def rooms() -> ResponseReturnValue:
    """Rooms with their extensions and whether a guest is in (never the guest's name: not needed here)."""
    db = get_db()
    by_room: dict[str, list[str]] = {}
    for number, room in db.execute(select(Extension.number, Extension.room).where(Extension.room != "")
                                   .order_by(Extension.room, Extension.number)):
        by_room.setdefault(room, []).append(number)
    occupied = dict(db.execute(select(Stay.room, func.min(Stay.checked_in_at))
                               .where(Stay.checked_out_at.is_(None)).group_by(Stay.room)).all())
    rows = [(room, numbers, occupied.get(room)) for room, numbers in sorted(by_room.items())]
    unknown = sorted(set(occupied) - set(by_room))
    return render_template("settings/rooms.html", rooms=rows, unknown=unknown)


@bp.route("/tariffs")
@role_required("admin")
def tariffs() -> ResponseReturnValue:
    """The tariff of the configuration: each plan, each version of it, and each rate in words."""
    config = current_app.extensions.get("appliance_config")
    tariff = config.tariff if config is not None else None
    plans = [(name, tariff.plan(name)) for name in (MAIN, *tariff.plans)] if tariff is not None else []
    return render_template("settings/tariffs.html", tariff=tariff, plans=plans, rate_words=rate_words,
                           currency=current_app.config["CURRENCY"])


def rate_words(rate: Rate) -> str:
    """One rate as a sentence: '0.50 to connect, then 1.20 a minute, first 60 s, then per started 6 s'."""
    if rate.pulsed:
        words = f"{rate.connect} to connect, then {rate.billing_words()}"
        bands = [f"{seconds} s pulses in {band}" for band, seconds in rate.band_pulse_seconds.items()]
    else:
        words = f"{rate.connect} to connect, then {rate.per_minute} a minute, {rate.billing_words()}"
        bands = [f"{price} a minute in {band}" for band, price in rate.band_per_minute.items()]
    if bands:
        words += " (" + "; ".join(bands) + ")"
    if rate.minimum:
        words += f"; at least {rate.minimum}"
    if rate.maximum is not None:
        words += f"; at most {rate.maximum}"
    return words


@bp.route("/links")
@role_required("admin")
def links() -> ResponseReturnValue:
    config = current_app.extensions.get("appliance_config")
    statuses = {s.name: s for s in get_db().scalars(select(LinkStatus))}
    configured: list[tuple[str, Any]] = []
    if config is not None:
        configured = [("PBX", link) for link in config.pbx] + ([("PMS", config.pms)] if config.pms else [])
    names = {link.name for _, link in configured}
    extra = [status for name, status in statuses.items() if name not in names]
    return render_template("settings/links.html", configured=configured, statuses=statuses, extra=extra,
                           has_config=config is not None)


@bp.route("/audit")
@role_required("admin")
def audit_log() -> ResponseReturnValue:
    db = get_db()
    statement = select(AuditEntry).order_by(AuditEntry.id.desc())
    who = request.args.get("user", "").strip()[:64]
    action = request.args.get("action", "").strip()[:64]
    if who:
        statement = statement.where(AuditEntry.username == who)
    if action:
        statement = statement.where(AuditEntry.action.startswith(action, autoescape=True))
    before = request.args.get("before", "")
    if before.isdigit() and len(before) < 19:
        statement = statement.where(AuditEntry.id < int(before))
    entries = db.scalars(statement.limit(AUDIT_PAGE)).all()
    return render_template("settings/audit.html", entries=entries, who=who, action=action,
                           more=len(entries) == AUDIT_PAGE)
