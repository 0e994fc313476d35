"""First-boot setup state: the files in the appliance's state folder that decide setup mode.

Issue 9, "First boot": no default password exists; the web admin starts in setup mode, asks for the admin
password, the site and the links, then leaves setup mode for good. The design is in
docs/installer-guide.md ("First boot"); in short, inside the state folder (``/var/lib/appliance`` on the
image, ``$APPLIANCE_SETUP_DIR`` for the web admin):

``setup-complete``     written last by a finished setup (JSON: when, by which admin). While it exists
                       setup mode never comes back, even if every user is deleted later: a box on a hotel
                       LAN must not offer "choose the admin password" to whoever browses to it. The
                       console (``appliance user add``) is how a lost admin is recovered.
``setup-code``         the one-time setup code (8 characters, 40 bits) and the count of wrong tries. The
                       setup pages ask for it before anything else, so a stranger on the network cannot
                       take the box over in the minutes before the installer does. It is shown on the
                       console (the boot banner) and by ``appliance status``; after ``MAX_CODE_FAILURES``
                       wrong tries a new code replaces it (the console shows the new one).
``appliance.yaml``     the configuration the setup writes (validated by ``appliance.config.parse_config``
                       first, then written atomically: a temporary file, fsync, rename). The image links
                       ``/etc/appliance/appliance.yaml`` to it, so both services and every command read it.
``restart-requested``  created by the web admin after the setup's answer has been sent; the
                       ``appliance-setup.path`` unit sees it and restarts both services with the new
                       configuration (the web process itself has no right to ask systemd anything).

Setup mode is on while neither ``setup-complete`` exists nor an active admin user does (a box set up by
hand with ``appliance user add`` before this existed is not sent back to setup; the marker is written
then). ``python -m appliance.firstboot prepare --state-dir DIR`` (the web unit's ``ExecStartPre``) makes
the setup code before the web admin starts, so the boot banner can print it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

MARKER = "setup-complete"
CODE_FILE = "setup-code"
CONFIG_FILE = "appliance.yaml"
RESTART_REQUEST = "restart-requested"
# No 0/O or 1/I: the code is read off a console screen and typed into a browser.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
MAX_CODE_FAILURES = 10

_lock = threading.Lock()


def normalise_code(text: str) -> str:
    """What the installer typed, as stored: upper case, without spaces or dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -\t")


def format_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}" if len(code) == CODE_LENGTH else code


def atomic_write(path: Path, text: str, mode: int = 0o640) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of it."""
    path = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must survive a power cut: sync the folder too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass
class SetupState:
    """The setup files of one state folder. Thread-safe: the web admin serves requests from a pool."""

    folder: Path

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_FILE

    # -- completion -----------------------------------------------------------------------------------

    def completed(self) -> bool:
        return (self.folder / MARKER).exists()

    def completion(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def mark_completed(self, admin: str, at: datetime, how: str = "setup") -> None:
        """Leave setup mode for good; the setup code is no longer needed."""
        with _lock:
            atomic_write(self.folder / MARKER, json.dumps(
                {"completed_at": at.astimezone(timezone.utc).isoformat(), "admin": admin, "how": how}) + "\n")
            (self.folder / CODE_FILE).unlink(missing_ok=True)

    def request_restart(self) -> None:
        """Ask the ``appliance-setup.path`` unit to restart both services (see the module docstring)."""
        atomic_write(self.folder / RESTART_REQUEST, datetime.now(timezone.utc).isoformat() + "\n")

    # -- the one-time setup code ------------------------------------------------------------------------

    def _read_code(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.folder / CODE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("code"), str):
            return None
        return data

    def _new_code(self) -> str:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        atomic_write(self.folder / CODE_FILE, json.dumps({"code": code, "failures": 0}) + "\n")
        return code

    def ensure_code(self) -> str | None:
        """The current setup code, made if missing; None once setup is complete."""
        with _lock:
            if self.completed():
                return None
            data = self._read_code()
            return data["code"] if data else self._new_code()

    def current_code(self) -> str | None:
        """The code as stored, without making one (``appliance status``, the banner)."""
        if self.completed():
            return None
        data = self._read_code()
        return data["code"] if data else None

    def check_code(self, typed: str) -> bool:
        """Whether ``typed`` is the setup code. Wrong tries are counted; too many replace the code."""
        with _lock:
            data = self._read_code()
            if data is None or self.completed():
                return False
            if hmac.compare_digest(normalise_code(typed).encode(), data["code"].encode()):
                return True
            failures = int(data.get("failures", 0)) + 1
            if failures >= MAX_CODE_FAILURES:
                self._new_code()
            else:
                atomic_write(self.folder / CODE_FILE, json.dumps({"code": data["code"], "failures": failures}) + "\n")
            return False

    def code_token(self) -> str | None:
        """A digest of the current code, kept in the browser session once the code was typed: when the
        code is replaced (too many wrong tries elsewhere) or setup completes, that session stops working."""
        code = self.current_code()
        if code is None:
            return None
        return hashlib.sha256(b"appliance-setup:" + code.encode()).hexdigest()

    # -- the configuration ------------------------------------------------------------------------------

    def write_config(self, data: dict[str, Any]) -> None:
        """Check ``data`` with the configuration loader, then write it atomically as YAML.

        Raises ``appliance.errors.ConfigError`` (nothing written) when the loader refuses it.
        """
        from appliance.config import parse_config

        parse_config(data, str(self.config_path))
        text = ("# Written by the web admin's first-boot setup. Every key is explained in\n"
                "# /opt/appliance/docs/example-config.yaml; check edits with `appliance check-config`.\n"
                + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        atomic_write(self.config_path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.firstboot",
                                     description="Prepare the first-boot setup state (the setup code).")
    sub = parser.add_subparsers(dest="action", required=True)
    prepare = sub.add_parser("prepare", help="make the setup code unless setup is complete; print it")
    prepare.add_argument("--state-dir", default="/var/lib/appliance")
    args = parser.parse_args(argv)
    state = SetupState(Path(args.state_dir))
    code = state.ensure_code()
    if code is None:
        print("first-boot setup: complete")
    else:
        # Goes to the journal of appliance-web; the banner and `appliance status` show it on the console.
        print(f"first-boot setup: open, setup code {format_code(code)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
