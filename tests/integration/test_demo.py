"""``appliance demo`` (what ``make demo`` runs) for 60 s: calls stored, ``ok`` postings, and the PMS
simulator received exactly the ``ok`` postings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_a_sixty_second_demo_posts_what_the_pms_received(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "demo", "--data-dir", str(tmp_path), "--duration", "60",
         "--rate", "1", "--web-port", "0"],
        capture_output=True, text=True, timeout=180,
    )
    logs = "\n".join(p.read_text()[-3000:] for p in sorted((tmp_path / "logs").glob("*.log")))
    assert result.returncode == 0, result.stdout + result.stderr + logs
    assert "Web admin: http://127.0.0.1:" in result.stdout and "sign in as admin / " in result.stdout
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["calls_sent_by_pbx"] >= 40
    assert summary["calls_stored"] == summary["calls_sent_by_pbx"]
    assert summary["postings_by_state"].get("ok", 0) >= 5
    assert summary["ps_received_by_pms"] == summary["postings_by_state"]["ok"]
    assert summary["pms_matches_ok_postings"] is True
