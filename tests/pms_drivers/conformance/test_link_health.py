"""Link health: an alert when the PMS link has been down, or postings unanswered, longer than a threshold,
with a cool-down so one outage gives one alert (domain.md "Alerts that hotels ask for"; fias.md §8 item 2).
The rule (``appliance.linkhealth.due_alerts``) is pure; the service runs it on its periodic wake.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appliance.linkhealth import RULE_DOWN, RULE_UNANSWERED, LinkFacts, Thresholds, due_alerts
from pms_drivers.fias.link import FiasOptions
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.fias.peer_model import parse_fault, seeded_roster
from tests.pms_drivers.conformance.service_harness import Hotel

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
LIMITS = Thresholds(down_minutes=10, unanswered_minutes=15, cooldown_minutes=60)


def facts(**kwargs) -> LinkFacts:
    return LinkFacts(**{"link": "pms", "state": "up", "state_since": NOW - timedelta(hours=1), **kwargs})


def test_down_longer_than_the_threshold_alerts_once_per_outage():
    assert due_alerts(facts(state="down", state_since=NOW - timedelta(minutes=9)), LIMITS, NOW) == []
    [alert] = due_alerts(facts(state="down", state_since=NOW - timedelta(minutes=10)), LIMITS, NOW)
    assert alert.rule == RULE_DOWN and alert.subject == "pms" and "10 min" in alert.message
    already = {RULE_DOWN: NOW - timedelta(minutes=1)}
    assert due_alerts(facts(state="down", state_since=NOW - timedelta(hours=3), last_alerts=already),
                      LIMITS, NOW) == []


def test_cool_down_across_flapping_outages():
    """A new outage 20 min after the last alert stays quiet; one 2 h later alerts again."""
    last = {RULE_DOWN: NOW - timedelta(minutes=30)}
    assert due_alerts(facts(state="down", state_since=NOW - timedelta(minutes=12), last_alerts=last),
                      LIMITS, NOW) == []
    last = {RULE_DOWN: NOW - timedelta(hours=2)}
    assert len(due_alerts(facts(state="down", state_since=NOW - timedelta(minutes=12), last_alerts=last),
                          LIMITS, NOW)) == 1


def test_unanswered_postings_while_up():
    assert due_alerts(facts(unanswered_since=NOW - timedelta(minutes=14)), LIMITS, NOW) == []
    [alert] = due_alerts(facts(unanswered_since=NOW - timedelta(minutes=16)), LIMITS, NOW)
    assert alert.rule == RULE_UNANSWERED
    # while down, only the down rule speaks: one outage, one alert
    down = facts(state="down", state_since=NOW - timedelta(minutes=5), unanswered_since=NOW - timedelta(hours=1))
    assert due_alerts(down, LIMITS, NOW) == []
    assert due_alerts(facts(unanswered_since=NOW - timedelta(hours=1)), Thresholds(unanswered_minutes=0), NOW) == []


def test_service_raises_one_alert_for_a_long_outage(tmp_path):
    """The daemon never reaches the PMS for 30 minutes: one pms_link_down alert, not one per wake."""
    hotel = Hotel(tmp_path / "a.db", options=FiasOptions(down_alert_minutes=10))
    hotel.accept_connections = False
    hotel.start()
    hotel.advance(30 * 60, step=5)
    assert [a.rule for a in hotel.alerts()] == [RULE_DOWN]
    hotel.check()


def test_service_alerts_when_the_pms_answers_nothing(tmp_path):
    """The link is up but every PA is lost: after unanswered_alert_minutes, one alert."""
    peer = FiasPmsPeer(tz=UTC, roster=seeded_roster(["101"]))
    peer.faults.every(1, parse_fault("lose-pa"))
    options = FiasOptions(unanswered_alert_minutes=5, answer_timeout=30)
    hotel = Hotel(tmp_path / "a.db", options=options, peer=peer).start()
    hotel.advance(4)
    for _ in range(12):
        hotel.queue("101")
        hotel.advance(60, step=5)
    assert [a.rule for a in hotel.alerts()] == [RULE_UNANSWERED]
    assert all(p.state == "failed" for p in hotel.postings())
    hotel.check()
