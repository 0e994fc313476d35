"""First-boot setup (blueprint ``setup``): issue 9, "First boot", designed in docs/installer-guide.md.

While the box is not set up (``appliance.firstboot.SetupState``: no ``setup-complete`` marker and no active
admin), every page except these and the static files redirects to ``/setup/``. The steps:

1. the one-time **setup code** shown on the console (boot banner, ``appliance status``): proves the person
   in the browser can see the box's screen; a digest of the code is kept in the session;
2. the **admin** account (username, password twice; the password rules of ``webadmin.auth``);
3. the **site**: name, country, zone, currency, outside-line code, the guest extensions and a simple tariff;
4. the **PBX link** and 5. the **PMS link**, each with "Test this link" (``appliance.net.link_probe``):
   the records received and how they parsed, or the FIAS handshake frames;
6. **review and finish**: the configuration is checked by the loader and written atomically, the admin is
   created, the ``setup-complete`` marker is written, and once the answer is sent the web admin asks for
   both services to restart with the new configuration (``restart-requested``, ``appliance-setup.path``).

What the installer typed is kept in the signed session cookie between steps (the admin password only as
its scrypt hash). After completion the setup pages answer 404 for ever. Setup mode exists only when the
app is given a state folder (``SETUP_DIR``, from ``$APPLIANCE_SETUP_DIR``, set by appliance-web.service);
without one (development, tests of other screens) there is no setup mode.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional, Regexp

from appliance import audit
from appliance.config import ApplianceConfig, parse_config
from appliance.db.models import User
from appliance.errors import ConfigError
from appliance.firstboot import SetupState
from webadmin import get_db, now
from webadmin.auth import MIN_PASSWORD_LENGTH, hash_password, password_problem

log = logging.getLogger(__name__)
bp = Blueprint("setup", __name__, url_prefix="/setup")
STEPS = (("admin", "Administrator"), ("site", "Site"), ("pbx", "PBX link"), ("pms", "PMS link"),
         ("finish", "Review"))
PBX_TRANSPORTS = [("tcp-server", "TCP: the PBX connects to this box"),
                  ("tcp-client", "TCP: this box connects to the PBX"),
                  ("serial", "Serial port (RS-232)"), ("file", "A file the PBX writes")]
PMS_TRANSPORTS = [("tcp-client", "TCP: this box connects to the PMS interface"), ("serial", "Serial port (RS-232)")]
SERIAL_HINT = "/dev/appliance-serial/by-id/... or /dev/ttyS0"
PROBE_SECONDS = {"pbx": 10.0, "pms": 20.0}
_finishing = threading.Lock()


# -- the gate ---------------------------------------------------------------------------------------------------

def init_app(app: Flask) -> None:
    folder = app.config.get("SETUP_DIR") or ""
    app.extensions["appliance_setup"] = _Gate(SetupState(Path(folder))) if folder else None
    app.register_blueprint(bp)
    app.before_request(_redirect_to_setup)


class _Gate:
    """Whether setup mode is on; once off it stays off for the life of the process (and the marker's)."""

    def __init__(self, state: SetupState) -> None:
        self.state = state
        self._done = False

    def active(self) -> bool:
        if self._done:
            return False
        if self.state.completed():
            self._done = True
            return False
        admin = get_db().scalars(select(User.username).where(User.role == "admin", User.active.is_(True))
                                 .order_by(User.id).limit(1)).first()
        if admin is not None:
            # Set up by hand (`appliance user add`): record it, so deleting users later cannot reopen setup.
            self.state.mark_completed(admin, now(), how="an admin user existed")
            log.info("first-boot setup: not needed, admin %r exists", admin)
            self._done = True
            return False
        return True


def _gate() -> _Gate | None:
    return current_app.extensions.get("appliance_setup")


def _redirect_to_setup() -> ResponseReturnValue | None:
    gate = _gate()
    if gate is None or request.endpoint == "static" or (request.endpoint or "").startswith("setup."):
        return None
    if gate.active():
        return redirect(url_for("setup.start"))
    return None


def _require_setup_mode() -> _Gate:
    gate = _gate()
    if gate is None or not gate.active():
        abort(404)
    return gate


def _require_code(gate: _Gate) -> ResponseReturnValue | None:
    token = gate.state.code_token()
    if token is None or session.get("setup_token") != token:
        return redirect(url_for("setup.start"))
    return None


def _draft() -> dict[str, Any]:
    return dict(session.get("setup_draft") or {})


def _save(step: str, values: dict[str, Any]) -> None:
    draft = _draft()
    draft[step] = values
    session["setup_draft"] = draft


# -- forms ------------------------------------------------------------------------------------------------------

class CodeForm(FlaskForm):  # type: ignore[misc]
    code = StringField("Setup code", validators=[DataRequired(), Length(max=32)])


class AdminForm(FlaskForm):  # type: ignore[misc]
    username = StringField("Username", default="admin",
                           validators=[DataRequired(), Length(max=64), Regexp(r"^[A-Za-z0-9_.@-]+$",
                                       message="Letters, digits and . _ @ - only.")])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024,
                               message=f"At least {MIN_PASSWORD_LENGTH} characters.")])
    confirm = PasswordField("Password again", validators=[
        DataRequired(), EqualTo("password", message="The two passwords differ.")])


class SiteForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Hotel name", validators=[DataRequired(), Length(max=80)])
    country = StringField("Country (ISO code)", default="US", validators=[DataRequired(), Length(min=2, max=2)])
    timezone = StringField("Time zone", default="UTC", validators=[DataRequired(), Length(max=64)])
    currency = StringField("Currency (ISO code)", default="USD", validators=[DataRequired(), Length(min=3, max=3)])
    access_code = StringField("Outside-line access code", default="9",
                              validators=[Optional(), Regexp(r"^\d{0,3}$", message="Up to three digits.")])
    guest_extensions = StringField("Guest room extensions", default="101-199", validators=[
        DataRequired(), Regexp(r"^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$",
                               message="Numbers and ranges, e.g. 101-199, 201-299.")])
    per_minute = StringField("Price per minute", default="0.30", validators=[
        DataRequired(), Regexp(r"^\d{1,6}(\.\d{1,4})?$", message="An amount like 0.30.")])
    per_call = StringField("Charge per call", default="0.00", validators=[
        DataRequired(), Regexp(r"^\d{1,6}(\.\d{1,4})?$", message="An amount like 0.50.")])

    def validate_timezone(self, field: StringField) -> None:
        try:
            ZoneInfo(field.data.strip())
        except (ZoneInfoNotFoundError, ValueError):
            from wtforms import ValidationError

            raise ValidationError("Not a known time zone; use a name like Europe/Berlin or America/New_York.")


class LinkForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Link name", validators=[DataRequired(), Regexp(r"^[A-Za-z0-9_.-]{1,32}$",
                                                message="1-32 letters, digits, '_', '.' or '-'.")])
    driver = SelectField("Driver", validate_choice=True)
    transport = SelectField("Transport")
    host = StringField("Host (address)", validators=[Optional(), Length(max=255)])
    port = IntegerField("TCP port", validators=[Optional(), NumberRange(min=1, max=65535)])
    device = StringField("Serial device", validators=[Optional(), Length(max=255)])
    baudrate = IntegerField("Baud rate", default=9600, validators=[Optional(), NumberRange(min=300, max=921600)])
    path = StringField("File path", validators=[Optional(), Length(max=255)])


def _link_form(kind: str) -> LinkForm:
    from appliance.registry import default_registry

    registry = default_registry()
    form = LinkForm(data=_draft().get(kind) or {"name": kind})
    none_label = "No PBX link yet" if kind == "pbx" else "No PMS link yet"
    form.driver.choices = [("", none_label)] + [(n, n) for n in registry.names(kind)]
    form.transport.choices = PBX_TRANSPORTS if kind == "pbx" else PMS_TRANSPORTS
    return form


def _link_values(form: LinkForm) -> dict[str, Any] | None:
    """The link as configuration keys (only those that apply to its transport), or None for no link."""
    if not form.driver.data:
        return None
    values: dict[str, Any] = {"name": form.name.data.strip(), "driver": form.driver.data,
                              "transport": form.transport.data}
    transport = form.transport.data
    if transport in ("tcp-client", "tcp-server"):
        if form.host.data and form.host.data.strip():
            values["host"] = form.host.data.strip()
        if form.port.data:
            values["port"] = form.port.data
        else:  # the port the PBX family usually prints to (Mitel 1752, ...), when the driver knows one
            from appliance.registry import default_registry

            try:
                default = default_registry().get("pbx" if form.transport.choices == PBX_TRANSPORTS else "pms",
                                                  form.driver.data).default_port
            except KeyError:
                default = None
            if default:
                values["port"] = default
    elif transport == "serial":
        values["device"] = (form.device.data or "").strip()
        values["baudrate"] = form.baudrate.data or 9600
    elif transport == "file":
        values["path"] = (form.path.data or "").strip()
    return values


# -- the configuration from the draft ---------------------------------------------------------------------------

def config_data(draft: dict[str, Any]) -> dict[str, Any]:
    """The YAML mapping the draft stands for, keeping the running configuration's database and web."""
    running: ApplianceConfig | None = current_app.extensions.get("appliance_config")
    site = draft.get("site") or {}
    data: dict[str, Any] = {
        "site": {k: site[k] for k in ("name", "country", "timezone", "currency", "access_code") if k in site}
        or {"name": "New appliance"},
        "database": {"url": current_app.config["DATABASE_URL"]},
    }
    if draft.get("pbx"):
        data["pbx"] = [_ordered(draft["pbx"])]
    if draft.get("pms"):
        data["pms"] = _ordered(draft["pms"])
    if site.get("guest_extensions"):
        data["extensions"] = [{"numbers": [p.strip() for p in site["guest_extensions"].split(",") if p.strip()],
                               "category": "guest"}]
        data["tariff"] = {"name": "standard", "surcharge_per_call": site.get("per_call", "0.00"),
                          "default": {"connect": "0.00", "per_minute": site.get("per_minute", "0.30")}}
    web = running.web if running is not None else None
    data["web"] = {"host": web.host if web else "0.0.0.0", "port": web.port if web else 80,
                   "session_minutes": web.session_minutes if web else 30}
    if web is not None and web.secret_key:
        data["web"]["secret_key"] = web.secret_key
    if running is not None:
        data["log_level"] = running.log_level
    return data


def _ordered(link: dict[str, Any]) -> dict[str, Any]:
    """The session keeps keys sorted; the file reads better with name, driver, transport first."""
    first = ("name", "driver", "transport")
    return {**{k: link[k] for k in first if k in link}, **{k: v for k, v in link.items() if k not in first}}


def _problems(exc: ConfigError) -> list[str]:
    return [line for line in exc.render().splitlines() if line.strip()]


def _step_page(step: str, form: FlaskForm, status: int = 200, **extra: Any) -> ResponseReturnValue:
    return render_template("setup.html", step=step, steps=STEPS, form=form, **extra), status


# -- views ------------------------------------------------------------------------------------------------------

@bp.route("/", methods=["GET", "POST"])
def start() -> ResponseReturnValue:
    gate = _require_setup_mode()
    gate.state.ensure_code()
    if _require_code(gate) is None:
        return redirect(url_for("setup.admin"))
    form = CodeForm()
    if form.validate_on_submit():
        if gate.state.check_code(form.code.data):
            session.clear()
            session["setup_token"] = gate.state.code_token()
            log.info("first-boot setup: code accepted from %s", request.remote_addr)
            return redirect(url_for("setup.admin"))
        log.warning("first-boot setup: wrong setup code from %s", request.remote_addr)
        form.code.errors.append("This is not the setup code shown on the appliance's console. After "
                                "several wrong codes a new one is made: look at the console again.")
    status = 400 if request.method == "POST" else 200
    return render_template("setup_code.html", form=form), status


@bp.route("/admin", methods=["GET", "POST"])
def admin() -> ResponseReturnValue:
    gate = _require_setup_mode()
    if (back := _require_code(gate)) is not None:
        return back
    draft = _draft().get("admin") or {}
    form = AdminForm(data={"username": draft.get("username", "admin")})
    if form.validate_on_submit():
        username = form.username.data.strip()
        problem = password_problem(username, form.password.data)
        if problem:
            form.password.errors.append(problem)
        else:
            _save("admin", {"username": username, "password_hash": hash_password(form.password.data)})
            return redirect(url_for("setup.site"))
    return _step_page("admin", form, 400 if request.method == "POST" else 200)


@bp.route("/site", methods=["GET", "POST"])
def site() -> ResponseReturnValue:
    gate = _require_setup_mode()
    if (back := _require_code(gate)) is not None:
        return back
    form = SiteForm(data=_draft().get("site") or None)
    if form.validate_on_submit():
        values = {
            "name": form.name.data.strip(), "country": form.country.data.strip().upper(),
            "timezone": form.timezone.data.strip(), "currency": form.currency.data.strip().upper(),
            "access_code": (form.access_code.data or "").strip(),
            "guest_extensions": form.guest_extensions.data.strip(),
            "per_minute": form.per_minute.data, "per_call": form.per_call.data,
        }
        try:
            parse_config(config_data({**_draft(), "site": values, "pbx": None, "pms": None}))
        except ConfigError as exc:
            for problem in _problems(exc):
                form.name.errors.append(problem)
        else:
            _save("site", values)
            return redirect(url_for("setup.link", kind="pbx"))
    return _step_page("site", form, 400 if request.method == "POST" else 200)


@bp.route("/link/<any(pbx, pms):kind>", methods=["GET", "POST"])
def link(kind: str) -> ResponseReturnValue:
    gate = _require_setup_mode()
    if (back := _require_code(gate)) is not None:
        return back
    form = _link_form(kind)
    probe = None
    if form.validate_on_submit():
        values = _link_values(form)
        draft = {**_draft(), kind: values}
        try:
            config = parse_config(config_data(draft))
        except ConfigError as exc:
            return _step_page(kind, form, 400, link_kind=kind, problems=_problems(exc))
        if request.form.get("action") == "test":
            if values is None:
                form.driver.errors = ["Choose a driver to test."]
                return _step_page(kind, form, 400, link_kind=kind)
            probe = _probe(kind, config)
            return _step_page(kind, form, link_kind=kind, probe=probe)
        _save(kind, values)
        return redirect(url_for("setup.link", kind="pms") if kind == "pbx" else url_for("setup.finish"))
    return _step_page(kind, form, 400 if request.method == "POST" else 200, link_kind=kind)


def _probe(kind: str, config: ApplianceConfig) -> Any:
    from appliance.net import link_probe
    from appliance.registry import default_registry

    link_config = config.pbx[0] if kind == "pbx" else config.pms
    assert link_config is not None
    spec = default_registry().get(kind, link_config.driver)
    options = config.driver_options[link_config.name]
    seconds = current_app.config.get("SETUP_PROBE_SECONDS", PROBE_SECONDS)[kind]
    tz = config.site.tz
    log.info("first-boot setup: testing %s link %s (%s)", kind, link_config.name, link_config.describe())
    if kind == "pbx":
        return link_probe.probe_pbx(link_config, spec, options, tz=tz, seconds=seconds)
    return link_probe.probe_pms(link_config, spec, options, tz=tz, seconds=seconds)


class FinishForm(FlaskForm):  # type: ignore[misc]
    pass


@bp.route("/finish", methods=["GET", "POST"])
def finish() -> ResponseReturnValue:
    gate = _require_setup_mode()
    if (back := _require_code(gate)) is not None:
        return back
    draft = _draft()
    form = FinishForm()
    missing = [label for step, label in STEPS[:2] if not draft.get(step)]
    problems: list[str] = []
    data = config_data(draft)
    try:
        parse_config(data)
    except ConfigError as exc:
        problems = _problems(exc)
    if form.validate_on_submit() and not missing and not problems:
        return _complete(gate, draft, data)
    import yaml

    preview = yaml.safe_dump(data, sort_keys=False)
    if "secret_key" in data.get("web", {}):
        preview = preview.replace(data["web"]["secret_key"], "(kept)")
    status = 400 if request.method == "POST" else 200
    return _step_page("finish", form, status, draft=draft, missing=missing, problems=problems, preview=preview)


def _complete(gate: _Gate, draft: dict[str, Any], data: dict[str, Any]) -> ResponseReturnValue:
    # Two browsers finishing at the same moment: the second finds setup complete and gets 404.
    with _finishing:
        if gate.state.completed():
            abort(404)
        return _write_everything(gate, draft, data)


def _write_everything(gate: _Gate, draft: dict[str, Any], data: dict[str, Any]) -> ResponseReturnValue:
    admin_draft = draft["admin"]
    db = get_db()
    at = now()
    username = admin_draft["username"]
    if db.scalars(select(User).where(User.username == username)).first() is not None:
        flash(f"A user named {username!r} already exists; choose another administrator name.", "error")
        return redirect(url_for("setup.admin"))
    # The configuration first: if the box loses power before the marker, setup simply opens again.
    gate.state.write_config(data)
    db.add(User(username=username, password_hash=admin_draft["password_hash"], role="admin",
                must_change_password=False, failed_logins=0, active=True, created_at=at))
    audit.record(db, username, "setup.complete", "appliance",
                 after={"site": data["site"].get("name"), "pbx": [l["name"] for l in data.get("pbx", [])],
                        "pms": (data.get("pms") or {}).get("name")},
                 detail=f"first-boot setup from {request.remote_addr or '-'}", at=at)
    db.commit()
    gate.state.mark_completed(username, at)
    log.info("first-boot setup complete: admin %r, configuration written to %s", username, gate.state.config_path)
    session.clear()
    current_app.config["SITE_NAME"] = data["site"].get("name", current_app.config["SITE_NAME"])
    response = current_app.make_response(render_template("setup_done.html", username=username))
    # Only once this answer is on its way: the restart would otherwise cut it off.
    response.call_on_close(gate.state.request_restart)
    return response
