"""First-boot setup (webadmin/setup.py, appliance/firstboot.py): the gate, the code, each step, the finish.

Issue 9, "First boot": no default password; the web admin starts in setup mode, asks for the admin
password, site, PBX and PMS links, then leaves setup mode for good. Runs on SQLite and PostgreSQL
(``migrated_url``); CSRF stays on, tokens are read from the forms as a browser would.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from appliance.config import load_config
from appliance.db.models import AuditEntry, User
from appliance.firstboot import MAX_CODE_FAILURES, SetupState
from tests.webadmin.conftest import FakeClock, make_user
from webadmin import create_app

ADMIN_PASSWORD = "a-long-setup-password"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


@pytest.fixture
def setup_app(migrated_url: str, clock: FakeClock, state_dir: Path) -> Iterator[Flask]:
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": migrated_url,
        "SECRET_KEY": "test-secret-key",
        "SESSION_MINUTES": 30,
        "CLOCK": clock,
        "SETUP_DIR": str(state_dir),
        "SETUP_PROBE_SECONDS": {"pbx": 3.0, "pms": 8.0},
    })
    yield app
    app.extensions["appliance_db"].engine.dispose()


@pytest.fixture
def setup_client(setup_app: Flask) -> FlaskClient:
    return setup_app.test_client()


def token_of(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.headers.get("Location"))
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.text)
    assert match, f"no CSRF token in {path}"
    return match.group(1)


def enter_code(client: FlaskClient, state_dir: Path) -> None:
    code = SetupState(state_dir).current_code() or SetupState(state_dir).ensure_code()
    token = token_of(client, "/setup/")
    response = client.post("/setup/", data={"code": f"{code[:4].lower()}-{code[4:]}", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/setup/admin")


def post_step(client: FlaskClient, path: str, data: dict[str, object]) -> object:
    token = token_of(client, path)
    return client.post(path, data={**data, "csrf_token": token})


SITE = {"name": "Hotel Setup", "country": "DE", "timezone": "Europe/Berlin", "currency": "EUR",
        "access_code": "0", "guest_extensions": "101-130", "per_minute": "0.25", "per_call": "0.50"}


def walk_to_finish(client: FlaskClient, state_dir: Path, pms: dict[str, object] | None = None) -> None:
    enter_code(client, state_dir)
    response = post_step(client, "/setup/admin", {"username": "boss", "password": ADMIN_PASSWORD,
                                                  "confirm": ADMIN_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"].endswith("/setup/site")
    response = post_step(client, "/setup/site", SITE)
    assert response.status_code == 302 and response.headers["Location"].endswith("/setup/link/pbx")
    response = post_step(client, "/setup/link/pbx", {
        "driver": "mitel_mivb", "name": "main", "transport": "tcp-server", "port": "17520", "action": "save"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/setup/link/pms")
    response = post_step(client, "/setup/link/pms", pms or {
        "driver": "fias", "name": "opera", "transport": "tcp-client", "host": "192.0.2.20", "port": "5010",
        "action": "save"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/setup/finish")


# -- the gate ---------------------------------------------------------------------------------------------------

def test_every_page_leads_to_setup_while_the_box_is_not_set_up(setup_client: FlaskClient) -> None:
    for path in ("/", "/auth/login", "/calls/", "/settings/extensions", "/no-such-page"):
        response = setup_client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].endswith("/setup/"), path
    # A form post elsewhere is refused by CSRF first (no form outside setup exists to carry a token).
    assert setup_client.post("/auth/login", data={}).status_code == 400
    assert setup_client.get("/static/style.css").status_code == 200


def test_without_a_state_folder_there_is_no_setup_mode(app: Flask, client: FlaskClient) -> None:
    # The `app` fixture of the other web tests has no SETUP_DIR: development and tests of other screens.
    assert client.get("/setup/").status_code == 404
    assert client.get("/auth/login").status_code == 200


def test_an_admin_made_by_hand_ends_setup_mode_for_good(setup_app: Flask, setup_client: FlaskClient,
                                                         state_dir: Path) -> None:
    user_id = make_user(setup_app, "tech", role="admin")
    assert setup_client.get("/auth/login").status_code == 200
    assert setup_client.get("/setup/").status_code == 404
    assert json.loads((state_dir / "setup-complete").read_text())["admin"] == "tech"
    # Deleting every user later does not reopen setup, not even in a fresh process.
    with setup_app.extensions["appliance_db"].sessions() as session:
        session.delete(session.get(User, user_id))
        session.commit()
    fresh = create_app({**setup_app.config, "CLOCK": setup_app.config["CLOCK"]}).test_client()
    assert fresh.get("/setup/").status_code == 404
    assert fresh.get("/auth/login").status_code == 200


def test_a_viewer_alone_does_not_end_setup_mode(setup_app: Flask, setup_client: FlaskClient) -> None:
    make_user(setup_app, "viewer1", role="viewer")
    assert setup_client.get("/").headers["Location"].endswith("/setup/")


# -- the setup code ---------------------------------------------------------------------------------------------

def test_steps_need_the_setup_code_first(setup_client: FlaskClient, state_dir: Path) -> None:
    for path in ("/setup/admin", "/setup/site", "/setup/link/pbx", "/setup/link/pms", "/setup/finish"):
        response = setup_client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/setup/"), path
    page = setup_client.get("/setup/")
    assert "setup code" in page.text
    code = SetupState(state_dir).current_code()
    assert code is not None and re.fullmatch(r"[A-Z2-9]{8}", code)
    assert code not in page.text  # the page never shows it: only the console does


def test_a_wrong_code_is_refused_and_too_many_replace_it(setup_client: FlaskClient, state_dir: Path) -> None:
    setup_client.get("/setup/")
    first = SetupState(state_dir).current_code()
    token = token_of(setup_client, "/setup/")
    response = setup_client.post("/setup/", data={"code": "WRONGCODE", "csrf_token": token})
    assert response.status_code == 400 and "not the setup code" in response.text
    assert setup_client.get("/setup/admin").status_code == 302
    for _ in range(MAX_CODE_FAILURES - 1):
        setup_client.post("/setup/", data={"code": "WRONGCODE", "csrf_token": token})
    second = SetupState(state_dir).current_code()
    assert second is not None and second != first
    # The old code is worthless now.
    response = setup_client.post("/setup/", data={"code": first, "csrf_token": token})
    assert response.status_code == 400


def test_the_code_form_needs_its_csrf_token(setup_client: FlaskClient, state_dir: Path) -> None:
    setup_client.get("/setup/")
    code = SetupState(state_dir).current_code()
    response = setup_client.post("/setup/", data={"code": code})
    assert response.status_code == 400 and "Form expired" in response.text


# -- the steps --------------------------------------------------------------------------------------------------

def test_admin_step_checks_the_password(setup_client: FlaskClient, state_dir: Path) -> None:
    enter_code(setup_client, state_dir)
    response = post_step(setup_client, "/setup/admin", {"username": "boss", "password": "short", "confirm": "short"})
    assert response.status_code == 400 and "At least 10 characters" in response.text
    response = post_step(setup_client, "/setup/admin", {"username": "boss", "password": ADMIN_PASSWORD,
                                                        "confirm": ADMIN_PASSWORD + "x"})
    assert response.status_code == 400 and "The two passwords differ" in response.text
    response = post_step(setup_client, "/setup/admin", {"username": "administrator", "password": "Administrator",
                                                        "confirm": "Administrator"})
    assert response.status_code == 400 and "must not be the username" in response.text


def test_site_step_checks_zone_country_and_amounts(setup_client: FlaskClient, state_dir: Path) -> None:
    enter_code(setup_client, state_dir)
    response = post_step(setup_client, "/setup/site", {**SITE, "timezone": "Mars/Olympus"})
    assert response.status_code == 400 and "Not a known time zone" in response.text
    response = post_step(setup_client, "/setup/site", {**SITE, "country": "XX"})
    assert response.status_code == 400 and "ISO 3166" in response.text
    response = post_step(setup_client, "/setup/site", {**SITE, "per_minute": "1,5"})
    assert response.status_code == 400 and "An amount like" in response.text


def test_link_step_reports_configuration_problems(setup_client: FlaskClient, state_dir: Path) -> None:
    enter_code(setup_client, state_dir)
    response = post_step(setup_client, "/setup/link/pms", {
        "driver": "fias", "name": "opera", "transport": "tcp-client", "port": "5010", "action": "save"})
    assert response.status_code == 400 and "needs host" in response.text


def test_finish_writes_the_configuration_creates_the_admin_and_closes_setup(
        setup_app: Flask, setup_client: FlaskClient, state_dir: Path) -> None:
    walk_to_finish(setup_client, state_dir)
    review = setup_client.get("/setup/finish")
    assert "Hotel Setup" in review.text and "driver: mitel_mivb" in review.text
    token = token_of(setup_client, "/setup/finish")
    response = setup_client.post("/setup/finish", data={"csrf_token": token})
    assert response.status_code == 200 and "Setup complete" in response.text
    response.close()  # the WSGI server closes the answer once sent: that asks for the restart
    assert (state_dir / "restart-requested").exists()

    config = load_config(state_dir / "appliance.yaml")
    assert config.site.name == "Hotel Setup" and config.site.timezone == "Europe/Berlin"
    assert [link.name for link in config.pbx] == ["main"] and config.pbx[0].port == 17520
    assert config.pms is not None and config.pms.host == "192.0.2.20"
    assert config.extension_map()["115"] == ("guest", "115")
    assert config.database.url == setup_app.config["DATABASE_URL"]
    assert (state_dir / "appliance.yaml").stat().st_mode & 0o777 == 0o640
    assert not (state_dir / "setup-code").exists()
    assert json.loads((state_dir / "setup-complete").read_text())["admin"] == "boss"

    with setup_app.extensions["appliance_db"].sessions() as session:
        user = session.scalars(select(User).where(User.username == "boss")).one()
        assert user.role == "admin" and not user.must_change_password
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "setup.complete")).one()

    # Setup is gone; the new admin signs in with the chosen password.
    for path in ("/setup/", "/setup/admin", "/setup/finish"):
        assert setup_client.get(path).status_code == 404
    token = token_of(setup_client, "/auth/login")
    response = setup_client.post("/auth/login", data={"username": "boss", "password": ADMIN_PASSWORD,
                                                      "csrf_token": token})
    assert response.status_code == 302 and not response.headers["Location"].endswith("/auth/password")


def test_finish_without_links_is_allowed_and_the_daemon_idles(setup_client: FlaskClient, state_dir: Path) -> None:
    enter_code(setup_client, state_dir)
    post_step(setup_client, "/setup/admin", {"username": "boss", "password": ADMIN_PASSWORD, "confirm": ADMIN_PASSWORD})
    post_step(setup_client, "/setup/site", SITE)
    response = post_step(setup_client, "/setup/finish", {})
    assert response.status_code == 200
    config = load_config(state_dir / "appliance.yaml")
    assert config.pbx == () and config.pms is None


def test_finish_refuses_before_the_admin_step(setup_client: FlaskClient, state_dir: Path) -> None:
    enter_code(setup_client, state_dir)
    response = post_step(setup_client, "/setup/finish", {})
    assert response.status_code == 400 and "Still to do: Administrator, Site" in response.text
    assert not (state_dir / "setup-complete").exists() and not (state_dir / "appliance.yaml").exists()


def test_the_written_file_is_what_the_review_showed(setup_client: FlaskClient, state_dir: Path) -> None:
    walk_to_finish(setup_client, state_dir)
    preview = re.search(r'<pre class="yaml">(.*?)</pre>', setup_client.get("/setup/finish").text, re.S)
    assert preview
    post_step(setup_client, "/setup/finish", {})
    import html

    written = yaml.safe_load((state_dir / "appliance.yaml").read_text())
    assert written == yaml.safe_load(html.unescape(preview.group(1)))


def test_two_browsers_cannot_both_finish(setup_app: Flask, state_dir: Path) -> None:
    first, second = setup_app.test_client(), setup_app.test_client()
    walk_to_finish(first, state_dir)
    walk_to_finish(second, state_dir)
    token = token_of(second, "/setup/finish")
    assert post_step(first, "/setup/finish", {}).status_code == 200
    # The second browser's session was tied to the code, which is gone; setup itself is gone.
    assert second.post("/setup/finish", data={"csrf_token": token}).status_code == 404
    with setup_app.extensions["appliance_db"].sessions() as session:
        assert session.scalars(select(User)).all()[0].username == "boss"


def test_state_code_checks_are_thread_safe(state_dir: Path) -> None:
    state = SetupState(state_dir)
    state.ensure_code()
    threads = [threading.Thread(target=state.check_code, args=("NOPE",)) for _ in range(MAX_CODE_FAILURES - 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = json.loads((state_dir / "setup-code").read_text())
    assert data["failures"] == MAX_CODE_FAILURES - 1


# -- "Test this link" -------------------------------------------------------------------------------------------

from tests.test_link_probe import free_port, mitel_records, pms_simulator, send_later  # noqa: E402,F401


def test_pbx_test_button_shows_the_records_received_and_keeps_the_form(
        setup_client: FlaskClient, state_dir: Path) -> None:
    enter_code(setup_client, state_dir)
    port = free_port()
    send_later(port, mitel_records(2))
    response = post_step(setup_client, "/setup/link/pbx", {
        "driver": "mitel_mivb", "name": "main", "transport": "tcp-server", "host": "127.0.0.1", "port": str(port),
        "action": "test"})
    assert response.status_code == 200
    assert "Link test: passed" in response.text and "2 call record(s) received" in response.text
    assert "extension 101" in response.text
    assert f'value="{port}"' in response.text  # the form keeps what was typed
    # A test saves nothing: the PMS step still needs the PBX step saved.
    review = setup_client.get("/setup/finish").text
    assert "No PBX link yet" in review and "mitel_mivb" not in review


def test_pms_test_button_shows_the_fias_handshake(setup_client: FlaskClient, state_dir: Path,
                                                  pms_simulator: int) -> None:
    enter_code(setup_client, state_dir)
    response = post_step(setup_client, "/setup/link/pms", {
        "driver": "fias", "name": "opera", "transport": "tcp-client", "host": "127.0.0.1",
        "port": str(pms_simulator), "action": "test"})
    assert response.status_code == 200
    assert "handshake complete" in response.text
    assert "&lt;STX&gt;LR|RIPS|" in response.text and "&lt;STX&gt;LA|" in response.text


def test_test_button_without_a_driver_says_so(setup_client: FlaskClient, state_dir: Path) -> None:
    enter_code(setup_client, state_dir)
    response = post_step(setup_client, "/setup/link/pms", {"driver": "", "name": "opera", "transport": "tcp-client",
                                                           "action": "test"})
    assert response.status_code == 400 and "Choose a driver to test." in response.text


def test_two_browsers_finishing_at_once_make_one_admin(setup_app: Flask, state_dir: Path) -> None:
    clients = [setup_app.test_client(), setup_app.test_client()]
    for client, name in zip(clients, ("first", "second")):
        enter_code(client, state_dir)
        post_step(client, "/setup/admin", {"username": name, "password": ADMIN_PASSWORD, "confirm": ADMIN_PASSWORD})
        post_step(client, "/setup/site", SITE)
    tokens = [token_of(client, "/setup/finish") for client in clients]
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda c=c, t=t: statuses.append(
        c.post("/setup/finish", data={"csrf_token": t}).status_code)) for c, t in zip(clients, tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 404]
    with setup_app.extensions["appliance_db"].sessions() as session:
        assert len(session.scalars(select(User)).all()) == 1


def test_an_empty_port_takes_the_drivers_usual_one(setup_client: FlaskClient, state_dir: Path) -> None:
    from appliance.registry import default_registry

    usual = default_registry().get("pbx", "mitel_mivb").default_port
    enter_code(setup_client, state_dir)
    post_step(setup_client, "/setup/link/pbx", {"driver": "mitel_mivb", "name": "main", "transport": "tcp-server",
                                                "action": "save"})
    assert usual == 1752  # Mitel's SMDR port
    assert "port: 1752" in setup_client.get("/setup/finish").text
