"""Users (blueprint ``users``; admins only): add a user, set the role, reset the password (the user must
choose a new one at the next sign-in), lock and unlock, deactivate and reactivate.

Users are never deleted: the audit log names them. An admin cannot change their own role, lock or
deactivate themselves, so the appliance always keeps the admin who is acting. Every change is audited
(never the password or its hash).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from appliance.db.models import User
from appliance import audit
from webadmin import get_db, now
from webadmin.auth import (
    MANUAL_LOCK,
    MIN_PASSWORD_LENGTH,
    ROLES,
    hash_password,
    password_problem,
    role_required,
)
from webadmin.forms import ConfirmForm, choices

bp = Blueprint("users", __name__, url_prefix="/settings/users")
ROLE_CHOICES = choices([("viewer", "Viewer: reports only"), ("frontdesk", "Front desk: reports and refunds"),
                        ("admin", "Admin: everything")])


def _password_fields() -> tuple[PasswordField, PasswordField]:
    return (PasswordField("Temporary password", validators=[
                DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024,
                                       message=f"At least {MIN_PASSWORD_LENGTH} characters.")]),
            PasswordField("Temporary password again", validators=[
                DataRequired(), EqualTo("password", message="The two passwords differ.")]))


class AddUserForm(FlaskForm):  # type: ignore[misc]
    username = StringField("Username", validators=[DataRequired(), Length(max=64), Regexp(
        r"^[A-Za-z0-9_.@-]+$", message="Letters, digits, '_', '.', '@' or '-'.")])
    role = SelectField("Role", choices=ROLE_CHOICES, default="viewer")
    password, confirm = _password_fields()


class RoleForm(FlaskForm):  # type: ignore[misc]
    role = SelectField("Role", choices=ROLE_CHOICES)


class ResetPasswordForm(FlaskForm):  # type: ignore[misc]
    password, confirm = _password_fields()


@bp.route("/", methods=["GET", "POST"])
@role_required("admin")
def index() -> ResponseReturnValue:
    db = get_db()
    form = AddUserForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        problem = password_problem(username, form.password.data)
        if db.scalar(select(User.id).where(User.username == username)) is not None:
            form.username.errors.append(f"There is a user {username} already.")
        elif problem:
            form.password.errors.append(problem)
        else:
            at = now()
            db.add(User(username=username, password_hash=hash_password(form.password.data),
                        role=form.role.data, must_change_password=True, failed_logins=0, active=True,
                        created_at=at))
            audit.record(db, current_user.username, "user.add", f"user:{username}",
                         after={"role": form.role.data, "must_change_password": True}, at=at)
            db.commit()
            flash(f"User {username} added. They choose their own password at the first sign-in.", "info")
            return redirect(url_for("users.index"))
    users = db.scalars(select(User).order_by(User.username)).all()
    status = 400 if form.is_submitted() else 200
    return render_template("settings/users.html", users=users, form=form, now=now()), status


@bp.route("/<int:user_id>")
@role_required("admin")
def show(user_id: int) -> ResponseReturnValue:
    return _render(_user(user_id))


def _render(user: User, *, role: RoleForm | None = None, reset: ResetPasswordForm | None = None,
            status: int = 200) -> ResponseReturnValue:
    return render_template("settings/user_edit.html", user=user, role_form=role or RoleForm(role=user.role),
                           reset_form=reset or ResetPasswordForm(), confirm=ConfirmForm(),
                           locked=user.locked_until is not None and user.locked_until > now(),
                           manual_lock=MANUAL_LOCK, own=user.id == current_user.id), status


@bp.route("/<int:user_id>/role", methods=["POST"])
@role_required("admin")
def set_role(user_id: int) -> ResponseReturnValue:
    user = _user(user_id, not_self=True)
    form = RoleForm()
    if not form.validate_on_submit():
        return _render(user, role=form, status=400)
    if form.role.data != user.role:
        _change(user, "user.role", {"role": user.role}, {"role": form.role.data},
                f"{user.username} is now {form.role.data}.", role=form.role.data)
    return redirect(url_for("users.show", user_id=user_id))


@bp.route("/<int:user_id>/password", methods=["POST"])
@role_required("admin")
def reset_password(user_id: int) -> ResponseReturnValue:
    user = _user(user_id)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        problem = password_problem(user.username, form.password.data)
        if problem:
            form.password.errors.append(problem)
        else:
            manual = user.locked_until is not None and user.locked_until >= MANUAL_LOCK
            # A new hash also signs the user out everywhere (webadmin.auth fingerprints the hash).
            _change(user, "password.reset", {"must_change_password": user.must_change_password},
                    {"must_change_password": True},
                    f"Password of {user.username} reset; they must choose a new one at the next sign-in.",
                    password_hash=hash_password(form.password.data), must_change_password=True,
                    failed_logins=0, locked_until=user.locked_until if manual else None)
            return redirect(url_for("users.show", user_id=user_id))
    return _render(user, reset=form, status=400)


@bp.route("/<int:user_id>/<any(lock, unlock, deactivate, activate):what>", methods=["POST"])
@role_required("admin")
def toggle(user_id: int, what: str) -> ResponseReturnValue:
    user = _user(user_id, not_self=what in ("lock", "deactivate"))
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if what in ("lock", "unlock"):
        before = {"locked_until": user.locked_until.isoformat() if user.locked_until else None,
                  "failed_logins": user.failed_logins}
        until = MANUAL_LOCK if what == "lock" else None
        _change(user, f"account.{what}", before, {"locked_until": until.isoformat() if until else None},
                f"{user.username} {what}ed.", locked_until=until, failed_logins=0)
    else:
        active = what == "activate"
        _change(user, f"user.{what}", {"active": user.active}, {"active": active},
                f"{user.username} {'reactivated' if active else 'deactivated: they can no longer sign in'}.",
                active=active)
    return redirect(url_for("users.show", user_id=user_id))


def _user(user_id: int, *, not_self: bool = False) -> User:
    user = get_db().get(User, user_id)
    if user is None:
        abort(404)
    if not_self and user.id == current_user.id:
        abort(403)  # the form is not offered; only a hand-made request gets here
    return user


def _change(user: User, action: str, before: dict[str, Any], after: dict[str, Any], message: str,
            **values: Any) -> None:
    db = get_db()
    for name, value in values.items():
        setattr(user, name, value)
    audit.record(db, current_user.username, action, f"user:{user.username}", before=before, after=after,
                 at=now())
    db.commit()
    flash(message, "info")


__all__ = ["ROLES", "bp"]
