"""Sign-in, sign-out, password changes and roles (blueprint ``auth``).

Rules:
- passwords are hashed with werkzeug's scrypt; a new password has at least ``MIN_PASSWORD_LENGTH``
  characters and differs from the username;
- ``MAX_FAILED_LOGINS`` wrong passwords in a row lock the account for ``LOCKOUT`` (``User.failed_logins``,
  ``User.locked_until``); ``appliance user unlock`` lifts it early;
- a user created or reset by an administrator must choose a new password at first sign-in
  (``User.must_change_password``); every other page redirects there until it is done;
- a session ends after ``SESSION_MINUTES`` without a request, and when the password changes (the
  session id embeds a fingerprint of the password hash, so other browsers are signed out too);
- an administrator may lock an account by hand (``MANUAL_LOCK``) until it is unlocked;
- roles are ``viewer`` < ``frontdesk`` < ``admin``; ``role_required`` guards a view;
- every failed sign-in is logged (never the password); sign-in, sign-out, lockouts and password
  changes are written to the audit log.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from appliance.db.models import User
from appliance import audit
from webadmin import get_db, now

ROLES = ("viewer", "frontdesk", "admin")
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
PASSWORD_METHOD = "scrypt"
# An account an administrator locked stays locked until someone unlocks it (webadmin.users).
MANUAL_LOCK = datetime(9999, 12, 31, tzinfo=timezone.utc)

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__, url_prefix="/auth")
login_manager = LoginManager()
F = TypeVar("F", bound=Callable[..., Any])


# -- passwords -------------------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def password_problem(username: str, password: str) -> str | None:
    """Why ``password`` is not acceptable for ``username``, or None. Shared with ``appliance user``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    if password.strip().casefold() == username.strip().casefold():
        return "The password must not be the username."
    return None


@functools.cache
def _dummy_hash() -> str:
    # Checked against when the username is unknown, so a wrong username takes as long as a wrong password.
    return hash_password("not a real password, only for timing")


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


# -- the signed-in user ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignedInUser(UserMixin):  # type: ignore[misc]
    """What a request knows of its user; a plain copy, detached from any database session."""

    id: int
    username: str
    role: str
    must_change_password: bool
    fingerprint: str

    @classmethod
    def from_row(cls, user: User) -> SignedInUser:
        return cls(id=user.id, username=user.username, role=user.role,
                   must_change_password=user.must_change_password,
                   fingerprint=_fingerprint(user.password_hash))

    def get_id(self) -> str:
        return f"{self.id}:{self.fingerprint}"

    def has_role(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles


@login_manager.user_loader
def load_user(user_id: str) -> SignedInUser | None:
    raw_id, _, fingerprint = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    user = get_db().get(User, int(raw_id))
    if user is None or not user.active or _fingerprint(user.password_hash) != fingerprint:
        return None
    return SignedInUser.from_row(user)


def role_required(*roles: str) -> Callable[[F], F]:
    """Allow a view to signed-in users with one of ``roles``; ``admin`` may do everything.

    ``@role_required("frontdesk")`` admits front desk and admins; viewers get 403 Forbidden.
    """
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"role_required needs roles from {ROLES}, got {roles}")

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return login_required(wrapped)  # type: ignore[return-value]

    return decorator


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see this page."
    login_manager.login_message_category = "info"
    # "strong": a session cookie replayed from another address or browser is dropped.
    login_manager.session_protection = "strong"
    app.before_request(_enforce_session_rules)


# -- forms -------------------------------------------------------------------------------------------------

class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ChangePasswordForm(FlaskForm):  # type: ignore[misc]
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new_password = PasswordField("New password", validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024,
                               message=f"At least {MIN_PASSWORD_LENGTH} characters.")])
    confirm = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new_password", message="The two new passwords differ.")])


# -- views -------------------------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("index"))
    form = LoginForm()
    if form.validate_on_submit():
        problem = _sign_in(form.username.data.strip(), form.password.data)
        if problem is None:
            if current_user.must_change_password:
                return redirect(url_for("auth.change_password"))
            return redirect(_safe_next(request.args.get("next")) or url_for("index"))
        flash(problem, "error")
    status = 400 if request.method == "POST" else 200
    return render_template("login.html", form=form), status


def _sign_in(username: str, password: str) -> str | None:
    """Check the credentials and sign in; return the message to show on failure."""
    db = get_db()
    at = now()
    address = request.remote_addr or "-"
    # FOR UPDATE (PostgreSQL; SQLite serialises writers anyway): parallel guesses must not lose counts
    # and so slip past the lockout.
    user = db.scalars(select(User).where(User.username == username).with_for_update()).one_or_none()
    if user is None or not user.active:
        check_password_hash(_dummy_hash(), password)
        log.warning("sign-in failed for %r from %s: %s", username, address,
                    "unknown user" if user is None else "account disabled")
        return "Wrong username or password."
    if user.locked_until is not None and user.locked_until > at:
        log.warning("sign-in refused for %r from %s: locked until %s", username, address,
                    user.locked_until.isoformat())
        if user.locked_until >= MANUAL_LOCK:
            return "This account is locked. Ask an administrator to unlock it."
        minutes = max(1, int((user.locked_until - at).total_seconds() // 60) + 1)
        unit = "minute" if minutes == 1 else "minutes"
        return (f"This account is locked after too many failed sign-ins. Try again in {minutes} {unit}, "
                "or ask an administrator to unlock it.")
    if user.locked_until is not None:  # the lock has run out: start counting afresh
        user.locked_until = None
        user.failed_logins = 0
    if not check_password_hash(user.password_hash, password):
        user.failed_logins += 1
        log.warning("sign-in failed for %r from %s: wrong password (%d in a row)",
                    username, address, user.failed_logins)
        audit.record(db, username, "login.failed", f"user:{username}", detail=f"from {address}", at=at)
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = at + LOCKOUT
            log.warning("account %r locked until %s", username, user.locked_until.isoformat())
            audit.record(db, username, "account.locked", f"user:{username}",
                         after={"locked_until": user.locked_until.isoformat()},
                         detail=f"{user.failed_logins} failed sign-ins", at=at)
        db.commit()
        return "Wrong username or password."
    user.failed_logins = 0
    user.last_login_at = at
    audit.record(db, username, "login", f"user:{username}", detail=f"from {address}", at=at)
    db.commit()
    session.clear()
    session.permanent = True
    login_user(SignedInUser.from_row(user))
    session["seen"] = at.timestamp()
    return None


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    if current_user.is_authenticated:
        db = get_db()
        audit.record(db, current_user.username, "logout", f"user:{current_user.username}", at=now())
        db.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        db = get_db()
        user = db.get(User, current_user.id)
        assert user is not None  # load_user just found it
        new = form.new_password.data
        if not check_password_hash(user.password_hash, form.current_password.data):
            log.warning("password change refused for %r: wrong current password", user.username)
            form.current_password.errors.append("This is not your current password.")
        elif problem := password_problem(user.username, new):
            form.new_password.errors.append(problem)
        elif check_password_hash(user.password_hash, new):
            form.new_password.errors.append("Choose a password different from the current one.")
        else:
            forced = user.must_change_password
            user.password_hash = hash_password(new)
            user.must_change_password = False
            audit.record(db, user.username, "password.change", f"user:{user.username}",
                         detail="first sign-in" if forced else "", at=now())
            db.commit()
            # The fingerprint in the session id changed with the hash: sign this browser in again.
            login_user(SignedInUser.from_row(user))
            flash("Your password has been changed.", "info")
            return redirect(url_for("index"))
    status = 400 if request.method == "POST" else 200
    return render_template("change_password.html", form=form), status


# -- rules run before every request --------------------------------------------------------------------

def _enforce_session_rules() -> ResponseReturnValue | None:
    if request.endpoint == "static" or not current_user.is_authenticated:
        return None
    at = now()
    idle = at.timestamp() - float(session.get("seen", 0))
    if idle > current_app.permanent_session_lifetime.total_seconds():
        db = get_db()
        audit.record(db, current_user.username, "logout", f"user:{current_user.username}",
                     detail="session expired", at=at)
        db.commit()
        logout_user()
        session.clear()
        flash("Your session expired. Please sign in again.", "info")
        return redirect(url_for("auth.login", next=_request_target()))
    session["seen"] = at.timestamp()
    if current_user.must_change_password and request.endpoint not in ("auth.change_password", "auth.logout"):
        flash("Please choose a new password before you continue.", "info")
        return redirect(url_for("auth.change_password"))
    return None


def _request_target() -> str | None:
    return request.full_path.rstrip("?") if request.method == "GET" else None


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: an open redirect would let a phishing link borrow our sign-in page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target

