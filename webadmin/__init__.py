"""The web admin: a Flask application over the appliance database (flaskr style, one blueprint per screen).

``create_app(test_config=None, *, config=None)`` builds the app. Settings come from the appliance YAML
(``config``, or the file named by ``$APPLIANCE_CONFIG``, else ``appliance.config.DEFAULT_CONFIG_PATH``);
``test_config`` replaces that file and is applied last. The Flask config keys the app reads:

``DATABASE_URL``      the SQLAlchemy URL (``database.url``)
``SECRET_KEY``        signs the session cookie (``web.secret_key``). When empty, a random key is generated
                      once and kept in ``web-secret-key`` next to the SQLite database file (for PostgreSQL,
                      in the Flask instance folder), mode 0600, so sign-ins survive a restart.
``SESSION_MINUTES``   idle minutes before a signed-in session expires (``web.session_minutes``)
``SITE_NAME``, ``SITE_TIMEZONE``, ``CURRENCY``   from ``site``; times are shown in the site's zone
``CLOCK``             a callable returning an aware UTC ``datetime``; tests pass a fake one (lockout, expiry)
``PMS_LINK``          the PMS link's name (``pms.name``): custom refunds are queued for it
``POST_TO_VACANT_ROOMS``  ``site.post_to_vacant_rooms``: whether a refund may go to a room with no guest
``SETUP_DIR``         the state folder of the first-boot setup (``$APPLIANCE_SETUP_DIR``, set by
                      appliance-web.service); empty: no setup mode (``webadmin.setup``)

The ``ApplianceConfig`` itself (or None) is kept in ``app.extensions["appliance_config"]`` for the
settings screens (tariffs, links).

The web admin and the daemon are separate processes that share only the database (ARCHITECTURE.md).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, render_template
from flask.wrappers import Response
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import DEFAULT_CONFIG_PATH, ApplianceConfig, DatabaseConfig, WebConfig, load_config
from appliance.db.session import make_engine, make_sessionmaker

SECRET_KEY_FILE = "web-secret-key"

# Everything is served from this origin: no CDN, no inline script or style (ARCHITECTURE.md, webadmin/).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Database:
    """The engine and session factory of one app, kept in ``app.extensions["appliance_db"]``."""

    engine: Engine
    sessions: sessionmaker[Session]


def create_app(test_config: dict[str, Any] | None = None, *, config: ApplianceConfig | None = None) -> Flask:
    """Build the web admin. See the module docstring for where each setting comes from."""
    app = Flask(__name__, instance_relative_config=True)
    if config is None and test_config is None:
        config = load_config(os.environ.get("APPLIANCE_CONFIG", DEFAULT_CONFIG_PATH))
    app.config.from_mapping(_settings(config))
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=int(app.config["SESSION_MINUTES"]))
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _stored_secret_key(app.config["DATABASE_URL"], Path(app.instance_path))

    app.extensions["appliance_config"] = config
    init_db(app)
    _init_security(app)
    _init_filters(app)

    from webadmin import alerts, auth, calls, dashboard, detail, failed, refunds, report, settings, setup, users

    # Before auth's rules: while the box is not set up, every page leads to the first-boot setup.
    setup.init_app(app)
    auth.init_app(app)
    for module in (auth, calls, dashboard, report, detail, refunds, failed, alerts, settings, users):
        app.register_blueprint(module.bp)
    from webadmin import reports, schedules

    for module in (reports, schedules):
        app.register_blueprint(module.bp)
    app.add_url_rule("/", endpoint="index", view_func=dashboard.index)
    return app


def _settings(config: ApplianceConfig | None) -> dict[str, Any]:
    web = config.web if config is not None else WebConfig()
    return {
        "DATABASE_URL": config.database.url if config is not None else DatabaseConfig().url,
        "SECRET_KEY": web.secret_key,
        "SESSION_MINUTES": web.session_minutes,
        "SITE_NAME": config.site.name if config is not None else "Call accounting",
        "SITE_TIMEZONE": config.site.timezone if config is not None else "UTC",
        "CURRENCY": config.site.currency if config is not None else "USD",
        "CLOCK": utc_now,
        "PMS_LINK": config.pms.name if config is not None and config.pms is not None else "",
        "POST_TO_VACANT_ROOMS": config.site.post_to_vacant_rooms if config is not None else False,
        "SETUP_DIR": os.environ.get("APPLIANCE_SETUP_DIR", ""),
        # The cookie carries only the signed session; scripts never need it.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "appliance_session",
    }


def _stored_secret_key(database_url: str, instance_path: Path) -> str:
    """Read the generated key, or create it: next to a SQLite file, else in the instance folder.

    A fresh key on every start would sign everybody out whenever the service restarts.
    """
    folder = instance_path
    if database_url.startswith("sqlite") and ":///" in database_url:
        db_path = database_url.split(":///", 1)[1].split("?", 1)[0]
        if db_path and db_path != ":memory:":
            folder = Path(db_path).parent
    path = folder / SECRET_KEY_FILE
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        # O_EXCL: when two processes start at once, the second one reads the first one's key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def init_db(app: Flask) -> None:
    """One engine per app; one session per request (``get_db``), closed when the request ends."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["appliance_db"] = Database(engine=engine, sessions=make_sessionmaker(engine))
    app.teardown_appcontext(close_db)


def get_db() -> Session:
    """The session of the current request, opened on first use."""
    if "db" not in g:
        g.db = current_app.extensions["appliance_db"].sessions()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        # close() rolls back whatever a failed request left uncommitted.
        session.close()


def now() -> datetime:
    """The app's clock (``CLOCK``), so tests can move time for lockout and session expiry."""
    clock: Callable[[], datetime] = current_app.config["CLOCK"]
    return clock()


def site_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["SITE_TIMEZONE"])


def today_bounds() -> tuple[datetime, datetime]:
    """Today in the site's time zone, as an aware half-open range [00:00, next 00:00)."""
    zone = site_zone()
    today = now().astimezone(zone).date()
    low = datetime.combine(today, datetime.min.time(), zone)
    return low, datetime.combine(today + timedelta(days=1), datetime.min.time(), zone)


def _init_security(app: Flask) -> None:
    CSRFProtect(app)

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> tuple[str, int]:
        # Usually a form left open past the token's lifetime, or a session that ended meanwhile.
        return render_template("error.html", title="Form expired",
                               message="This form was too old or not sent from this site. "
                                       "Go back, reload the page and try again."), 400

    @app.errorhandler(403)
    def forbidden(_error: Exception) -> tuple[str, int]:
        return render_template("error.html", title="Not allowed",
                               message="Your role does not allow this page. Ask an administrator."), 403

    @app.errorhandler(404)
    def not_found(_error: Exception) -> tuple[str, int]:
        return render_template("error.html", title="Not found", message="There is no such page."), 404

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # Pages show guest rooms and charges: keep them out of shared browser caches.
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _init_filters(app: Flask) -> None:
    zone = ZoneInfo(app.config["SITE_TIMEZONE"])

    @app.template_filter("localtime")
    def localtime(value: datetime | None) -> str:
        if value is None:
            return ""
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    @app.template_filter("duration")
    def duration(seconds: int | None) -> str:
        if seconds is None:
            return ""
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

    @app.template_filter("money")
    def money(value: Decimal | None) -> str:
        return format_money(value)

    @app.template_filter("state_label")
    def state_label_filter(state: str) -> str:
        from webadmin.queries import state_label

        return state_label(state)

    @app.context_processor
    def site() -> dict[str, Any]:
        return {"site_name": app.config["SITE_NAME"], "site_timezone": app.config["SITE_TIMEZONE"]}


def format_money(value: Decimal | None) -> str:
    """Two decimals, or more when the amount really has them (the database keeps four)."""
    if value is None:
        return ""
    cents = value.quantize(Decimal("0.01"))
    if cents == value:
        return f"{cents:,}"
    return f"{value.normalize():,f}"
