#!/usr/bin/env python3
"""Complete the appliance's first-boot setup over HTTP, as a browser would (used by image/boot-test.sh).

    setup_over_http.py BASE_URL SETUP_CODE --pms-host H --pms-port P --pbx-port Q [--password PW]

Standard library only (it runs on the build host, outside the appliance's virtual environment). Follows
the setup of webadmin/setup.py: the one-time code, the admin, the site, a Mitel MiVoice Business PBX link
the PBX connects to (tcp-server), a FIAS PMS link (tcp-client) whose "Test this link" must show the
LS/LD/LR/LA handshake, then "Finish setup". Every form's CSRF token is read from the page. Prints one
line per step; exits non-zero with the page's error text when a step fails.
"""

from __future__ import annotations

import argparse
import html
import http.cookiejar
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def open(self, path: str, data: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, body, timeout=timeout) as response:
                return response.status, response.geturl(), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.geturl(), exc.read().decode("utf-8", "replace")

    def form(self, path: str, fields: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
        status, _url, page = self.open(path)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        if status != 200 or not match:
            fail(f"GET {path}: status {status}, no form", page)
        return self.open(path, {**fields, "csrf_token": match.group(1)}, timeout)


def fail(what: str, page: str = "") -> None:
    errors = [html.unescape(re.sub(r"<[^>]+>", "", e)).strip()
              for e in re.findall(r'<(?:li|p class="(?:summary|flash[^"]*)")[^>]*>(.*?)</(?:li|p)>', page, re.S)]
    print(f"setup FAILED: {what}" + (f": {'; '.join(e for e in errors if e)[:600]}" if errors else ""),
          file=sys.stderr)
    sys.exit(1)


def expect(result: tuple[int, str, str], path_suffix: str, what: str) -> None:
    status, url, page = result
    if status != 200 or not urllib.parse.urlsplit(url).path.endswith(path_suffix):
        fail(f"{what} (status {status}, at {url})", page)
    print(f"  {what}: ok")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("code")
    parser.add_argument("--pms-host", required=True)
    parser.add_argument("--pms-port", required=True)
    parser.add_argument("--pbx-port", default="17520")
    parser.add_argument("--password", default="boot-test-admin-password")
    parser.add_argument("--extensions", default="101-130")
    args = parser.parse_args()
    browser = Browser(args.base)

    status, url, _page = browser.open("/")
    if not urllib.parse.urlsplit(url).path.endswith("/setup/"):
        fail(f"the web admin is not in setup mode (/ led to {url}, status {status})")
    print("  / leads to the setup: ok")
    expect(browser.form("/setup/", {"code": args.code}), "/setup/admin", "setup code accepted")
    expect(browser.form("/setup/admin", {"username": "admin", "password": args.password,
                                         "confirm": args.password}), "/setup/site", "administrator")
    expect(browser.form("/setup/site", {"name": "Boot Test Hotel", "country": "US", "timezone": "UTC",
                                        "currency": "USD", "access_code": "9",
                                        "guest_extensions": args.extensions, "per_minute": "0.30",
                                        "per_call": "0.50"}), "/setup/link/pbx", "site")
    expect(browser.form("/setup/link/pbx", {"driver": "mitel_mivb", "name": "pbx", "transport": "tcp-server",
                                            "port": args.pbx_port, "action": "save"}),
           "/setup/link/pms", "PBX link")
    pms = {"driver": "fias", "name": "pms", "transport": "tcp-client", "host": args.pms_host,
           "port": args.pms_port}
    started = time.monotonic()
    status, _url, page = browser.form("/setup/link/pms", {**pms, "action": "test"})
    frames = [html.unescape(f) for f in re.findall(r"<code>(.*?)</code>", page)]
    if status != 200 or "handshake complete" not in page:
        fail("PMS link test", page)
    print(f"  PMS link test ({time.monotonic() - started:.1f} s): handshake complete; frames:")
    for frame in frames:
        print(f"    {frame[:150]}")
    expect(browser.form("/setup/link/pms", {**pms, "action": "save"}), "/setup/finish", "PMS link")
    status, _url, page = browser.form("/setup/finish", {})
    if status != 200 or "Setup complete" not in page:
        fail("finish", page)
    print("  finish: setup complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
