"""``appliance demo``: the whole appliance on loopback, as separate processes, with simulated PBX and PMS.

What ``make demo`` runs. It writes a configuration and a SQLite database into ``--data-dir``, starts the
PMS simulator (guests checked into rooms 101-120), the daemon, the web admin and the PBX simulator, prints
the web address and the sign-in, and with ``--duration S`` stops after S seconds and prints a summary:
calls received, postings by state, and whether the PMS received exactly the ``ok`` postings.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DEMO_CONFIG = """\
# Written by `appliance demo`. Every key is explained in appliance/example-config.yaml.
site:
  name: Demo Hotel
  country: US
  timezone: America/New_York
  currency: USD
  access_code: "9"
  local_exchange: "212"
database:
  url: sqlite:///{db}
pbx:
  - name: pbx
    driver: mitel_mivb
    transport: tcp-server
    host: 127.0.0.1
    port: {pbx_port}
pms:
  name: pms
  driver: fias
  transport: tcp-client
  host: 127.0.0.1
  port: {pms_port}
  options:
    answer_timeout: 10
extensions:
  - numbers: "101-130"
    category: guest
  - numbers: "150-151"
    category: lobby
  - numbers: "200-210"
    category: admin
tariff:
  name: demo
  markup_percent: 25
  surcharge_per_call: 0.50
  grace_seconds: 10
  rounding: 0.05
  rounding_mode: up
  default: {{connect: 0.00, per_minute: 0.30}}
  classes:
    local: {{connect: 0.00, per_minute: 0.10, band_per_minute: {{night: 0.05}}}}
    national: {{connect: 0.00, per_minute: 0.25, band_per_minute: {{night: 0.15}}}}
    mobile: {{connect: 0.00, per_minute: 0.25}}
    international: {{connect: 0.50, per_minute: 1.20, first_block: 60, increment: 6, minimum: 1.00}}
    premium: {{connect: 1.00, per_minute: 2.50}}
  prefixes:
    "44": {{name: United Kingdom, connect: 0.50, per_minute: 0.60, first_block: 60, increment: 6}}
  bands:
    - {{name: night, days: [mon-sun, hol], start: "22:00", end: "07:00"}}
web:
  host: 127.0.0.1
  port: {web_port}
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the whole appliance on loopback with simulators")
    parser.add_argument("--data-dir", default="demo-data", help="where the demo keeps its database and logs")
    parser.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: run until Ctrl-C)")
    parser.add_argument("--rate", type=float, default=0.5, help="simulated calls per second")
    parser.add_argument("--web-port", type=int, default=8080)
    parser.set_defaults(func=run)


def free_port(preferred: int = 0) -> int:
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def run(args: argparse.Namespace) -> int:
    data = Path(args.data_dir).resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for stale in ("appliance.db", "appliance.db-wal", "appliance.db-shm", "pms-received.jsonl", "pbx-sent.jsonl"):
        (data / stale).unlink(missing_ok=True)
    ports = {"pbx_port": free_port(), "pms_port": free_port(), "web_port": free_port(args.web_port)}
    config = data / "appliance.yaml"
    config.write_text(DEMO_CONFIG.format(db=data / "appliance.db", **ports), encoding="utf-8")
    appliance = [sys.executable, "-m", "appliance"]
    subprocess.run([*appliance, "db", "upgrade", "--config", str(config)], check=True, stdout=subprocess.DEVNULL)
    password = secrets.token_urlsafe(9)
    subprocess.run([*appliance, "user", "add", "admin", "--role", "admin", "--password-stdin",
                    "--no-change-required", "--config", str(config)],
                   input=password + "\n", text=True, check=True, stdout=subprocess.DEVNULL)

    processes: list[subprocess.Popen] = []

    def start(name: str, *command: str) -> None:
        log = open(logs / f"{name}.log", "w", encoding="utf-8")
        processes.append(subprocess.Popen([*appliance, *command], stdout=log, stderr=subprocess.STDOUT))

    start("pms-simulator", "simulate", "pms", "--listen", f"127.0.0.1:{ports['pms_port']}", "--rooms", "101-120",
          "--record", str(data / "pms-received.jsonl"))
    start("daemon", "run", "--config", str(config))
    start("web", "web", "--config", str(config))
    time.sleep(1.0)
    start("pbx-simulator", "simulate", "pbx", "--driver", "mitel_mivb", "--connect",
          f"127.0.0.1:{ports['pbx_port']}", "--rate", str(args.rate), "--extensions", "101-130,150,200-205",
          "--timezone", "America/New_York", "--record", str(data / "pbx-sent.jsonl"))

    print(f"Demo running. Web admin: http://127.0.0.1:{ports['web_port']}/  sign in as admin / {password}")
    print(f"Logs in {logs}; database {data / 'appliance.db'}")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            if any(p.poll() is not None for p in processes):
                print("a demo process stopped unexpectedly; see the logs", file=sys.stderr)
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    # The PBX first, so the daemon can finish what is in flight before it stops.
    _stop(processes[3:])
    time.sleep(min(3.0, args.duration / 10 + 1) if args.duration else 3.0)
    _stop(processes[:3])
    summary = summarise(config, data)
    print(json.dumps(summary, indent=2))
    return 0 if summary["pms_matches_ok_postings"] else 1


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def summarise(config_path: Path, data: Path) -> dict:
    from sqlalchemy import func, select

    from appliance.config import load_config
    from appliance.db.models import Call, Posting
    from appliance.db.session import make_engine, make_sessionmaker

    config = load_config(config_path)
    engine = make_engine(config.database.url)
    with make_sessionmaker(engine)() as session:
        calls = session.scalar(select(func.count()).select_from(Call)) or 0
        by_state = dict(session.execute(select(Posting.state, func.count()).group_by(Posting.state)).all())
        ok = sorted(session.execute(select(Posting.sequence, Posting.room).where(Posting.state == "ok")).all())
    engine.dispose()
    received_path = data / "pms-received.jsonl"
    received = [json.loads(line) for line in received_path.read_text().splitlines()] if received_path.exists() else []
    # A PS the simulator answered with anything but OK is not an ok posting; a lost answer is "fault".
    received_keys = sorted((int(r["sequence"]), r["room"]) for r in received if r.get("answer") == "OK")
    sent_path = data / "pbx-sent.jsonl"
    sent = len(sent_path.read_text().splitlines()) if sent_path.exists() else 0
    return {
        "calls_sent_by_pbx": sent,
        "calls_stored": calls,
        "postings_by_state": by_state,
        "ps_received_by_pms": len(received),
        "pms_matches_ok_postings": [(int(s), r) for s, r in ok] == received_keys,
        "demo_config": str(config_path),
    }

